"""The CLI end to end: real subprocesses, real SQLite files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from tests.conftest import DATA, SEED
from tests.e2e.conftest import Seawall

pytestmark = pytest.mark.e2e

GNS = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: {name}
  labels: {{dos-blacklist: 'true'}}
spec:
  nets: {nets}
"""


def _state(seawall: Seawall) -> dict:
    out = {}
    for kind in ("hep", "gns", "gnp", "felixconfig"):
        result = seawall("get", kind, "-o", "json")
        assert result.code == 0, result.err
        out[kind] = json.loads(result.out)["items"]
    return out


def test_seed_applies_and_comes_back(seawall: Seawall, db_url: str) -> None:
    result = seawall("apply", "-f", str(SEED))
    assert result.code == 0, result.err
    assert "Successfully applied 3 resource(s)" in result.out
    assert "label value is a YAML boolean; using the string 'true'" in result.err
    table = seawall("get", "hostendpoints")
    assert table.out.split("\n")[:2] == ["NAME              NODE", "production-host   jasper"]
    wide = seawall("get", "hep", "-o", "wide").out
    assert "eth0" in wide and "10.0.0.1" in wide
    doc = yaml.safe_load(seawall("get", "globalnetworkset", "dos-mitigation", "-o", "yaml").out)
    assert doc["spec"]["nets"] == ["1.2.3.4/32", "5.6.0.0/16"]
    assert doc["metadata"]["labels"] == {"dos-blacklist": "true"}
    assert int(doc["metadata"]["resourceVersion"]) >= 1
    policy = json.loads(seawall("get", "gnp", "dos-mitigation", "-o", "json").out)
    assert policy["spec"]["types"] == ["Ingress"] and policy["spec"]["doNotTrack"] is True
    path = Path(db_url.removeprefix("sqlite://"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_get_yaml_applies_back_unchanged(seawall: Seawall, tmp_path: Path) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    before = _state(seawall)
    for kind in ("hep", "gns", "gnp"):
        dumped = tmp_path / f"{kind}.yaml"
        dumped.write_text(seawall("get", kind, "-o", "yaml").out)
        result = seawall("apply", "-f", str(dumped))
        assert result.code == 0, result.err
    after = _state(seawall)
    for kind in before:
        for old, new in zip(before[kind], after[kind], strict=True):
            old["metadata"].pop("resourceVersion")
            new["metadata"].pop("resourceVersion")
            assert old == new


def test_stale_resource_version_is_a_conflict(seawall: Seawall, tmp_path: Path) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    stale = tmp_path / "stale.yaml"
    stale.write_text(seawall("get", "gns", "dos-mitigation", "-o", "yaml").out)
    assert seawall("label", "gns", "dos-mitigation", "team=sre").code == 0
    result = seawall("apply", "-f", str(stale))
    assert result.code == 1
    assert "update conflict" in result.err and "nothing was written" in result.err


def test_bad_corpus_is_refused_and_leaves_the_store_unchanged(seawall: Seawall) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    before = _state(seawall)
    for path in sorted((DATA / "bad").glob("*.yaml")):
        result = seawall("apply", "-f", str(path))
        assert result.code == 1, path
        assert str(path) in result.err
        assert "nothing was written" in result.err
    result = seawall("apply", "-f", str(DATA / "bad"))
    assert result.code == 1
    assert result.err.count("error") >= 20
    assert _state(seawall) == before


def test_one_bad_document_means_nothing_is_written(seawall: Seawall, tmp_path: Path) -> None:
    good = tmp_path / "a-good.yaml"
    good.write_text(GNS.format(name="good", nets='["9.9.9.9/32"]'))
    result = seawall("apply", "-f", str(good), "-f", str(DATA / "bad" / "bad-second-of-three.yaml"))
    assert result.code == 1
    assert "document 2: GlobalNetworkSet(half-2): error with field spec.nets[0] = '300.0.0.0/8'" in result.err
    assert json.loads(seawall("get", "gns", "-o", "json").out)["items"] == []


def test_attack_response_adds_a_cidr(seawall: Seawall, tmp_path: Path) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    result = seawall("apply", "-f", "-", stdin=GNS.format(name="dos-mitigation", nets='["1.2.3.4/32", "5.6.0.0/16", "203.0.113.0/24"]'))
    assert result.code == 0, result.err
    doc = json.loads(seawall("get", "gns", "dos-mitigation", "-o", "json").out)
    assert doc["spec"]["nets"][-1] == "203.0.113.0/24"


def test_create_replace_delete(seawall: Seawall, tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text(GNS.format(name="one", nets='["1.1.1.1/32"]'))
    assert seawall("create", "-f", str(one)).code == 0
    again = seawall("create", "-f", str(one))
    assert again.code == 1 and "resource already exists: GlobalNetworkSet(one)" in again.err
    assert seawall("create", "-f", str(one), "--skip-exists").code == 0
    missing = tmp_path / "two.yaml"
    missing.write_text(GNS.format(name="two", nets="[]"))
    result = seawall("replace", "-f", str(missing))
    assert result.code == 1 and "resource does not exist: GlobalNetworkSet(two)" in result.err
    assert seawall("replace", "-f", str(one)).code == 0
    result = seawall("delete", "gns", "one", "two")
    assert result.code == 1 and "GlobalNetworkSet(two)" in result.err
    assert seawall("get", "gns", "one", "-o", "name").out == "globalnetworkset/one\n"
    assert seawall("delete", "gns", "one", "two", "--skip-not-exists").code == 0
    assert seawall("get", "gns", "one").code == 1
    assert seawall("delete", "-f", str(one)).code == 1
    assert seawall("delete", "-f", str(one), "--skip-not-exists").code == 0


def test_directory_multi_document_json_and_lists(seawall: Seawall, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.yaml").write_text(GNS.format(name="a", nets="[]") + "---\n" + GNS.format(name="b", nets="[]"))
    (folder / "c.json").write_text(json.dumps({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSetList", "items": [
        {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "c"}}]}))
    (folder / "ignored.txt").write_text("not yaml: [")
    result = seawall("apply", "-f", str(folder))
    assert result.code == 0, result.err
    assert "Successfully applied 3 'GlobalNetworkSet' resource(s)" in result.out
    names = [i["metadata"]["name"] for i in json.loads(seawall("get", "gns", "-o", "json").out)["items"]]
    assert names == ["a", "b", "c"]


def test_patch_and_label(seawall: Seawall) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    result = seawall("patch", "gnp", "dos-mitigation", "-p", '{"spec": {"order": 10}}')
    assert result.code == 0, result.err
    assert json.loads(seawall("get", "gnp", "dos-mitigation", "-o", "json").out)["spec"]["order"] == 10
    bad = seawall("patch", "gnp", "dos-mitigation", "-p", '{"spec": {"doNotTrack": true, "applyOnForward": false}}')
    assert bad.code == 1 and "ApplyOnForward must be true" in bad.err
    assert seawall("label", "hep", "production-host", "zone=a").code == 0
    clash = seawall("label", "hep", "production-host", "zone=b")
    assert clash.code == 1 and "--overwrite" in clash.err
    assert seawall("label", "hep", "production-host", "zone=b", "--overwrite").code == 0
    labels = json.loads(seawall("get", "hep", "production-host", "-o", "json").out)["metadata"]["labels"]
    assert labels == {"apply-dos-mitigation": "true", "zone": "b"}
    assert seawall("label", "hep", "production-host", "zone", "--remove").code == 0
    bad_label = seawall("label", "hep", "production-host", "bad key=x")
    assert bad_label.code == 1 and "label key name must consist" in bad_label.err


def test_validate_is_offline(seawall: Seawall) -> None:
    result = seawall("validate", "-f", str(SEED), datastore="etcd://127.0.0.1:1")
    assert result.code == 0, result.err
    assert "Successfully validated 3 resource(s)" in result.out
    bad = seawall("validate", "-f", str(DATA / "bad" / "bad-cidr.yaml"), datastore=None)
    assert bad.code == 1 and "1.2.3.4/33" in bad.err


def test_unknown_kind_and_aliases(seawall: Seawall) -> None:
    result = seawall("get", "bogus")
    assert result.code == 1 and "resource type 'bogus' is not supported" in result.err
    for alias in ("hep", "heps", "hostendpoint", "gnp", "globalnetworkpolicies", "gns", "globalnetworksets", "felixconfig"):
        assert seawall("get", alias).code == 0, alias


def test_datastore_from_environment(tmp_path: Path, seawall: Seawall) -> None:
    url = f"sqlite://{tmp_path}/env/seawall.db"
    os.environ["SEAWALL_DATASTORE"] = url
    try:
        assert seawall("apply", "-f", str(SEED), datastore=None).code == 0
    finally:
        del os.environ["SEAWALL_DATASTORE"]
    assert (tmp_path / "env" / "seawall.db").exists()
