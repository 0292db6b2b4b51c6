"""What the XDP driver is asked to enforce: plain values, free of I/O, so the
pure calculation (``seawall.calc``) can build them without importing the driver."""

from __future__ import annotations

from dataclasses import dataclass

from seawall.policy.netset import NetSet


@dataclass(frozen=True, slots=True)
class InterfaceBlocklist:
    """What one interface must drop in XDP. ``cidrs`` are canonical strings
    (``str(ipaddress.ip_network(c, strict=False))``) in a ``NetSet``: the driver
    diffs them between reconciles (cost: what changed), so two spellings of one
    CIDR would confuse it."""

    name: str
    cidrs: NetSet
    failsafe: frozenset[tuple[int, int]]  # (IP protocol, destination port) always passed

    def __post_init__(self) -> None:
        if not isinstance(self.cidrs, NetSet):
            object.__setattr__(self, "cidrs", NetSet(self.cidrs))


@dataclass(frozen=True, slots=True)
class XdpDesiredState:
    interfaces: tuple[InterfaceBlocklist, ...]
    xdp_enabled: bool = True
    generic_enabled: bool = False
