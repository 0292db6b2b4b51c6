"""The calculation: named datastore states -> expected desired state."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from seawall.calc import NodeInterfaces, Snapshot, compute
from seawall.policy.model import Action, FailsafePort, PortRange
from seawall.policy.verdict import Packet, Verdict, verdict

API = "projectcalico.org/v3"
ETH0 = NodeInterfaces({"lo": ("127.0.0.1/8",), "eth0": ("10.0.0.1/24",), "eth1": ("192.168.1.5/24",)})


def hep(name: str, *, node: str = "jasper", iface: str | None = "eth0", ips: list[str] | None = None,
        labels: dict[str, str] | None = None) -> tuple[str, str, dict[str, Any]]:
    spec: dict[str, Any] = {"node": node}
    if iface is not None:
        spec["interfaceName"] = iface
    if ips is not None:
        spec["expectedIPs"] = ips
    meta: dict[str, Any] = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return "HostEndpoint", name, {"apiVersion": API, "kind": "HostEndpoint", "metadata": meta, "spec": spec}


def gns(name: str, nets: list[str], labels: dict[str, str] | None = None) -> tuple[str, str, dict[str, Any]]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {"dos-deny-list": "true"}}
    return "GlobalNetworkSet", name, {"apiVersion": API, "kind": "GlobalNetworkSet", "metadata": meta,
                                      "spec": {"nets": nets}}


def gnp(name: str, ingress: list[dict[str, Any]], *, order: float | None = None, dnt: bool = True,
        selector: str = "apply-dos-mitigation == 'true'") -> tuple[str, str, dict[str, Any]]:
    spec: dict[str, Any] = {"selector": selector, "types": ["Ingress"], "ingress": ingress}
    if dnt:
        spec.update(doNotTrack=True, applyOnForward=True)
    if order is not None:
        spec["order"] = order
    return "GlobalNetworkPolicy", name, {"apiVersion": API, "kind": "GlobalNetworkPolicy",
                                         "metadata": {"name": name}, "spec": spec}


def felix(name: str, **spec: Any) -> tuple[str, str, dict[str, Any]]:
    return "FelixConfiguration", name, {"apiVersion": API, "kind": "FelixConfiguration",
                                        "metadata": {"name": name}, "spec": spec}


DENY_SET = {"action": "Deny", "source": {"selector": "dos-deny-list == 'true'"}}
SEED = [
    hep("production-host", ips=["10.0.0.1"], labels={"apply-dos-mitigation": "true"}),
    gns("dos-mitigation", ["1.2.3.4/32", "5.6.0.0/16"]),
    gnp("dos-mitigation", [DENY_SET]),
]


def run(items: list, node: str = "jasper", interfaces: NodeInterfaces = ETH0):
    return compute(Snapshot.from_stored(items), node, interfaces)


def test_seed_recipe_puts_both_cidrs_in_xdp_and_the_deny_rule_in_raw() -> None:
    desired = run(SEED)
    assert [b.name for b in desired.xdp.interfaces] == ["eth0"]
    block = desired.xdp.interfaces[0]
    assert block.cidrs == {"1.2.3.4/32", "5.6.0.0/16"}
    assert (6, 22) in block.failsafe
    iface = desired.untracked.interface("eth0")
    assert iface is not None and [p.name for p in iface.policies] == ["dos-mitigation"]
    (rule,) = iface.policies[0].ingress
    assert rule.action is Action.DENY
    (set_id,) = rule.source.sets
    assert desired.untracked.sets[set_id].cidrs == {"1.2.3.4/32", "5.6.0.0/16"}
    decision = desired.decisions_for("eth0")
    assert decision is not None and decision.host_endpoint == "production-host"
    assert decision.rules[0].in_xdp and decision.rules[0].reason == "in XDP: 2 CIDRs"
    assert verdict(desired.untracked, "eth0", Packet("5.6.7.8", "10.0.0.1", 17, 1, 80)) is Verdict.DENY
    assert verdict(desired.untracked, "eth0", Packet("5.6.7.8", "10.0.0.1", 6, 1, 22)) is Verdict.FAILSAFE
    assert verdict(desired.untracked, "eth0", Packet("9.9.9.9", "10.0.0.1", 6, 1, 80)) is Verdict.CONTINUE
    assert desired.untracked.interface("eth1") is None
    assert desired.not_enforced == () and desired.invalid == ()


def test_seed_recipe_order_does_not_matter() -> None:
    results = [run(list(p)) for p in itertools.permutations(SEED)]
    assert all(r == results[0] for r in results)


def test_other_node_gets_nothing() -> None:
    desired = run(SEED, node="other")
    assert desired.untracked.interfaces == ()
    assert desired.xdp.interfaces == ()
    assert desired.decisions == ()


def test_non_donottrack_policy_is_listed_as_not_enforced() -> None:
    desired = run([*SEED, gnp("tracked", [DENY_SET], dnt=False)])
    assert desired.not_enforced == ("tracked",)
    iface = desired.untracked.interface("eth0")
    assert iface is not None and [p.name for p in iface.policies] == ["dos-mitigation"]


def test_hep_without_policy_cuts_nothing() -> None:
    desired = run(SEED[:2])
    assert desired.untracked.interfaces == () and desired.xdp.interfaces == ()
    assert desired.decisions_for("eth0") is not None
    assert verdict(desired.untracked, "eth0", Packet("5.6.7.8", "10.0.0.1", 6, 1, 80)) is Verdict.CONTINUE


def test_earlier_allow_keeps_overlapping_cidrs_out_of_xdp() -> None:
    allow = gnp("allow-partner", [{"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}], order=10)
    desired = run([*SEED, allow])
    assert desired.xdp.interfaces[0].cidrs == {"1.2.3.4/32"}
    rules = desired.decisions_for("eth0").rules
    assert [(r.policy, r.index, r.in_xdp) for r in rules] == [("allow-partner", 0, False), ("dos-mitigation", 0, True)]
    assert "not in XDP: Allow rules" in rules[0].reason
    assert rules[1].reason.startswith("in XDP: 1 of 2 CIDRs")
    assert "an earlier Allow rule (policy allow-partner, rule 0) may match these sources" in rules[1].reason
    assert verdict(desired.untracked, "eth0", Packet("5.6.7.8", "10.0.0.1", 6, 1, 80)) is Verdict.ALLOW


def test_later_allow_does_not_matter_and_pass_log_disqualify() -> None:
    later = gnp("zz-later", [{"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}])  # no order: after
    assert run([*SEED, later]).xdp.interfaces[0].cidrs == {"1.2.3.4/32", "5.6.0.0/16"}
    for action in ("Pass", "Log"):
        earlier = gnp("earlier", [{"action": action, "source": {"nets": ["1.0.0.0/8"]}}], order=1)
        desired = run([*SEED, earlier])
        assert desired.xdp.interfaces[0].cidrs == {"5.6.0.0/16"}
        assert f"an earlier {action} rule (policy earlier, rule 0)" in desired.decisions_for("eth0").rules[1].reason


def test_earlier_allow_in_other_family_or_disjoint_net_does_not_disqualify() -> None:
    earlier = gnp("earlier", [
        {"action": "Allow", "ipVersion": 6, "protocol": "TCP"},
        {"action": "Allow", "source": {"nets": ["9.0.0.0/8"]}},
        {"action": "Allow", "source": {"notNets": ["0.0.0.0/1", "128.0.0.0/1"]}, "ipVersion": 4},
    ], order=1)
    desired = run([*SEED, earlier])
    assert desired.invalid == ()
    assert desired.xdp.interfaces[0].cidrs == {"1.2.3.4/32", "5.6.0.0/16"}


def test_literal_nets_in_a_deny_rule_are_xdp_eligible() -> None:
    policy = gnp("nets", [{"action": "Deny", "source": {"nets": ["7.7.0.0/16", "8.8.8.8/32"]}},
                          {"action": "Deny", "source": {"nets": ["2001:db8::/32"]}}])
    desired = run([SEED[0], policy])
    assert desired.invalid == ()
    assert desired.xdp.interfaces[0].cidrs == {"7.7.0.0/16", "8.8.8.8/32", "2001:db8::/32"}


@pytest.mark.parametrize(("extra", "reason"), [
    ({"protocol": "TCP", "destination": {"ports": [80]}}, "not in XDP: rule has a protocol"),
    ({"protocol": "UDP", "source": {"nets": ["7.7.0.0/16"], "ports": ["1000:2000"]}}, "not in XDP: rule has a protocol"),
    ({"destination": {"nets": ["10.0.0.1/32"]}}, "not in XDP: rule has a destination constraint"),
    ({"icmp": {"type": 8}, "protocol": "ICMP"}, "not in XDP: rule has a protocol"),
])
def test_rules_with_more_than_sources_are_not_eligible(extra: dict[str, Any], reason: str) -> None:
    rule = {"action": "Deny", "source": {"nets": ["7.7.0.0/16"]}}
    rule = {**rule, **extra}
    desired = run([SEED[0], gnp("p", [rule])])
    assert desired.xdp.interfaces[0].cidrs == frozenset()
    assert desired.decisions_for("eth0").rules[0].reason == reason


def test_ports_are_translated() -> None:
    rule = {"action": "Deny", "protocol": "TCP", "destination": {"ports": [80, "8000:8080", "443"]}}
    desired = run([SEED[0], gnp("p", [rule])])
    (translated,) = desired.untracked.interfaces[0].policies[0].ingress
    assert translated.protocol == 6
    assert translated.destination.ports == (PortRange(80, 80), PortRange(8000, 8080), PortRange(443, 443))


def test_named_ports_drop_the_rule_with_a_warning() -> None:
    rule = {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}}
    desired = run([*SEED, gnp("named", [rule, DENY_SET], order=1)])
    policy = desired.untracked.interfaces[0].policies[0]
    assert policy.name == "named" and len(policy.ingress) == 1
    assert any("named ports" in w and "named" in w for w in desired.warnings)


def test_not_selector_or_not_nets_overlapping_excludes_cidr() -> None:
    rule = {"action": "Deny", "source": {"nets": ["7.7.0.0/16", "8.8.0.0/16"], "notNets": ["7.7.7.0/24"]}}
    desired = run([SEED[0], gnp("p", [rule])])
    assert desired.invalid == ()
    assert desired.xdp.interfaces[0].cidrs == {"8.8.0.0/16"}
    assert "notNets/notSelector" in desired.decisions_for("eth0").rules[0].reason


def test_deny_without_source_takes_everything_of_its_family() -> None:
    desired = run([SEED[0], gnp("p", [{"action": "Deny", "ipVersion": 4}])])
    assert desired.xdp.interfaces[0].cidrs == {"0.0.0.0/0"}


def test_expected_ips_selected_by_a_selector_become_host_cidrs() -> None:
    peer = hep("peer", node="other", ips=["192.0.2.7", "2001:db8::7"], labels={"role": "peer"})
    rule = {"action": "Deny", "source": {"selector": "role == 'peer'"}}
    desired = run([SEED[0], peer, gnp("p", [rule])])
    assert desired.xdp.interfaces[0].cidrs == {"192.0.2.7/32", "2001:db8::7/128"}


def test_network_set_nets_are_masked() -> None:
    desired = run([*SEED[::2], gns("odd", ["5.6.7.8/16", "9.9.9.9"])])
    assert desired.xdp.interfaces[0].cidrs == {"5.6.0.0/16", "9.9.9.9/32"}


def test_wildcard_hep_covers_every_non_loopback_interface() -> None:
    star = hep("all-ifaces", iface="*", labels={"apply-dos-mitigation": "true"})
    desired = run([star, *SEED[1:]])
    assert [b.name for b in desired.xdp.interfaces] == ["eth0", "eth1"]
    assert desired.untracked.interface("lo") is None


def test_specific_hep_beats_wildcard_and_smallest_name_wins() -> None:
    star = hep("a-star", iface="*", labels={"apply-dos-mitigation": "true"})
    quiet = hep("z-quiet", iface="eth1", labels={})
    quieter = hep("b-eth0", iface="eth0", labels={})
    desired = run([star, quiet, quieter, *SEED])
    owners = {d.name: d.host_endpoint for d in desired.decisions}
    assert owners == {"eth0": "b-eth0", "eth1": "z-quiet"}
    assert desired.untracked.interfaces == ()


def test_empty_interface_name_resolved_by_expected_ips() -> None:
    by_ip = hep("by-ip", iface=None, ips=["192.168.1.5"], labels={"apply-dos-mitigation": "true"})
    desired = run([by_ip, *SEED[1:]])
    assert [b.name for b in desired.xdp.interfaces] == ["eth1"]
    missing = hep("nowhere", iface=None, ips=["203.0.113.1"], labels={"apply-dos-mitigation": "true"})
    desired = run([missing, *SEED[1:]])
    assert desired.untracked.interfaces == ()
    assert any("nowhere" in w for w in desired.warnings)


def test_missing_explicit_interface_is_warned() -> None:
    desired = run(SEED, interfaces=NodeInterfaces({"eth9": ("10.0.0.1/24",)}))
    assert desired.untracked.interfaces == ()
    assert any("production-host" in w and "eth0" in w for w in desired.warnings)


def test_invalid_stored_resource_is_recorded_and_ignored() -> None:
    bad_set = gns("broken", ["not-a-cidr"])
    bad_policy = gnp("broken-policy", [{"action": "Explode"}])
    mismatched = ("GlobalNetworkSet", "elsewhere", gns("dos-mitigation", ["1.1.1.1/32"])[2])
    snap = Snapshot.from_stored([*SEED, bad_set, bad_policy, mismatched])
    assert {(k, n) for k, n, _ in snap.invalid} == {
        ("GlobalNetworkSet", "broken"), ("GlobalNetworkPolicy", "broken-policy"), ("GlobalNetworkSet", "elsewhere"),
    }
    assert "broken" not in snap.gns
    desired = compute(snap, "jasper", ETH0)
    assert desired.xdp.interfaces[0].cidrs == {"1.2.3.4/32", "5.6.0.0/16"}
    assert desired.invalid == snap.invalid


def test_effective_config_overlay() -> None:
    items = [
        *SEED,
        felix("default", xdpEnabled=False, genericXDPEnabled=True,
              failsafeInboundHostPorts=[{"protocol": "TCP", "port": 2222}]),
        felix("node.jasper", xdpEnabled=True, failsafeOutboundHostPorts=[]),
        felix("node.other", genericXDPEnabled=False),
    ]
    desired = run(items)
    assert desired.config.xdpEnabled is True and desired.config.genericXDPEnabled is True
    assert desired.xdp.xdp_enabled is True and desired.xdp.generic_enabled is True
    assert desired.untracked.failsafe_in == (FailsafePort(6, 2222),)
    assert desired.untracked.failsafe_out == ()
    assert desired.xdp.interfaces[0].failsafe == {(6, 2222)}
    assert run(items, node="other").xdp.generic_enabled is False
    assert run(items, node="third").config.xdpEnabled is False


def test_policy_order_then_name() -> None:
    items = [SEED[0], gnp("b", [DENY_SET]), gnp("a", [DENY_SET]), gnp("c", [DENY_SET], order=5), *SEED[1:2]]
    desired = run(items)
    assert [p.name for p in desired.untracked.interfaces[0].policies] == ["c", "a", "b"]


def test_egress_only_policy_gets_no_xdp_interface() -> None:
    policy = gnp("out", [])
    policy[2]["spec"].update(types=["Egress"], egress=[{"action": "Deny", "destination": {"nets": ["7.0.0.0/8"]}}])
    policy[2]["spec"].pop("ingress")
    desired = run([SEED[0], policy])
    assert desired.untracked.interfaces[0].policies[0].egress
    assert desired.xdp.interfaces == ()
