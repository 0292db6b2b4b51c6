"""Documents calicoctl accepts are accepted: every FelixConfigurationSpec field, full ObjectMeta."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seawall.api import ValidationFailed, load_text, to_document
from seawall.api.felix import effective_config, unenforced_fields
from seawall.api.models import FelixConfiguration

DATA = Path(__file__).parent.parent / "data" / "calico"


@pytest.mark.parametrize("name", ["felixconfiguration-default.yaml", "hostendpoint-objectmeta.yaml"])
def test_real_documents_parse_and_round_trip(name: str) -> None:
    text = (DATA / name).read_text()
    item = load_text(text, name)[0]
    doc = to_document(item.resource, resource_version=42)
    again = load_text(json.dumps(doc), "again.json")[0]
    assert to_document(again.resource, resource_version=42) == doc
    assert "uid" in doc["metadata"] and "creationTimestamp" in doc["metadata"]


def test_felix_fields_are_stored_not_enforced() -> None:
    item = load_text((DATA / "felixconfiguration-default.yaml").read_text(), "f.yaml")[0]
    resource = item.resource
    assert isinstance(resource, FelixConfiguration)
    assert resource.spec.vxlanVNI == 4096 and resource.spec.iptablesMarkMask == 0xFFFF0000
    assert "vxlanVNI" in unenforced_fields(resource.spec)
    assert "healthPort" not in unenforced_fields(resource.spec)
    assert effective_config(resource, None).healthPort == 9099


def test_hostendpoint_objectmeta_kept() -> None:
    item = load_text((DATA / "hostendpoint-objectmeta.yaml").read_text(), "h.yaml")[0]
    meta = item.resource.metadata
    assert meta.finalizers == ["example.com/keep"] and meta.generation == 1
    assert meta.ownerReferences is not None and meta.ownerReferences[0].kind == "Node"


@pytest.mark.parametrize(("typo", "hint"), [("vxlanVni", "vxlanVNI"), ("reportingTtl", "reportingTTL")])
def test_felix_typos_still_refused(typo: str, hint: str) -> None:
    text = f"apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {{name: default}}\nspec: {{{typo}: 1}}"
    with pytest.raises(ValidationFailed) as info:
        load_text(text, "f.yaml")
    assert f'unknown field "{typo}" (did you mean "{hint}"?)' in str(info.value)


def test_metadata_typo_still_refused() -> None:
    text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s, finalizer: [x]}\nspec: {}"
    with pytest.raises(ValidationFailed) as info:
        load_text(text, "s.yaml")
    assert 'unknown field "finalizer" (did you mean "finalizers"?)' in str(info.value)
