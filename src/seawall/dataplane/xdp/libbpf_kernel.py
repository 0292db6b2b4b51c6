"""The real ``XdpKernel``: the libbpf, loader, maps and features calls the driver makes.

No decisions here: each method is what the driver used to call directly (the
same syscalls, flags and pin moves), so the driver's logic can run against
``seawall.testing.fake_xdp`` instead.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp import features, libbpf, loader
from seawall.dataplane.xdp.kernel import Program, ProgramRef
from seawall.dataplane.xdp.loader import PinnedProgram
from seawall.dataplane.xdp.maps import Counters
from seawall.dataplane.xdp.tables import Compiled, MapKind, Write

MODE_FLAGS = {
    Mode.XDP_OFFLOAD: libbpf.XDP_FLAGS_HW_MODE,
    Mode.XDP_NATIVE: libbpf.XDP_FLAGS_DRV_MODE,
    Mode.XDP_GENERIC: libbpf.XDP_FLAGS_SKB_MODE,
}


@dataclass
class LoadedProgram:
    """A loaded program held by fd (not necessarily ours, not pinned)."""

    prog_fd: int
    prog_id: int


def _fd(program: ProgramRef) -> int:
    assert isinstance(program, (PinnedProgram, LoadedProgram)), program
    return program.prog_fd


def _pinned(program: Program) -> PinnedProgram:
    assert isinstance(program, PinnedProgram), program
    return program


class LibbpfKernel:
    """``XdpKernel`` over libbpf (ctypes), netlink and a bpffs."""

    # ------------------------------------------------------------ interfaces

    def ifindex(self, name: str) -> int | None:
        try:
            return socket.if_nametoindex(name)
        except OSError:
            return None

    def interfaces(self) -> list[tuple[int, str]]:
        try:
            return socket.if_nameindex()
        except OSError:
            return []

    def xdp_features(self, ifindex: int) -> int | None:
        return features.xdp_features(ifindex)

    def kernel_version(self) -> tuple[int, int, int]:
        return features.kernel_version()

    # ------------------------------------------------------------ attachments

    def attached(self, ifindex: int) -> list[tuple[Mode, int]]:
        query = libbpf.xdp_query(ifindex)
        return [(mode, prog_id) for mode, prog_id in
                ((Mode.XDP_OFFLOAD, query.hw_prog_id), (Mode.XDP_NATIVE, query.drv_prog_id), (Mode.XDP_GENERIC, query.skb_prog_id))
                if prog_id]

    def program_name(self, prog_id: int) -> str:
        try:
            fd = libbpf.prog_fd_by_id(prog_id)
        except (libbpf.LibbpfError, OSError):
            return "?"
        try:
            return libbpf.prog_info(fd).name or "?"
        finally:
            os.close(fd)

    def is_seawall(self, prog_id: int) -> bool:
        return loader.is_seawall_program(prog_id)

    def open_program(self, prog_id: int) -> LoadedProgram | None:
        try:
            return LoadedProgram(libbpf.prog_fd_by_id(prog_id), prog_id)
        except (libbpf.LibbpfError, OSError):
            return None

    def attach(self, ifindex: int, program: ProgramRef, mode: Mode, *, replacing: ProgramRef | None = None) -> None:
        if replacing is None:
            libbpf.xdp_attach(ifindex, _fd(program), MODE_FLAGS[mode] | libbpf.XDP_FLAGS_UPDATE_IF_NOEXIST)
        else:
            libbpf.xdp_attach(ifindex, _fd(program), MODE_FLAGS[mode] | libbpf.XDP_FLAGS_REPLACE, old_prog_fd=_fd(replacing))

    def detach(self, ifindex: int, mode: Mode, *, program: ProgramRef) -> None:
        libbpf.xdp_detach(ifindex, MODE_FLAGS[mode] | libbpf.XDP_FLAGS_REPLACE, old_prog_fd=_fd(program))

    def release(self, program: ProgramRef) -> None:
        if isinstance(program, PinnedProgram):
            program.close()
        else:
            os.close(_fd(program))

    # ------------------------------------------------------------ programs and pins

    def ensure_bpffs(self, path: Path) -> None:
        loader.ensure_bpffs(path)

    def expected_tag(self) -> str:
        return loader.expected_tag()

    def open_pinned(self, directory: Path) -> PinnedProgram | None:
        return loader.open_pinned(directory)

    def load_new(self, directory: Path, *, capacities: Mapping[MapKind, int]) -> PinnedProgram:
        return loader.load_new(directory, capacities=capacities)

    def adopt(self, directory: Path, program: ProgramRef) -> PinnedProgram | None:
        return loader.adopt(directory, libbpf.dup_fd(_fd(program)))

    def upgrade(self, program: Program, ifindex: int, mode: Mode | None) -> None:
        pinned = _pinned(program)
        fresh = loader.load_new(pinned.directory.parent / (pinned.directory.name + "_upgrade"), reuse=pinned.maps)
        try:
            if mode is not None:
                self.attach(ifindex, fresh, mode, replacing=pinned)
            loader.replace_program_pin(pinned, fresh.prog_fd)
        finally:
            fresh.maps.close()
            fresh.unpin()
        os.close(pinned.prog_fd)
        pinned.prog_fd = os.dup(fresh.prog_fd)
        os.close(fresh.prog_fd)
        pinned.prog_id, pinned.tag = fresh.prog_id, fresh.tag

    def move_pins(self, program: Program, directory: Path) -> None:
        pinned = _pinned(program)
        retired = directory.parent / (directory.name + "_retired")
        shutil.rmtree(retired, ignore_errors=True)
        os.rename(directory, retired)
        os.rename(pinned.directory, directory)
        shutil.rmtree(retired, ignore_errors=True)
        pinned.directory = directory

    def remove_pins(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    def pin_dirs(self, directory: Path) -> set[str]:
        if not directory.is_dir():
            return set()
        return {p.name for p in directory.iterdir() if p.is_dir()}

    def remove_dir(self, directory: Path) -> None:
        try:
            directory.rmdir()
        except OSError:
            pass

    # ------------------------------------------------------------ maps

    def replace(self, program: Program, compiled: Compiled, *, inactive_known_empty: bool,
                old_keys: Mapping[MapKind, bytes] | None = None, fresh: bool = False) -> None:
        _pinned(program).maps.replace(compiled, inactive_known_empty=inactive_known_empty, old_keys=old_keys, fresh=fresh)

    def apply(self, program: Program, writes: Iterable[Write]) -> None:
        _pinned(program).maps.apply(writes)

    def active_slot(self, program: Program) -> int:
        return _pinned(program).maps.active_slot()

    def read_slot(self, program: Program, slot: int) -> dict[MapKind, dict[bytes, bytes]]:
        return _pinned(program).maps.read_slot(slot)

    def holds(self, program: Program, slot: int, compiled: Compiled) -> bool:
        return _pinned(program).maps.holds(slot, compiled)

    def clear_slot(self, program: Program, slot: int) -> None:
        _pinned(program).maps.clear_slot(slot)

    def capacities(self, program: Program) -> dict[MapKind, int]:
        return _pinned(program).maps.capacities()

    def set_failsafe(self, program: Program, ports: Iterable[tuple[int, int]]) -> bool:
        return _pinned(program).maps.set_failsafe(ports)

    def hit_shift(self, program: Program) -> int:
        return _pinned(program).maps.hit_shift()

    def set_hit_shift(self, program: Program, shift: int) -> None:
        _pinned(program).maps.set_hit_shift(shift)

    def counters(self, program: Program) -> Counters:
        return _pinned(program).maps.counters()

    def hits(self, program: Program) -> dict[bytes, int]:
        return _pinned(program).maps.hits()
