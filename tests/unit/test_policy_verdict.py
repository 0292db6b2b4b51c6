"""The reference verdict of the untracked tier, feature by feature."""

from __future__ import annotations

import pytest

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
from seawall.policy.verdict import Decision, Packet, Verdict, decide, rule_matches, verdict

TCP, UDP, ICMP, ICMP6, SCTP, GRE = 6, 17, 1, 58, 132, 47
SETS = {
    "s:bad": CidrSet("s:bad", frozenset({"1.2.3.4/32", "5.6.0.0/16", "2001:db8:bad::/48"})),
    "s:ok": CidrSet("s:ok", frozenset({"5.6.7.0/24"})),
}


def state(*rules: Rule, egress: tuple[Rule, ...] = (), policies: tuple[Policy, ...] | None = None, **kw: object) -> UntrackedState:
    pols = policies if policies is not None else (Policy("p", 1.0, ingress=rules, egress=egress),)
    return UntrackedState(interfaces=(InterfacePolicy("eth0", pols),), sets=SETS, **kw)  # type: ignore[arg-type]


def tcp(src: str = "9.9.9.9", dst: str = "10.0.0.1", sport: int = 40000, dport: int = 80) -> Packet:
    return Packet(src, dst, TCP, sport, dport)


def v(st: UntrackedState, pkt: Packet, direction: Direction = Direction.INGRESS, iface: str = "eth0") -> Verdict:
    return verdict(st, iface, pkt, direction)


def test_unknown_interface_continues() -> None:
    assert v(state(Rule(Action.DENY)), tcp(), iface="eth9") is Verdict.CONTINUE


def test_interface_without_rules_in_direction_continues_even_for_failsafe() -> None:
    st = state(egress=(Rule(Action.DENY),), failsafe_in=(FailsafePort(TCP, 80),))
    assert v(st, tcp()) is Verdict.CONTINUE
    assert v(st, tcp(), Direction.EGRESS) is Verdict.DENY


@pytest.mark.parametrize("action,expected", [(Action.ALLOW, Verdict.ALLOW), (Action.DENY, Verdict.DENY), (Action.PASS, Verdict.CONTINUE)])
def test_actions(action: Action, expected: Verdict) -> None:
    d = decide(state(Rule(action)), "eth0", tcp())
    assert d == Decision(expected, (), ("p", 0))


def test_no_match_continues() -> None:
    assert decide(state(Rule(Action.DENY, protocol=UDP)), "eth0", tcp()) == Decision(Verdict.CONTINUE)


def test_first_match_wins_and_log_continues() -> None:
    st = state(Rule(Action.LOG), Rule(Action.LOG, protocol=UDP), Rule(Action.ALLOW), Rule(Action.LOG), Rule(Action.DENY))
    d = decide(st, "eth0", tcp())
    assert d.verdict is Verdict.ALLOW and d.logged and d.logged_by == (("p", 0),) and d.decided_by == ("p", 2)


def test_policies_in_order_and_pass_leaves_the_tier() -> None:
    p1 = Policy("first", 1.0, ingress=(Rule(Action.LOG), Rule(Action.PASS, protocol=TCP)))
    p2 = Policy("second", 2.0, ingress=(Rule(Action.DENY),))
    st = state(policies=(p1, p2))
    d = decide(st, "eth0", tcp())
    assert d == Decision(Verdict.CONTINUE, (("first", 0),), ("first", 1))
    assert decide(st, "eth0", Packet("9.9.9.9", "10.0.0.1", UDP, 1, 2)) == Decision(
        Verdict.DENY, (("first", 0),), ("second", 0)
    )


def test_ip_version() -> None:
    st = state(Rule(Action.DENY, ip_version=6))
    assert v(st, tcp()) is Verdict.CONTINUE
    assert v(st, tcp("2001:db8::1", "2001:db8::2")) is Verdict.DENY


def test_protocol_and_not_protocol() -> None:
    assert v(state(Rule(Action.DENY, protocol=TCP)), tcp()) is Verdict.DENY
    assert v(state(Rule(Action.DENY, not_protocol=TCP)), tcp()) is Verdict.CONTINUE
    assert v(state(Rule(Action.DENY, not_protocol=UDP)), tcp()) is Verdict.DENY


def test_icmp_type_and_code() -> None:
    ping = Packet("9.9.9.9", "10.0.0.1", ICMP, icmp_type=8, icmp_code=0)
    assert v(state(Rule(Action.DENY, icmp=IcmpMatch(8))), ping) is Verdict.DENY
    assert v(state(Rule(Action.DENY, icmp=IcmpMatch(8, 1))), ping) is Verdict.CONTINUE
    assert v(state(Rule(Action.DENY, icmp=IcmpMatch())), ping) is Verdict.DENY
    assert v(state(Rule(Action.DENY, icmp=IcmpMatch(8))), tcp()) is Verdict.CONTINUE
    # ICMPv4 type 128 is not ICMPv6 echo: the family decides the protocol
    ping6 = Packet("2001:db8::1", "2001:db8::2", ICMP6, icmp_type=128, icmp_code=0)
    assert v(state(Rule(Action.DENY, icmp=IcmpMatch(128, 0))), ping6) is Verdict.DENY
    assert v(state(Rule(Action.DENY, icmp=IcmpMatch(128))), Packet("9.9.9.9", "10.0.0.1", ICMP, icmp_type=128)) is Verdict.DENY
    assert v(state(Rule(Action.DENY, icmp=IcmpMatch(128))), Packet("2001:db8::1", "2001:db8::2", ICMP, icmp_type=128)) is Verdict.CONTINUE


def test_not_icmp() -> None:
    st = state(Rule(Action.DENY, not_icmp=IcmpMatch(8)))
    assert v(st, Packet("9.9.9.9", "10.0.0.1", ICMP, icmp_type=8, icmp_code=3)) is Verdict.CONTINUE
    assert v(st, Packet("9.9.9.9", "10.0.0.1", ICMP, icmp_type=0, icmp_code=0)) is Verdict.DENY
    assert v(st, tcp()) is Verdict.DENY  # not ICMP at all: not_icmp holds
    assert v(state(Rule(Action.DENY, not_icmp=IcmpMatch())), Packet("9.9.9.9", "10.0.0.1", ICMP, icmp_type=0)) is Verdict.CONTINUE


def test_nets_and_not_nets() -> None:
    st = state(Rule(Action.DENY, source=EntityMatch(nets=("1.0.0.0/8", "9.9.0.0/16"), not_nets=("9.9.9.0/24",))))
    assert v(st, tcp("1.2.3.4")) is Verdict.DENY
    assert v(st, tcp("9.9.1.1")) is Verdict.DENY
    assert v(st, tcp("9.9.9.9")) is Verdict.CONTINUE
    assert v(st, tcp("8.8.8.8")) is Verdict.CONTINUE
    dst = state(Rule(Action.DENY, destination=EntityMatch(nets=("10.0.0.1",))))
    assert v(dst, tcp()) is Verdict.DENY and v(dst, tcp(dst="10.0.0.2")) is Verdict.CONTINUE


def test_nets_of_other_family_never_match() -> None:
    st = state(Rule(Action.DENY, source=EntityMatch(nets=("2001:db8::/32",))))
    assert v(st, tcp()) is Verdict.CONTINUE
    assert v(st, tcp("2001:db8::1", "2001:db8::2")) is Verdict.DENY


def test_sets_and_not_sets() -> None:
    st = state(Rule(Action.DENY, source=EntityMatch(sets=("s:bad",), not_sets=("s:ok",))))
    assert v(st, tcp("1.2.3.4")) is Verdict.DENY
    assert v(st, tcp("5.6.1.1")) is Verdict.DENY
    assert v(st, tcp("5.6.7.8")) is Verdict.CONTINUE
    assert v(st, tcp("2001:db8:bad::1", "2001:db8::2")) is Verdict.DENY
    assert v(st, tcp("1.2.3.5")) is Verdict.CONTINUE


def test_missing_set_makes_the_rule_absent() -> None:
    for side in (EntityMatch(sets=("s:bad", "s:gone")), EntityMatch(not_sets=("s:gone",))):
        assert v(state(Rule(Action.DENY, source=side)), tcp("1.2.3.4")) is Verdict.CONTINUE


def test_ports_ranges_and_not_ports() -> None:
    st = state(Rule(Action.DENY, destination=EntityMatch(ports=(PortRange(80, 80), PortRange(8000, 8100)),
                                                         not_ports=(PortRange(8050, 8050),))))
    assert v(st, tcp(dport=80)) is Verdict.DENY
    assert v(st, tcp(dport=8099)) is Verdict.DENY
    assert v(st, tcp(dport=8050)) is Verdict.CONTINUE
    assert v(st, tcp(dport=81)) is Verdict.CONTINUE
    src = state(Rule(Action.DENY, source=EntityMatch(ports=(PortRange(53, 53),))))
    assert v(src, Packet("9.9.9.9", "10.0.0.1", UDP, 53, 999)) is Verdict.DENY
    assert v(src, Packet("9.9.9.9", "10.0.0.1", SCTP, 53, 999)) is Verdict.DENY


def test_port_rules_never_match_portless_packets() -> None:
    for side in (EntityMatch(ports=(PortRange(0, 65535),)), EntityMatch(not_ports=(PortRange(1, 1),))):
        st = state(Rule(Action.DENY, destination=side))
        assert v(st, Packet("9.9.9.9", "10.0.0.1", ICMP, icmp_type=8)) is Verdict.CONTINUE
        assert v(st, Packet("9.9.9.9", "10.0.0.1", GRE)) is Verdict.CONTINUE
        assert v(st, Packet("9.9.9.9", "10.0.0.1", TCP)) is Verdict.CONTINUE  # no port given


def test_failsafe_in_beats_deny_and_respects_net() -> None:
    st = state(Rule(Action.DENY), failsafe_in=(FailsafePort(TCP, 22), FailsafePort(TCP, 6443, "10.0.0.0/8")))
    assert v(st, tcp(dport=22)) is Verdict.FAILSAFE
    assert v(st, tcp("10.1.1.1", dport=6443)) is Verdict.FAILSAFE
    assert v(st, tcp(dport=6443)) is Verdict.DENY
    assert v(st, Packet("9.9.9.9", "10.0.0.1", UDP, 1, 22)) is Verdict.DENY  # protocol must match
    assert v(st, tcp(sport=22, dport=1)) is Verdict.DENY  # ingress checks the destination port


def test_failsafe_out_replies_are_refused_from_denied_sources() -> None:
    """The reflection case: udp/53 replies pass unless a Deny rule matches them."""
    rules = (Rule(Action.ALLOW, protocol=UDP), Rule(Action.DENY, source=EntityMatch(sets=("s:bad",))))
    st = state(*rules, failsafe_out=(FailsafePort(UDP, 53),))
    reply_from_bad = Packet("1.2.3.4", "10.0.0.1", UDP, 53, 33000)
    reply_from_good = Packet("8.8.8.8", "10.0.0.1", UDP, 53, 33000)
    assert v(st, reply_from_good) is Verdict.FAILSAFE
    # a Deny matches, so failsafe does not apply; the earlier Allow then decides
    assert v(st, reply_from_bad) is Verdict.ALLOW
    st2 = state(Rule(Action.DENY, source=EntityMatch(sets=("s:bad",))), failsafe_out=(FailsafePort(UDP, 53),))
    assert v(st2, reply_from_bad) is Verdict.DENY
    assert v(st2, Packet("8.8.8.8", "10.0.0.1", UDP, 33000, 53)) is Verdict.CONTINUE  # ingress: sport only


def test_failsafe_reply_deny_check_covers_all_policies_and_net() -> None:
    p1 = Policy("a", 1.0, ingress=(Rule(Action.PASS),))
    p2 = Policy("b", 2.0, ingress=(Rule(Action.DENY, source=EntityMatch(nets=("1.2.3.0/24",))),))
    st = state(policies=(p1, p2), failsafe_out=(FailsafePort(TCP, 2379, "1.0.0.0/8"),))
    assert v(st, tcp("1.2.3.4", sport=2379)) is Verdict.CONTINUE  # Deny in p2 matches; then Pass decides
    assert v(st, tcp("1.9.9.9", sport=2379)) is Verdict.FAILSAFE
    assert v(st, tcp("2.9.9.9", sport=2379)) is Verdict.CONTINUE  # outside the entry's net


def test_egress_mirror_image() -> None:
    deny = (Rule(Action.DENY, destination=EntityMatch(nets=("1.2.3.4/32",))),)
    st = state(Rule(Action.ALLOW), egress=deny, failsafe_in=(FailsafePort(TCP, 22),), failsafe_out=(FailsafePort(UDP, 53),))
    out = Direction.EGRESS
    assert v(st, Packet("10.0.0.1", "1.2.3.4", UDP, 33000, 53), out) is Verdict.FAILSAFE  # own DNS query
    assert v(st, Packet("10.0.0.1", "1.2.3.4", TCP, 22, 40000), out) is Verdict.DENY  # ssh reply to a denied peer
    assert v(st, Packet("10.0.0.1", "1.2.3.5", TCP, 22, 40000), out) is Verdict.FAILSAFE
    assert v(st, Packet("10.0.0.1", "1.2.3.4", TCP, 40000, 80), out) is Verdict.DENY


def test_rule_matches_is_the_match_alone() -> None:
    st = state()
    assert rule_matches(st, Rule(Action.ALLOW, protocol=TCP), tcp())
    assert not rule_matches(st, Rule(Action.ALLOW, protocol=UDP), tcp())
