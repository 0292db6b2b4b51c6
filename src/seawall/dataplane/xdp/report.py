"""What the XDP driver reports per interface and per blocked CIDR: plain values, no I/O,
so the status and metrics builders read them without importing the driver."""

from __future__ import annotations

from dataclasses import dataclass, field

from seawall.dataplane.mode import Mode
from seawall.dataplane.skipped import NONE, Skipped


@dataclass(frozen=True, slots=True)
class InterfaceReport:
    name: str
    mode: Mode  # an XDP mode, or Mode.RAW (the raw tier enforces)
    reason: str
    entries: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    conflict: str | None = None
    adopted: bool = False
    repaired: tuple[str, ...] = ()
    skipped: Skipped = NONE  # values of the blocklist that are not CIDRs: not in the maps

    @property
    def in_xdp(self) -> bool:
        return self.mode.in_xdp


@dataclass(frozen=True, slots=True)
class HitReport:
    """Dropped packets per blocked CIDR. With sampling (``sample`` = 2**hit_shift)
    each count is an unbiased estimate, relative standard error
    sqrt((sample - 1) / n); ``unattributed`` = exact total drops minus the
    estimates' sum (sources the LRU evicted, and sampling noise), never < 0."""

    per_cidr: dict[str, int]
    unattributed: int
    total: int
    sample: int
