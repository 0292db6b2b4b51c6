"""Small CLI behaviours: kind hints, kind listing, patch resourceVersion, status robustness, examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import Seawall

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_kind_typo_suggests_the_right_kind(seawall: Seawall) -> None:
    result = seawall("get", "hostendpont")
    assert result.code == 1
    assert "did you mean 'hostendpoint' (HostEndpoint)?" in result.err


def test_get_without_kind_lists_the_kinds(seawall: Seawall) -> None:
    result = seawall("get")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["KIND", "SHORT", "NAMES"]
    assert any(line.split()[:3] == ["HostEndpoint", "hep,", "heps"] for line in lines)
    assert any(line.startswith("GlobalNetworkSet") and "gns" in line for line in lines)


def test_apply_examples_directory_applies_cleanly(seawall: Seawall) -> None:
    result = seawall("apply", "-f", str(EXAMPLES))
    assert result.code == 0, result.err
    assert "Successfully applied 3 resource(s)" in result.out
    attack = seawall("apply", "-f", str(EXAMPLES / "under-attack"))
    assert attack.code == 0, attack.err
    assert "no GlobalNetworkPolicy" not in attack.err  # the stored policy selects the set


def test_duplicate_resource_across_files_names_both_files(seawall: Seawall, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "dos-mitigation.yaml", tmp_path / "a.yaml")
    shutil.copy(EXAMPLES / "under-attack" / "under-attack.yaml", tmp_path / "b.yaml")
    result = seawall("apply", "-f", str(tmp_path))
    assert result.code == 1
    assert "b.yaml: document 1: GlobalNetworkSet(dos-mitigation)" in result.err
    assert "first in " in result.err and "a.yaml: document 2" in result.err


def test_upper_case_extensions_are_read_in_directory_mode(seawall: Seawall, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "dos-mitigation.yaml", tmp_path / "A.YAML")
    result = seawall("validate", "-f", str(tmp_path))
    assert result.code == 0, result.err
    assert "Successfully validated 3 resource(s)" in result.out


def test_apply_warns_for_a_set_no_policy_selects(seawall: Seawall, tmp_path: Path) -> None:
    text = (EXAMPLES / "dos-mitigation.yaml").read_text().replace("dos-blacklist: 'true'", "dos-blacklst: 'true'")
    (tmp_path / "typo.yaml").write_text(text)
    result = seawall("apply", "-f", str(tmp_path / "typo.yaml"))
    assert result.code == 0, result.err
    assert "warning: " in result.err
    assert "document 2: GlobalNetworkSet(dos-mitigation): no GlobalNetworkPolicy rule" in result.err
    offline = seawall("validate", "-f", str(tmp_path / "typo.yaml"))
    assert "GlobalNetworkSet(dos-mitigation): no GlobalNetworkPolicy rule" in offline.err


def test_apply_and_validate_print_dangerous_input_warnings(seawall: Seawall, tmp_path: Path) -> None:
    path = tmp_path / "wide.yaml"
    path.write_text((EXAMPLES / "dos-mitigation.yaml").read_text().replace('"5.6.0.0/16"', '"0.0.0.0/0"'))
    for verb in ("validate", "apply"):
        result = seawall(verb, "-f", str(path))
        assert result.code == 0, result.err
        assert f"warning: {path}: document 2: GlobalNetworkSet(dos-mitigation): spec.nets[1]: 0.0.0.0/0: catch-all" in result.err


def _applied_revision(seawall: Seawall) -> str:
    assert seawall("apply", "-f", str(EXAMPLES / "dos-mitigation.yaml")).code == 0
    got = seawall("get", "gns", "dos-mitigation", "-o", "json")
    assert got.code == 0, got.err
    doc = json.loads(got.out)
    return str(doc["metadata"]["resourceVersion"])


def test_patch_with_a_stale_resource_version_is_a_conflict(seawall: Seawall) -> None:
    revision = _applied_revision(seawall)
    stale = str(int(revision) - 1)
    patch = json.dumps({"metadata": {"resourceVersion": stale}, "spec": {"nets": ["9.9.9.9/32"]}})
    result = seawall("patch", "gns", "dos-mitigation", "-p", patch)
    assert result.code == 1
    assert "conflict" in result.err and "nothing was written" in result.err
    after = json.loads(seawall("get", "gns", "dos-mitigation", "-o", "json").out)
    assert after["spec"]["nets"] == ["1.2.3.4/32", "5.6.0.0/16"]
    assert str(after["metadata"]["resourceVersion"]) == revision


def test_patch_with_the_current_resource_version_succeeds(seawall: Seawall) -> None:
    revision = _applied_revision(seawall)
    patch = json.dumps({"metadata": {"resourceVersion": revision}, "spec": {"nets": ["9.9.9.9/32"]}})
    result = seawall("patch", "gns", "dos-mitigation", "-p", patch)
    assert result.code == 0, result.err
    after = json.loads(seawall("get", "gns", "dos-mitigation", "-o", "json").out)
    assert after["spec"]["nets"] == ["9.9.9.9/32"]


@pytest.mark.parametrize("content", [
    b"\x00\xffgarbage", b"not json {", b"[1, 2, 3]", b'{"interfaces": 5}',
    b'{"interfaces": [{"name": "eth0", "rules": "x", "counters": 3}]}', b'{"interfaces": ["eth0"]}',
    b'{"warnings": {"a": 1}}',
])
def test_malformed_status_is_a_clear_error(seawall: Seawall, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "status.json").write_bytes(content)
    for fmt in ("table", "json"):
        result = seawall("status", "--run-dir", str(tmp_path), "-o", fmt, datastore=None)
        assert result.code == 1, result.out
        assert "Traceback" not in result.err
        assert str(tmp_path / "status.json") in result.err


def test_warnings_are_capped_like_errors(seawall: Seawall) -> None:
    docs = "---\n".join(
        f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {{name: s{i}}}\nspec: {{nets: [10.0.0.{i}/32]}}\n"
        for i in range(150)
    )
    result = seawall("apply", "-f", "-", stdin=docs)
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 101 and warnings[-1] == "warning: ... and 50 more warnings"
