"""What the XDP driver is asked to enforce: plain values, free of I/O, so the
pure calculation (``seawall.calc``) can build them without importing the driver."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InterfaceBlocklist:
    """What one interface must drop in XDP. ``cidrs`` are canonical strings
    (``str(ipaddress.ip_network(c, strict=False))``): the driver diffs them as
    strings between reconciles, so two spellings of one CIDR would confuse it."""

    name: str
    cidrs: frozenset[str]
    failsafe: frozenset[tuple[int, int]]  # (IP protocol, destination port) always passed


@dataclass(frozen=True, slots=True)
class XdpDesiredState:
    interfaces: tuple[InterfaceBlocklist, ...]
    xdp_enabled: bool = True
    generic_enabled: bool = False
