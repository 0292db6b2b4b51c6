"""Rendering of untracked policy into raw-table chains and ipsets."""

from __future__ import annotations

import re

import pytest

from seawall.dataplane.iptables import names
from seawall.dataplane.iptables.render import DEFAULT_MARKS, port_chunks, render
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

SET_ID = "s:qMt7iLlGDhvLnCjM0l9nzxbZ0cBmX5J-0000000"
SEED = UntrackedState(
    interfaces=(
        InterfacePolicy(
            "eth0",
            (Policy("dos-mitigation", 100.0, ingress=(Rule(Action.DENY, source=EntityMatch(sets=(SET_ID,))),)),),
        ),
    ),
    sets={SET_ID: CidrSet(SET_ID, frozenset({"1.2.3.4/32", "5.6.0.0/16"}))},
    failsafe_in=(FailsafePort(6, 22), FailsafePort(6, 6443, "10.0.0.0/8"), FailsafePort(17, 68, "fe80::/10")),
    failsafe_out=(FailsafePort(17, 53),),
)


def strip(rule: str) -> str:
    """A rule without its comment, for readable assertions."""
    return re.sub(r'\s*-m comment --comment "sw:[0-9a-f]{16}"', "", rule).strip()


def chain(state: UntrackedState, name: str, family: int = 4) -> list[str]:
    return [strip(r) for r in render(state).tables[family].chains[name]]


DENY_MARK = f"-j MARK --set-xmark {DEFAULT_MARKS.deny:#x}/{DEFAULT_MARKS.deny:#x}"
DENY_RETURN = f"-m mark --mark {DEFAULT_MARKS.deny:#x}/{DEFAULT_MARKS.deny:#x} -j RETURN"


def denies_as_drop(rules: list[str]) -> list[str]:
    """A Deny rule sets the deny bit and returns (the interface chain drops): read
    that pair as the "-j DROP" it stands for, so the match assertions stay readable."""
    return [r.replace(DENY_MARK, "-j DROP") for r in rules if r != DENY_RETURN]


def one_rule_policy(rule: Rule, family: int = 4, **kw: object) -> list[str]:
    st = UntrackedState((InterfacePolicy("eth0", (Policy("p", 1.0, ingress=(rule,)),)),), kw.pop("sets", {}), **kw)  # type: ignore[arg-type]
    tables = render(st).tables[family].chains
    return denies_as_drop([strip(r) for r in tables.get("sw-pi-p", ())])


def test_seed_recipe_ipv4() -> None:
    r = render(SEED)
    t = r.tables[4]
    ipset = names.ipset_name(4, SET_ID)
    assert t.hooks == (("PREROUTING", "sw-PREROUTING"), ("OUTPUT", "sw-OUTPUT"))
    assert chain(SEED, "sw-PREROUTING") == ["-i eth0 -g sw-fh-eth0"]
    assert chain(SEED, "sw-OUTPUT") == []  # no egress rules: no egress chain for eth0
    assert "sw-th-eth0" not in t.chains
    assert chain(SEED, "sw-fh-eth0") == [
        "-j MARK --set-xmark 0x0/0x3f0000",
        "-j sw-failsafe-in",
        "-m mark --mark 0x100000/0x100000 -j sw-di-dos-mitigation",
        "-m mark --mark 0x100000/0x100000 -g sw-accept",
        "-m mark --mark 0x0/0x230000 -j sw-pi-dos-mitigation",
        "-m mark --mark 0x200000/0x200000 -j DROP",
        "-m mark --mark 0x10000/0x10000 -j NOTRACK",
        "-m mark --mark 0x10000/0x10000 -g sw-accept",
        "-j MARK --set-xmark 0x0/0x3f0000",
    ]
    assert chain(SEED, "sw-pi-dos-mitigation") == [
        f"-m set --match-set {ipset} src -j MARK --set-xmark 0x200000/0x200000",
        "-m mark --mark 0x200000/0x200000 -j RETURN",
    ]
    assert chain(SEED, "sw-di-dos-mitigation") == [f"-m set --match-set {ipset} src -j MARK --set-xmark 0x0/0x100000"]
    assert chain(SEED, "sw-failsafe-in") == [
        "-p tcp -m multiport --dports 22 -j ACCEPT",
        "-p tcp -s 10.0.0.0/8 -m multiport --dports 6443 -j ACCEPT",
        "-p udp -m multiport --sports 53 -j MARK --set-xmark 0x100000/0x100000",
    ]
    assert chain(SEED, "sw-failsafe-out") == [
        "-p udp -m multiport --dports 53 -j ACCEPT",
        "-p tcp -m multiport --sports 22 -j MARK --set-xmark 0x100000/0x100000",
        "-p tcp -d 10.0.0.0/8 -m multiport --sports 6443 -j MARK --set-xmark 0x100000/0x100000",
    ]
    assert chain(SEED, "sw-accept") == ["-j MARK --set-xmark 0x0/0x3f0000", "-j ACCEPT"]
    assert r.ipsets[ipset].members == frozenset({"1.2.3.4/32", "5.6.0.0/16"})
    assert r.ipsets[ipset].family == "inet"


def test_ipv6_neighbour_discovery_continues_before_failsafe_and_rules() -> None:
    """Verdict step 1b: ICMPv6 133-137 with hop limit 255 leaves the tier (RETURN with our bits clear)."""
    rules = chain(SEED, "sw-fh-eth0", 6)
    nd = [f"-p ipv6-icmp -m icmp6 --icmpv6-type {t} -m hl --hl-eq 255 -j RETURN" for t in range(133, 138)]
    assert rules[0] == "-j MARK --set-xmark 0x0/0x3f0000"
    assert rules[1:6] == nd
    assert rules[6] == "-j sw-failsafe-in"
    assert not any("icmpv6" in r for r in chain(SEED, "sw-fh-eth0", 4))  # IPv4 has ARP, never filtered here
    egress = UntrackedState((InterfacePolicy("eth0", (Policy("p", 1.0, egress=(Rule(Action.DENY),)),)),), {})
    assert chain(egress, "sw-th-eth0", 6)[1:6] == nd


def test_deny_drops_in_the_interface_chain() -> None:
    """One DROP line per interface chain (its counter: the raw tier's drops there), after every policy."""
    two = UntrackedState((InterfacePolicy("eth0", (Policy("a", 1.0, ingress=(Rule(Action.DENY, protocol=17),)),
                                                   Policy("b", 2.0, ingress=(Rule(Action.DENY),)))),), {})
    rules = chain(two, "sw-fh-eth0")
    assert rules.count("-m mark --mark 0x200000/0x200000 -j DROP") == 1
    jumps = [i for i, r in enumerate(rules) if "-j sw-pi-" in r]
    assert rules.index("-m mark --mark 0x200000/0x200000 -j DROP") == jumps[-1] + 1
    assert all(rules[i].startswith("-m mark --mark 0x0/0x230000") for i in jumps)  # a denied packet skips later policies
    origins = render(two).line_origins[(4, "sw-fh-eth0")]
    assert [o.role for o in origins].count("drop") == 1
    assert next(o for o in origins if o.role == "drop").interface == "eth0"


def test_seed_recipe_ipv6_skips_other_family_failsafe_nets() -> None:
    r = render(SEED)
    assert chain(SEED, "sw-failsafe-in", 6) == [
        "-p tcp -m multiport --dports 22 -j ACCEPT",
        "-p udp -s fe80::/10 -m multiport --dports 68 -j ACCEPT",
        "-p udp -m multiport --sports 53 -j MARK --set-xmark 0x100000/0x100000",
    ]
    six = r.ipsets[names.ipset_name(6, SET_ID)]
    assert six.family == "inet6" and six.members == frozenset()


def test_every_rule_has_a_stable_comment_and_output_is_deterministic() -> None:
    a, b = render(SEED), render(SEED)
    assert a == b
    for t in a.tables.values():
        for name, rules in t.chains.items():
            for rule in rules:
                m = re.search(r'-m comment --comment "(sw:[0-9a-f]{16})"', rule)
                assert m and m.group(1) == names.rule_comment(name, strip(rule))


def test_names_within_limits() -> None:
    long_policy = "a-policy-name-that-is-far-too-long-for-a-chain"
    assert names.policy_chain(Direction.INGRESS, "dos-mitigation") == "sw-pi-dos-mitigation"
    hashed = names.policy_chain(Direction.EGRESS, long_policy)
    assert hashed.startswith("sw-po-_") and len(hashed) == 28
    assert hashed != names.policy_chain(Direction.EGRESS, long_policy + "x")
    assert names.policy_chain(Direction.INGRESS, "we ird").startswith("sw-pi-_")
    assert names.interface_chain(Direction.INGRESS, "eth0") == "sw-fh-eth0"
    assert names.interface_chain(Direction.EGRESS, "eth0") == "sw-th-eth0"
    assert len(names.interface_chain(Direction.INGRESS, "x" * 15)) <= 28
    assert len(names.ipset_name(4, SET_ID)) == 31 and names.ipset_name(6, SET_ID).startswith("sw6-")
    assert names.rule_comment("c", "a") != names.rule_comment("c", "b")
    assert re.fullmatch(r"sw:[0-9a-f]{16}", names.rule_comment("c", "a"))


def test_actions() -> None:
    assert one_rule_policy(Rule(Action.DENY)) == ["-j DROP"]
    assert one_rule_policy(Rule(Action.ALLOW)) == ["-j MARK --set-xmark 0x10000/0x10000", "-m mark --mark 0x10000/0x10000 -j RETURN"]
    assert one_rule_policy(Rule(Action.PASS)) == ["-j MARK --set-xmark 0x20000/0x20000", "-m mark --mark 0x20000/0x20000 -j RETURN"]
    assert one_rule_policy(Rule(Action.LOG)) == ['-j LOG --log-prefix "seawall p "']


def test_log_prefix_is_bounded() -> None:
    st = UntrackedState((InterfacePolicy("eth0", (Policy("n" * 60, 1.0, ingress=(Rule(Action.LOG),)),)),), {})
    (rule,) = chain(st, names.policy_chain(Direction.INGRESS, "n" * 60))
    prefix = re.search(r'--log-prefix "([^"]*)"', rule).group(1)  # type: ignore[union-attr]
    assert len(prefix) <= 29 and prefix.startswith("seawall nnn")


def test_protocols() -> None:
    assert one_rule_policy(Rule(Action.DENY, protocol=17)) == ["-p udp -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, protocol=47)) == ["-p 47 -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, not_protocol=6)) == ["! -p tcp -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, protocol=6, not_protocol=6)) == []


def test_ports_and_not_ports() -> None:
    dst = EntityMatch(ports=(PortRange(80, 80), PortRange(8000, 8080)), not_ports=(PortRange(8010, 8010),))
    assert one_rule_policy(Rule(Action.DENY, protocol=6, destination=dst)) == [
        "-p tcp -m multiport --dports 80,8000:8080 -m multiport ! --dports 8010 -j DROP"
    ]
    src = EntityMatch(ports=(PortRange(53, 53),))
    assert one_rule_policy(Rule(Action.DENY, protocol=17, source=src)) == ["-p udp -m multiport --sports 53 -j DROP"]


def test_ports_without_protocol_render_once_per_port_protocol() -> None:
    rules = one_rule_policy(Rule(Action.DENY, destination=EntityMatch(ports=(PortRange(53, 53),))))
    assert rules == [f"-p {p} -m multiport --dports 53 -j DROP" for p in ("tcp", "udp", "sctp", "udplite")]


def test_port_chunks() -> None:
    assert port_chunks([PortRange(p, p) for p in range(1, 30, 2)]) == [",".join(str(p) for p in range(1, 30, 2))]
    chunks = port_chunks([PortRange(p, p) for p in range(1, 40, 2)] + [PortRange(100, 200)])
    assert all(sum(2 if ":" in x else 1 for x in c.split(",")) <= 15 for c in chunks) and len(chunks) == 2
    assert port_chunks([PortRange(5, 10), PortRange(8, 20), PortRange(21, 21)]) == ["5:21"]  # merged


def test_more_than_15_ports_use_a_scratch_mark_block() -> None:
    dst = EntityMatch(ports=tuple(PortRange(p, p) for p in range(1000, 1040, 2)))
    rules = one_rule_policy(Rule(Action.DENY, protocol=6, destination=dst))
    m0, m1 = DEFAULT_MARKS.scratch0, DEFAULT_MARKS.scratch1
    assert rules[0] == f"-j MARK --set-xmark 0x0/{m0 | m1:#x}"
    assert rules[1] == f"-p tcp -j MARK --set-xmark {m0:#x}/{m0:#x}"
    assert rules[2].startswith(f"-m mark --mark {m0:#x}/{m0:#x} -p tcp -m multiport --dports 1000,1002,")
    assert rules[2].endswith(f"-j MARK --set-xmark {m1:#x}/{m1:#x}")
    assert rules[3].startswith(f"-m mark --mark {m0:#x}/{m0:#x} -p tcp -m multiport --dports 1030,")
    assert rules[4] == f"-j MARK --set-xmark 0x0/{m0:#x}"
    assert rules[5] == f"-m mark --mark {m1:#x}/{m1:#x} -j DROP"
    assert len(rules) == 6
    many_not = EntityMatch(not_ports=tuple(PortRange(p, p) for p in range(1000, 1040, 2)))
    (rule,) = one_rule_policy(Rule(Action.DENY, protocol=6, destination=many_not))
    assert rule.count("-m multiport ! --dports") == 2


def test_icmp() -> None:
    assert one_rule_policy(Rule(Action.DENY, icmp=IcmpMatch(8, 0))) == ["-p icmp -m icmp --icmp-type 8/0 -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, icmp=IcmpMatch(8))) == ["-p icmp -m icmp --icmp-type 8 -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, icmp=IcmpMatch())) == ["-p icmp -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, icmp=IcmpMatch(128)), 6) == ["-p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, protocol=1, not_icmp=IcmpMatch(8))) == ["-p icmp -m icmp ! --icmp-type 8 -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, protocol=6, not_icmp=IcmpMatch(8))) == ["-p tcp -j DROP"]
    # not ICMP type 8 without a protocol: "not ICMP" OR "ICMP of another type"
    rules = one_rule_policy(Rule(Action.DENY, not_icmp=IcmpMatch(8)))
    assert [r for r in rules if "icmp" in r] == [
        "-m mark --mark 0x40000/0x40000 ! -p icmp -j MARK --set-xmark 0x80000/0x80000",
        "-m mark --mark 0x40000/0x40000 -p icmp -m icmp ! --icmp-type 8 -j MARK --set-xmark 0x80000/0x80000",
    ]


def test_nets_and_not_nets() -> None:
    assert one_rule_policy(Rule(Action.DENY, source=EntityMatch(nets=("1.2.3.4",)))) == ["-s 1.2.3.4/32 -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, destination=EntityMatch(not_nets=("10.0.0.0/8",)))) == ["! -d 10.0.0.0/8 -j DROP"]
    rules = one_rule_policy(Rule(Action.DENY, source=EntityMatch(nets=("1.0.0.0/8", "2.0.0.0/8"), not_nets=("1.1.0.0/16", "1.2.0.0/16"))))
    assert rules == [
        "-j MARK --set-xmark 0x0/0xc0000",
        "! -s 1.1.0.0/16 -j MARK --set-xmark 0x40000/0x40000",
        "-m mark --mark 0x40000/0x40000 -s 1.2.0.0/16 -j MARK --set-xmark 0x0/0x40000",
        "-m mark --mark 0x40000/0x40000 -s 1.0.0.0/8 -j MARK --set-xmark 0x80000/0x80000",
        "-m mark --mark 0x40000/0x40000 -s 2.0.0.0/8 -j MARK --set-xmark 0x80000/0x80000",
        "-j MARK --set-xmark 0x0/0x40000",
        "-m mark --mark 0x80000/0x80000 -j DROP",
    ]


def test_family_filtering() -> None:
    v6_only = Rule(Action.DENY, source=EntityMatch(nets=("2001:db8::/32",)))
    assert one_rule_policy(v6_only, 4) == []
    assert one_rule_policy(v6_only, 6) == ["-s 2001:db8::/32 -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, ip_version=6), 4) == []
    assert one_rule_policy(Rule(Action.DENY, ip_version=6), 6) == ["-j DROP"]


def test_sets_not_sets_missing_sets_and_slash_zero() -> None:
    sets = {"a": CidrSet("a", frozenset({"0.0.0.0/0", "::/0"})), "b": CidrSet("b", frozenset({"1.2.3.0/24"}))}
    a4, b4 = names.ipset_name(4, "a"), names.ipset_name(4, "b")
    rules = one_rule_policy(Rule(Action.DENY, destination=EntityMatch(sets=("a",), not_sets=("b",))), sets=sets)
    assert rules == [f"-m set --match-set {a4} dst -m set ! --match-set {b4} dst -j DROP"]
    assert one_rule_policy(Rule(Action.DENY, source=EntityMatch(sets=("a", "gone"))), sets=sets) == []
    deny_a = Rule(Action.DENY, source=EntityMatch(sets=("a",)))
    st = UntrackedState((InterfacePolicy("eth0", (Policy("p", 1.0, ingress=(deny_a,)),)),), sets)
    r = render(st)
    assert r.ipsets[a4].members == frozenset({"0.0.0.0/1", "128.0.0.0/1"})
    assert r.ipsets[names.ipset_name(6, "a")].members == frozenset({"::/1", "8000::/1"})
    assert b4 not in r.ipsets  # only referenced sets exist


def test_several_policies_are_guarded_by_accept_and_pass_marks() -> None:
    pols = (Policy("one", 1.0, ingress=(Rule(Action.PASS),)), Policy("two", 2.0, egress=(Rule(Action.DENY),)),
            Policy("three", None, ingress=(Rule(Action.DENY),)))
    st = UntrackedState((InterfacePolicy("eth0", pols), InterfacePolicy("eth1", pols[1:2])), {})
    fh = chain(st, "sw-fh-eth0")
    assert [r for r in fh if "sw-pi-" in r] == ["-m mark --mark 0x0/0x230000 -j sw-pi-one", "-m mark --mark 0x0/0x230000 -j sw-pi-three"]
    assert not any("sw-di-" in r or "sw-accept" in r and "0x100000" in r for r in fh)  # no reply failsafe entries
    assert chain(st, "sw-PREROUTING") == ["-i eth0 -g sw-fh-eth0"]
    assert chain(st, "sw-OUTPUT") == ["-o eth0 -g sw-th-eth0", "-o eth1 -g sw-th-eth1"]
    assert chain(st, "sw-th-eth1")[1] == "-j sw-failsafe-out"


@pytest.mark.parametrize("family", [4, 6])
def test_empty_state_renders_only_static_chains(family: int) -> None:
    t = render(UntrackedState((), {})).tables[family]
    assert set(t.chains) == {"sw-PREROUTING", "sw-OUTPUT", "sw-failsafe-in", "sw-failsafe-out", "sw-accept"}
    assert t.chains["sw-PREROUTING"] == () and t.family == family
