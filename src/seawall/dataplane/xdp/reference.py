"""The XDP program's verdict, written again in plain Python as the test oracle.

``blocklist.bpf.c`` and this module implement the same function independently:
the BPF program with flat-cost tables, this one with ``ipaddress`` containment.
Tests run crafted and generated frames through both and compare. Pure: no I/O.

Verdict, in order:
1. not IPv4/IPv6 after at most two 802.1Q/802.1ad tags      -> PASS (NOT_IP)
2. IP header truncated or invalid                            -> PASS (MALFORMED)
3. TCP/UDP whose L4 header is present with a destination
   port in the inbound failsafe list                         -> PASS (FAILSAFE)
4. IPv6 neighbour discovery (ICMPv6 types 133-137, hop limit
   255, L4 header present), as ARP is never filtered         -> PASS (NEIGHBOUR)
5. source inside a blocked CIDR                              -> DROP (DROP)
6. otherwise                                                  -> PASS (PASS)
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from seawall.dataplane.xdp.abi import (
    IPV6_MAX_EXT_HEADERS as IPV6_MAX_EXT_HEADERS,
    MAX_VLAN_TAGS as MAX_VLAN_TAGS,
    ND_HOP_LIMIT as ND_HOP_LIMIT,  # RFC 4861: a node discards ND messages with any other hop limit
    ND_TYPE_FIRST,
    ND_TYPE_LAST,
    OUT_DROP,
    OUT_FAILSAFE,
    OUT_MALFORMED,
    OUT_NEIGHBOUR,
    OUT_NOT_IP,
    OUT_PASS,
)

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_AH = 51
IPPROTO_DSTOPTS = 60
IPPROTO_ICMPV6 = 58
ND_TYPES = range(ND_TYPE_FIRST, ND_TYPE_LAST + 1)  # router/neighbour solicitation and advertisement, redirect (RFC 4861)


class Outcome(enum.IntEnum):
    """Outcome indices: the OUT_* constants of the BPF program (from ``abi``)."""

    DROP = OUT_DROP
    FAILSAFE = OUT_FAILSAFE
    PASS = OUT_PASS
    NOT_IP = OUT_NOT_IP
    MALFORMED = OUT_MALFORMED
    NEIGHBOUR = OUT_NEIGHBOUR

    @property
    def dropped(self) -> bool:
        return self is Outcome.DROP


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Blocklist:
    """What one interface enforces in XDP."""

    networks: tuple[Network, ...]
    failsafe: frozenset[tuple[int, int]]  # (IP protocol number, destination port)

    @classmethod
    def build(cls, cidrs: Iterable[str], failsafe: Collection[tuple[int, int]] = ()) -> Blocklist:
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs), frozenset(failsafe))

    def blocks(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def verdict(frame: bytes, blocklist: Blocklist) -> Outcome:
    """The outcome the XDP program must give ``frame`` (an Ethernet frame)."""
    if len(frame) < 14:
        return Outcome.MALFORMED
    (proto,) = struct.unpack_from("!H", frame, 12)
    offset = 14
    for _ in range(MAX_VLAN_TAGS):
        if proto not in (ETH_P_8021Q, ETH_P_8021AD):
            break
        if len(frame) < offset + 4:
            return Outcome.MALFORMED
        (proto,) = struct.unpack_from("!H", frame, offset + 2)
        offset += 4
    if proto == ETH_P_IP:
        return _ipv4(frame, offset, blocklist)
    if proto == ETH_P_IPV6:
        return _ipv6(frame, offset, blocklist)
    return Outcome.NOT_IP


def _ipv4(frame: bytes, offset: int, blocklist: Blocklist) -> Outcome:
    if len(frame) < offset + 20:
        return Outcome.MALFORMED
    version, ihl = frame[offset] >> 4, (frame[offset] & 0x0F) * 4
    if version != 4 or ihl < 20 or len(frame) < offset + ihl:
        return Outcome.MALFORMED
    (frag,) = struct.unpack_from("!H", frame, offset + 6)
    protocol = frame[offset + 9]
    source = ipaddress.IPv4Address(frame[offset + 12 : offset + 16])
    l4 = offset + ihl
    first_fragment = (frag & 0x1FFF) == 0
    if protocol in (IPPROTO_TCP, IPPROTO_UDP) and first_fragment and len(frame) >= l4 + 4:
        (dport,) = struct.unpack_from("!H", frame, l4 + 2)
        if (protocol, dport) in blocklist.failsafe:
            return Outcome.FAILSAFE
    return Outcome.DROP if blocklist.blocks(source) else Outcome.PASS


def _ipv6(frame: bytes, offset: int, blocklist: Blocklist) -> Outcome:
    if len(frame) < offset + 40 or frame[offset] >> 4 != 6:
        return Outcome.MALFORMED
    source = ipaddress.IPv6Address(frame[offset + 8 : offset + 24])
    next_header = frame[offset + 6]
    cursor = offset + 40
    l4_present = True
    for _ in range(IPV6_MAX_EXT_HEADERS):
        if next_header in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS):
            if len(frame) < cursor + 2:
                l4_present = False
                break
            next_header, cursor = frame[cursor], cursor + (frame[cursor + 1] + 1) * 8
        elif next_header == IPPROTO_FRAGMENT:
            if len(frame) < cursor + 8:
                l4_present = False
                break
            (offset_flags,) = struct.unpack_from("!H", frame, cursor + 2)
            if offset_flags >> 3:
                l4_present = False
            next_header, cursor = frame[cursor], cursor + 8
        elif next_header == IPPROTO_AH:
            if len(frame) < cursor + 2:
                l4_present = False
                break
            next_header, cursor = frame[cursor], cursor + (frame[cursor + 1] + 2) * 4
        else:
            break
    if l4_present and next_header in (IPPROTO_TCP, IPPROTO_UDP) and len(frame) >= cursor + 4:
        (dport,) = struct.unpack_from("!H", frame, cursor + 2)
        if (next_header, dport) in blocklist.failsafe:
            return Outcome.FAILSAFE
    hop_limit = frame[offset + 7]
    if l4_present and next_header == IPPROTO_ICMPV6 and hop_limit == ND_HOP_LIMIT and len(frame) > cursor:
        if frame[cursor] in ND_TYPES:
            return Outcome.NEIGHBOUR
    return Outcome.DROP if blocklist.blocks(source) else Outcome.PASS
