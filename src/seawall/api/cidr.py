"""CIDR parsing with Calico's two strictness levels, fast enough for a million nets.

Rule ``nets`` must be strictly masked (``10.0.0.0/8``); network-set ``nets`` accept
bare IPs and unmasked CIDRs (Felix masks them). A GlobalNetworkSet may hold
1,000,000 entries, so the common IPv4 shape is checked with one precompiled regex
and only the rest goes through ``ipaddress``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

# ASCII digits only: ``\d`` would also match Arabic-Indic and other Unicode digits.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_FAST_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12]?[0-9]))?", re.ASCII)
_PREFIX = re.compile(r"[0-9]{1,3}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Cidr:
    """A CIDR as values, parsed once at the edge and carried as such to the
    dataplanes: the family (4 or 6), the network address and the last address
    of the range as integers, the prefix length, and the canonical text
    (``str(ipaddress.ip_network(text, strict=False))``: host bits masked)."""

    family: int
    network: int
    prefix: int
    end: int
    text: str

    @property
    def start(self) -> int:
        return self.network

    @property
    def bits(self) -> int:
        return 32 if self.family == 4 else 128

    def __str__(self) -> str:
        return self.text

    def contains_address(self, family: int, address: int) -> bool:
        return family == self.family and self.network <= address <= self.end


_V4_BITS = 32
# The one precompiled fast path for the common shape (plain IPv4, optional prefix).
_FAST_V4_MATCH = _FAST_V4.fullmatch
_LOOSE = re.compile(r"[0-9A-Fa-f:.]+(?:/[0-9]{1,3})?").fullmatch


def parse_cidr(text: object) -> Cidr:
    """A CIDR or bare address string -> Cidr (canonical, host bits masked).

    Strict on form (ASCII digits only, no IPv6 zone ``%eth0``, prefix in range,
    a ``str``): anything else raises ``ValueError``. Plain IPv4 goes through one
    precompiled regex, not ``ipaddress``, which keeps a million set members fast.
    Validation's messages come from ``parse_net``; this is the value parser."""
    if not isinstance(text, str):
        raise ValueError(f"not a CIDR string: {type(text).__name__}")
    ascii_only = text.isascii()
    if ascii_only and _FAST_V4_MATCH(text):
        address, _, prefix = text.partition("/")
        a, b, c, d = address.split(".")
        value = (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
        length = int(prefix) if prefix else _V4_BITS
        host = (1 << (_V4_BITS - length)) - 1
        start = value & ~host & 0xFFFFFFFF
        if start == value and prefix:
            return Cidr(4, start, length, start | host, text)
    if not ascii_only or not _LOOSE(text):
        raise ValueError(f"{text!r} is not a CIDR (ASCII digits, no zone)")
    net = ipaddress.ip_network(text, strict=False)
    return Cidr(net.version, int(net.network_address), net.prefixlen, int(net.broadcast_address), str(net))


def as_cidr(value: Cidr | str) -> Cidr:
    """``value`` itself, or its text parsed (values built from text in tests and examples)."""
    return value if isinstance(value, Cidr) else parse_cidr(value)


@dataclass(frozen=True, slots=True)
class ParsedNet:
    version: int
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


class CidrError(ValueError):
    """The reason a string is not an acceptable CIDR."""


def parse_net(text: object, *, strict: bool) -> ParsedNet:
    """Parse a CIDR (or, when not strict, a bare IP). Raises CidrError with a reason."""
    if not isinstance(text, str):
        raise CidrError("invalid CIDR: must be a string")
    if not text.isascii():
        raise CidrError("invalid CIDR: only ASCII digits, letters, '.', ':' and '/' are allowed")
    if "%" in text:
        raise CidrError("invalid CIDR: IPv6 zone (%...) is not allowed")
    address, slash, prefix = text.partition("/")
    if slash and not _PREFIX.fullmatch(prefix):
        raise CidrError("invalid CIDR: prefix length must be a number")
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        raise CidrError("invalid CIDR: not an IPv4 or IPv6 address") from None
    if not slash:
        if strict:
            raise CidrError(f"invalid CIDR: a rule needs a prefix length, e.g. {addr}/{addr.max_prefixlen}")
        return ParsedNet(addr.version, ipaddress.ip_network(addr))
    if int(prefix) > addr.max_prefixlen:
        raise CidrError(f"invalid CIDR: prefix length {int(prefix)} > {addr.max_prefixlen}")
    network = ipaddress.ip_network(f"{addr}/{int(prefix)}", strict=False)
    if strict and network.network_address != addr:
        raise CidrError(f"invalid CIDR: host bits set, did you mean {network}?")
    return ParsedNet(addr.version, network)


def check_set_nets(nets: Sequence[object]) -> list[tuple[int, object, str]]:
    """Validate a network set's nets; returns (index, value, reason) for each bad one.

    Fast path: plain IPv4 with an optional prefix matches one regex; everything
    else (IPv6, odd forms, errors) is parsed properly to get the right reason.
    """
    bad: list[tuple[int, object, str]] = []
    fast = _FAST_V4.fullmatch
    for index, net in enumerate(nets):
        if type(net) is str and fast(net):
            continue
        try:
            parse_net(net, strict=False)
        except CidrError as exc:
            bad.append((index, net, str(exc)))
    return bad


def is_catch_all(parsed: ParsedNet) -> bool:
    return parsed.network.prefixlen == 0
