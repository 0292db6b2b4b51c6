"""``seawall explain``'s pure part: DesiredState (+ status) -> explanation -> text/JSON."""

from __future__ import annotations

import json
from typing import Any

from seawall.calc import NodeInterfaces, Snapshot, compute
from seawall.cli.explain import RAW_ONLY, XDP_AND_RAW, as_json, build, examples, explain
from seawall.cli.status_view import to_text
from seawall.selector import parse
from tests.unit.test_calc import DENY_SET, ETH0, SEED, felix, gnp, gns, hep

BLOCK_SELECTOR = "dos-deny-list == 'true'"


def _explain(items: list, *, node: str = "jasper", interfaces: NodeInterfaces = ETH0, status: Any = None):
    snapshot = Snapshot.from_stored(items)
    desired = compute(snapshot, node, interfaces)
    return explain(desired, node=node, interfaces=interfaces, status=status,
                   revision=7)


def test_seed_recipe_every_member_in_xdp() -> None:
    result = _explain(SEED)
    assert result.node == "jasper" and result.revision == 7
    (iface,) = result.interfaces
    assert (iface.name, iface.host_endpoint, iface.policies) == ("eth0", "production-host", ("dos-mitigation",))
    assert iface.xdp_cidrs == 2 and iface.agent_mode is None and iface.note is None
    (rule,) = iface.rules
    assert (rule.policy, rule.index, rule.action, rule.enforced_at) == ("dos-mitigation", 0, "Deny", XDP_AND_RAW)
    assert rule.in_xdp and rule.reason == "in XDP: 2 CIDRs"
    (use,) = rule.sets
    assert use.role == "source selector"
    assert use.selector == parse(BLOCK_SELECTOR).canonical
    assert use.set_id == parse(BLOCK_SELECTOR).unique_id()
    assert (use.members, use.in_xdp, use.raw_only) == (2, 2, 0)
    assert use.xdp_examples == ("1.2.3.4/32", "5.6.0.0/16") and use.raw_examples == ()
    assert "tcp:22" in result.failsafe_inbound
    # eth1 and lo have no host endpoint
    assert result.unprotected_interfaces == ("eth1", "lo")


def test_earlier_allow_splits_a_set_between_xdp_and_raw() -> None:
    allow = gnp("allow-partner", [{"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}], order=10)
    nets = ["5.6.0.0/16", "1.2.3.4/32", *[f"9.9.{i}.0/24" for i in range(8)]]
    items = [SEED[0], gns("dos-mitigation", nets), gnp("dos-mitigation", [DENY_SET], order=20), allow]
    (iface,) = _explain(items).interfaces
    assert [r.policy for r in iface.rules] == ["allow-partner", "dos-mitigation"]
    first, second = iface.rules
    assert first.action == "Allow" and first.enforced_at == RAW_ONLY and not first.in_xdp
    assert first.match == "from nets [5.6.7.0/24]"
    assert first.sets[0].role == "source nets" and first.sets[0].raw_only == 1
    assert second.enforced_at == XDP_AND_RAW and "an earlier Allow rule" in second.reason
    (use,) = second.sets
    assert (use.members, use.in_xdp, use.raw_only) == (10, 9, 1)
    assert use.raw_examples == ("5.6.0.0/16",)
    # at most five examples, in address order (not string order)
    assert use.xdp_examples == ("1.2.3.4/32", "9.9.0.0/24", "9.9.1.0/24", "9.9.2.0/24", "9.9.3.0/24")


def test_rule_not_eligible_says_why_and_notselector_members_stay_in_raw() -> None:
    rule = {"action": "Deny", "protocol": "UDP",
            "source": {"selector": BLOCK_SELECTOR, "notSelector": "keep == 'yes'"}}
    items = [SEED[0], gns("dos-mitigation", ["1.2.3.4/32"]), gns("keep", ["1.2.3.4/32"], labels={"keep": "yes"}),
             gnp("dos-mitigation", [rule])]
    (iface,) = _explain(items).interfaces
    (r,) = iface.rules
    assert r.enforced_at == RAW_ONLY and r.reason == "not in XDP: rule has a protocol"
    assert r.match.startswith("UDP from selector") and "notSelector 'keep == \"yes\"'" in r.match
    roles = {u.role: u for u in r.sets}
    assert set(roles) == {"source selector", "source notSelector"}
    assert roles["source notSelector"].in_xdp == 0 and roles["source notSelector"].raw_only == 1


def test_a_dropped_named_port_rule_does_not_shift_the_described_rules() -> None:
    named = gnp("named", [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}},
                          {"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}], order=1)
    result = _explain([*SEED, named])
    first, second = result.interfaces[0].rules
    assert (first.policy, first.action, first.match) == ("named", "Allow", "from nets [5.6.7.0/24]")
    assert second.policy == "dos-mitigation" and second.match.startswith("from selector")
    assert any("named ports are not supported" in w for w in result.warnings)


def test_agent_in_iptables_raw_mode_means_no_rule_in_xdp() -> None:
    status = {"node": "jasper", "interfaces": [
        {"name": "eth0", "mode": "iptables-raw", "reason": "no XDP mode available: native: not supported"}]}
    (iface,) = _explain(SEED, status=status).interfaces
    assert iface.agent_mode == "iptables-raw"
    assert iface.rules[0].in_xdp and iface.rules[0].enforced_at == RAW_ONLY
    assert "no rule runs in XDP here" in iface.note and "native: not supported" in iface.note
    text = to_text(build(_explain(SEED, status=status)))
    assert "agent mode iptables-raw" in text and "no rule runs in XDP here" in text


def test_agent_in_xdp_mode_is_shown_with_its_reason() -> None:
    status = {"node": "jasper", "interfaces": [{"name": "eth0", "mode": "xdp-native", "reason": "xdp-native (the fastest mode)"}]}
    result = _explain(SEED, status=status)
    assert result.interfaces[0].agent_mode == "xdp-native" and result.interfaces[0].note is None
    assert "why: xdp-native (the fastest mode)" in to_text(build(result))


def test_status_of_another_node_is_not_used() -> None:
    result = _explain(SEED, status={"node": "other", "interfaces": [{"name": "eth0", "mode": "iptables-raw"}]})
    assert result.interfaces[0].agent_mode is None
    assert result.status_note and "'other'" in result.status_note


def test_xdp_disabled_in_felix_configuration() -> None:
    result = _explain([*SEED, felix("default", xdpEnabled=False)])
    assert not result.xdp_enabled
    assert result.interfaces[0].rules[0].enforced_at == RAW_ONLY
    assert "xdpEnabled is false" in result.interfaces[0].note


def test_not_enforced_policies_and_unmatched_host_endpoints() -> None:
    items = [*SEED, gnp("tracked", [DENY_SET], dnt=False), hep("ghost", iface="eth9", labels={}),
             hep("by-ip", iface=None, ips=["10.9.9.9"])]
    result = _explain(items)
    assert [e["policy"] for e in result.not_enforced] == ["tracked"]
    assert "doNotTrack is false" in result.not_enforced[0]["reason"]
    assert any("ghost" in w and "'eth9' does not exist" in w for w in result.unmatched_host_endpoints)
    assert any("by-ip" in w and "expectedIPs" in w for w in result.unmatched_host_endpoints)
    assert not any(w.startswith("HostEndpoint") for w in result.warnings)
    text = to_text(build(result))
    assert "host endpoints of this node that match no interface" in text and "tracked: doNotTrack is false" in text


def test_host_endpoint_without_policy() -> None:
    (iface,) = _explain([hep("bare", labels={"x": "y"})]).interfaces
    assert iface.policies == () and iface.rules == ()
    assert "traffic is not filtered" in to_text(build(_explain([hep("bare", labels={"x": "y"})])))


def test_other_node_has_nothing_to_explain() -> None:
    result = _explain(SEED, node="elsewhere")
    assert result.interfaces == ()
    assert "nothing is enforced here" in to_text(build(result))


def test_invalid_entries_are_passed_through() -> None:
    snapshot = Snapshot.from_stored(SEED)
    desired = compute(snapshot, "jasper", ETH0)
    bad = [{"kind": "GlobalNetworkSet", "name": "x", "reason": "bad CIDR", "action": "ignored"}]
    result = explain(desired, node="jasper", invalid=bad)
    assert result.invalid == tuple(bad)
    assert "GlobalNetworkSet(x): bad CIDR -> ignored" in to_text(build(result))


def test_json_is_camel_case_and_serialisable() -> None:
    data = as_json(_explain(SEED))
    json.dumps(data)
    rule = data["interfaces"][0]["rules"][0]
    assert rule["enforcedAt"] == XDP_AND_RAW and rule["inXdp"] is True and rule["xdpCidrs"] == 2
    assert rule["sets"][0]["setId"].startswith("s:") and rule["sets"][0]["rawOnly"] == 0
    assert data["failsafeInbound"][0] == "tcp:22"


def test_text_rendering_of_the_seed() -> None:
    text = to_text(build(_explain(SEED)))
    assert "interface eth0  host endpoint production-host" in text
    assert "dos-mitigation[0] Deny from selector 'dos-deny-list == \"true\"': XDP + raw — in XDP: 2 CIDRs" in text
    assert "2 members, 2 in XDP, 0 in raw only" in text
    assert "in XDP:   1.2.3.4/32, 5.6.0.0/16" in text


def test_examples_are_linear_and_ordered() -> None:
    many = frozenset(f"10.{i // 256}.{i % 256}.0/24" for i in range(20000)) | {"::/0", "1.0.0.0/8"}
    assert examples(many) == ("1.0.0.0/8", "10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24")
    assert examples([], 5) == ()
    assert examples(iter(["10.0.0.0/8", "9.0.0.0/8"]), 1) == ("9.0.0.0/8",)


def test_examples_of_a_million_member_set_stay_fast() -> None:
    import time

    huge = frozenset(f"{a}.{b}.{c}.0/24" for a in (10, 9) for b in range(256) for c in range(256))
    started = time.monotonic()
    picked = examples(huge)
    assert time.monotonic() - started < 2
    assert len(picked) == 5 and list(picked) == sorted(picked, key=lambda t: tuple(map(int, t[:-3].split("."))))


def test_the_agent_s_status_as_a_type_or_as_its_json() -> None:
    from seawall.agent.status import AgentStatus, InterfaceStatus
    from seawall.dataplane.mode import Mode

    typed = AgentStatus(node="jasper", interfaces=(
        InterfaceStatus("eth0", mode=Mode.RAW, reason="no XDP mode available: native: not supported"),))
    from_type = _explain(SEED, status=typed)
    assert from_type == _explain(SEED, status=typed.to_json())
    (iface,) = from_type.interfaces
    assert (iface.agent_mode, iface.agent_reason) == ("iptables-raw", "no XDP mode available: native: not supported")
    other = _explain(SEED, status=AgentStatus(node="other"))
    assert other.interfaces[0].agent_mode is None and other.status_note and "'other'" in other.status_note
