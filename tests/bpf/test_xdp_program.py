"""The real BPF program, run by the kernel (BPF_PROG_TEST_RUN), against the
pure-Python reference verdict: crafted tables and hypothesis-generated cases.

The outcome of each run is read from the program's own per-outcome counters
(a DROP and the four kinds of PASS are told apart that way), which also proves
that the counters count.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.build import object_path
from seawall.dataplane.xdp.maps import MAP_NAMES, BlocklistMaps
from seawall.dataplane.xdp.reference import Blocklist, Outcome, verdict
from seawall.dataplane.xdp.tables import BlocklistTables
from seawall.testing import frames as F

pytestmark = pytest.mark.kernel

XDP_DROP, XDP_PASS = 1, 2
CIDRS = ["1.2.3.4/32", "5.6.0.0/16", "10.20.30.128/25", "192.0.2.0/24", "2001:db8:bad::/48", "2001:db8:ffff::1/128", "fd00:ab00::/24"]
FAILSAFE = frozenset({(F.TCP, 22), (F.UDP, 68), (F.TCP, 6443)})


class Program:
    """The blocklist program loaded (not attached) with its maps."""

    def __init__(self) -> None:
        obj = libbpf.BpfObject.open_file(str(object_path()))
        obj.load()
        self.obj = obj
        self.fd = obj.program_fd("seawall_xdp")
        self.maps = BlocklistMaps({name: libbpf.dup_fd(obj.map_fd(name)) for name in MAP_NAMES})
        self.tables = BlocklistTables()

    def set_blocklist(self, cidrs: list[str], failsafe: frozenset[tuple[int, int]] = FAILSAFE) -> Blocklist:
        self.tables = BlocklistTables.from_cidrs(cidrs)
        self.maps.replace(self.tables.compile(), inactive_known_empty=False)
        self.maps.set_failsafe(failsafe)
        return Blocklist.build(cidrs, failsafe)

    def run(self, frame: bytes) -> Outcome:
        before = self.maps.counters().packets
        result = libbpf.prog_test_run(self.fd, frame)
        after = self.maps.counters().packets
        moved = [o for o in Outcome if after[o] != before[o]]
        assert len(moved) == 1, moved
        outcome = moved[0]
        assert result.retval == (XDP_DROP if outcome is Outcome.DROP else XDP_PASS)
        return outcome

    def close(self) -> None:
        self.maps.close()
        self.obj.close()


@pytest.fixture(scope="module")
def program() -> Iterator[Program]:
    prog = Program()
    try:
        yield prog
    finally:
        prog.close()


def edge_addresses(cidrs: list[str]) -> list[str]:
    out = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        first, last = int(net.network_address), int(net.broadcast_address)
        top = (1 << net.max_prefixlen) - 1
        for value in (first, last, first - 1, last + 1, (first + last) // 2):
            if 0 <= value <= top:
                out.append(str(ipaddress.ip_address(value) if net.version == 4 else ipaddress.IPv6Address(value)))
    return out


def crafted_frames(sources: list[str]) -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []
    vlan_sets = {"untagged": (), "1q": ((F.ETH_P_8021Q, 40),), "qinq": ((F.ETH_P_8021AD, 100), (F.ETH_P_8021Q, 40))}
    for src in sources:
        v6 = ":" in src
        dst = "fd00::1" if v6 else "10.0.0.1"
        for vname, vlans in vlan_sets.items():
            for proto in (F.TCP, F.UDP):
                for dport in (22, 68, 6443, 80, 53):
                    payload = F.l4(proto, 53, dport)
                    if v6:
                        frame = F.ethernet(F.ETH_P_IPV6, F.ipv6(src, dst, proto, payload), vlans=vlans)
                    else:
                        frame = F.ethernet(F.ETH_P_IP, F.ipv4(src, dst, proto, payload), vlans=vlans)
                    cases.append((f"{src} {vname} proto{proto} dport{dport}", frame))
        if v6:
            tcp22 = F.l4(F.TCP, 40000, 22)
            for name, ext in {
                "hopopts": [(F.HOPOPTS, b"")],
                "routing+dstopts": [(F.ROUTING, b"\x00" * 6), (F.DSTOPTS, b"\x01" * 12)],
                "frag-first": [(F.FRAGMENT, F.fragment_header_body(0, more=True))],
                "frag-later": [(F.FRAGMENT, F.fragment_header_body(185))],
                "ah": [(F.AH, b"\x00" * 10)],
                "seven-ext": [(F.DSTOPTS, b"")] * 7,
            }.items():
                cases.append((f"{src} v6 {name} tcp22", F.ethernet(F.ETH_P_IPV6, F.ipv6(src, dst, F.TCP, tcp22, extensions=ext))))
            for icmp_type in (128, 133, 134, 135, 136, 137, 138):  # echo, the five ND types, one past them
                message = bytes([icmp_type, 0]) + bytes(22)
                for hop in (255, 64):
                    cases.append((f"{src} icmpv6 type{icmp_type} hop{hop}",
                                  F.ethernet(F.ETH_P_IPV6, F.ipv6(src, dst, F.ICMPV6, message, hop_limit=hop))))
            ns = bytes([135, 0]) + bytes(22)
            cases.append((f"{src} ns behind hopopts", F.ethernet(F.ETH_P_IPV6, F.ipv6(
                src, dst, F.ICMPV6, ns, extensions=[(F.HOPOPTS, b"")], hop_limit=255))))
            cases.append((f"{src} ns in a later fragment", F.ethernet(F.ETH_P_IPV6, F.ipv6(
                src, dst, F.ICMPV6, ns, extensions=[(F.FRAGMENT, F.fragment_header_body(185))], hop_limit=255))))
            cases.append((f"{src} ns cut before its type", F.ethernet(F.ETH_P_IPV6, F.ipv6(src, dst, F.ICMPV6, b"", hop_limit=255))))
        else:
            udp68 = F.l4(F.UDP, 40000, 68)
            cases.append((f"{src} options", F.ethernet(F.ETH_P_IP, F.ipv4(src, dst, F.UDP, udp68, options=b"\x01" * 8))))
            cases.append((f"{src} max options", F.ethernet(F.ETH_P_IP, F.ipv4(src, dst, F.UDP, udp68, options=b"\x01" * 40))))
            cases.append((f"{src} first fragment", F.ethernet(F.ETH_P_IP, F.ipv4(src, dst, F.UDP, udp68, more_fragments=True))))
            cases.append((f"{src} later fragment", F.ethernet(F.ETH_P_IP, F.ipv4(src, dst, F.UDP, udp68, frag_offset=100))))
            cases.append((f"{src} icmp", F.ethernet(F.ETH_P_IP, F.ipv4(src, dst, F.ICMP, F.l4(F.ICMP)))))
            cases.append((f"{src} three tags", F.udp4(src, vlans=((F.ETH_P_8021AD, 1), (F.ETH_P_8021Q, 2), (F.ETH_P_8021Q, 3)))))
    cases.append(("arp", F.ethernet(F.ETH_P_ARP, b"\x00" * 28)))
    cases.append(("ethertype 0", F.ethernet(0, b"\x00" * 46)))
    good = F.ipv4("1.2.3.4", "10.0.0.1", F.UDP, F.l4(F.UDP))
    cases.append(("ihl 4", F.ethernet(F.ETH_P_IP, bytes([0x44]) + good[1:])))
    cases.append(("version 6 in an IPv4 ethertype", F.ethernet(F.ETH_P_IP, bytes([0x65]) + good[1:])))
    cases.append(("ihl past the end", F.ethernet(F.ETH_P_IP, bytes([0x4F]) + good[1:30])))
    cases.append(("version 4 in an IPv6 ethertype", F.ethernet(F.ETH_P_IPV6, bytes([0x40]) + bytes(60))))
    return cases


def truncations(frame: bytes) -> list[bytes]:
    """The frame cut at every length from the Ethernet header to its end."""
    return [frame[:n] for n in range(14, len(frame))]


def test_crafted_frames_match_the_reference(program: Program) -> None:
    blocklist = program.set_blocklist(CIDRS)
    cases = crafted_frames(edge_addresses(CIDRS) + ["8.8.8.8", "2001:4860::8888"])
    assert len(cases) > 500
    outcomes = {}
    for name, frame in cases:
        expected = verdict(frame, blocklist)
        assert program.run(frame) is expected, name
        outcomes[expected] = outcomes.get(expected, 0) + 1
    assert set(outcomes) == set(Outcome), outcomes  # every verdict is exercised


def test_truncated_frames_never_crash_and_match(program: Program) -> None:
    blocklist = program.set_blocklist(CIDRS)
    samples = [
        F.tcp4("1.2.3.4", dport=22, vlans=((F.ETH_P_8021AD, 1), (F.ETH_P_8021Q, 2))),
        F.ethernet(F.ETH_P_IP, F.ipv4("5.6.7.8", "10.0.0.1", F.UDP, F.l4(F.UDP, 1, 68), options=b"\x01" * 12)),
        F.ethernet(F.ETH_P_IPV6, F.ipv6("2001:db8:bad::9", "fd00::1", F.TCP, F.l4(F.TCP, 1, 22),
                                        extensions=[(F.HOPOPTS, b""), (F.FRAGMENT, F.fragment_header_body(0))])),
    ]
    for frame in samples:
        for cut in truncations(frame):
            assert program.run(cut) is verdict(cut, blocklist), len(cut)


def test_outbound_failsafe_source_port_does_not_exempt_a_blocked_source(program: Program) -> None:
    blocklist = program.set_blocklist(["198.51.100.0/24"])
    reflection = F.udp4("198.51.100.53", dport=33000, sport=53)  # a DNS "reply" flood
    assert program.run(reflection) is Outcome.DROP is verdict(reflection, blocklist)


def test_counters_count_bytes_and_hits_per_source(program: Program) -> None:
    program.set_blocklist(["203.0.113.0/24", "2001:db8:1::/48"])
    before = program.maps.counters()
    hits_before = program.maps.hits()
    frame = F.udp4("203.0.113.9")
    for _ in range(5):
        program.run(frame)
    program.run(F.udp6("2001:db8:1::5"))
    after = program.maps.counters()
    assert after.packets[Outcome.DROP] - before.packets[Outcome.DROP] == 6
    assert after.bytes[Outcome.DROP] - before.bytes[Outcome.DROP] == 5 * len(frame) + len(F.udp6("2001:db8:1::5"))
    hits = program.maps.hits()
    key = ipaddress.IPv4Address("203.0.113.9").packed.rjust(16, b"\0")
    key = key[:10] + b"\xff\xff" + key[12:]
    assert hits[key] - hits_before.get(key, 0) == 5


def test_incremental_add_and_remove_take_effect_without_reload(program: Program) -> None:
    program.set_blocklist(["1.1.1.0/24"])
    frame = F.udp4("9.9.9.9")
    assert program.run(frame) is Outcome.PASS
    program.maps.apply(program.tables.add("9.9.9.9/32"))
    assert program.run(frame) is Outcome.DROP
    program.maps.apply(program.tables.add("9.9.0.0/16"))
    program.maps.apply(program.tables.remove("9.9.9.9/32"))
    assert program.run(frame) is Outcome.DROP
    program.maps.apply(program.tables.remove("9.9.0.0/16"))
    assert program.run(frame) is Outcome.PASS
    assert program.run(F.udp4("1.1.1.1")) is Outcome.DROP


def test_bulk_replace_switches_slots(program: Program) -> None:
    program.set_blocklist(["100.64.0.0/10"])
    slot = program.maps.active_slot()
    program.set_blocklist(["100.127.0.0/16", "2001:db8::/32"])
    assert program.maps.active_slot() == 1 - slot
    assert program.run(F.udp4("100.64.0.1")) is Outcome.PASS
    assert program.run(F.udp4("100.127.3.3")) is Outcome.DROP
    assert program.run(F.udp6("2001:db8::77")) is Outcome.DROP


v4_net = st.builds(lambda a, p: str(ipaddress.ip_network(f"{ipaddress.IPv4Address(a)}/{p}", strict=False)),
                   st.integers(0, 2**32 - 1), st.integers(0, 32))
v6_net = st.builds(lambda a, p: str(ipaddress.ip_network(f"{ipaddress.IPv6Address(a)}/{p}", strict=False)),
                   st.integers(0, 2**128 - 1), st.integers(1, 128))
ports = st.sampled_from([22, 53, 68, 80, 443, 6443])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cidrs=st.lists(st.one_of(v4_net, v6_net), min_size=1, max_size=12, unique=True),
    picks=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 4), st.sampled_from(["tcp", "udp"]), ports, st.integers(0, 2)),
                   min_size=1, max_size=12),
    failsafe=st.frozensets(st.tuples(st.sampled_from([F.TCP, F.UDP]), ports), max_size=3),
)
def test_generated_sets_and_packets_match_the_reference(program: Program, cidrs, picks, failsafe) -> None:
    blocklist = program.set_blocklist(cidrs, failsafe)
    edges = edge_addresses(cidrs)
    for index, variant, proto, dport, tags in picks:
        src = edges[(index * 5 + variant) % len(edges)]
        vlans = [(F.ETH_P_8021Q, 7)] * tags
        builder = {("tcp", False): F.tcp4, ("udp", False): F.udp4, ("tcp", True): F.tcp6, ("udp", True): F.udp6}[(proto, ":" in src)]
        frame = builder(src, dport=dport, vlans=vlans)
        assert program.run(frame) is verdict(frame, blocklist), (src, proto, dport, tags)


def test_sampled_hit_counts_are_unbiased_within_their_error_bound(program: Program) -> None:
    program.set_blocklist(["203.0.113.0/24"])
    program.maps.set_hit_shift(4)
    try:
        key = bytes(10) + b"\xff\xff" + bytes([203, 0, 113, 77])
        before = program.maps.hits().get(key, 0)
        drops = 4000
        for _ in range(drops // 1000):  # repeat=1000 runs of the same frame per call
            libbpf.prog_test_run(program.fd, F.udp4("203.0.113.77"), repeat=1000)
        estimate = program.maps.hits().get(key, 0) - before
        sigma = (drops * 15) ** 0.5  # sqrt(n * (2^shift - 1))
        assert abs(estimate - drops) < 5 * sigma, estimate
        assert estimate % 16 == 0
    finally:
        program.maps.set_hit_shift(0)
