"""IP protocol names Calico accepts, and the port-carrying subset."""

from __future__ import annotations

PROTOCOL_NUMBERS: dict[str, int] = {
    "tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136,
}
# Calico's canonical spellings; the lower-case forms are accepted as well.
PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
PORT_PROTOCOLS = frozenset({6, 17, 132})


def protocol_number(value: int | str) -> int | None:
    """The IP protocol number for a name or number, or None if not a protocol."""
    if isinstance(value, int):
        return value if 1 <= value <= 255 else None
    if value in PROTOCOL_NAMES or value == value.lower():
        return PROTOCOL_NUMBERS.get(value.lower())
    return None
