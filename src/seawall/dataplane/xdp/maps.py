"""The maps of one attached blocklist program, and the safe ways to change them.

Two slots (a/b) of the lookup tables exist; ``sw_cfg.active`` says which one
packets read. ``apply`` changes single entries of the *active* slot (one CIDR,
no reload). ``replace`` fills the *inactive* slot completely, then flips
``active`` with one 4-byte map write: packets see either the whole old set or
the whole new one, never neither and never half. The old slot is emptied after
the flip (freeing its memory), so the inactive slot is normally known empty.

The arrays are BPF_F_MMAPABLE and mapped into this process: a slot's arrays are
filled, zeroed and read back as memory (a 2 MiB slot in ~0.1 ms, against ~60 ms
as a batch of element updates), an element changed by one aligned store. Maps of
an older build that cannot be mapped take the element batches instead.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.abi import (
    CFG_MAP,
    CONFIG,
    COUNTER,
    FAILSAFE_MAP,
    FAILSAFE_TCP,
    FAILSAFE_UDP,
    HIT_KEY,
    HITS_MAP,
    PORT_BITMAP,
    SLOT_NAMES as SLOT_NAMES,
    STATS_MAP,
    TABLES,
)
from seawall.dataplane.xdp.reference import Outcome
from seawall.dataplane.xdp.tables import (
    HASH_KINDS,
    TOP_WORDS,
    V4_L1_WORDS,
    V6_L16_ENTRIES,
    Compiled,
    MapKind,
    Write,
    array_keys,
)

TABLE_MAPS = {kind: TABLES[kind.value].name for kind in MapKind}
KEY_SIZES = {kind: TABLES[kind.value].key_size for kind in MapKind}
VALUE_SIZES = {kind: TABLES[kind.value].value_size for kind in MapKind}
ARRAY_ENTRIES = {MapKind.TOP: TOP_WORDS, MapKind.V4L1: V4_L1_WORDS, MapKind.V6L16: V6_L16_ENTRIES}
FAILSAFE_INDEX = {6: FAILSAFE_TCP, 17: FAILSAFE_UDP}  # TCP, UDP
_PORT_BITMAP_BYTES = PORT_BITMAP.size
MAP_NAMES = (
    CFG_MAP, FAILSAFE_MAP, STATS_MAP, HITS_MAP,
    *(f"{base}_{slot}" for base in TABLE_MAPS.values() for slot in SLOT_NAMES),
)
DEFAULT_HIT_SHIFT = 4  # per-source hit counters sample 1 drop in 16 (see blocklist.bpf.c)
_ZERO_KEY = struct.pack("<I", 0)
_INDEX = struct.Struct("<I")  # an array key
_WORD: dict[int, np.dtype[np.unsignedinteger]] = {8: np.dtype("<u8"), 4: np.dtype("<u4")}  # array value sizes stored as one word
_CFG = struct.Struct(CONFIG.format)
_COUNTER = struct.Struct(COUNTER.format)
_HIT_KEY_SIZE = HIT_KEY.size


@dataclass(frozen=True, slots=True)
class Counters:
    """Packets and bytes per outcome, summed over CPUs (and per CPU)."""

    packets: dict[Outcome, int]
    bytes: dict[Outcome, int]
    per_cpu_packets: dict[Outcome, tuple[int, ...]]
    per_cpu_bytes: dict[Outcome, tuple[int, ...]]

    @property
    def dropped(self) -> int:
        return self.packets[Outcome.DROP]

    @property
    def failsafe(self) -> int:
        return self.packets[Outcome.FAILSAFE]

    @property
    def passed(self) -> int:
        return sum(n for outcome, n in self.packets.items() if outcome not in (Outcome.DROP, Outcome.FAILSAFE))


class BlocklistMaps:
    """File descriptors of one program instance's maps (owned: closed by ``close``)."""

    def __init__(self, fds: Mapping[str, int]) -> None:
        missing = [name for name in MAP_NAMES if name not in fds]
        if missing:
            raise ValueError(f"missing maps: {', '.join(missing)}")
        self.fds = dict(fds)
        # fd -> the array's values as a typed view of its mapping (None: not mmapable,
        # an older build's map: element batches instead)
        self._views: dict[int, np.ndarray | None] = {}
        self._mappings: list[mmap.mmap] = []

    def close(self) -> None:
        self._views.clear()
        for mapping in self._mappings:
            try:
                mapping.close()
            except BufferError:  # a view still exported: freed with it
                pass
        self._mappings.clear()
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()

    def capacities(self) -> dict[MapKind, int]:
        """max_entries of each hash table (both slots are sized alike)."""
        return {kind: libbpf.map_info(self._table(kind, 0)).max_entries for kind in HASH_KINDS}

    def _table(self, kind: MapKind, slot: int) -> int:
        return self.fds[f"{TABLE_MAPS[kind]}_{SLOT_NAMES[slot]}"]

    # ------------------------------------------------------------ slots

    def _config(self) -> tuple[int, int]:
        raw = libbpf.map_lookup(self.fds["sw_cfg"], _ZERO_KEY, _CFG.size)
        return _CFG.unpack(raw) if raw else (0, 0)

    def active_slot(self) -> int:
        return self._config()[0] & 1

    def set_active(self, slot: int) -> None:
        """One 8-byte array write: packets switch slots atomically."""
        libbpf.map_update(self.fds["sw_cfg"], _ZERO_KEY, _CFG.pack(slot, self._config()[1]))

    def hit_shift(self) -> int:
        return self._config()[1]

    def set_hit_shift(self, shift: int) -> None:
        """Sample one drop in 2**shift into the per-source hit counters (0 = all)."""
        if not 0 <= shift <= 15:
            raise ValueError("hit_shift must be 0..15")
        libbpf.map_update(self.fds["sw_cfg"], _ZERO_KEY, _CFG.pack(self.active_slot(), shift))

    def apply(self, writes: Iterable[Write], *, slot: int | None = None) -> int:
        """Apply incremental writes (in order) to ``slot`` (default: active). A run
        of consecutive writes to one table (all sets or all deletes) goes in as one
        batch: the order between runs, which is what keeps pointers valid, holds."""
        target = self.active_slot() if slot is None else slot
        count = 0
        run: list[Write] = []
        for write in writes:
            if run and (write.kind is not run[0].kind or (write.value is None) != (run[0].value is None)):
                self._apply_run(run, target)
                run = []
            run.append(write)
            count += 1
        if run:
            self._apply_run(run, target)
        return count

    def _apply_run(self, run: list[Write], slot: int) -> None:
        kind = run[0].kind
        view = self._array_view(kind, slot) if kind.is_array else None
        if view is not None:  # one aligned store per element: packets see the old word or the new
            for write in run:
                view[_INDEX.unpack(write.key)[0]] = int.from_bytes(write.value or b"", "little")
            return
        fd = self._table(kind, slot)
        if len(run) == 1:
            write = run[0]
            if write.value is None:
                libbpf.map_delete(fd, write.key)
            else:
                libbpf.map_update(fd, write.key, write.value)
        elif run[0].value is None:
            libbpf.map_delete_batch(fd, b"".join(w.key for w in run), len(run))
        else:
            libbpf.map_update_batch(fd, b"".join(w.key for w in run), b"".join(w.value or b"" for w in run), len(run))

    def clear_slot(self, slot: int, *, known_keys: Mapping[MapKind, bytes] | None = None) -> None:
        """Empty a slot's tables. ``known_keys`` (packed keys per hash table)
        avoids reading the maps when the caller knows what is there."""
        for kind in ARRAY_ENTRIES:
            self._write_array(kind, slot, None)
        for kind in HASH_KINDS:
            fd = self._table(kind, slot)
            size = KEY_SIZES[kind]
            keys = known_keys.get(kind) if known_keys is not None else None
            if keys is None:
                keys = libbpf.map_dump_raw(fd, size, VALUE_SIZES[kind])[0]
            if keys:
                libbpf.map_delete_batch(fd, keys, len(keys) // size)

    def load_slot(self, slot: int, compiled: Compiled) -> None:
        """Write a compiled set into an (empty) slot."""
        for kind, values in compiled.arrays.items():
            self._write_array(kind, slot, values)
        for kind, (keys, values, count) in compiled.hashes.items():
            if count:
                libbpf.map_update_batch(self._table(kind, slot), keys, values, count)

    def holds(self, slot: int, compiled: Compiled) -> bool:
        """Whether a slot holds exactly ``compiled``, read back compactly: each
        array as one buffer, each hash table as packed rows compared sorted (a
        million-entry slot in milliseconds, not a million Python objects)."""
        for kind, values in compiled.arrays.items():
            if self._read_array(kind, slot) != values:
                return False
        for kind in HASH_KINDS:
            want = compiled.hashes.get(kind, (b"", b"", 0))
            have = libbpf.map_dump_raw(self._table(kind, slot), KEY_SIZES[kind], VALUE_SIZES[kind])
            if not same_rows(want, have, KEY_SIZES[kind], VALUE_SIZES[kind]):
                return False
        return True

    # ------------------------------------------------------------ arrays

    def _array_view(self, kind: MapKind, slot: int) -> np.ndarray | None:
        """The slot's array as a typed view of its mapping (one element per
        value, stores are single aligned words), or None if the map cannot be
        mapped (an older build's, kept by an in-place upgrade)."""
        fd = self._table(kind, slot)
        if fd in self._views:
            return self._views[fd]
        info = libbpf.map_info(fd)
        view = None
        if info.map_flags & libbpf.BPF_F_MMAPABLE and info.value_size in _WORD:
            stride = (info.value_size + 7) & ~7  # the kernel rounds array elements up to 8 bytes
            mapping = libbpf.map_mmap(fd, info.max_entries * stride)
            self._mappings.append(mapping)
            words = np.frombuffer(mapping, dtype=_WORD[info.value_size])
            view = words.reshape(info.max_entries, stride // info.value_size)[:, 0]
        self._views[fd] = view
        return view

    def _write_array(self, kind: MapKind, slot: int, values: bytes | None) -> None:
        """The whole array set to ``values`` (packed, one per element), or zeroed (None)."""
        view = self._array_view(kind, slot)
        if view is not None:
            view[:] = 0 if values is None else np.frombuffer(values, dtype=view.dtype)
            return
        count = ARRAY_ENTRIES[kind]
        libbpf.map_update_batch(self._table(kind, slot), array_keys(count),
                                bytes(VALUE_SIZES[kind] * count) if values is None else values, count)

    def _read_array(self, kind: MapKind, slot: int) -> bytes:
        view = self._array_view(kind, slot)
        if view is not None:
            return view.tobytes()
        return libbpf.map_dump_raw(self._table(kind, slot), KEY_SIZES[kind], VALUE_SIZES[kind])[1]

    def replace(
        self,
        compiled: Compiled,
        *,
        inactive_known_empty: bool,
        old_keys: Mapping[MapKind, bytes] | None = None,
        fresh: bool = False,
    ) -> None:
        """Atomically (as packets see it) switch to ``compiled``, then empty the
        old slot. ``old_keys``: the hash keys the active slot holds, if known;
        ``fresh``: a just-loaded program whose slots are both empty (nothing to
        empty before or after)."""
        old = self.active_slot()
        new = 1 - old
        if not inactive_known_empty and not fresh:
            self.clear_slot(new)
        self.load_slot(new, compiled)
        self.set_active(new)
        if not fresh:
            self.clear_slot(old, known_keys=old_keys)

    # ------------------------------------------------------------ failsafe

    def set_failsafe(self, ports: Iterable[tuple[int, int]]) -> bool:
        """Make the failsafe bitmaps hold exactly these (protocol, destination
        port) pairs; returns whether anything had to change."""
        bitmaps = {index: bytearray(_PORT_BITMAP_BYTES) for index in FAILSAFE_INDEX.values()}
        for proto, port in ports:
            if proto in FAILSAFE_INDEX and 0 <= port <= 65535:
                bitmaps[FAILSAFE_INDEX[proto]][port >> 3] |= 1 << (port & 7)
        changed = False
        for index, bitmap in bitmaps.items():
            key = struct.pack("<I", index)
            if libbpf.map_lookup(self.fds["sw_failsafe"], key, _PORT_BITMAP_BYTES) != bytes(bitmap):
                libbpf.map_update(self.fds["sw_failsafe"], key, bytes(bitmap))
                changed = True
        return changed

    def failsafe(self) -> set[tuple[int, int]]:
        out = set()
        for proto, index in FAILSAFE_INDEX.items():
            raw = libbpf.map_lookup(self.fds["sw_failsafe"], struct.pack("<I", index), _PORT_BITMAP_BYTES) or b""
            for byte_index, byte in enumerate(raw):
                for bit in range(8):
                    if byte >> bit & 1:
                        out.add((proto, byte_index * 8 + bit))
        return out

    # ------------------------------------------------------------ counters

    def counters(self) -> Counters:
        fd = self.fds["sw_stats"]
        packets: dict[Outcome, int] = {}
        octets: dict[Outcome, int] = {}
        per_cpu: dict[Outcome, tuple[int, ...]] = {}
        per_cpu_bytes: dict[Outcome, tuple[int, ...]] = {}
        for outcome in Outcome:
            values = [_COUNTER.unpack(v[: _COUNTER.size]) for v in libbpf.map_lookup_percpu(fd, struct.pack("<I", outcome), _COUNTER.size)]
            per_cpu[outcome] = tuple(v[0] for v in values)
            per_cpu_bytes[outcome] = tuple(v[1] for v in values)
            packets[outcome] = sum(v[0] for v in values)
            octets[outcome] = sum(v[1] for v in values)
        return Counters(packets, octets, per_cpu, per_cpu_bytes)

    def hits(self) -> dict[bytes, int]:
        """Dropped packets per source address (16-byte keys, IPv4 mapped), summed over CPUs."""
        fd = self.fds["sw_hits"]
        out: dict[bytes, int] = {}
        for key in list(libbpf.map_keys(fd, _HIT_KEY_SIZE)):
            values = libbpf.map_lookup_percpu(fd, key, 8)
            if values:
                out[key] = sum(struct.unpack("<Q", v[:8])[0] for v in values)
        return out

    # ------------------------------------------------------------ drift

    def read_slot(self, slot: int) -> dict[MapKind, dict[bytes, bytes]]:
        """Every non-empty entry of a slot, for drift detection."""
        out: dict[MapKind, dict[bytes, bytes]] = {}
        for kind in MapKind:
            size = VALUE_SIZES[kind]
            if kind.is_array:
                values = self._read_array(kind, slot)
                out[kind] = {_INDEX.pack(i): values[i * size:(i + 1) * size] for i in range(len(values) // size)
                             if values[i * size:(i + 1) * size] != bytes(size)}
            else:
                out[kind] = libbpf.map_dump(self._table(kind, slot), KEY_SIZES[kind], size)
        return out


def same_rows(want: tuple[bytes, bytes, int], have: tuple[bytes, bytes, int], key_size: int, value_size: int) -> bool:
    """Whether two packed (keys, values, count) hash contents hold the same
    elements, in any order (each side sorted as fixed-size key+value rows)."""
    if want[2] != have[2]:
        return False
    return want[2] == 0 or bool(np.array_equal(_sorted_rows(*want, key_size, value_size),
                                               _sorted_rows(*have, key_size, value_size)))


def _sorted_rows(keys: bytes, values: bytes, count: int, key_size: int, value_size: int) -> np.ndarray:
    """(key, value) rows ordered by key (keys are unique): by integer for a u32/u64
    key (1M rows ~0.1 s), else by the key's bytes."""
    key_rows = np.frombuffer(keys, dtype=np.uint8, count=count * key_size).reshape(count, key_size)
    value_rows = np.frombuffer(values, dtype=np.uint8, count=count * value_size).reshape(count, value_size)
    if key_size in _WORD:
        order = np.argsort(np.frombuffer(keys, dtype=_WORD[key_size], count=count))
    else:
        order = np.argsort(np.ascontiguousarray(key_rows).view(f"V{key_size}").ravel())
    return np.concatenate([key_rows[order], value_rows[order]], axis=1)
