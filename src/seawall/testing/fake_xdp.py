"""An in-memory ``XdpKernel``: the XDP driver's decisions tested without root.

``FakeXdpKernel`` models what the driver can observe and change: links
(added, removed, re-created under a new ifindex), each with its xdp-features
and the modes whose attach fails; the programs attached per mode (Seawall's,
another run's pinned elsewhere or not at all, an older build's whose maps
cannot be reused, or someone else's); the pins; and per program the two slots
of map contents, the hash-map capacities (E2BIG when full), the failsafe
ports, the hit sampling and the counters. Attach and detach behave like the
kernel's: UPDATE_IF_NOEXIST refuses an occupied mode, REPLACE only replaces the
program it names, native and generic never run at once. Every change is
recorded in ``calls`` so a test can say "no detach happened" (no gap).
Pure Python: no ctypes, no root, no bpffs.
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp.kernel import Program, ProgramRef
from seawall.dataplane.xdp.reference import Outcome
from seawall.dataplane.xdp.tables import HASH_KINDS, TOP_WORDS, V4_L1_WORDS, V6_L16_ENTRIES, BlocklistTables, Compiled, MapKind, Write

if TYPE_CHECKING:
    from seawall.dataplane.xdp.maps import Counters

XDP_ACT_BASIC = 1  # NETDEV_XDP_ACT_BASIC: native XDP
XDP_ACT_HW_OFFLOAD = 16  # NETDEV_XDP_ACT_HW_OFFLOAD
CURRENT_TAG = "fa11ab1e5eaba11d"  # the tag "this build" loads
DEFAULT_CAPACITY = 1 << 14
_ARRAY_ENTRIES = {MapKind.TOP: TOP_WORDS, MapKind.V4L1: V4_L1_WORDS, MapKind.V6L16: V6_L16_ENTRIES}
_KEY_SIZES = {MapKind.V4L2: 4, MapKind.V6MID: 8, MapKind.V6L64: 8, MapKind.V6LONG: 20, MapKind.V6X: 16}  # as maps.KEY_SIZES
_FAILSAFE_PROTOCOLS = (6, 17)
Slot = dict[MapKind, dict[bytes, bytes]]


def _error(code: int, what: str) -> OSError:
    return OSError(code, f"{what}: {os.strerror(code)}")


def _empty_slot() -> Slot:
    return {kind: {} for kind in MapKind}


@dataclass
class FakeMaps:
    """One program instance's maps (shared by a program loaded to reuse them)."""

    capacities: dict[MapKind, int]
    slots: tuple[Slot, Slot] = field(default_factory=lambda: (_empty_slot(), _empty_slot()))
    active: int = 0
    shift: int = 0
    failsafe: set[tuple[int, int]] = field(default_factory=set)
    packets: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    hits: dict[bytes, int] = field(default_factory=dict)

    def write(self, slot: int, kind: MapKind, key: bytes, value: bytes | None) -> None:
        table = self.slots[slot][kind]
        if value is None or (kind.is_array and value == bytes(len(value))):
            table.pop(key, None)
            return
        if not kind.is_array and key not in table and len(table) >= self.capacities[kind]:
            raise _error(errno.E2BIG, f"map update sw_{kind.value}")
        table[key] = value

    def load(self, slot: int, compiled: Compiled) -> None:
        for kind, values in compiled.arrays.items():
            size = len(values) // _ARRAY_ENTRIES[kind]
            rows = np.frombuffer(values, np.uint8).reshape(-1, size)
            table = self.slots[slot][kind]
            table.clear()
            for index in np.flatnonzero(rows.any(axis=1)).tolist():
                table[struct.pack("<I", index)] = values[size * index: size * index + size]
        for kind, (keys, values, count) in compiled.hashes.items():
            if count:
                ks, vs = len(keys) // count, len(values) // count
                for i in range(count):
                    self.write(slot, kind, keys[ks * i: ks * i + ks], values[vs * i: vs * i + vs])

    def clear(self, slot: int, known_keys: Mapping[MapKind, bytes] | None = None) -> None:
        for kind, table in self.slots[slot].items():
            known = known_keys.get(kind) if known_keys is not None and not kind.is_array else None
            if known is None:
                table.clear()
                continue
            size = _KEY_SIZES[kind]
            for i in range(0, len(known), size):
                table.pop(known[i: i + size], None)  # only what the caller says is there (like the real one)


@dataclass
class FakeProgram:
    prog_id: int
    name: str
    tag: str
    seawall: bool
    maps: FakeMaps | None  # None: no Seawall maps (someone else's)
    reusable: bool = True  # False: an older Seawall build whose maps this build cannot use


@dataclass(eq=False)
class FakeRef:
    """What the driver holds of a loaded program."""

    prog_id: int
    closed: bool = False


@dataclass(eq=False)
class FakeHandle(FakeRef):
    """A Seawall program with its maps, as ``open_pinned``/``load_new``/``adopt`` return it."""

    tag: str = ""
    directory: Path = Path()
    maps: FakeMaps | None = None


@dataclass
class FakeLink:
    name: str
    ifindex: int
    features: int | None
    fail: dict[Mode, int]  # mode -> the errno its attach fails with
    attached: dict[Mode, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One change the driver made: ``op`` on ``target`` (an interface name or a pin directory)."""

    op: str
    target: str
    mode: Mode | None = None
    prog_id: int | None = None
    replacing: int | None = None  # attach/detach: the program named for XDP_FLAGS_REPLACE
    filled: int | None = None  # attach: entries in the program's active slot at that moment


class FakeXdpKernel:
    """``XdpKernel`` in memory (see the module docstring)."""

    def __init__(self, *, kernel: tuple[int, int, int] = (6, 1, 0), tag: str = CURRENT_TAG) -> None:
        self.kernel = kernel
        self.tag = tag
        self.links: dict[str, FakeLink] = {}
        self.programs: dict[int, FakeProgram] = {}
        self.pins: dict[Path, int] = {}  # pin directory -> program id pinned there
        self.calls: list[Call] = []
        self._ifindex = itertools.count(2)
        self._prog_id = itertools.count(100)

    # ------------------------------------------------------------ test set-up and inspection

    def add_interface(self, name: str, *, features: int | None = XDP_ACT_BASIC, fail: Mapping[Mode, int] | None = None) -> int:
        self.links[name] = FakeLink(name, next(self._ifindex), features, dict(fail or {}))
        return self.links[name].ifindex

    def remove_interface(self, name: str) -> None:
        del self.links[name]  # its attachments go with it

    def recreate_interface(self, name: str) -> int:
        """Delete the link and add one of the same name: a new ifindex, nothing attached."""
        old = self.links.pop(name)
        return self.add_interface(name, features=old.features, fail=old.fail)

    def attach_foreign(self, name: str, mode: Mode, prog_name: str = "foreign_prog") -> int:
        program = self._new_program(prog_name, "0123456789abcdef", seawall=False, maps=None)
        self.links[name].attached[mode] = program.prog_id
        return program.prog_id

    def attach_seawall(self, name: str, mode: Mode, cidrs: Iterable[str] = (), *, pin: Path | None = None,
                       tag: str | None = None, reusable: bool = True) -> int:
        """A Seawall program left by another agent or run (pinned at ``pin``, or
        nowhere), holding ``cidrs``; ``reusable=False``: an older build."""
        tables = BlocklistTables.from_cidrs(cidrs)
        maps = FakeMaps({kind: DEFAULT_CAPACITY for kind in HASH_KINDS})
        maps.load(0, tables.compile())
        program = self._new_program("seawall_xdp", tag or self.tag, seawall=True, maps=maps, reusable=reusable)
        self.links[name].attached[mode] = program.prog_id
        if pin is not None:
            self.pins[pin] = program.prog_id
        return program.prog_id

    def detach_all(self, name: str) -> None:
        """Someone else detaches whatever is attached (``ip link set dev X xdp off``)."""
        self.links[name].attached.clear()

    def attached_to(self, name: str) -> dict[Mode, int]:
        return dict(self.links[name].attached)

    def active_entries(self, prog_id: int) -> Slot:
        maps = self._maps(prog_id)
        return {kind: dict(table) for kind, table in maps.slots[maps.active].items()}

    def maps_of(self, prog_id: int) -> FakeMaps:
        return self._maps(prog_id)

    def ops(self, *names: str) -> list[Call]:
        return [call for call in self.calls if call.op in names]

    # ------------------------------------------------------------ interfaces

    def ifindex(self, name: str) -> int | None:
        link = self.links.get(name)
        return link.ifindex if link else None

    def interfaces(self) -> list[tuple[int, str]]:
        return [(link.ifindex, link.name) for link in self.links.values()]

    def xdp_features(self, ifindex: int) -> int | None:
        return self._link(ifindex).features

    def kernel_version(self) -> tuple[int, int, int]:
        return self.kernel

    # ------------------------------------------------------------ attachments

    def attached(self, ifindex: int) -> list[tuple[Mode, int]]:
        link = self._link(ifindex)
        return [(mode, link.attached[mode]) for mode in (Mode.XDP_OFFLOAD, Mode.XDP_NATIVE, Mode.XDP_GENERIC) if mode in link.attached]

    def program_name(self, prog_id: int) -> str:
        program = self.programs.get(prog_id)
        return program.name if program else "?"

    def is_seawall(self, prog_id: int) -> bool:
        program = self.programs.get(prog_id)
        return program is not None and program.seawall

    def open_program(self, prog_id: int) -> FakeRef | None:
        return FakeRef(prog_id) if prog_id in self.programs else None

    def attach(self, ifindex: int, program: ProgramRef, mode: Mode, *, replacing: ProgramRef | None = None) -> None:
        link = self._link(ifindex)
        self._check(program)
        if mode in link.fail:
            raise _error(link.fail[mode], f"attach {mode.value} on {link.name}")
        current = link.attached.get(mode)
        if replacing is None:
            other = {Mode.XDP_NATIVE: Mode.XDP_GENERIC, Mode.XDP_GENERIC: Mode.XDP_NATIVE}.get(mode)
            if current is not None:
                raise _error(errno.EBUSY, f"attach {mode.value} on {link.name}")
            if other in link.attached:
                raise _error(errno.EEXIST, f"attach {mode.value} on {link.name} (native and generic at once)")
        else:
            self._check(replacing)
            if current != replacing.prog_id:
                raise _error(errno.EEXIST, f"replace {mode.value} on {link.name}")
        link.attached[mode] = program.prog_id
        maps = self.programs[program.prog_id].maps
        filled = sum(len(t) for t in maps.slots[maps.active].values()) if maps else None
        self.calls.append(Call("attach", link.name, mode, program.prog_id, replacing.prog_id if replacing else None, filled))

    def detach(self, ifindex: int, mode: Mode, *, program: ProgramRef) -> None:
        link = self._link(ifindex)
        self._check(program)
        if link.attached.get(mode) != program.prog_id:
            raise _error(errno.EEXIST, f"detach {mode.value} on {link.name}")
        del link.attached[mode]
        self.calls.append(Call("detach", link.name, mode, program.prog_id, program.prog_id))

    def release(self, program: ProgramRef) -> None:
        assert isinstance(program, FakeRef), program
        program.closed = True

    # ------------------------------------------------------------ programs and pins

    def ensure_bpffs(self, path: Path) -> None:
        pass

    def expected_tag(self) -> str:
        return self.tag

    def open_pinned(self, directory: Path) -> FakeHandle | None:
        program = self.programs.get(self.pins.get(directory, -1))
        if program is None or program.maps is None or not program.reusable:
            return None
        return FakeHandle(program.prog_id, tag=program.tag, directory=directory, maps=program.maps)

    def load_new(self, directory: Path, *, capacities: Mapping[MapKind, int]) -> FakeHandle:
        maps = FakeMaps({kind: capacities.get(kind, DEFAULT_CAPACITY) for kind in HASH_KINDS})
        program = self._new_program("seawall_xdp", self.tag, seawall=True, maps=maps)
        self.pins[directory] = program.prog_id
        self.calls.append(Call("load", str(directory), prog_id=program.prog_id))
        return FakeHandle(program.prog_id, tag=program.tag, directory=directory, maps=maps)

    def adopt(self, directory: Path, program: ProgramRef) -> FakeHandle | None:
        self._check(program)
        loaded = self.programs[program.prog_id]
        if loaded.maps is None or not loaded.reusable:
            return None
        self.pins[directory] = loaded.prog_id
        self.calls.append(Call("adopt", str(directory), prog_id=loaded.prog_id))
        return FakeHandle(loaded.prog_id, tag=loaded.tag, directory=directory, maps=loaded.maps)

    def upgrade(self, program: Program, ifindex: int, mode: Mode | None) -> None:
        handle = self._handle(program)
        fresh = self._new_program("seawall_xdp", self.tag, seawall=True, maps=handle.maps)
        if mode is not None:
            self.attach(ifindex, FakeRef(fresh.prog_id), mode, replacing=handle)
        self.pins[handle.directory] = fresh.prog_id
        self.calls.append(Call("upgrade", str(handle.directory), prog_id=fresh.prog_id, replacing=handle.prog_id))
        handle.prog_id, handle.tag = fresh.prog_id, fresh.tag

    def move_pins(self, program: Program, directory: Path) -> None:
        handle = self._handle(program)
        self.pins[directory] = self.pins.pop(handle.directory)
        self.calls.append(Call("move_pins", str(directory), prog_id=handle.prog_id))
        handle.directory = directory

    def remove_pins(self, directory: Path) -> None:
        if self.pins.pop(directory, None) is not None:
            self.calls.append(Call("remove_pins", str(directory)))

    def pin_dirs(self, directory: Path) -> set[str]:
        return {pin.name for pin in self.pins if pin.parent == directory}

    def remove_dir(self, directory: Path) -> None:
        pass

    # ------------------------------------------------------------ maps

    def replace(self, program: Program, compiled: Compiled, *, inactive_known_empty: bool,
                old_keys: Mapping[MapKind, bytes] | None = None, fresh: bool = False) -> None:
        maps = self._handle_maps(program)
        old = maps.active
        if not inactive_known_empty and not fresh:
            maps.clear(1 - old)
        maps.load(1 - old, compiled)
        maps.active = 1 - old
        if not fresh:
            maps.clear(old, old_keys)
        self.calls.append(Call("replace", "", prog_id=program.prog_id))

    def apply(self, program: Program, writes: Iterable[Write]) -> None:
        maps = self._handle_maps(program)
        for write in writes:
            maps.write(maps.active, write.kind, write.key, write.value)
        self.calls.append(Call("apply", "", prog_id=program.prog_id))

    def active_slot(self, program: Program) -> int:
        return self._handle_maps(program).active

    def read_slot(self, program: Program, slot: int) -> dict[MapKind, dict[bytes, bytes]]:
        return {kind: dict(table) for kind, table in self._handle_maps(program).slots[slot].items()}

    def holds(self, program: Program, slot: int, compiled: Compiled) -> bool:
        probe = FakeMaps(dict.fromkeys(HASH_KINDS, 1 << 62))  # unbounded: only the contents count
        probe.load(0, compiled)
        return probe.slots[0] == self._handle_maps(program).slots[slot]

    def clear_slot(self, program: Program, slot: int) -> None:
        self._handle_maps(program).clear(slot)
        self.calls.append(Call("clear_slot", str(slot), prog_id=program.prog_id))

    def capacities(self, program: Program) -> dict[MapKind, int]:
        return dict(self._handle_maps(program).capacities)

    def set_failsafe(self, program: Program, ports: Iterable[tuple[int, int]]) -> bool:
        maps = self._handle_maps(program)
        wanted = {(proto, port) for proto, port in ports if proto in _FAILSAFE_PROTOCOLS and 0 <= port <= 65535}
        changed, maps.failsafe = wanted != maps.failsafe, wanted
        return changed

    def hit_shift(self, program: Program) -> int:
        return self._handle_maps(program).shift

    def set_hit_shift(self, program: Program, shift: int) -> None:
        if not 0 <= shift <= 15:
            raise ValueError("hit_shift must be 0..15")
        self._handle_maps(program).shift = shift

    def counters(self, program: Program) -> Counters:
        from seawall.dataplane.xdp.maps import Counters  # only its dataclass (the module imports libbpf)

        packets = dict(self._handle_maps(program).packets)
        return Counters(packets, dict.fromkeys(Outcome, 0), {o: (n,) for o, n in packets.items()}, {o: (0,) for o in Outcome})

    def hits(self, program: Program) -> dict[bytes, int]:
        return dict(self._handle_maps(program).hits)

    # ------------------------------------------------------------ internals

    def _new_program(self, name: str, tag: str, *, seawall: bool, maps: FakeMaps | None, reusable: bool = True) -> FakeProgram:
        program = FakeProgram(next(self._prog_id), name, tag, seawall, maps, reusable)
        self.programs[program.prog_id] = program
        return program

    def _link(self, ifindex: int) -> FakeLink:
        for link in self.links.values():
            if link.ifindex == ifindex:
                return link
        raise _error(errno.ENODEV, f"ifindex {ifindex}")

    def _check(self, program: ProgramRef) -> None:
        assert isinstance(program, FakeRef), program
        if program.closed:
            raise _error(errno.EBADF, f"program {program.prog_id} used after release")

    def _handle(self, program: Program) -> FakeHandle:
        assert isinstance(program, FakeHandle), program
        self._check(program)
        return program

    def _handle_maps(self, program: Program) -> FakeMaps:
        maps = self._handle(program).maps
        assert maps is not None
        return maps

    def _maps(self, prog_id: int) -> FakeMaps:
        maps = self.programs[prog_id].maps
        assert maps is not None, f"program {prog_id} has no Seawall maps"
        return maps
