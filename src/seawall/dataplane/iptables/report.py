"""What the raw tier reports per interface: a plain value, no I/O, so the status and
metrics builders read it without importing the tier."""

from __future__ import annotations

from dataclasses import dataclass, field

from seawall.dataplane.mode import Mode
from seawall.dataplane.skipped import NONE, Skipped


@dataclass
class RawInterfaceReport:
    interface: str
    mode: Mode
    backend: str  # "nft" | "legacy"
    backend_reason: str
    chains: list[str] = field(default_factory=list)  # our per-interface chains ("sw-fh-<if>", "sw-th-<if>")
    programmed: bool = False  # its chains are in the kernel now (rendered and reconciled without error)
    ingress_policies: int = 0  # policies with ingress rules
    egress_policies: int = 0
    ipset_members: dict[str, int] = field(default_factory=dict)  # ipset name -> members, sets its rules use
    errors: list[str] = field(default_factory=list)
    drift_repaired: bool = False
    skipped: Skipped = NONE  # values its rules or sets hold that are not CIDRs: not rendered

    @property
    def ok(self) -> bool:
        return not self.errors
