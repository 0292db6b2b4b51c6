"""The CLI starts without numpy (~0.1 s of import): only the million-net paths load it, lazily."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_and_its_datastore_layer_start_without_numpy() -> None:
    code = ("import sys, seawall.cli.main, seawall.datastore.documents, seawall.datastore.members; "
            "sys.exit('numpy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_small_nets_are_made_canonical_without_numpy() -> None:
    code = ("import sys; from seawall.datastore.members import canonical_nets; "
            "assert canonical_nets(['10.0.0.1/8', '10.0.0.0/8', '2001:DB8::/32']) == ['10.0.0.0/8', '2001:db8::/32']; "
            "sys.exit('numpy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
