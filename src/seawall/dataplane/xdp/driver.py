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
   changes, a double-buffered bulk replace otherwise (and always after
   adoption, since this process does not know what the maps hold);
5. reports the mode and why every faster mode was not used.
A failure on one interface never stops the others. Interfaces no longer
desired are detached (only if our program is the one attached) and unpinned;
once per driver, Seawall programs attached to unprotected interfaces are detached.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import shutil
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from seawall.dataplane.mode import Mode, SkippedMode, describe_skipped
from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.features import kernel_version, xdp_features
from seawall.dataplane.xdp.loader import (
    PinnedProgram,
    adopt,
    capacity_for,
    ensure_bpffs,
    expected_tag,
    interface_dir,
    is_seawall_program,
    load_new,
    open_pinned,
    replace_program_pin,
    seawall_root,
)
from seawall.dataplane.xdp.maps import DEFAULT_HIT_SHIFT, KEY_SIZES, VALUE_SIZES, Counters
from seawall.dataplane.xdp.modes import plan_modes
from seawall.dataplane.xdp.report import HitReport, InterfaceReport
from seawall.dataplane.xdp.tables import BlocklistTables, Compiled, MapKind
from seawall.policy.xdp import InterfaceBlocklist, XdpDesiredState

log = logging.getLogger("seawall.xdp")

MODE_FLAGS = {
    Mode.XDP_OFFLOAD: libbpf.XDP_FLAGS_HW_MODE,
    Mode.XDP_NATIVE: libbpf.XDP_FLAGS_DRV_MODE,
    Mode.XDP_GENERIC: libbpf.XDP_FLAGS_SKB_MODE,
}
BULK_THRESHOLD = 2048  # changes above this go through a bulk replace


@dataclass
class _Interface:
    program: PinnedProgram
    tables: BlocklistTables
    mode: Mode
    ifindex: int
    cidrs: frozenset[str]  # the input last applied (diffed as strings: cheap at 1M)


class XdpDriver:
    """Owns the pins under ``<bpffs>/seawall/xdp``; call ``reconcile`` with the desired state."""

    def __init__(self, bpffs: Path | str, *, bulk_threshold: int = BULK_THRESHOLD, hit_shift: int = DEFAULT_HIT_SHIFT) -> None:
        self.bpffs = Path(bpffs)
        self.bulk_threshold = bulk_threshold
        self.hit_shift = hit_shift
        self._interfaces: dict[str, _Interface] = {}
        self._swept = False  # orphaned Seawall programs on unprotected interfaces looked for (once)

    # ------------------------------------------------------------ reconcile

    def reconcile(self, desired: XdpDesiredState, *, verify: bool = False) -> dict[str, InterfaceReport]:
        reports: dict[str, InterfaceReport] = {}
        if desired.interfaces:
            ensure_bpffs(self.bpffs)
            expected_tag()  # cached: computed now, not on the first re-attach to a re-created link (~50 ms)
        for item in desired.interfaces:
            try:
                reports[item.name] = self._reconcile_one(item, desired, verify=verify)
            except Exception as exc:  # one interface must not stop the others
                log.exception("XDP reconcile of %s failed", item.name)
                self._forget(item.name)
                reports[item.name] = InterfaceReport(item.name, Mode.RAW, f"XDP failed: {exc}; the iptables raw tier enforces",
                                                     errors=(str(exc),))
        wanted = {item.name for item in desired.interfaces}
        for name in self._pinned_interfaces() - wanted:
            self._remove(name)
        self._sweep_orphans(wanted)
        return reports

    def _reconcile_one(self, item: InterfaceBlocklist, desired: XdpDesiredState, *, verify: bool) -> InterfaceReport:
        ifindex = _ifindex(item.name)
        state = self._interfaces.get(item.name)
        if ifindex is None:
            # The link is gone (maybe being re-created): keep the program and the model
            # of what its pinned maps hold, so a link of this name that comes back only
            # needs an attach (no map rewrite: ~20 ms, not ~300 ms). ifindex 0: attached nowhere.
            if state is not None:
                state.ifindex = 0
            return InterfaceReport(item.name, Mode.RAW, "interface does not exist (yet)")
        query = libbpf.xdp_query(ifindex)
        attached = _attached(query)
        if state is not None and state.ifindex != ifindex:
            # A new link under this name (re-created, same MAC or not): our maps are as we
            # left them, but nothing is attached to it yet — attached below.
            state.ifindex = ifindex
        pinned = state.program if state else open_pinned(interface_dir(self.bpffs, item.name))
        ours = pinned is not None and attached is not None and attached[1] == pinned.prog_id
        our_mode = attached[0] if ours and attached is not None else None  # the mode our program runs in
        claimed: str | None = None
        replace: tuple[str, int] | None = None  # (mode, fd) of a Seawall program to replace on attach
        if attached is not None and not ours:
            mode_name, prog_id = attached
            kind, pinned, replace = self._claim(item.name, prog_id, mode_name, pinned, state)
            if kind == "foreign":
                name = _prog_name(prog_id)
                return InterfaceReport(
                    item.name, Mode.RAW,
                    f"another XDP program ({name}, id {prog_id}, {mode_name} mode) is attached; Seawall leaves it alone",
                    conflict=f"foreign XDP program {name} id {prog_id} in {mode_name} mode",
                )
            state = None
            if kind == "adopted":
                ours, our_mode = True, mode_name
                claimed = (f"adopted Seawall program id {prog_id} ({mode_name}) that this agent had not pinned "
                           "(left by another agent or run); its maps rewritten")
            else:
                claimed = f"replaced Seawall program id {prog_id} ({mode_name}) of an older build (its maps could not be reused)"
        repaired: list[str] = [claimed] if claimed else []
        adopted = False
        if not desired.xdp_enabled:
            self._remove(item.name)
            if replace is not None:  # an old Seawall program nobody can reuse: off, like ours
                libbpf.xdp_detach(ifindex, MODE_FLAGS[Mode(replace[0])] | libbpf.XDP_FLAGS_REPLACE, old_prog_fd=replace[1])
                os.close(replace[1])
            return InterfaceReport(item.name, Mode.RAW, "XDP disabled (xdpEnabled: false); the iptables raw tier enforces")
        plan = plan_modes(kernel=kernel_version(), features=xdp_features(ifindex), xdp_enabled=True,
                          generic_enabled=desired.generic_enabled)
        if pinned is not None and pinned.tag != expected_tag():
            pinned = self._upgrade(pinned, ifindex, our_mode)
            repaired.append("program upgraded in place")
        was_pinned = pinned is not None
        if state is None:
            tables = BlocklistTables.from_cidrs(item.cidrs)
            if pinned is None:
                pinned = load_new(interface_dir(self.bpffs, item.name), capacities=_capacities(tables))
                pinned.maps.replace(tables.compile(), inactive_known_empty=True, old_keys=BlocklistTables().hash_keys())
            elif _too_small(pinned, tables):
                pinned = self._grow(pinned, ifindex, our_mode, tables, item)
                repaired.append("maps grown for a larger set")
            else:
                pinned.maps.replace(tables.compile(), inactive_known_empty=False)
            adopted = ours
            pinned.maps.set_failsafe(item.failsafe)
        else:
            assert pinned is not None  # a known interface keeps its program
            tables = state.tables
            try:
                tables = self._sync(pinned, tables, state.cidrs, item.cidrs)
            except libbpf.LibbpfError as exc:
                if exc.errno != errno.E2BIG:
                    raise
                tables = BlocklistTables.from_cidrs(item.cidrs)
                pinned = self._grow(pinned, ifindex, our_mode, tables, item)
                repaired.append("maps grown for a larger set")
            if verify:
                repaired += self._verify(pinned, tables)
            if pinned.maps.set_failsafe(item.failsafe) and verify:
                repaired.append("failsafe ports rewritten")
        assert pinned is not None
        if pinned.maps.hit_shift() != self.hit_shift:
            pinned.maps.set_hit_shift(self.hit_shift)
        current_mode = Mode(our_mode) if our_mode else None
        if current_mode is not None and current_mode not in plan.attempts:
            self._detach(ifindex, pinned, current_mode.value)
            current_mode = None
        errors: list[SkippedMode] = []
        if current_mode is None:
            current_mode, errors = _attach(ifindex, pinned.prog_fd, plan.attempts, replace=replace)
            if current_mode is not None and was_pinned:
                repaired.append("program was not attached; attached again")
        if replace is not None:
            os.close(replace[1])
        entries = tables.family_counts()
        skipped = [*plan.skipped, *errors]
        if current_mode is None:
            # Keep the filled maps pinned (a later refresh retries quickly); forget the rest.
            self._interfaces.pop(item.name, None)
            pinned.close()
            why = describe_skipped(skipped) + ([plan.unavailable] if plan.unavailable else [])
            reason = "no XDP mode available: " + "; ".join(why) + "; the iptables raw tier enforces"
            return InterfaceReport(item.name, Mode.RAW, reason, entries, tuple(describe_skipped(errors)), skipped=tables.skipped())
        self._interfaces[item.name] = _Interface(pinned, tables, current_mode, ifindex, frozenset(item.cidrs))
        better = describe_skipped([(m, r) for m, r in skipped if m.better_than(current_mode)])
        reason = current_mode.value + (f" (faster modes not used: {'; '.join(better)})" if better else " (the fastest mode)")
        if claimed:
            reason += f"; {claimed}"
        return InterfaceReport(item.name, current_mode, reason, entries, tuple(describe_skipped(errors)), adopted=adopted,
                               repaired=tuple(repaired),
                               skipped=tables.skipped())

    def _claim(self, name: str, prog_id: int, mode: str, pinned: PinnedProgram | None,
               state: _Interface | None) -> tuple[str, PinnedProgram | None, tuple[str, int] | None]:
        """What to do with an attached program that is not the one we know:
        ("foreign", pinned, None) leaves someone else's alone; a Seawall program
        (another agent's, an older run's, pinned elsewhere or not at all) is never
        foreign: ("adopted", program, None) when its maps can be reused (pinned
        here now, no detach, no gap), else ("replace", None, (mode, its fd)): a
        fresh program takes over with XDP_FLAGS_REPLACE on attach."""
        if not is_seawall_program(prog_id):
            if pinned is not None and state is None:
                pinned.close()
            return "foreign", None, None
        try:
            fd = libbpf.prog_fd_by_id(prog_id)
        except (libbpf.LibbpfError, OSError):
            if pinned is not None and state is None:
                pinned.close()
            return "foreign", None, None
        if state is not None:
            self._forget(name)
        elif pinned is not None:
            pinned.close()
        log.warning("%s: Seawall program id %d is attached but not the one pinned here; taking it over", name, prog_id)
        adopted = adopt(interface_dir(self.bpffs, name), libbpf.dup_fd(fd))
        if adopted is not None:
            os.close(fd)
            return "adopted", adopted, None
        shutil.rmtree(interface_dir(self.bpffs, name), ignore_errors=True)
        return "replace", None, (mode, fd)

    def _sweep_orphans(self, wanted: set[str]) -> None:
        """Once per driver: detach Seawall programs attached to interfaces no
        longer protected (left by another agent or run: they would keep dropping
        with stale contents). Foreign programs are never touched."""
        if self._swept:
            return
        self._swept = True
        for ifindex, name in _interfaces():
            if name in wanted:
                continue
            for line in self._detach_seawall(ifindex, name):
                log.warning("%s", line)

    def _detach_seawall(self, ifindex: int, name: str, left: list[str] | None = None) -> list[str]:
        """Detach every Seawall program attached to ``ifindex`` (any mode, only if
        still the one attached); foreign ones are described into ``left``."""
        removed: list[str] = []
        try:
            query = libbpf.xdp_query(ifindex)
        except libbpf.LibbpfError:
            return removed
        for mode, prog_id in _attached_all(query):
            prog_name = _prog_name(prog_id)
            if not is_seawall_program(prog_id):
                if left is not None:
                    left.append(f"foreign XDP program {prog_name} (id {prog_id}, {mode}) on {name}: not Seawall's, left attached")
                continue
            try:
                fd = libbpf.prog_fd_by_id(prog_id)
            except (libbpf.LibbpfError, OSError):
                continue
            try:
                libbpf.xdp_detach(ifindex, MODE_FLAGS[Mode(mode)] | libbpf.XDP_FLAGS_REPLACE, old_prog_fd=fd)
                removed.append(f"XDP program {prog_name} (id {prog_id}, {mode}) detached from {name}")
            except libbpf.LibbpfError as exc:
                if left is not None:
                    left.append(f"Seawall XDP program id {prog_id} ({mode}) on {name}: detach failed ({exc})")
            finally:
                os.close(fd)
        return removed

    def _sync(self, program: PinnedProgram, tables: BlocklistTables, have: frozenset[str],
              want: frozenset[str]) -> BlocklistTables:
        """Bring the active slot from ``have`` to ``want``: single writes for a
        few changes, a double-buffered bulk replace for many. Returns the table
        model now in the kernel (``tables`` itself, or a fresh one after a bulk replace)."""
        if want is have or want == have:
            return tables
        added = want - have
        # |want| - |have| = |added| - |removed|: pure additions need no second diff.
        removed = have - want if len(want) - len(have) != len(added) else frozenset()
        if len(added) + len(removed) > self.bulk_threshold:
            old_keys = tables.hash_keys()
            fresh = BlocklistTables.from_cidrs(want)
            program.maps.replace(fresh.compile(), inactive_known_empty=True, old_keys=old_keys)
            return fresh
        for cidr in sorted(added):
            program.maps.apply(tables.add(cidr))
        for cidr in sorted(removed):
            program.maps.apply(tables.remove(cidr))
        return tables

    def _grow(self, old: PinnedProgram, ifindex: int, mode: str | None, tables: BlocklistTables,
              item: InterfaceBlocklist) -> PinnedProgram:
        """Replace the program by one with larger maps, filled before it takes
        over (XDP_FLAGS_REPLACE: no moment without a program), then move its
        pins into place."""
        directory = old.directory
        staging = directory.parent / (directory.name + "_grow")
        shutil.rmtree(staging, ignore_errors=True)
        fresh = load_new(staging, capacities=_capacities(tables))
        fresh.maps.replace(tables.compile(), inactive_known_empty=True, old_keys=BlocklistTables().hash_keys())
        fresh.maps.set_failsafe(item.failsafe)
        fresh.maps.set_hit_shift(self.hit_shift)
        if mode is not None:
            libbpf.xdp_attach(ifindex, fresh.prog_fd, MODE_FLAGS[Mode(mode)] | libbpf.XDP_FLAGS_REPLACE, old_prog_fd=old.prog_fd)
        retired = directory.parent / (directory.name + "_retired")
        shutil.rmtree(retired, ignore_errors=True)
        os.rename(directory, retired)
        os.rename(staging, directory)
        shutil.rmtree(retired, ignore_errors=True)
        old.close()
        fresh.directory = directory
        return fresh

    def _verify(self, program: PinnedProgram, tables: BlocklistTables) -> list[str]:
        """Compare the active slot with what it must hold; rewrite it if edited."""
        compiled = tables.compile()
        expected = _expected_entries(compiled)
        actual = program.maps.read_slot(program.maps.active_slot())
        if actual == expected:
            return []
        program.maps.replace(compiled, inactive_known_empty=True)
        return ["blocklist maps differed from the desired set (edited by someone else); rewritten"]

    def _upgrade(self, pinned: PinnedProgram, ifindex: int, mode: str | None) -> PinnedProgram:
        fresh = load_new(pinned.directory.parent / (pinned.directory.name + "_upgrade"), reuse=pinned.maps)
        try:
            if mode is not None:
                flags = MODE_FLAGS[Mode(mode)] | libbpf.XDP_FLAGS_REPLACE
                libbpf.xdp_attach(ifindex, fresh.prog_fd, flags, old_prog_fd=pinned.prog_fd)
            replace_program_pin(pinned, fresh.prog_fd)
        finally:
            fresh.maps.close()
            fresh.unpin()
        os.close(pinned.prog_fd)
        pinned.prog_fd = os.dup(fresh.prog_fd)
        os.close(fresh.prog_fd)
        pinned.prog_id, pinned.tag = fresh.prog_id, fresh.tag
        return pinned

    # ------------------------------------------------------------ read-back

    def counters(self, ifname: str) -> Counters | None:
        program = self._program(ifname)
        return program.maps.counters() if program else None

    def hit_counts(self, ifname: str) -> HitReport | None:
        state = self._interfaces.get(ifname)
        if state is None:
            return None
        per_cidr: dict[str, int] = {}
        attributed = 0
        for key, packets in state.program.maps.hits().items():
            address = ipaddress.IPv6Address(key)
            mapped = address.ipv4_mapped
            family, value = (4, int(mapped)) if mapped is not None else (6, int(address))
            cidr = state.tables.longest_match(family, value)
            if cidr is not None:
                per_cidr[cidr] = per_cidr.get(cidr, 0) + packets
                attributed += packets
        total = state.program.maps.counters().dropped
        return HitReport(per_cidr, max(0, total - attributed), total, 1 << state.program.maps.hit_shift())

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
            if state.ifindex == 0 and _ifindex(name) is None:
                continue  # gone, and already reported so
            if not _still_attached(name, state):
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
        for ifindex, name in _interfaces():
            lines = self._detach_seawall(ifindex, name, report.left)
            if lines:
                touched.add(name)
                report.removed += lines
        for name in sorted(self._pinned_interfaces() | set(self._interfaces)):
            self._remove(name)
            touched.add(name)
            report.removed.append(f"pins under {interface_dir(self.bpffs, name)}")
        root = seawall_root(self.bpffs)
        for directory in (root / "xdp", root):
            try:
                directory.rmdir()
            except OSError:
                pass
        report.interfaces = sorted(touched)
        return report

    def close(self) -> None:
        """Forget in-memory state; pins and attachments stay (protection continues)."""
        for name in list(self._interfaces):
            self._forget(name)

    def _remove(self, name: str) -> None:
        state = self._interfaces.pop(name, None)
        program = state.program if state else open_pinned(interface_dir(self.bpffs, name))
        if program is not None:
            ifindex = _ifindex(name)
            if ifindex is not None:
                attached = _attached(libbpf.xdp_query(ifindex))
                if attached is not None and attached[1] == program.prog_id:
                    self._detach(ifindex, program, attached[0])
            program.close()
        shutil.rmtree(interface_dir(self.bpffs, name), ignore_errors=True)

    @staticmethod
    def _detach(ifindex: int, program: PinnedProgram, mode: str) -> None:
        flags = MODE_FLAGS[Mode(mode)] | libbpf.XDP_FLAGS_REPLACE
        libbpf.xdp_detach(ifindex, flags, old_prog_fd=program.prog_fd)

    def _forget(self, name: str) -> None:
        state = self._interfaces.pop(name, None)
        if state is not None:
            state.program.close()

    def _program(self, name: str) -> PinnedProgram | None:
        state = self._interfaces.get(name)
        return state.program if state else None

    def _pinned_interfaces(self) -> set[str]:
        directory = seawall_root(self.bpffs) / "xdp"
        if not directory.is_dir():
            return set()
        return {p.name for p in directory.iterdir() if p.is_dir() and not p.name.endswith(("_upgrade", "_grow", "_retired"))}


@dataclass
class TeardownReport:
    """What ``XdpDriver.teardown`` removed and left, one line each."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- helpers


def _interfaces() -> list[tuple[int, str]]:
    try:
        return socket.if_nameindex()
    except OSError:
        return []


def _attached_all(query: libbpf.XdpQuery) -> list[tuple[str, int]]:
    """(mode, program id) of every program attached (one per mode at most)."""
    return [(mode.value, prog_id) for mode, prog_id in
            ((Mode.XDP_OFFLOAD, query.hw_prog_id), (Mode.XDP_NATIVE, query.drv_prog_id), (Mode.XDP_GENERIC, query.skb_prog_id))
            if prog_id]


def _capacities(tables: BlocklistTables) -> dict[MapKind, int]:
    return {kind: capacity_for(n) for kind, n in tables.hash_counts().items()}


def _too_small(program: PinnedProgram, tables: BlocklistTables) -> bool:
    have = program.maps.capacities()
    return any(n > have[kind] for kind, n in tables.hash_counts().items())


def _ifindex(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def _still_attached(name: str, state: _Interface) -> bool:
    """Whether ``name`` is still the link ``state`` attached to (same ifindex)
    and our program is still attached there."""
    if _ifindex(name) != state.ifindex:
        return False
    try:
        attached = _attached(libbpf.xdp_query(state.ifindex))
    except (libbpf.LibbpfError, OSError):
        return False
    return attached is not None and attached[1] == state.program.prog_id


def _attached(query: libbpf.XdpQuery) -> tuple[str, int] | None:
    """(mode, program id) of what is attached (the fastest mode first), or None."""
    return next(iter(_attached_all(query)), None)


def _prog_name(prog_id: int) -> str:
    try:
        fd = libbpf.prog_fd_by_id(prog_id)
    except (libbpf.LibbpfError, OSError):
        return "?"
    try:
        return libbpf.prog_info(fd).name or "?"
    finally:
        os.close(fd)


def _attach(ifindex: int, prog_fd: int, attempts: Iterable[Mode],
            replace: tuple[str, int] | None = None) -> tuple[Mode | None, list[SkippedMode]]:
    errors: list[SkippedMode] = []
    if replace is not None:  # atomically in place of the (Seawall) program attached in that mode
        mode = Mode(replace[0])
        try:
            libbpf.xdp_attach(ifindex, prog_fd, MODE_FLAGS[mode] | libbpf.XDP_FLAGS_REPLACE, old_prog_fd=replace[1])
            return mode, errors
        except libbpf.LibbpfError as exc:
            errors.append((mode, f"replacing the old Seawall program failed ({os.strerror(exc.errno) if exc.errno else exc})"))
    for mode in attempts:
        try:
            libbpf.xdp_attach(ifindex, prog_fd, MODE_FLAGS[mode] | libbpf.XDP_FLAGS_UPDATE_IF_NOEXIST)
            return mode, errors
        except libbpf.LibbpfError as exc:
            errors.append((mode, f"attach failed ({os.strerror(exc.errno) if exc.errno else exc})"))
    return None, errors


def _expected_entries(compiled: Compiled) -> dict[MapKind, dict[bytes, bytes]]:
    """What ``BlocklistMaps.read_slot`` must return for a slot holding ``compiled``."""
    out: dict[MapKind, dict[bytes, bytes]] = {}
    for kind, values in compiled.arrays.items():
        size = VALUE_SIZES[kind]
        out[kind] = {
            struct.pack("<I", i): values[size * i : size * i + size]
            for i in range(len(values) // size)
            if values[size * i : size * i + size] != bytes(size)
        }
    for kind, (keys, values, count) in compiled.hashes.items():
        ks, vs = KEY_SIZES[kind], VALUE_SIZES[kind]
        out[kind] = {keys[ks * i : ks * i + ks]: values[vs * i : vs * i + vs] for i in range(count)}
    return out
