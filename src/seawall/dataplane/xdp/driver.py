"""The XDP dataplane driver: desired blocklists in, per-interface reports out.

``reconcile`` is the one call the agent makes. Per interface it:
1. finds what is attached (netlink query) and what is pinned (ours);
2. leaves any program that is not Seawall's alone and reports a conflict; a
   Seawall program it did not pin (another agent's, an older run's) is never
   foreign: it is adopted (its own maps pinned here and rewritten) or, if its
   maps cannot be reused, replaced atomically (XDP_FLAGS_REPLACE);
3. adopts our attached program (no detach, no gap), re-attaches a pinned one
   that someone detached, or loads, fills and pins a new one *before*
   attaching it, so a program is never attached empty;
4. brings the maps to the desired set: a few incremental writes for small
   changes, a double-buffered bulk replace otherwise; after adoption (a
   restart) the maps are read back and kept if they hold the set, else rewritten;
5. reports the mode and why every faster mode was not used.
A failure on one interface never stops the others. Interfaces no longer
desired are detached (only if our program is the one attached) and unpinned;
once per driver, Seawall programs attached to unprotected interfaces are detached.

``XdpDriver`` only coordinates these steps: ``lifecycle.Lifecycle`` decides
which program runs (find, claim, load, upgrade, grow, attach, detach, sweep),
``sync.MapSync`` what its maps hold (diff, bulk or incremental, verify), both
through ``kernel.XdpKernel`` (real: ``libbpf_kernel.LibbpfKernel``; in memory:
``seawall.testing.fake_xdp.FakeXdpKernel``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from seawall.dataplane.mode import Mode, SkippedMode, describe_skipped
from seawall.dataplane.xdp.kernel import Program, ProgramRef, XdpKernel
from seawall.dataplane.xdp.lifecycle import Lifecycle
from seawall.dataplane.xdp.maps import DEFAULT_HIT_SHIFT, Counters
from seawall.dataplane.xdp.modes import ModePlan, plan_modes
from seawall.dataplane.xdp.report import HitReport, InterfaceReport
from seawall.dataplane.xdp.sync import MapSync
from seawall.dataplane.xdp.tables import BlocklistTables
from seawall.policy.netset import NetSet
from seawall.policy.xdp import InterfaceBlocklist, XdpDesiredState

__all__ = ["BULK_THRESHOLD", "InterfaceBlocklist", "TeardownReport", "XdpDesiredState", "XdpDriver"]

log = logging.getLogger("seawall.xdp")

BULK_THRESHOLD = 2048  # changes above this go through a bulk replace


@dataclass
class _Interface:
    program: Program
    tables: BlocklistTables
    mode: Mode
    ifindex: int
    cidrs: NetSet  # the input last applied (diffed bucket by bucket: a change costs what changed)


@dataclass
class _Step:
    """What reconciling one interface has found and decided so far."""

    item: InterfaceBlocklist
    ifindex: int
    state: _Interface | None  # what this driver knew of it (None: fresh, adopted or replaced)
    program: Program | None  # ours: known, pinned here or adopted (None: load one)
    mode: Mode | None  # the mode our program is attached in (None: not attached)
    replace: tuple[Mode, ProgramRef] | None = None  # an old Seawall program to replace on attach
    claimed: str | None = None  # what was done with a Seawall program this driver had not pinned
    adopted: bool = False
    repaired: list[str] = field(default_factory=list)


class XdpDriver:
    """Owns the pins under ``<bpffs>/seawall/xdp``; call ``reconcile`` with the desired state.
    ``kernel``: what it drives (default: the real one, ``LibbpfKernel``)."""

    def __init__(self, bpffs: Path | str, *, bulk_threshold: int = BULK_THRESHOLD, hit_shift: int = DEFAULT_HIT_SHIFT,
                 kernel: XdpKernel | None = None) -> None:
        if kernel is None:
            from seawall.dataplane.xdp.libbpf_kernel import LibbpfKernel

            kernel = LibbpfKernel()
        self.bpffs = Path(bpffs)
        self._kernel = kernel
        self._life = Lifecycle(kernel, self.bpffs)
        self._sync = MapSync(kernel, bulk_threshold=bulk_threshold, hit_shift=hit_shift)
        self._interfaces: dict[str, _Interface] = {}
        # name -> (ifindex, the link's XDP feature mask), asked once per link and again on a
        # VERIFY pass: a generic-netlink round trip costs ~1 ms alone and 3-4 ms next to the
        # other threads, before the map writes of every one-net change (measured, 1M set resident).
        self._features: dict[str, tuple[int, int | None]] = {}

    @property
    def bulk_threshold(self) -> int:
        return self._sync.bulk_threshold

    @bulk_threshold.setter
    def bulk_threshold(self, value: int) -> None:
        self._sync.bulk_threshold = value

    @property
    def hit_shift(self) -> int:
        return self._sync.hit_shift

    @hit_shift.setter
    def hit_shift(self, value: int) -> None:
        self._sync.hit_shift = value

    # ------------------------------------------------------------ reconcile

    def reconcile(self, desired: XdpDesiredState, *, verify: bool = False) -> dict[str, InterfaceReport]:
        reports: dict[str, InterfaceReport] = {}
        if desired.interfaces:
            self._kernel.ensure_bpffs(self.bpffs)
        for item in desired.interfaces:
            try:
                reports[item.name] = self._reconcile_one(item, desired, verify=verify)
            except Exception as exc:  # one interface must not stop the others
                log.exception("XDP reconcile of %s failed", item.name)
                self._forget(item.name)
                reports[item.name] = InterfaceReport(item.name, Mode.RAW, f"XDP failed: {exc}; the iptables raw tier enforces",
                                                     errors=(str(exc),))
        if desired.interfaces:
            # cached for the first re-attach to a re-created link (~50-130 ms); after the
            # interfaces, whose first load (a cold start) leaves it known without a load of its own
            self._kernel.expected_tag()
        wanted = {item.name for item in desired.interfaces}
        for name in self._life.pinned_interfaces() - wanted:
            self._remove(name)
        self._life.sweep_orphans(wanted)
        return reports

    def _reconcile_one(self, item: InterfaceBlocklist, desired: XdpDesiredState, *, verify: bool) -> InterfaceReport:
        ifindex = self._kernel.ifindex(item.name)
        if ifindex is None:
            return self._gone(item.name)
        step = self._find(item, ifindex)
        if isinstance(step, InterfaceReport):
            return step  # a foreign program: left alone
        if not desired.xdp_enabled:
            return self._disable(step)
        plan = plan_modes(kernel=self._kernel.kernel_version(), features=self._xdp_features(item.name, ifindex, verify),
                          xdp_enabled=True, generic_enabled=desired.generic_enabled)
        self._upgrade_if_outdated(step)
        was_pinned = step.program is not None
        program, tables = self._fill(step) if step.state is None else self._sync_known(step, verify=verify)
        self._sync.ensure_hit_shift(program)
        mode, errors = self._attach(step, program, plan, was_pinned=was_pinned)
        if step.replace is not None:
            self._kernel.release(step.replace[1])
        return self._report(step, program, tables, plan, mode, errors)

    def _xdp_features(self, name: str, ifindex: int, refresh: bool) -> int | None:
        known = self._features.get(name)
        if refresh or known is None or known[0] != ifindex:  # a re-created link: asked again
            known = self._features[name] = (ifindex, self._kernel.xdp_features(ifindex))  # an error is not cached
        return known[1]

    def _gone(self, name: str) -> InterfaceReport:
        """The link is gone (maybe being re-created): keep the program and the model
        of what its pinned maps hold, so a link of this name that comes back only
        needs an attach (no map rewrite: ~20 ms, not ~300 ms). ifindex 0: attached nowhere."""
        state = self._interfaces.get(name)
        if state is not None:
            state.ifindex = 0
        return InterfaceReport(name, Mode.RAW, "interface does not exist (yet)")

    def _find(self, item: InterfaceBlocklist, ifindex: int) -> _Step | InterfaceReport:
        """What runs on the link and what is ours: a step to go on with, or the
        report of a foreign program."""
        attached = self._life.attached(ifindex)
        state = self._interfaces.get(item.name)
        if state is not None and state.ifindex != ifindex:
            # A new link under this name (re-created, same MAC or not): our maps are as we
            # left them, but nothing is attached to it yet — attached below.
            state.ifindex = ifindex
        program = state.program if state else self._kernel.open_pinned(self._life.directory(item.name))
        ours = program is not None and attached is not None and attached[1] == program.prog_id
        step = _Step(item, ifindex, state, program, attached[0] if ours and attached is not None else None)
        if attached is not None and not ours:
            return self._claim(step, *attached)
        return step

    def _claim(self, step: _Step, mode: Mode, prog_id: int) -> _Step | InterfaceReport:
        """An attached program that is not the one we know: someone else's is left
        alone; a Seawall program (another agent's, an older run's, pinned elsewhere
        or not at all) is never foreign: adopted if its maps can be reused, else
        replaced atomically on attach."""
        name = step.item.name
        held = self._life.open_seawall(prog_id)
        if held is None:
            if step.program is not None and step.state is None:
                self._kernel.release(step.program)
            prog_name = self._kernel.program_name(prog_id)
            return InterfaceReport(
                name, Mode.RAW,
                f"another XDP program ({prog_name}, id {prog_id}, {mode.value} mode) is attached; Seawall leaves it alone",
                conflict=f"foreign XDP program {prog_name} id {prog_id} in {mode.value} mode",
            )
        if step.state is not None:
            self._forget(name)
        elif step.program is not None:
            self._kernel.release(step.program)
        claim = self._life.take_over(name, held, mode)
        step.state, step.program, step.replace = None, claim.program, claim.replace
        if claim.program is not None:
            step.mode = mode
            step.claimed = (f"adopted Seawall program id {prog_id} ({mode.value}) that this agent had not pinned "
                            "(left by another agent or run)")
        else:
            step.claimed = f"replaced Seawall program id {prog_id} ({mode.value}) of an older build (its maps could not be reused)"
        step.repaired.append(step.claimed)
        return step

    def _disable(self, step: _Step) -> InterfaceReport:
        """xdpEnabled false: ours detached and unpinned, an old Seawall program too."""
        self._interfaces.pop(step.item.name, None)
        self._life.remove(step.item.name, step.program)
        if step.replace is not None:  # an old Seawall program nobody can reuse: off, like ours
            mode, old = step.replace
            self._life.detach(step.ifindex, old, mode)
            self._kernel.release(old)
        return InterfaceReport(step.item.name, Mode.RAW, "XDP disabled (xdpEnabled: false); the iptables raw tier enforces")

    def _upgrade_if_outdated(self, step: _Step) -> None:
        if step.program is not None and step.program.tag != self._kernel.expected_tag():
            step.program = self._life.upgrade(step.program, step.ifindex, step.mode)
            step.repaired.append("program upgraded in place")

    def _fill(self, step: _Step) -> tuple[Program, BlocklistTables]:
        """A program whose maps hold nothing we know: a new one loaded and filled
        (before it is attached), a too small one grown, else its maps kept if they
        already hold the set (a restart), rewritten if not."""
        item = step.item
        tables = BlocklistTables.from_cidrs(item.cidrs)
        if step.program is None:
            program = self._life.load(item.name, tables)
            self._sync.fill_fresh(program, tables)
        elif self._sync.too_small(step.program, tables):
            program = self._grow(step, step.program, tables)
        else:
            program = step.program
            if not self._sync.adopt(program, tables):
                step.repaired.append("pinned maps differed from the desired set; rewritten")
        step.adopted = step.mode is not None
        self._sync.set_failsafe(program, item.failsafe)
        return program, tables

    def _sync_known(self, step: _Step, *, verify: bool) -> tuple[Program, BlocklistTables]:
        """A program whose maps we know: the difference written (grown if it does
        not fit), read back and repaired if ``verify``."""
        state, item, program = step.state, step.item, step.program
        assert state is not None and program is not None  # a known interface keeps its program
        tables = self._sync.update(program, state.tables, state.cidrs, item.cidrs)
        if tables is None:  # a hash map is full
            tables = BlocklistTables.from_cidrs(item.cidrs)
            program = self._grow(step, program, tables)
        if verify:
            step.repaired += self._sync.verify(program, tables)
        if self._sync.set_failsafe(program, item.failsafe) and verify:
            step.repaired.append("failsafe ports rewritten")
        return program, tables

    def _grow(self, step: _Step, program: Program, tables: BlocklistTables) -> Program:
        grown = self._life.grow(program, step.ifindex, step.mode, tables,
                                fill=lambda fresh: self._sync.prime(fresh, tables, step.item.failsafe))
        step.repaired.append("maps grown for a larger set")
        return grown

    def _attach(self, step: _Step, program: Program, plan: ModePlan, *, was_pinned: bool) -> tuple[Mode | None, list[SkippedMode]]:
        """Keep our attachment if its mode is still wanted, else attach in the best mode that works."""
        mode = step.mode
        if mode is not None and mode not in plan.attempts:
            self._life.detach(step.ifindex, program, mode)
            mode = None
        if mode is not None:
            return mode, []
        mode, errors = self._life.attach(step.ifindex, program, plan.attempts, replace=step.replace)
        if mode is not None and was_pinned:
            step.repaired.append("program was not attached; attached again")
        return mode, errors

    def _report(self, step: _Step, program: Program, tables: BlocklistTables, plan: ModePlan, mode: Mode | None,
                errors: list[SkippedMode]) -> InterfaceReport:
        name, entries, skipped = step.item.name, tables.family_counts(), [*plan.skipped, *errors]
        if mode is None:
            # Keep the filled maps pinned (a later refresh retries quickly); forget the rest.
            self._interfaces.pop(name, None)
            self._kernel.release(program)
            why = describe_skipped(skipped) + ([plan.unavailable] if plan.unavailable else [])
            reason = "no XDP mode available: " + "; ".join(why) + "; the iptables raw tier enforces"
            return InterfaceReport(name, Mode.RAW, reason, entries, tuple(describe_skipped(errors)), skipped=tables.skipped())
        self._interfaces[name] = _Interface(program, tables, mode, step.ifindex, step.item.cidrs)
        better = describe_skipped([(m, r) for m, r in skipped if m.better_than(mode)])
        reason = mode.value + (f" (faster modes not used: {'; '.join(better)})" if better else " (the fastest mode)")
        if step.claimed:
            reason += f"; {step.claimed}"
        return InterfaceReport(name, mode, reason, entries, tuple(describe_skipped(errors)), adopted=step.adopted,
                               repaired=tuple(step.repaired), skipped=tables.skipped())

    # ------------------------------------------------------------ read-back

    def counters(self, ifname: str) -> Counters | None:
        state = self._interfaces.get(ifname)
        return self._kernel.counters(state.program) if state else None

    def hit_counts(self, ifname: str) -> HitReport | None:
        state = self._interfaces.get(ifname)
        return self._sync.hit_counts(state.program, state.tables) if state else None

    def mode(self, ifname: str) -> Mode | None:
        state = self._interfaces.get(ifname)
        return state.mode if state else None

    def lost_attachments(self) -> list[str]:
        """Interfaces this driver attached to whose program is no longer what is
        attached there, re-read from the kernel by ifindex: the link was deleted,
        or re-created under the same name (a new ifindex, with or without the
        same MAC), or someone detached or replaced the program. Such an
        interface must not be reported as running XDP; a reconcile re-attaches."""
        lost = []
        for name, state in sorted(self._interfaces.items()):
            if state.ifindex == 0 and self._kernel.ifindex(name) is None:
                continue  # gone, and already reported so
            if not self._life.still_attached(name, state.ifindex, state.program):
                lost.append(name)
        return lost

    # ------------------------------------------------------------ removal

    def cleanup(self) -> list[str]:
        """Detach every program of ours and remove every pin (explicit clean-up);
        the interfaces something was removed from (``teardown`` says what)."""
        return self.teardown().interfaces

    def teardown(self) -> TeardownReport:
        """Detach every Seawall program attached on any interface of this network
        namespace (pinned here, elsewhere or not at all; never anyone else's) and
        remove every pin under ``<bpffs>/seawall``."""
        report = TeardownReport()
        touched: set[str] = set()
        for ifindex, name in self._kernel.interfaces():
            lines = self._life.detach_seawall(ifindex, name, report.left)
            if lines:
                touched.add(name)
                report.removed += lines
        for name in sorted(self._life.pinned_interfaces() | set(self._interfaces)):
            self._remove(name)
            touched.add(name)
            report.removed.append(f"pins under {self._life.directory(name)}")
        self._life.remove_root()
        report.interfaces = sorted(touched)
        return report

    def close(self) -> None:
        """Forget in-memory state; pins and attachments stay (protection continues)."""
        for name in list(self._interfaces):
            self._forget(name)

    def _remove(self, name: str) -> None:
        """Detach (only if our program is the one attached) and unpin."""
        state = self._interfaces.pop(name, None)
        self._features.pop(name, None)
        self._life.remove(name, state.program if state else None)

    def _forget(self, name: str) -> None:
        state = self._interfaces.pop(name, None)
        if state is not None:
            self._kernel.release(state.program)


@dataclass
class TeardownReport:
    """What ``XdpDriver.teardown`` removed and left, one line each."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
