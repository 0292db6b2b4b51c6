"""Resources: the seed's documents, Calico's defaulting and validation rules."""

from __future__ import annotations

import json

import pytest

from seawall.api import ValidationFailed, load_text, to_document
from seawall.api.validation import default_policy_types
from tests.conftest import SEED

POLICY = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: p}
spec:
  doNotTrack: true
  applyOnForward: true
%s
"""


def _errors(text: str) -> str:
    with pytest.raises(ValidationFailed) as info:
        load_text(text, "t.yaml")
    return str(info.value)


def test_seed_documents_validate_with_one_warning_for_the_boolean_label() -> None:
    items = load_text(SEED.read_text(), str(SEED))
    assert [item.key for item in items] == [
        ("HostEndpoint", "production-host"),
        ("GlobalNetworkSet", "dos-mitigation"),
        ("GlobalNetworkPolicy", "dos-mitigation"),
    ]
    hep = items[0].resource
    assert hep.metadata.labels == {"apply-dos-mitigation": "true"}
    assert [str(w) for w in items[0].warnings] == [
        "metadata.labels.apply-dos-mitigation: label value is a YAML boolean; using the string 'true' (quote it: 'true')"
    ]
    assert items[1].warnings == [] and items[2].warnings == []


def test_output_round_trips_through_the_parser() -> None:
    for item in load_text(SEED.read_text(), "seed"):
        doc = to_document(item.resource, resource_version=7)
        again = load_text(json.dumps(doc), "again.json")[0]
        assert to_document(again.resource, resource_version=7) == doc
        assert list(doc) == ["apiVersion", "kind", "metadata", "spec"]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({}, ["Ingress"]),
        ({"ingress": [{"action": "Deny"}]}, ["Ingress"]),
        ({"egress": [{"action": "Deny"}]}, ["Egress"]),
        ({"ingress": [{"action": "Deny"}], "egress": [{"action": "Allow"}]}, ["Ingress", "Egress"]),
    ],
)
def test_policy_types_default_like_calico(rules: dict, expected: list[str]) -> None:
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "p"},
           "spec": {"doNotTrack": True, "applyOnForward": True, **rules}}
    item = load_text(json.dumps(doc), "p.json")[0]
    assert item.resource.spec.types == expected
    assert default_policy_types(item.resource.spec) == expected


def test_full_rule_vocabulary_is_accepted() -> None:
    text = POLICY % """  order: 10.5
  selector: has(role) && role in {'edge', "lb"}
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {nets: [192.168.0.0/16], notNets: [192.168.1.0/24], selector: "a == 'b'", notSelector: "c != 'd'",
             ports: [22, "1000:2000", http]}
    destination: {ports: [443], notPorts: ["8000:8100"]}
    metadata: {annotations: {reason: ssh-from-bastion}}
  - action: Log
    protocol: 1
    icmp: {type: 8, code: 0}
    ipVersion: 4
  - action: Pass
    notProtocol: udp
  - action: Deny
    ipVersion: 6
    protocol: ICMPv6
    notICMP: {type: 128}
    source: {nets: ["2001:db8::/32"]}
  egress:
  - action: Deny
    protocol: UDP
    destination: {ports: [53]}"""
    item = load_text(text, "t.yaml")[0]
    assert item.resource.spec.order == 10.5
    assert item.warnings == []


def test_policy_without_do_not_track_is_accepted_with_a_warning() -> None:
    text = POLICY.replace("  doNotTrack: true\n  applyOnForward: true\n", "") % "  ingress: [{action: Deny}]"
    item = load_text(text, "t.yaml")[0]
    assert any("enforces only doNotTrack policy" in str(w) for w in item.warnings)


def test_all_errors_of_a_document_are_reported_at_once() -> None:
    message = _errors(POLICY % """  ingress:
  - action: Drop
    protocol: TCPP
    source: {nets: [1.2.3.4/33, 10.0.0.1/8]}""")
    assert "spec.ingress[0].action = 'Drop' (action must be one of Allow, Deny, Log, Pass)" in message
    assert "spec.ingress[0].protocol = 'TCPP'" in message
    assert "spec.ingress[0].source.nets[0] = '1.2.3.4/33' (invalid CIDR: prefix length 33 > 32)" in message
    assert "spec.ingress[0].source.nets[1] = '10.0.0.1/8' (invalid CIDR: host bits set, did you mean 10.0.0.0/8?)" in message


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("{action: Deny, ipVersion: 6, source: {nets: [10.0.0.0/8]}}", "rule IP version doesn't match CIDR version"),
        ("{action: Deny, protocol: ICMP, ipVersion: 6}", "must set ipversion to '4' with protocol icmp"),
        ("{action: Deny, protocol: ICMPv6, ipVersion: 4}", "must set ipversion to '6' with protocol icmpv6"),
        ("{action: Deny, protocol: ICMP, icmp: {code: 1}}", "ICMP code specified without an ICMP type"),
        ("{action: Deny, protocol: TCP, destination: {ports: ['90:80']}}", "port range start must not be greater than its end"),
        ("{action: Deny, protocol: TCP, destination: {ports: [70000]}}", "port must be between 0 and 65535"),
        ("{action: Deny, protocol: 256}", "protocol must be one of"),
        ("{action: Deny, source: {nets: [1.2.3.4]}}", "a rule needs a prefix length, e.g. 1.2.3.4/32"),
        ("{action: Deny, source: {nets: ['::/0']}, destination: {notNets: ['::/0']}}", "catch-all CIDR in negation"),
        ("{action: Deny, http: {methods: [GET]}}", "spec.ingress[0].http (only valid for Allow rules)"),
        ("{action: Deny, destination: {services: {name: x, namespace: y}}}", "not allowed in ingress rule destination"),
        ("{action: Deny, source: {selector: 'a == '}}", "invalid selector"),
        ("{action: Deny, ipVersion: 5}", "ipVersion must be 4 or 6"),
        ("{action: Deny, source: {ports: [80]}, protocol: UDPLite}", "rules that specify ports must set protocol to TCP or UDP or SCTP"),
    ],
)
def test_rule_validation_messages(rule: str, expected: str) -> None:
    assert expected in _errors(POLICY % f"  ingress:\n  - {rule}")


def test_network_set_accepts_bare_and_unmasked_addresses() -> None:
    text = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: s}
spec: {nets: [1.2.3.4, 10.1.2.3/8, "2001:db8::1", "2001:db8::/32", 0.0.0.0/0]}"""
    assert load_text(text, "s.yaml")[0].resource.spec.nets[0] == "1.2.3.4"


def test_network_set_refuses_the_namespace_label() -> None:
    message = _errors("""apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: s, labels: {projectcalico.org/namespace: x}}""")
    assert "projectcalico.org/namespace is not a valid label name" in message


def test_wrong_types_are_refused_with_paths() -> None:
    message = _errors("""apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: p, labels: {tier: 1}}
spec: {order: high, doNotTrack: "yes", ingress: {action: Deny}}""")
    assert "metadata.labels.tier = '1' (must be a string)" in message
    assert "spec.order = 'high' (must be a number)" in message
    assert "spec.doNotTrack = 'yes' (must be a boolean (true or false))" in message
    assert "spec.ingress = " in message and "(must be a list)" in message


def test_host_endpoint_rules() -> None:
    base = "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h}\nspec: %s"
    assert "no interface or expected IPs have been specified" in _errors(base % "{node: n}")
    assert "interface name must be" in _errors(base % "{node: n, interfaceName: waytoolonginterfacename}")
    assert "invalid IP address" in _errors(base % "{node: n, expectedIPs: [10.0.0.300]}")
    assert "EndpointPort protocol does not support ports." in _errors(
        base % "{node: n, interfaceName: eth0, ports: [{name: web, protocol: ICMP, port: 80}]}")
    ok = load_text(base % "{node: n, interfaceName: '*', expectedIPs: ['10.0.0.1', 'fd00::1'], profiles: [p1]}", "h")
    assert ok[0].resource.spec.interfaceName == "*"


def test_felix_configuration_fields_and_names() -> None:
    text = """apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: node.jasper}
spec:
  xdpEnabled: true
  genericXDPEnabled: false
  xdpRefreshInterval: 1m30s
  iptablesRefreshInterval: 180s
  iptablesBackend: NFT
  failsafeInboundHostPorts: [{protocol: TCP, port: 22}, {protocol: UDP, port: 68, net: 10.0.0.0/8}]
  failsafeOutboundHostPorts: []
  prometheusMetricsEnabled: true
  prometheusMetricsPort: 9091
  logSeverityScreen: Info"""
    spec = load_text(text, "f.yaml")[0].resource.spec
    assert spec.failsafeOutboundHostPorts == []
    assert "FelixConfiguration name must be 'default' or 'node.<nodename>'" in _errors(
        text.replace("node.jasper", "other"))
    assert "protocol must be 'TCP' or 'UDP' or 'SCTP'." in _errors(text.replace("protocol: TCP", "protocol: ICMP"))
    assert "must be one of Auto, Legacy, NFT" in _errors(text.replace("NFT", "nft"))


def test_duplicate_resources_in_one_input_are_refused() -> None:
    doc = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\n"
    assert "resource appears twice in the input (first in t.yaml: document 1)" in _errors(doc + "---\n" + doc)


def test_lists_and_kind_lists_expand() -> None:
    gns = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "a"}}
    other = {**gns, "metadata": {"name": "b"}}
    assert len(load_text(json.dumps([gns, other]), "l.json")) == 2
    listed = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSetList", "items": [gns, other]}
    items = load_text(json.dumps(listed), "l.json")
    assert [i.index for i in items] == ["1.items[0]", "1.items[1]"]


def test_kind_must_be_spelt_exactly() -> None:
    assert "kind must be written 'GlobalNetworkSet'" in _errors(
        "apiVersion: projectcalico.org/v3\nkind: globalnetworkset\nmetadata: {name: s}")
