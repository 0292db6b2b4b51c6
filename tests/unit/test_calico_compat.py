"""Documents calicoctl accepts are accepted: every FelixConfigurationSpec field, full ObjectMeta."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from seawall.api import ValidationFailed, load_text, to_document
from seawall.api.felix import effective_config, unenforced_fields
from seawall.api.models import FelixConfiguration
from seawall.calc import Snapshot, compute
from seawall.cli.explain import build, explain
from seawall.selector import Selector, parse
from seawall.selector.scoping import (
    entity_selector,
    namespace_scope,
    policy_selector,
    service_account_scope,
    with_label_prefix,
)
from tests.unit.test_calc import ETH0, SEED, felix, gnp, gns

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


# ---------------------------------------------------------------- workload-only fields, Calico's meaning

HEAD = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"


def _policy(rule: str, extra: str = "") -> str:
    return HEAD + f"spec:\n  doNotTrack: true\n  applyOnForward: true\n{extra}  ingress:\n  - {rule}\n"


def _warnings(text: str) -> list[str]:
    return [str(w) for item in load_text(text, "t.yaml") for w in item.warnings]


def _refused(text: str) -> str:
    with pytest.raises(ValidationFailed) as info:
        load_text(text, "t.yaml")
    return str(info.value)


def test_workload_fields_document_is_accepted_with_a_warning_per_field() -> None:
    (item,) = load_text((DATA / "globalnetworkpolicy-workload-fields.yaml").read_text(), "w.yaml")
    paths = [w.path for w in item.warnings]
    assert paths == [
        "spec.namespaceSelector", "spec.serviceAccountSelector", "spec.ingress[0].http",
        "spec.ingress[1].source.namespaceSelector", "spec.ingress[3].source.serviceAccounts",
        "spec.ingress[4].source.services", "spec.egress[0].destination.services",
    ]
    text = [str(w) for w in item.warnings]
    assert "no host endpoint or GlobalNetworkSet is in one, so this rule matches nothing here" in text[3]
    assert '(pcns.team == "a" && role == "x")' in text[3]
    assert "applies to no host endpoint" in text[0]
    http = item.resource.spec.ingress[0].http
    assert http.methods == ["GET", "HEAD"] and http.paths[1].prefix == "/api/"
    doc = to_document(item.resource)
    assert doc["spec"]["ingress"][3]["source"]["serviceAccounts"] == {"names": ["api", "web"], "selector": "tier == 'backend'"}


def test_global_namespace_selector_is_not_warned() -> None:
    assert _warnings(_policy("{action: Deny, source: {namespaceSelector: global(), selector: a == 'b'}}")) == []


@pytest.mark.parametrize(
    ("rule", "extra", "expected"),
    [
        ("{action: Deny, http: {methods: [GET]}}", "", "spec.ingress[0].http (only valid for Allow rules)"),
        ("{action: Allow, protocol: UDP, http: {methods: [GET]}}", "",
         "rules that specify HTTP fields must set protocol to TCP or empty"),
        ("{action: Allow, http: {paths: [{exact: /a, prefix: /b}]}}", "", "a path must set exactly one of exact or prefix"),
        ("{action: Allow, http: {verbs: [GET]}}", "", 'unknown field "verbs"'),
        ("{action: Allow, protocol: TCP, source: {services: {name: s, namespace: n}, ports: [80]}}", "",
         "cannot specify ports with a service selector"),
        ("{action: Allow, destination: {services: {name: s, namespace: n}}}", "", "not allowed in ingress rule destination"),
        ("{action: Allow, source: {services: {name: s}}}", "", "spec.ingress[0].source.services.namespace (must specify a namespace)"),
        ("{action: Deny, source: {namespaceSelector: 'global() && a == \"b\"'}}", "", "global() cannot be combined with other selectors"),
        ("{action: Deny, source: {selector: global()}}", "", "global() can only be used in an EntityRule namespaceSelector"),
        ("{action: Deny}", "  namespaceSelector: global()\n", "spec.namespaceSelector = 'global()' (global() can only be used"),
        ("{action: Deny, source: {serviceAccounts: {selector: 'a = b'}}}", "", "spec.ingress[0].source.serviceAccounts.selector"),
        ("{action: Deny, source: {serviceAccounts: {names: 7}}}", "", "serviceAccounts.names"),
    ],
)
def test_calico_invalid_workload_forms_are_refused_with_calicos_messages(rule: str, extra: str, expected: str) -> None:
    assert expected in _refused(_policy(rule, extra))


def test_felix_unenforced_fields_give_one_warning() -> None:
    warnings = _warnings((DATA / "felixconfiguration-default.yaml").read_text())
    stored = [w for w in warnings if "stored, not enforced by Seawall" in w]
    assert len(stored) == 1 and stored[0].startswith("spec: stored, not enforced by Seawall: ")
    assert "vxlanVNI" in stored[0] and "healthPort" not in stored[0]


# -- selector scoping (canonical strings are what name the IP sets)


def _canon(node: object) -> str:
    return Selector(node).canonical  # type: ignore[arg-type]


def test_scoping_canonical_strings() -> None:
    sel, ns = parse("role == 'x'").root, parse("team == 'a'").root
    assert _canon(entity_selector(sel, namespace_selector=ns)) == '(pcns.team == "a" && role == "x")'
    assert _canon(entity_selector(None, namespace_selector=ns)) == 'pcns.team == "a"'
    assert _canon(namespace_scope(parse("all()").root)) == "has(projectcalico.org/namespace)"
    assert _canon(namespace_scope(parse("global()").root)) == "!has(projectcalico.org/namespace)"
    assert _canon(namespace_scope(parse("has(x) || a in {'q'}").root)) == '(has(pcns.x) || pcns.a in {"q"})'
    assert _canon(service_account_scope(None, ["web", "api"])) == 'projectcalico.org/serviceaccount in {"api", "web"}'
    accounts = service_account_scope(parse("tier == 'b'").root, ["web"])
    assert _canon(entity_selector(sel, service_accounts=accounts)) == (
        '((pcsa.tier == "b" && projectcalico.org/serviceaccount in {"web"}) && role == "x")')
    assert service_account_scope(None, []) is None and entity_selector(None) is None
    assert _canon(with_label_prefix(parse("!(a != 'b' && c starts with 'd')").root, "p.")) == '!(p.a != "b" && p.c starts with "d")'
    assert _canon(policy_selector(sel, namespace_selector=parse("all()").root)) == (
        '(role == "x" && has(projectcalico.org/namespace))')
    assert _canon(policy_selector(None, service_account_selector=parse("all()").root)) == (
        "(all() && has(projectcalico.org/serviceaccount))")


_LABELS = st.sampled_from(["a", "b", "pcns.a", "pcns.b", "projectcalico.org/namespace"])
_VALUES = st.sampled_from(["x", "y"])
_LEAF = st.one_of(
    st.builds(lambda k, v: f"{k} == '{v}'", _LABELS, _VALUES),
    st.builds(lambda k, v: f"{k} != '{v}'", _LABELS, _VALUES),
    st.builds(lambda k: f"has({k})", _LABELS),
    st.just("all()"),
)
_EXPR = st.recursive(_LEAF, lambda inner: st.one_of(
    st.builds(lambda a, b: f"({a} && {b})", inner, inner),
    st.builds(lambda a, b: f"({a} || {b})", inner, inner),
    st.builds(lambda a: f"!({a})", inner)), max_leaves=6)


def _calico_string(ns_text: str, sel_text: str) -> str:
    """Calico's composition by strings: prefix the namespace selector's labels,
    replace all()/global(), then '(ns) && (selector)'."""
    prefixed = Selector(with_label_prefix(parse(ns_text).root, "pcns.")).canonical
    prefixed = prefixed.replace("all()", "has(projectcalico.org/namespace)").replace(
        "global()", "!has(projectcalico.org/namespace)")
    return f"({prefixed}) && ({sel_text})"


@given(ns_text=_EXPR, sel_text=_EXPR, labels=st.dictionaries(_LABELS, _VALUES))
def test_scoped_selector_matches_calicos_string_composition(ns_text: str, sel_text: str, labels: dict[str, str]) -> None:
    ours = Selector(entity_selector(parse(sel_text).root, namespace_selector=parse(ns_text).root))  # type: ignore[arg-type]
    calico = parse(_calico_string(ns_text, sel_text))
    assert ours.evaluate(labels) == calico.evaluate(labels)
    assert ours.canonical == calico.canonical and ours.unique_id() == calico.unique_id()


# -- calculation


def _desired(items: list):
    return compute(Snapshot.from_stored(items), "jasper", ETH0)


def _source_set(desired, index: int = 0) -> frozenset[str]:
    iface = desired.untracked.interface("eth0")
    (set_id,) = iface.policies[0].ingress[index].source.sets
    return desired.untracked.sets[set_id].cidrs


def _ns_rule(ns: str) -> dict:
    return {"action": "Deny", "source": {"namespaceSelector": ns, "selector": "dos-deny-list == 'true'"}}


def test_global_namespace_selector_selects_the_global_network_set() -> None:
    desired = _desired([SEED[0], SEED[1], gnp("dos-mitigation", [_ns_rule("global()")])])
    assert _source_set(desired) == {"1.2.3.4/32", "5.6.0.0/16"}
    assert desired.xdp.interfaces[0].cidrs == {"1.2.3.4/32", "5.6.0.0/16"}  # still one selector: XDP-eligible
    assert desired.stored_only == ()


def test_all_namespace_selector_selects_nothing_and_says_so() -> None:
    desired = _desired([SEED[0], SEED[1], gnp("dos-mitigation", [_ns_rule("all()")])])
    assert _source_set(desired) == frozenset()
    (message,) = desired.stored_only
    assert message in desired.warnings
    assert "ingress[0].source: namespaceSelector" in message and "(has(projectcalico.org/namespace) && " in message
    assert "the rule matches nothing here" in message


def test_a_set_labelled_like_a_namespace_follows_calico() -> None:
    odd = gns("odd", ["9.9.9.0/24"], labels={"dos-deny-list": "true", "pcns.team": "a"})
    desired = _desired([SEED[0], SEED[1], odd, gnp("dos-mitigation", [_ns_rule("team == 'a'")])])
    # Evaluation, not a special case: the pcns.team label matches (only all() asks for the namespace label).
    assert _source_set(desired) == {"9.9.9.0/24"}


def test_policy_namespace_selector_applies_to_no_host_endpoint() -> None:
    policy = gnp("dos-mitigation", [{"action": "Deny", "source": {"selector": "dos-deny-list == 'true'"}}])
    policy[2]["spec"]["namespaceSelector"] = "all()"
    desired = _desired([SEED[0], SEED[1], policy])
    assert desired.untracked.interfaces == () and desired.xdp.interfaces == ()
    (message,) = desired.stored_only
    assert "spec.namespaceSelector" in message and "the policy applies to none" in message


def test_http_allow_rule_is_dropped_with_a_warning() -> None:
    http = {"action": "Allow", "protocol": "TCP", "http": {"methods": ["GET"]}}
    desired = _desired([*SEED[:2], gnp("dos-mitigation", [http, _ns_rule("global()")])])
    iface = desired.untracked.interface("eth0")
    assert len(iface.policies[0].ingress) == 1 and iface.policies[0].ingress_indexes == (1,)
    (message,) = desired.stored_only
    assert "ingress[0].http" in message and "never matches" in message and message in desired.warnings


def test_services_rule_matches_nothing() -> None:
    rule = {"action": "Deny", "source": {"services": {"name": "kube-dns", "namespace": "kube-system"}}}
    desired = _desired([*SEED[:2], gnp("dos-mitigation", [rule])])
    assert desired.untracked.interface("eth0").policies[0].ingress == ()
    assert any("kube-system/kube-dns" in w and "matches nothing" in w for w in desired.stored_only)


def test_felix_unenforced_fields_are_in_stored_only_and_warnings() -> None:
    desired = _desired([*SEED, felix("default", vxlanVNI=4096, reportingTTL="30s", healthPort=9099)])
    assert desired.stored_only == ("FelixConfiguration default: stored, not enforced by Seawall: vxlanVNI, reportingTTL",)
    assert desired.stored_only[0] in desired.warnings


def test_explain_shows_the_effective_selector_and_that_it_matches_nothing() -> None:
    items = [SEED[0], SEED[1], gnp("dos-mitigation", [_ns_rule("all()"), _ns_rule("global()")])]
    snapshot = Snapshot.from_stored(items)
    desired = compute(snapshot, "jasper", ETH0)
    result = explain(desired, node="jasper", interfaces=ETH0)
    first, second = result.interfaces[0].rules
    assert first.matches_nothing and not second.matches_nothing
    assert first.sets[0].selector == '(has(projectcalico.org/namespace) && dos-deny-list == "true")'
    assert second.sets[0].selector == '(!has(projectcalico.org/namespace) && dos-deny-list == "true")'
    assert second.sets[0].members == 2
    assert result.stored_only and result.stored_only[0] not in result.warnings
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(build(result))
    text = console.export_text()
    assert "matches nothing here" in text and "has(projectcalico.org/namespace)" in text
    assert "not enforced" in text and "the rule matches nothing here" in text

