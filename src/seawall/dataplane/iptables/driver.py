"""The raw-tier driver the agent calls: reconcile a RenderedRaw, read counters, clean up.

Order matters for a packet in flight and for the kernel's reference checks:
ipsets first (a rule may only name a set that exists), then each family's raw
table in one atomic restore, then stale sets of ours (only now unreferenced).
A failure in one family is reported and does not stop the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from seawall.dataplane.iptables.backend import Backend, CommandError, Runner, SubprocessRunner, detect
from seawall.dataplane.iptables.ipset_netlink import NetlinkMembers
from seawall.dataplane.iptables.ipsets import IpSets, is_ours, stale_sets
from seawall.dataplane.iptables.rendered import RenderedRaw, TableContent
from seawall.dataplane.iptables.ruleset import our_comment
from seawall.dataplane.iptables.tables import Tables

FAMILIES = (4, 6)


@dataclass(frozen=True, slots=True)
class RuleCounter:
    comment: str | None
    args: str
    packets: int
    bytes: int


@dataclass
class FamilyReport:
    family: int
    chains: int = 0
    rules: int = 0
    ipsets: int = 0
    members: int = 0
    programmed: bool = False  # a restore ran
    drift_repaired: bool = False  # the kernel had drifted from content we had already programmed
    differences: list[str] = field(default_factory=list)
    restore_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class RawReport:
    backend: str
    reason: str
    families: dict[int, FamilyReport] = field(default_factory=dict)
    ipsets_s: float = 0.0
    sets_swapped: list[str] = field(default_factory=list)
    sets_changed: list[str] = field(default_factory=list)  # sets the restore created, swapped or edited
    sets_destroyed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ipset_skipped: dict[str, dict[object, str]] = field(default_factory=dict)  # set name -> members skipped as not CIDRs

    @property
    def ok(self) -> bool:
        return not self.errors and not any(f.errors for f in self.families.values())


def _family_of(set_family: str) -> int:
    return 6 if set_family == "inet6" else 4


class RawDriver:
    """Seawall's raw-table tier on this host (or the namespace the runner enters)."""

    def __init__(self, backend: str = "Auto", *, runner: Runner | None = None, state_file: Path | None = None) -> None:
        self.requested = backend
        self.runner: Runner = runner or SubprocessRunner()
        self._backend: tuple[Backend, str] | None = None
        self._tables: Tables | None = None
        # Members by netlink where the runner works in this process's own namespace.
        local = isinstance(self.runner, SubprocessRunner) and not self.runner.prefix
        self.ipsets = IpSets(self.runner, state_file=state_file, member_writer=NetlinkMembers() if local else None)
        self._last: RenderedRaw | None = None

    def backend(self) -> tuple[Backend, str]:
        if self._backend is None:
            self._backend = detect(self.requested, self.runner)
        return self._backend

    @property
    def tables(self) -> Tables:
        if self._tables is None:
            self._tables = Tables(self.runner, self.backend()[0])
        return self._tables

    def reconcile(self, rendered: RenderedRaw, *, resync_ipsets: bool = False, trust_rules: bool = False) -> RawReport:
        """Make the kernel hold ``rendered``. ``trust_rules``: the caller checks for drift
        on its own schedule, so a family whose rendering equals the last one programmed
        without error is not read back, and the ipset listing (stale sets) is skipped
        when the set names are the same: a change of members only costs the ipset writes."""
        backend, reason = self.backend()
        report = RawReport(backend.value, reason)
        for fam in FAMILIES:
            table = rendered.tables.get(fam)
            fr = FamilyReport(fam)
            if table is not None:
                fr.chains = len(table.chains)
                fr.rules = sum(len(r) for r in table.chains.values())
            report.families[fam] = fr
        for content in rendered.ipsets.values():
            fr = report.families[_family_of(content.family)]
            fr.ipsets += 1
            fr.members += len(content.members)

        trusted = trust_rules and self._last is not None  # the last pass programmed without error
        start = time.perf_counter()
        try:
            plan = self.ipsets.sync(rendered.ipsets, resync=resync_ipsets, trusted=trusted)
            report.sets_swapped = sorted(n for n, c in plan.changes.items() if c.swapped)
            report.sets_changed = sorted(n for n, c in plan.changes.items() if c.created or c.swapped or c.added or c.removed)
            report.ipset_skipped = plan.skipped
        except (CommandError, ValueError) as exc:
            report.errors.append(f"ipsets: {exc}")
        report.ipsets_s = time.perf_counter() - start

        same_as_last = self._last is not None
        for fam in FAMILIES:
            fr = report.families[fam]
            table = rendered.tables.get(fam) or TableContent(family=fam, chains={}, hooks=())
            previous = self._last.tables.get(fam) if self._last is not None else None
            if trusted and previous == rendered.tables.get(fam):
                # Only set members changed (the common change under attack): the rules the last
                # pass programmed stand; reading them back (``iptables-save``, a process and a
                # parse) is the periodic check's job, not every member change's.
                continue
            start = time.perf_counter()
            try:
                tplan = self.tables.sync(table)
            except (CommandError, ValueError) as exc:
                fr.errors.append(f"raw table (IPv{fam}): {exc}")
                continue
            finally:
                fr.restore_s = time.perf_counter() - start
            fr.differences = tplan.differences
            fr.programmed = tplan.script is not None
            fr.drift_repaired = fr.programmed and same_as_last and previous == rendered.tables.get(fam)

        unchanged_sets = trusted and self._last is not None and rendered.ipsets.keys() == self._last.ipsets.keys()
        if not report.errors and not unchanged_sets:  # a set we failed to update may still be needed by old rules
            try:
                existing = self.ipsets.list()
                done, errors = self.ipsets.destroy(stale_sets(rendered.ipsets, existing))
                report.sets_destroyed, report.errors = done, report.errors + errors
            except CommandError as exc:
                report.errors.append(f"ipsets: {exc}")
        self._last = rendered if report.ok else None
        return report

    def check(self, rendered: RenderedRaw) -> dict[str, list[str]]:
        """The cheap drift check (writes nothing): {"rules": differences of our chains
        and jumps, per family; "setHeaders": our sets missing or whose header or entry
        count changed}; empty lists when nothing drifted. Three processes in all
        (``iptables-save -t raw`` per family, ``ipset list -t``), never a member list."""
        rules: list[str] = []
        for fam in FAMILIES:
            table = rendered.tables.get(fam) or TableContent(family=fam, chains={}, hooks=())
            rules += [f"IPv{fam}: {d}" for d in self.tables.drifted(table)]
        return {"rules": rules, "setHeaders": self.ipsets.header_drift(rendered.ipsets)}

    def counters(self) -> dict[tuple[int, str], list[RuleCounter]]:
        """Packets and bytes per rule of each of our chains, keyed by (family, chain)."""
        out: dict[tuple[int, str], list[RuleCounter]] = {}
        for fam in FAMILIES:
            for chain, rules in self.tables.counters(fam).items():
                out[(fam, chain)] = [RuleCounter(our_comment(r.args), r.args, r.packets, r.bytes) for r in rules]
        return out

    def cleanup(self) -> list[str]:
        """Remove our hook jumps, every sw- chain (both families), then every ipset of ours.
        Returns errors (empty when every trace is gone)."""
        errors: list[str] = []
        for fam in FAMILIES:
            try:
                self.tables.cleanup(fam)
            except CommandError as exc:
                errors.append(f"raw table (IPv{fam}): {exc}")
        try:
            ours = [n for n in self.ipsets.list() if is_ours(n)]
            errors += self.ipsets.destroy(ours)[1]
        except CommandError as exc:
            errors.append(f"ipsets: {exc}")
        self._last = None
        return errors
