"""Origins of rendered raw rules: every sw: comment is explained, and every
policy rule that renders has its action line(s) identified."""

from __future__ import annotations

import pytest

from seawall.dataplane.iptables.render import render
from seawall.dataplane.iptables.rendered import RuleOrigin
from seawall.dataplane.iptables.ruleset import hook_rule, our_comment
from seawall.policy.model import (
    Action,
    CidrSet,
    Direction,
    EntityMatch,
    FailsafePort,
    IcmpMatch,
    InterfacePolicy,
    Policy,
    PortRange,
    Rule,
    UntrackedState,
)

MANY_PORTS = tuple(PortRange(p, p) for p in range(1000, 1040, 2))  # 20 ports: > 15 slots
SETS = {
    "blk": CidrSet("blk", frozenset({"10.0.0.0/8", "fd00::/8"})),
    "ok": CidrSet("ok", frozenset({"192.0.2.0/24"})),
}


def _states() -> list[UntrackedState]:
    dos = Policy("dos", 1.0, ingress=(
        Rule(Action.LOG, source=EntityMatch(nets=("10.88.0.4/30",))),
        Rule(Action.DENY, source=EntityMatch(sets=("blk",))),
        Rule(Action.ALLOW, protocol=17, destination=EntityMatch(ports=(PortRange(80, 80),))),
    ))
    wide = Policy("wide", 2.0, ingress=(
        Rule(Action.DENY, source=EntityMatch(nets=("10.1.0.0/16", "10.2.0.0/16", "fd01::/16"))),
        Rule(Action.DENY, source=EntityMatch(nets=("10.3.0.0/16", "10.4.0.0/16"), not_nets=("10.3.1.0/24", "10.3.2.0/24"))),
        Rule(Action.ALLOW, destination=EntityMatch(ports=MANY_PORTS)),
        Rule(Action.PASS, protocol=6, source=EntityMatch(ports=MANY_PORTS, sets=("blk", "ok"))),
        Rule(Action.DENY, ip_version=6, icmp=IcmpMatch(128, 0)),
        Rule(Action.DENY, not_icmp=IcmpMatch(8)),
    ), egress=(
        Rule(Action.DENY, destination=EntityMatch(nets=("198.51.100.0/24", "203.0.113.0/24"), ports=MANY_PORTS)),
        Rule(Action.LOG),
    ))
    v6only = Policy("v6only", None, ingress=(Rule(Action.DENY, source=EntityMatch(nets=("fd02::/16", "fd03::/16"))),))
    failsafe_in = (FailsafePort(6, 22), FailsafePort(17, 68, "0.0.0.0/0"))
    failsafe_out = (FailsafePort(17, 53), FailsafePort(6, 2379, "fd00::/8"))
    return [
        UntrackedState((InterfacePolicy("eth0", (dos,)),), SETS),
        UntrackedState((InterfacePolicy("eth0", (dos, wide)), InterfacePolicy("eth1", (wide, v6only))), SETS,
                       failsafe_in, failsafe_out),
        UntrackedState((InterfacePolicy("a-very-long-interface-name", (wide, dos)),), SETS, (), failsafe_out),
        UntrackedState((), SETS, failsafe_in, failsafe_out),
    ]


@pytest.mark.parametrize("state", _states())
def test_origins_cover_every_comment(state: UntrackedState) -> None:
    r = render(state)
    for fam, table in r.tables.items():
        for chain, rules in table.chains.items():
            line_origins = r.line_origins[(fam, chain)]
            assert len(line_origins) == len(rules)
            for rule, origin in zip(rules, line_origins, strict=True):
                comment = our_comment(rule)
                assert comment is not None and comment in r.origins
                merged = r.origins[comment]
                assert isinstance(merged, RuleOrigin)
                # the merged origin never claims a field the line does not have
                for attr in ("interface", "policy", "rule_index"):
                    value = getattr(merged, attr)
                    assert value is None or value == getattr(origin, attr)
        for builtin, chain in table.hooks:
            assert r.origins[our_comment(hook_rule(builtin, chain))].role == "hook"


@pytest.mark.parametrize("state", _states())
def test_action_lines_for_every_policy_rule(state: UntrackedState) -> None:
    r = render(state)
    for fam, table in r.tables.items():
        seen: set[tuple[str, str, int]] = set()
        for (f, chain), origins in r.line_origins.items():
            if f != fam:
                continue
            for rule, o in zip(table.chains[chain], origins, strict=True):
                if o.role == "action":
                    assert chain.startswith(("sw-pi-", "sw-po-")), chain
                    assert o.policy is not None and o.rule_index is not None and o.interface is None
                    assert any(t in rule for t in ("-j DROP", "-j LOG", "--set-xmark 0x10000/0x10000",
                                                   "--set-xmark 0x20000/0x20000", "--set-xmark 0x200000/0x200000"))
                    seen.add((o.policy, o.direction, o.rule_index))
                elif chain.startswith(("sw-pi-", "sw-po-")):
                    assert o.role in ("match", "return") and o.rule_index is not None
        expected: set[tuple[str, str, int]] = set()
        for iface in state.interfaces:
            for p in iface.policies:
                for d in Direction:
                    for i, rule in enumerate(p.rules(d)):
                        v6_only = rule.ip_version == 6 or (rule.source.nets and all(n.family == 6 for n in rule.source.nets))
                        v4_only = rule.ip_version == 4 or (rule.source.nets and all(n.family == 4 for n in rule.source.nets))
                        if (fam == 4 and v6_only) or (fam == 6 and v4_only) or (fam == 6 and rule.destination.nets):
                            continue
                        expected.add((p.name, d.value, i))
        assert seen == expected


def test_specific_origins() -> None:
    state = _states()[1]
    r = render(state)
    t4 = r.tables[4]
    dispatch = dict(zip(t4.chains["sw-PREROUTING"], r.line_origins[(4, "sw-PREROUTING")], strict=True))
    assert {o.interface for o in dispatch.values()} == {"eth0", "eth1"}
    assert all(o.role == "dispatch" and o.direction == "ingress" for o in dispatch.values())
    assert all(o.role == "failsafe" for o in r.line_origins[(4, "sw-failsafe-in")])
    fh = r.line_origins[(4, "sw-fh-eth0")]
    assert {o.policy for o in fh if o.role == "jump"} == {"dos", "wide"}
    assert all(o.interface == "eth0" for o in fh)
    probes = [o for (f, c), os_ in r.line_origins.items() if c.startswith("sw-di-") for o in os_]
    assert probes and {o.role for o in probes} <= {"probe", "probe-match"}
    # the Log/Deny/Allow rule of "dos": one action line each in IPv4
    dos = [(rule, o) for rule, o in zip(t4.chains["sw-pi-dos"], r.line_origins[(4, "sw-pi-dos")], strict=True)
           if o.role == "action"]
    assert [(o.rule_index, rule.split()[-1] if "LOG" not in rule else "LOG") for rule, o in dos] == [
        (0, "LOG"), (1, "0x200000/0x200000"), (2, "0x10000/0x10000")]
