"""The iptables raw tier behind the common tier shape (``seawall.dataplane.tier``).

Its part of the desired state is ``desired.untracked``. The backend (legacy or
nft) comes from the agent's option or, when it has none, from the
FelixConfiguration of the first state reconciled. A report with errors makes
the pass a failure (retried by the worker); the per-interface reports carry
the errors too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seawall.dataplane.iptables.backend import CommandError, Runner
from seawall.dataplane.iptables.dataplane import REPAIR_KINDS, RawDataplane
from seawall.dataplane.iptables.driver import RawReport
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.tier import PassKind, TierReport
from seawall.policy.desired import DesiredState
from seawall.policy.model import UntrackedState

RuleCounters = Mapping[tuple[str, str, int], tuple[int, int]]  # (policy, direction, rule index) -> (packets, bytes)
InterfaceDrops = Mapping[str, Mapping[str, tuple[int, int]]]  # interface -> "ipv4"|"ipv6" -> (packets, bytes)


@dataclass(frozen=True)
class RawCounters:
    """The raw tier's counters: per policy rule, the DROP line per interface
    (None: could not be read this time), and the drift repaired per kind."""

    rules: RuleCounters = field(default_factory=dict)
    drops: InterfaceDrops | None = None
    repairs: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(REPAIR_KINDS, 0))


class RawTier:
    name = "raw"

    def __init__(self, backend: str | None = None, *, runner: Runner | None = None,
                 dataplane: RawDataplane | None = None, state_file: Path | None = None) -> None:
        self.backend = backend
        self.runner = runner
        self.state_file = state_file  # where a stopping agent leaves what its ipsets hold (see IpSets)
        self.dataplane = dataplane  # None: built on the first reconcile (the backend may come from FelixConfiguration)
        self._rules: RuleCounters = {}

    def enforced(self, desired: DesiredState) -> UntrackedState:
        return desired.untracked

    def reconcile(self, desired: DesiredState, *, verify: PassKind = PassKind.APPLY) -> TierReport[RawInterfaceReport]:
        if self.dataplane is None:
            self.dataplane = RawDataplane(self.backend or desired.config.iptablesBackend, runner=self.runner,
                                          state_file=self.state_file)
        reports = self.dataplane.reconcile(desired.untracked, verify.value)
        report = self.dataplane.last_report
        error = None
        if report is not None and not report.ok:
            error = "iptables raw tier: " + "; ".join(raw_errors(report))
        return TierReport(reports, error)  # a CHECK that found nothing returns the very same reports

    def counters(self) -> RawCounters:
        if self.dataplane is None:
            return RawCounters()
        try:
            self._rules, drops = self.dataplane.read_counters()
        except (CommandError, OSError):
            drops = None  # the previous values stay
        return RawCounters(self._rules, drops, dict(self.dataplane.repairs))

    def cleanup(self) -> list[str]:
        dataplane = self.dataplane or RawDataplane(self.backend or "Auto", runner=self.runner)
        return dataplane.cleanup()

    def close(self) -> None:
        """No handles to release; leaves what the ipsets hold for the next agent to adopt."""
        if self.dataplane is not None:
            self.dataplane.driver.ipsets.save_state()


def raw_errors(report: RawReport) -> list[str]:
    errors = list(report.errors)
    for family in report.families.values():
        errors += family.errors
    return errors
