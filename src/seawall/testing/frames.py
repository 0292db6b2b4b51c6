"""Build Ethernet frames byte by byte for XDP tests and benchmarks.

Only what the blocklist program parses matters: VLAN tags, the IPv4 header
(with options and fragment offsets), IPv6 with extension headers, and the first
four bytes of TCP/UDP. Checksums are filled in for IPv4 so frames are also
valid when sent through a real interface.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
HOPOPTS, ROUTING, FRAGMENT, AH, DSTOPTS, NO_NEXT = 0, 43, 44, 51, 60, 59

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")


def ethernet(ethertype: int, payload: bytes, *, vlans: Sequence[tuple[int, int]] = (), dst: bytes = DST_MAC, src: bytes = SRC_MAC) -> bytes:
    """``vlans``: outer first, each (TPID, VLAN id)."""
    header = dst + src
    for tpid, vid in vlans:
        header += struct.pack("!H", tpid) + struct.pack("!H", vid & 0x0FFF)
    return header + struct.pack("!H", ethertype) + payload


def l4(protocol: int, sport: int = 40000, dport: int = 80, payload: bytes = b"x" * 18) -> bytes:
    if protocol == TCP:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload
    if protocol == UDP:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if protocol in (ICMP, ICMPV6):
        return struct.pack("!BBHI", 8 if protocol == ICMP else 128, 0, 0, 0) + payload
    return payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: str, dst: str, protocol: int, payload: bytes, *, options: bytes = b"", frag_offset: int = 0,
         more_fragments: bool = False, ttl: int = 64) -> bytes:
    if len(options) % 4:
        raise ValueError("IPv4 options must be a multiple of 4 bytes")
    ihl = 5 + len(options) // 4
    flags_frag = (0x2000 if more_fragments else 0) | (frag_offset & 0x1FFF)
    header = struct.pack(
        "!BBHHHBBH4s4s", (4 << 4) | ihl, 0, ihl * 4 + len(payload), 0x1234, flags_frag, ttl, protocol, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    ) + options
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def ipv6(
    src: str, dst: str, next_header: int, payload: bytes, *, extensions: Sequence[tuple[int, bytes]] = (), hop_limit: int = 64
) -> bytes:
    """``extensions``: (header type, body) in order; next-header fields are chained.
    Fragment bodies are 6 bytes (offset/flags, id); others are padded to 8n-2."""
    chain = b""
    types = [t for t, _ in extensions] + [next_header]
    for index, (kind, body) in enumerate(extensions):
        follower = types[index + 1]
        if kind == FRAGMENT:
            chain += struct.pack("!BB", follower, 0) + body.ljust(6, b"\0")[:6]
        elif kind == AH:
            padded = body.ljust(max(10, (len(body) + 2 + 3) // 4 * 4 - 2), b"\0")
            chain += struct.pack("!BB", follower, (len(padded) + 2) // 4 - 2) + padded
        else:
            padded = body.ljust(max(6, (len(body) + 2 + 7) // 8 * 8 - 2), b"\0")
            chain += struct.pack("!BB", follower, (len(padded) + 2) // 8 - 1) + padded
    first = types[0]
    body = chain + payload
    header = struct.pack("!IHBB16s16s", 6 << 28, len(body), first, hop_limit,
                         ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    return header + body


def fragment_header_body(offset_units: int, more: bool = False, ident: int = 7) -> bytes:
    return struct.pack("!HI", (offset_units << 3) | int(more), ident)


def udp4(src: str, dst: str = "10.0.0.1", dport: int = 9, *, sport: int = 40000, vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    return ethernet(ETH_P_IP, ipv4(src, dst, UDP, l4(UDP, sport, dport)), vlans=vlans)


def tcp4(src: str, dst: str = "10.0.0.1", dport: int = 80, *, sport: int = 40000, vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    return ethernet(ETH_P_IP, ipv4(src, dst, TCP, l4(TCP, sport, dport)), vlans=vlans)


def udp6(src: str, dst: str = "fd00::1", dport: int = 9, *, sport: int = 40000, vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    return ethernet(ETH_P_IPV6, ipv6(src, dst, UDP, l4(UDP, sport, dport)), vlans=vlans)


def tcp6(src: str, dst: str = "fd00::1", dport: int = 80, *, sport: int = 40000, vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    return ethernet(ETH_P_IPV6, ipv6(src, dst, TCP, l4(TCP, sport, dport)), vlans=vlans)
