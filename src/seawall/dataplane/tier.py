"""The one shape every dataplane tier has, so that one worker drives both.

A tier (``seawall.dataplane.xdp.tier.XdpTier``, ``seawall.dataplane.iptables.tier.RawTier``)
takes the whole ``DesiredState`` and enforces its part of it (``enforced``
says which part, so the worker can tell a change from a repeat), reports one
typed report per interface, reads its own counters and can remove everything
it installed. ``seawall.agent.worker.TierWorker`` owns when a tier runs: latest
state wins, retries with back-off, periodic checks and verifications. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from seawall.policy.desired import DesiredState


class PassKind(str, enum.Enum):
    """What a pass does. APPLY: bring the kernel to the state. CHECK: the state
    last applied again, compared cheaply with the kernel, repaired only on a
    difference. VERIFY: like CHECK, reading everything back (map entries, set
    members), so an in-place edit is found too."""

    APPLY = "apply"
    CHECK = "check"
    VERIFY = "verify"


ReportT = TypeVar("ReportT", covariant=True)
CountersT = TypeVar("CountersT", covariant=True)


@dataclass(frozen=True)
class TierReport(Generic[ReportT]):
    """One pass of one tier: a report per interface it enforces on, and the
    error that makes the pass a failure (retried), if any. ``changed`` is False
    when a CHECK found nothing: the reports are the previous ones."""

    interfaces: Mapping[str, ReportT] = field(default_factory=dict)
    error: str | None = None
    changed: bool = True


class Tier(Protocol[ReportT, CountersT]):
    """A dataplane tier. Every method runs on the tier's worker thread only."""

    name: str  # "xdp" | "raw": logs, metrics, status

    def enforced(self, desired: DesiredState) -> object:
        """The part of ``desired`` this tier enforces: equal values need no APPLY."""
        ...

    def reconcile(self, desired: DesiredState, *, verify: PassKind = PassKind.APPLY) -> TierReport[ReportT]: ...

    def counters(self) -> CountersT:
        """What the tier counted so far (read from the kernel)."""
        ...

    def cleanup(self) -> list[str]:
        """Remove everything the tier installed; what could not be removed."""
        ...

    def close(self) -> None:
        """Forget in-memory state; the kernel state stays (protection continues)."""
        ...
