"""``seawall patch globalnetworkset NAME --add-nets/--remove-nets``: the member
path operators (and ``seawall block``) use under attack, on a plain set and on a
big chunked one, with bad input refused whole."""

from __future__ import annotations

import json
from pathlib import Path

from seawall.datastore import SqliteDatastore
from seawall.datastore.members import CHUNKED_MIN_NETS

from .conftest import Seawall


def _set_yaml(name: str, nets: list[str]) -> str:
    return json.dumps({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
                       "metadata": {"name": name, "labels": {"role": "blacklist"}}, "spec": {"nets": nets}})


def _nets(seawall: Seawall, name: str) -> list[str]:
    result = seawall("get", "globalnetworkset", name, "-o", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)["spec"]["nets"]


def test_add_and_remove_nets_of_a_plain_set(seawall: Seawall) -> None:
    assert seawall("apply", "-f", "-", stdin=_set_yaml("dos-mitigation", ["1.2.3.4"])).code == 0
    result = seawall("patch", "gns", "dos-mitigation", "--add-nets", "5.6.7.0/24,2001:db8::/48", "--add-nets", "9.9.9.9")
    assert result.code == 0, result.err
    assert "3 net(s) added" in result.out
    assert _nets(seawall, "dos-mitigation") == ["1.2.3.4", "5.6.7.0/24", "2001:db8::/48", "9.9.9.9/32"]
    assert seawall("patch", "gns", "dos-mitigation", "--remove-nets", "1.2.3.4/32").code == 0
    assert _nets(seawall, "dos-mitigation") == ["5.6.7.0/24", "2001:db8::/48", "9.9.9.9/32"]


def test_a_big_set_is_patched_without_rewriting_it(seawall: Seawall, db_url: str, tmp_path: Path) -> None:
    nets = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(CHUNKED_MIN_NETS + 100)]
    path = tmp_path / "big.json"
    path.write_text(_set_yaml("big", nets))
    assert seawall("apply", "-f", str(path)).code == 0
    store = SqliteDatastore(Path(db_url.removeprefix("sqlite://")))
    try:
        before = {kv.name for kv in store.list("SeawallNetChunk").items}
        assert seawall("patch", "gns", "big", "--add-nets", "192.0.2.1", "--remove-nets", nets[0]).code == 0
        after = {kv.name for kv in store.list("SeawallNetChunk").items}
    finally:
        store.close()
    assert len(after - before) <= 2 and len(before - after) <= 2
    got = set(_nets(seawall, "big"))
    assert got == (set(nets) - {nets[0]}) | {"192.0.2.1/32"}


def test_bad_patches_are_refused_and_write_nothing(seawall: Seawall) -> None:
    assert seawall("apply", "-f", "-", stdin=_set_yaml("s", ["1.2.3.4"])).code == 0
    bad = seawall("patch", "gns", "s", "--add-nets", "10.0.0.0/33,banana")
    assert bad.code == 1 and "'10.0.0.0/33'" in bad.err and "'banana'" in bad.err and "nothing was written" in bad.err
    both = seawall("patch", "gns", "s", "--add-nets", "5.5.5.5", "--remove-nets", "5.5.5.5")
    assert both.code == 1 and "in both" in both.err
    mixed = seawall("patch", "gns", "s", "-p", "{}", "--add-nets", "5.5.5.5")
    assert mixed.code == 1 and "not both" in mixed.err
    other = seawall("patch", "hep", "s", "--add-nets", "5.5.5.5")
    assert other.code == 1 and "GlobalNetworkSet" in other.err
    missing = seawall("patch", "gns", "nope", "--add-nets", "5.5.5.5")
    assert missing.code == 1 and "does not exist" in missing.err
    stale = seawall("patch", "gns", "s", "--add-nets", "5.5.5.5", "--resource-version", "999")
    assert stale.code == 1 and "conflict" in stale.err
    assert _nets(seawall, "s") == ["1.2.3.4"]
