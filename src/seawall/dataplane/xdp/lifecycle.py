"""Program lifecycle: which program an interface runs, and how it changes.

Find what is attached and what is pinned; tell a foreign program (left alone)
from a Seawall one this driver did not pin (adopted when its maps can be
reused, else replaced atomically on attach); load a new program, upgrade one
of an older build in place, grow one whose maps are too small (a filled
replacement takes over with XDP_FLAGS_REPLACE, then the pins move); attach in
the best mode that works; detach (only if ours is what is attached), unpin,
sweep orphans once, tear everything down. Never touches map contents: filling
is the caller's (``sync.MapSync``), passed in where a new program needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from seawall.dataplane.mode import Mode, SkippedMode
from seawall.dataplane.xdp.kernel import Program, ProgramRef, XdpKernel
from seawall.dataplane.xdp.loader import capacity_for, interface_dir, seawall_root
from seawall.dataplane.xdp.tables import BlocklistTables, MapKind

log = logging.getLogger("seawall.xdp")

#: Pin directories of a program change in progress, never an interface's.
STAGING_SUFFIXES = ("_upgrade", "_grow", "_retired")


@dataclass
class Claim:
    """A Seawall program attached but not the one pinned here: ``program`` when
    adopted (its maps reused, pinned here now), else ``replace`` (its mode and
    the program, held) for a fresh program to take over with XDP_FLAGS_REPLACE."""

    program: Program | None = None
    replace: tuple[Mode, ProgramRef] | None = None


class Lifecycle:
    def __init__(self, kernel: XdpKernel, bpffs: Path) -> None:
        self.kernel = kernel
        self.bpffs = bpffs
        self._swept = False  # orphaned Seawall programs on unprotected interfaces looked for (once)

    def directory(self, name: str) -> Path:
        return interface_dir(self.bpffs, name)

    # ------------------------------------------------------------ finding

    def attached(self, ifindex: int) -> tuple[Mode, int] | None:
        """(mode, program id) of what is attached (the fastest mode first), or None."""
        return next(iter(self.kernel.attached(ifindex)), None)

    def still_attached(self, name: str, ifindex: int, program: ProgramRef) -> bool:
        """Whether ``name`` is still the link ``ifindex`` and ``program`` is attached there."""
        if self.kernel.ifindex(name) != ifindex:
            return False
        try:
            attached = self.attached(ifindex)
        except OSError:
            return False
        return attached is not None and attached[1] == program.prog_id

    def open_seawall(self, prog_id: int) -> ProgramRef | None:
        """The attached program ``prog_id`` held, if it is Seawall's; None: foreign (or gone)."""
        if not self.kernel.is_seawall(prog_id):
            return None
        return self.kernel.open_program(prog_id)

    def take_over(self, name: str, held: ProgramRef, mode: Mode) -> Claim:
        """Adopt a Seawall program (pinned here, no detach, no gap), or, if its maps
        cannot be reused, plan to replace it atomically (``held`` kept for REPLACE)."""
        log.warning("%s: Seawall program id %d is attached but not the one pinned here; taking it over", name, held.prog_id)
        adopted = self.kernel.adopt(self.directory(name), held)
        if adopted is not None:
            self.kernel.release(held)
            return Claim(program=adopted)
        self.kernel.remove_pins(self.directory(name))
        return Claim(replace=(mode, held))

    def pinned_interfaces(self) -> set[str]:
        names = self.kernel.pin_dirs(seawall_root(self.bpffs) / "xdp")
        return {name for name in names if not name.endswith(STAGING_SUFFIXES)}

    # ------------------------------------------------------------ changing

    def load(self, name: str, tables: BlocklistTables) -> Program:
        return self.kernel.load_new(self.directory(name), capacities=capacities(tables))

    def upgrade(self, program: Program, ifindex: int, mode: Mode | None) -> Program:
        self.kernel.upgrade(program, ifindex, mode)
        return program

    def grow(self, old: Program, ifindex: int, mode: Mode | None, tables: BlocklistTables,
             fill: Callable[[Program], None]) -> Program:
        """Replace the program by one with larger maps, filled (``fill``) before it
        takes over (XDP_FLAGS_REPLACE: no moment without a program), then move
        its pins into place."""
        directory = old.directory
        staging = directory.parent / (directory.name + "_grow")
        self.kernel.remove_pins(staging)
        fresh = self.kernel.load_new(staging, capacities=capacities(tables))
        fill(fresh)
        if mode is not None:
            self.kernel.attach(ifindex, fresh, mode, replacing=old)
        self.kernel.move_pins(fresh, directory)
        self.kernel.release(old)
        return fresh

    def attach(self, ifindex: int, program: ProgramRef, attempts: Iterable[Mode],
               replace: tuple[Mode, ProgramRef] | None = None) -> tuple[Mode | None, list[SkippedMode]]:
        """Attach in the first mode that works (in place of ``replace`` first, if given)."""
        errors: list[SkippedMode] = []
        if replace is not None:  # atomically in place of the (Seawall) program attached in that mode
            mode, old = replace
            try:
                self.kernel.attach(ifindex, program, mode, replacing=old)
                return mode, errors
            except OSError as exc:
                errors.append((mode, f"replacing the old Seawall program failed ({_why(exc)})"))
        for mode in attempts:
            try:
                self.kernel.attach(ifindex, program, mode)
                return mode, errors
            except OSError as exc:
                errors.append((mode, f"attach failed ({_why(exc)})"))
        return None, errors

    def detach(self, ifindex: int, program: ProgramRef, mode: Mode) -> None:
        self.kernel.detach(ifindex, mode, program=program)

    # ------------------------------------------------------------ removing

    def remove(self, name: str, program: Program | None) -> None:
        """Detach ``program`` (default: the one pinned for ``name``) if it is what is
        attached, and remove the pins."""
        if program is None:
            program = self.kernel.open_pinned(self.directory(name))
        if program is not None:
            ifindex = self.kernel.ifindex(name)
            if ifindex is not None:
                attached = self.attached(ifindex)
                if attached is not None and attached[1] == program.prog_id:
                    self.detach(ifindex, program, attached[0])
            self.kernel.release(program)
        self.kernel.remove_pins(self.directory(name))

    def sweep_orphans(self, wanted: set[str]) -> None:
        """Once per driver: detach Seawall programs attached to interfaces no
        longer protected (left by another agent or run: they would keep dropping
        with stale contents). Foreign programs are never touched."""
        if self._swept:
            return
        self._swept = True
        for ifindex, name in self.kernel.interfaces():
            if name in wanted:
                continue
            for line in self.detach_seawall(ifindex, name):
                log.warning("%s", line)

    def detach_seawall(self, ifindex: int, name: str, left: list[str] | None = None) -> list[str]:
        """Detach every Seawall program attached to ``ifindex`` (any mode, only if
        still the one attached); foreign ones are described into ``left``."""
        removed: list[str] = []
        try:
            attached = self.kernel.attached(ifindex)
        except OSError:
            return removed
        for mode, prog_id in attached:
            prog_name = self.kernel.program_name(prog_id)
            if not self.kernel.is_seawall(prog_id):
                if left is not None:
                    left.append(f"foreign XDP program {prog_name} (id {prog_id}, {mode.value}) on {name}: not Seawall's, left attached")
                continue
            held = self.kernel.open_program(prog_id)
            if held is None:
                continue
            try:
                self.kernel.detach(ifindex, mode, program=held)
                removed.append(f"XDP program {prog_name} (id {prog_id}, {mode.value}) detached from {name}")
            except OSError as exc:
                if left is not None:
                    left.append(f"Seawall XDP program id {prog_id} ({mode.value}) on {name}: detach failed ({exc})")
            finally:
                self.kernel.release(held)
        return removed

    def remove_root(self) -> None:
        """Remove ``<bpffs>/seawall/xdp`` and ``<bpffs>/seawall`` if empty."""
        root = seawall_root(self.bpffs)
        for directory in (root / "xdp", root):
            self.kernel.remove_dir(directory)


def capacities(tables: BlocklistTables) -> dict[MapKind, int]:
    return {kind: capacity_for(n) for kind, n in tables.hash_counts().items()}


def _why(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)
