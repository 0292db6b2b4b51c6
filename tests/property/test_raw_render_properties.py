"""Properties of the raw renderer for generated untracked states.

Besides structural checks (names within limits, comments, every reference
defined), the rendered rules are run through a tiny interpreter of the
iptables subset the renderer emits and compared with ``policy.verdict`` — a
fast, kernel-free stand-in for the namespace differential test.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

from hypothesis import given, settings, strategies as st

from seawall.dataplane.iptables.render import render
from seawall.dataplane.iptables.rendered import RenderedRaw
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
from seawall.policy.verdict import Packet, Verdict, decide

PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}
NETS = ["1.2.3.4/32", "1.2.0.0/16", "10.0.0.0/8", "0.0.0.0/0", "2001:db8::/32", "2001:db8::1/128", "::/0"]
ADDRS = ["1.2.3.4", "1.2.9.9", "10.1.1.1", "8.8.8.8", "2001:db8::1", "2001:db8::2", "fd00::1"]
IFACES = ["eth0", "ens3", "bond0.100", "a-very-long-ifname"]

ports = st.lists(st.builds(lambda a, n: PortRange(a, min(a + n, 65535)),
                          st.sampled_from([0, 1, 53, 80, 443, 1000, 65535]), st.sampled_from([0, 0, 3])),
                max_size=20).map(tuple)


def sparse(strategy: st.SearchStrategy, empty: object = None) -> st.SearchStrategy:
    """Mostly the default, so that generated rules often match."""
    return st.one_of(st.just(empty), st.just(empty), strategy)


icmp = st.builds(IcmpMatch, st.none() | st.sampled_from([0, 3, 8, 128]), st.none() | st.sampled_from([0, 1]))
set_ids = st.lists(st.sampled_from(["s:a", "s:b", "s:b", "s:missing"]), min_size=1, max_size=2).map(tuple)
entity = st.builds(
    EntityMatch,
    nets=sparse(st.lists(st.sampled_from(NETS), min_size=1, max_size=3).map(tuple), ()),
    not_nets=sparse(st.lists(st.sampled_from(NETS), min_size=1, max_size=2).map(tuple), ()),
    sets=sparse(set_ids, ()),
    not_sets=sparse(set_ids, ()),
    ports=sparse(ports, ()),
    not_ports=sparse(ports, ()),
)
proto = st.sampled_from([1, 6, 17, 47, 58, 132])
rule = st.builds(
    Rule,
    action=st.sampled_from(list(Action)),
    ip_version=sparse(st.sampled_from([4, 6])),
    protocol=sparse(proto),
    not_protocol=sparse(proto),
    icmp=sparse(icmp),
    not_icmp=sparse(icmp),
    source=sparse(entity, EntityMatch()),
    destination=sparse(entity, EntityMatch()),
)
policy = st.builds(
    Policy,
    name=st.sampled_from(["dos-mitigation", "p", "x" * 40, "we ird\"name"]),
    order=st.none() | st.just(1.0),
    ingress=st.lists(rule, max_size=4).map(tuple),
    egress=st.lists(rule, max_size=3).map(tuple),
)
failsafe = st.lists(
    st.builds(FailsafePort, st.sampled_from([6, 17, 132]), st.sampled_from([22, 53, 80]),
              st.none() | st.sampled_from(NETS[:3] + NETS[4:5])),
    max_size=3,
).map(tuple)


@st.composite
def states(draw: st.DrawFn) -> UntrackedState:
    names = draw(st.lists(st.sampled_from(IFACES), min_size=1, max_size=2, unique=True))
    # one body per policy name, as the calculation produces
    bodies: dict[str, Policy] = {}
    ifaces = []
    for n in names:
        pols = []
        for p in draw(st.lists(policy, max_size=3)):
            pols.append(bodies.setdefault(p.name, p))
        ifaces.append(InterfacePolicy(n, tuple(dict.fromkeys(pols))))
    sets = {"s:a": CidrSet("s:a", frozenset({"1.2.3.4/32", "2001:db8::/48"})),
            "s:b": CidrSet("s:b", frozenset({"0.0.0.0/0", "10.0.0.0/8"}))}
    return UntrackedState(tuple(ifaces), sets, draw(failsafe), draw(failsafe))


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    v6 = draw(st.booleans())
    pool = [a for a in ADDRS if (":" in a) == v6]
    p = draw(st.sampled_from([6, 17, 132, 1 if not v6 else 58, 47]))
    has_ports = p in (6, 17, 132)
    port = st.sampled_from([0, 1, 2, 22, 53, 54, 80, 443, 1000, 1003, 65535])
    icmp_types = [0, 3, 8, 128] + ([133, 134, 135, 136, 137] if p == 58 else [])
    return Packet(
        draw(st.sampled_from(pool)),
        draw(st.sampled_from(pool)),
        p,
        draw(port) if has_ports else None,
        draw(port) if has_ports else None,
        None if has_ports or p == 47 else draw(st.sampled_from(icmp_types)),
        None if has_ports or p == 47 else draw(st.sampled_from([0, 1])),
        draw(st.sampled_from([None, 64, 255])),  # neighbour discovery needs 255
    )


TARGET = re.compile(r"(?:-j|-g) (sw-\S+)")


def test_names_within_limits_comments_and_references() -> None:
    @given(states())
    @settings(max_examples=150, deadline=None)
    def check(state: UntrackedState) -> None:
        r = render(state)
        for t in r.tables.values():
            assert {ours for _, ours in t.hooks} <= set(t.chains)
            for chain, rules in t.chains.items():
                assert chain.startswith("sw-") and len(chain) <= 28
                for rule_text in rules:
                    assert re.search(r'-m comment --comment "sw:[0-9a-f]{16}"', rule_text)
                    for ref in TARGET.findall(rule_text):
                        assert ref in t.chains, (chain, rule_text)
                    for s in re.findall(r"--match-set (\S+)", rule_text):
                        assert s in r.ipsets and r.ipsets[s].family == ("inet" if t.family == 4 else "inet6")
                    shlex.split(rule_text)  # quoting is well-formed
        for s in r.ipsets.values():
            assert len(s.name) <= 31 and s.name.startswith(f"sw{4 if s.family == 'inet' else 6}-")
            assert all(ipaddress.ip_network(m).prefixlen > 0 for m in s.members)
        assert render(state) == r  # deterministic

    check()


# --- a tiny interpreter of the rendered iptables subset --------------------------------------


@dataclass
class Run:
    raw: RenderedRaw
    family: int
    packet: Packet
    iface: str
    ingress: bool
    mark: int = 0
    notrack: bool = False
    logs: list[str] = field(default_factory=list)

    def matches(self, toks: list[str]) -> tuple[bool, list[str]]:
        pkt, i, neg = self.packet, 0, False
        while i < len(toks):
            t = toks[i]
            if t == "!":
                neg, i = True, i + 1
                continue
            if t in ("-j", "-g"):
                return True, toks[i:]
            ok: bool
            if t == "-p":
                ok, i = pkt.protocol == PROTO_NUM.get(toks[i + 1], None) or str(pkt.protocol) == toks[i + 1], i + 2
            elif t in ("-s", "-d"):
                addr = ipaddress.ip_address(pkt.src if t == "-s" else pkt.dst)
                ok, i = addr in ipaddress.ip_network(toks[i + 1]), i + 2
            elif t in ("-i", "-o"):
                ok, i = self.iface == toks[i + 1], i + 2
            elif t == "-m":
                i += 2
                continue
            elif t == "--mark":
                value, mask = (int(x, 16) for x in toks[i + 1].split("/"))
                ok, i = self.mark & mask == value, i + 2
            elif t == "--match-set":
                addr = ipaddress.ip_address(pkt.src if toks[i + 2] == "src" else pkt.dst)
                members = self.raw.ipsets[toks[i + 1]].members
                ok, i = any(addr in ipaddress.ip_network(m) for m in members), i + 3
            elif t in ("--dports", "--sports"):
                port = pkt.dport if t == "--dports" else pkt.sport
                spans = [tuple(int(x) for x in part.split(":")) for part in toks[i + 1].split(",")]
                ok, i = port is not None and any(s[0] <= port <= s[-1] for s in spans), i + 2
            elif t in ("--icmp-type", "--icmpv6-type"):
                typ, _, code = toks[i + 1].partition("/")
                ok = pkt.icmp_type == int(typ) and (not code or pkt.icmp_code == int(code))
                i += 2
            elif t == "--hl-eq":
                ok, i = pkt.hop_limit == int(toks[i + 1]), i + 2
            elif t == "--comment":
                ok, i = True, i + 2
            else:
                raise AssertionError(f"unknown token {t} in {toks}")
            if ok == neg:
                return False, []
            neg = False
        raise AssertionError(f"no target in {toks}")

    def chain(self, name: str) -> str | None:
        for text in self.raw.tables[self.family].chains[name]:
            ok, target = self.matches(shlex.split(text))
            if not ok:
                continue
            kind, dest = target[0], target[1]
            if dest in ("ACCEPT", "DROP"):
                return dest
            if dest == "RETURN":
                return None
            if dest == "NOTRACK":
                self.notrack = True
            elif dest == "LOG":
                self.logs.append(target[3])
            elif dest == "MARK":
                value, mask = (int(x, 16) for x in target[3].split("/"))
                self.mark = (self.mark & ~mask) ^ value
            else:
                result = self.chain(dest)
                if result is not None or kind == "-g":
                    return result
        return None


def run(raw: RenderedRaw, packet: Packet, iface: str, direction: Direction) -> tuple[Verdict, int, int]:
    family = ipaddress.ip_address(packet.src).version
    r = Run(raw, family, packet, iface, direction is Direction.INGRESS)
    hook = "PREROUTING" if direction is Direction.INGRESS else "OUTPUT"
    ours = dict(raw.tables[family].hooks)[hook]
    result = r.chain(ours)
    if result == "DROP":
        return Verdict.DENY, len(r.logs), r.mark
    if result == "ACCEPT":
        return (Verdict.ALLOW if r.notrack else Verdict.FAILSAFE), len(r.logs), r.mark
    assert not r.notrack
    return Verdict.CONTINUE, len(r.logs), r.mark


def test_rendered_rules_give_the_oracle_verdict() -> None:
    @given(states(), st.lists(packets(), min_size=1, max_size=8), st.sampled_from(list(Direction)), st.data())
    @settings(max_examples=300, deadline=None)
    def check(state: UntrackedState, pkts: list[Packet], direction: Direction, data: st.DataObject) -> None:
        iface = data.draw(st.sampled_from([i.name for i in state.interfaces] * 3 + IFACES))
        raw = render(state)
        for pkt in pkts:
            expected = decide(state, iface, pkt, direction)
            got, logs, mark = run(raw, pkt, iface, direction)
            assert got is expected.verdict, (pkt, expected)
            assert logs == len(expected.logged_by)
            if got is not Verdict.DENY:
                assert mark & 0x3F0000 == 0  # none of our bits leaks to later tables

    check()
