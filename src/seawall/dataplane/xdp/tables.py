"""Blocked CIDRs -> the contents of the XDP program's flat-cost maps.

The BPF program (``bpf/blocklist.bpf.c``) looks a source address up in:

* short prefixes, ``top``: an array of u64 words, one bit per block: words
  0..3 per IPv4 /8 (prefixes /0../8), 4..1027 per IPv4 /16 (/9../16),
  1028..1031 per IPv6 /8 (/0../8). A prefix touches at most 4 words, so a
  /0 costs what a /32 costs to add or remove (and nothing below it moves).
* IPv4, DIR-24-8: ``v4l1`` = 2 bits per /24 packed 32 per u64 word
  (0 nothing, 1 whole /24 blocked by a /17../24, 2 consult ``v4l2``); ``v4l2`` = /24 ->
  256-bit bitmap of blocked addresses for prefixes /25../32.
* IPv6 prefixes /9 and longer, stride-8 trie with fixed levels: ``v6l16`` (array, 65,536 entries),
  ``v6mid`` (/24../56, key = masked top 64 bits | level), ``v6l64``,
  ``v6long`` (/72../120) and ``v6x`` (exact /128). Node flags: BLOCKED,
  CHILDREN (a node one level down exists) and, on /64 nodes, EXACT (a /128
  exists below). A prefix is expanded to the next level (at most 128 nodes)
  and its ancestors get CHILDREN (or EXACT).

``BlocklistTables`` is the user-space model of one interface's set. It can
``compile`` the full contents (for a bulk load into the inactive slot) and
compute the few map writes one ``add``/``remove`` needs (applied to the active
slot, so a single CIDR changes without reloading anything). Writes come in an
order that never exposes a state pointing at a missing entry.

No syscalls here: the caller (``maps``) turns ``Write``s into map updates.
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
import logging
import socket
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from seawall.api.cidr_bulk import v4_rows
from seawall.dataplane.skipped import Sink, Skipped, skip, summarize
from seawall.dataplane.xdp.abi import (
    BITMAP256,
    TOP_V4_8 as TOP_V4_8,
    TOP_V4_16 as TOP_V4_16,
    TOP_V6_8 as TOP_V6_8,
    TOP_WORDS as TOP_WORDS,
    V4_L1_ENTRIES,
    V4_SLOTS as V4_SLOTS,
    V4_STATE_BLOCKED,
    V4_STATE_L2,
    V4_STATE_NONE,
    V6_BLOCKED as V6_BLOCKED,
    V6_CHILDREN as V6_CHILDREN,
    V6_EXACT as V6_EXACT,
    V6_L16_ENTRIES as V6_L16_ENTRIES,
    V6KEY,
)
from seawall.dataplane.xdp.packed import PackedInts, sorted_unique
from seawall.policy import bucket_ints
from seawall.policy.netset import NetSet, v4_keys_and_rest

# The numbers the BPF program shares (word offsets in ``top``, /24 states, node flags, sizes) come from ``abi``.
V4_L1_WORDS = V4_L1_ENTRIES
V4_TOP8_MAX, V4_TOP16_MAX, V6_TOP_MAX = 8, 16, 8  # longest prefix each bitmap holds
V4_L1_SHORTEST = V4_TOP16_MAX + 1  # v4l1 holds /17../24
STATE_NONE, STATE_BLOCKED, STATE_L2 = V4_STATE_NONE, V4_STATE_BLOCKED, V4_STATE_L2
V6_LEVELS = (16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_L2_VALUE = struct.Struct(BITMAP256.format)
_V6_LONG_KEY = struct.Struct(V6KEY.format)


class MapKind(enum.Enum):
    """The slotted lookup tables; the values are ``abi.TABLES`` keys (map ``sw_<value>_<slot>``)."""

    TOP = "top"
    V4L1 = "v4l1"
    V4L2 = "v4l2"
    V6L16 = "v6l16"
    V6MID = "v6mid"
    V6L64 = "v6l64"
    V6LONG = "v6long"
    V6X = "v6x"

    @property
    def is_array(self) -> bool:
        return self in (MapKind.TOP, MapKind.V4L1, MapKind.V6L16)


HASH_KINDS = tuple(kind for kind in MapKind if not kind.is_array)
_LEVEL_KIND = {
    level: MapKind.V6L16 if level == 16 else MapKind.V6MID if level < 64 else MapKind.V6L64 if level == 64
    else MapKind.V6X if level == 128 else MapKind.V6LONG
    for level in V6_LEVELS
}


@dataclass(frozen=True, slots=True)
class Write:
    """One map element to set (``value``) or delete (``value`` None)."""

    kind: MapKind
    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Compiled:
    """Full contents of one slot's maps: arrays as their values (keys 0..n-1),
    hashes as packed keys and values with a count."""

    arrays: dict[MapKind, bytes]
    hashes: dict[MapKind, tuple[bytes, bytes, int]]


log = logging.getLogger(__name__)


class CidrParseError(ValueError):
    pass


def _skip(cidr: object, exc: Exception, sink: Sink | None = None) -> None:
    """A value that is not a CIDR never reaches the maps: skipped, logged and
    recorded in ``sink`` for the report (the calculation drops and reports such
    values before they get here)."""
    skip(log, "XDP blocklist", sink, cidr, str(exc))


def parse_cidr(text: str) -> tuple[int, int, int]:
    """(family 4|6, network as int, prefix length); host bits are masked off.

    ``socket.inet_pton`` parses in C, which keeps a million entries fast.
    ASCII only (``int`` would read other scripts' digits), no IPv6 zone."""
    if not isinstance(text, str) or not text.isascii() or "%" in text:
        raise CidrParseError(f"invalid CIDR {text!r}")
    address, _, prefix = text.partition("/")
    if prefix and not prefix.isdigit():
        raise CidrParseError(f"invalid prefix length in {text!r}")
    try:
        if ":" in address:
            value, bits, family = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big"), 128, 6
        else:
            value, bits, family = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big"), 32, 4
        length = int(prefix) if prefix else bits
    except (OSError, ValueError):
        raise CidrParseError(f"invalid CIDR {text!r}") from None
    if not 0 <= length <= bits:
        raise CidrParseError(f"invalid prefix length in {text!r}")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
    return family, value & mask, length


def format_cidr(family: int, network: int, length: int) -> str:
    if family == 4:
        return f"{ipaddress.IPv4Address(network)}/{length}"
    return f"{ipaddress.IPv6Address(network)}/{length}"


class BlocklistTables:
    """The blocked CIDRs of one interface and the map contents they imply."""

    def __init__(self) -> None:
        self._v4_by_len: list[PackedInts] = [PackedInts() for _ in range(33)]  # length -> networks
        self._v4_state = np.zeros(V4_SLOTS, dtype=np.uint8)  # what the maps hold, per /24
        self._v4_l2: dict[int, bytes] = {}  # /24 -> 256-bit bitmap (32 bytes LE) the maps hold
        self._v4_long: dict[int, int] = {}  # /24 -> how many /25../32 prefixes lie in it (blocked or not)
        self._v6_blocked: dict[tuple[int, int], int] = defaultdict(int)  # node -> expansions
        self._v6_below: dict[int, dict[tuple[int, int], int]] = {  # flag -> node -> descendants
            V6_CHILDREN: defaultdict(int), V6_EXACT: defaultdict(int),
        }
        self._cidrs: set[tuple[int, int, int]] = set()  # IPv6 only; IPv4 lives in _v4_by_len
        self._v6_short_lengths = [0] * (V6_TOP_MAX + 1)  # IPv6 prefixes /0../8 held, per length
        self._skipped: Sink = {}  # values given that are not CIDRs (never in the maps) -> why

    # ------------------------------------------------------------ queries

    def __len__(self) -> int:
        return sum(map(len, self._v4_by_len)) + len(self._cidrs)

    def __contains__(self, cidr: str) -> bool:
        try:
            return self._has(parse_cidr(cidr))
        except CidrParseError:
            return False

    def _has(self, parsed: tuple[int, int, int]) -> bool:
        family, network, length = parsed
        return network in self._v4_by_len[length] if family == 4 else parsed in self._cidrs

    def cidrs(self) -> list[str]:
        return sorted(format_cidr(*c) for c in self.parsed())

    def parsed(self) -> set[tuple[int, int, int]]:
        """Every CIDR as (family, network, length)."""
        out = set(self._cidrs)
        for length, networks in enumerate(self._v4_by_len):
            out.update((4, network, length) for network in networks)
        return out

    def longest_match(self, family: int, address: int) -> str | None:
        """The most specific blocked CIDR containing ``address`` (for hit attribution)."""
        bits = 32 if family == 4 else 128
        for length in range(bits, -1, -1):
            network = address & (((1 << bits) - 1) ^ ((1 << (bits - length)) - 1))
            if self._has((family, network, length)):
                return format_cidr(family, network, length)
        return None

    def hash_keys(self) -> dict[MapKind, bytes]:
        """Packed keys of the hash tables as the maps hold them (to empty a slot)."""
        keys: dict[MapKind, list[bytes]] = {kind: [] for kind in HASH_KINDS}
        keys[MapKind.V4L2] = [_U32.pack(slot) for slot in self._v4_l2]
        for level, prefix in self._v6_nodes():
            if level != 16:
                keys[_LEVEL_KIND[level]].append(_v6_key(level, prefix))
        return {kind: b"".join(k) for kind, k in keys.items()}

    def hash_counts(self) -> dict[MapKind, int]:
        """Entries each hash table needs (to size the maps)."""
        counts = {kind: 0 for kind in HASH_KINDS}
        counts[MapKind.V4L2] = len(self._v4_l2)
        for level, _ in self._v6_nodes():
            if level != 16:
                counts[_LEVEL_KIND[level]] += 1
        return counts

    def skipped(self) -> Skipped:
        """The values given (and not removed since) that are not CIDRs: bounded, for the report."""
        return summarize(self._skipped)

    def family_counts(self) -> dict[str, int]:
        return {"ipv4": sum(map(len, self._v4_by_len)), "ipv6": len(self._cidrs)}

    # ------------------------------------------------------------ bulk

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> BlocklistTables:
        tables = cls()
        v4: list[str] = []
        v6: list[str] = []
        known = np.zeros(0, np.int64)
        if isinstance(cidrs, NetSet):  # split by family for free: its buckets are per family
            # the integers known from validation's parse (packed buckets, layers over them) are not parsed again
            known, v4 = v4_keys_and_rest(cidrs.family(4))
            v6 = list(itertools.chain.from_iterable(cidrs.family(6).buckets()))
        else:
            for cidr in cidrs:
                (v6 if isinstance(cidr, str) and ":" in cidr else v4).append(cidr)
        tables._load_v4(v4, bucket_ints.unpack(known))
        for cidr in v6:
            try:
                family, network, length = parse_cidr(cidr)
            except CidrParseError as exc:
                _skip(cidr, exc, tables._skipped)
                continue
            if (family, network, length) not in tables._cidrs:
                tables._cidrs.add((family, network, length))
                if length <= V6_TOP_MAX:  # short ones live in ``top`` only
                    tables._v6_short_lengths[length] += 1
                else:
                    tables._v6_add_counts(network, length, +1)
        return tables

    def _load_v4(self, cidrs: list[str], known: tuple[np.ndarray, np.ndarray]) -> None:
        """Bulk IPv4 load, vectorised: ``cidrs`` parsed, ``known`` (networks, lengths) as they are."""
        parsed = self._parse_v4_many(cidrs) if cidrs else None
        networks, lengths = known
        if parsed is not None:
            networks, lengths = np.concatenate((networks, parsed[0])), np.concatenate((lengths, parsed[1]))
        if not len(networks):
            return
        for length in np.flatnonzero(np.bincount(lengths, minlength=33)).tolist():
            self._v4_by_len[length].update(networks[lengths == length])
        self._v4_rebuild()

    def _parse_v4_many(self, cidrs: list[str], sink: Sink | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(networks, lengths) of many IPv4 CIDR texts, in C loops; the values that
        are not CIDRs are skipped (and named in ``sink``, default: the tables' own
        record). None when nothing is left."""
        sink = self._skipped if sink is None else sink
        ok, networks, lengths = v4_rows(cidrs)
        if not ok.all():  # the rest one by one: bare addresses, host bits set, garbage (skipped and named)
            rest = np.flatnonzero(~ok)
            parsed: list[tuple[int, int, int]] = []
            for i in rest.tolist():
                try:
                    _, network, length = parse_cidr(cidrs[i])
                except CidrParseError as exc:
                    _skip(cidrs[i], exc, sink)
                    continue
                parsed.append((i, network, length))
            good = np.ones(len(cidrs), bool)
            good[rest] = False
            if parsed:
                at, nets, lens = (np.array(column, np.int64) for column in zip(*parsed, strict=True))
                networks[at], lengths[at], good[at] = nets, lens, True
            networks, lengths = networks[good], lengths[good]
            if not len(networks):
                return None
        return networks, lengths

    def _v4_rebuild(self) -> None:
        """Recompute every /24 state and bitmap with numpy (bulk path)."""
        state = np.zeros(V4_SLOTS, dtype=np.uint8)
        for length in range(V4_L1_SHORTEST, 25):  # shorter prefixes live in ``top``
            networks = self._v4_by_len[length]
            if not networks:
                continue
            starts = networks.array() >> 8
            span = 1 << (24 - length)  # 1..128 slots
            state[(starts[:, None] + np.arange(span)).ravel()] = STATE_BLOCKED
        slots_parts, words_parts, bits_parts = [], [], []
        long_slots = []
        for length in range(25, 33):
            networks = self._v4_by_len[length]
            if not networks:
                continue
            nets = networks.array()
            long_slots.append(nets >> 8)
            nets = nets[state[nets >> 8] != STATE_BLOCKED]
            width = 1 << (32 - length)  # addresses covered, 1..128
            for part in range(max(1, width // 64)):  # a /25 spans two 64-bit words
                low = (nets & 0xFF) + part * 64
                span = min(width, 64)
                ones = np.uint64((1 << span) - 1) if span < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
                slots_parts.append(nets >> 8)
                words_parts.append(low >> 6)
                bits_parts.append(ones << (low & 63).astype(np.uint64))
        if long_slots:
            unique_long, counts = np.unique(np.concatenate(long_slots), return_counts=True)
            self._v4_long = dict(zip(unique_long.tolist(), counts.tolist(), strict=True))
        else:
            self._v4_long = {}
        self._v4_l2 = {}
        if slots_parts:
            slots = np.concatenate(slots_parts)
            unique, index = np.unique(slots, return_inverse=True)
            table = np.zeros((len(unique), 4), dtype="<u8")
            np.bitwise_or.at(table, (index, np.concatenate(words_parts)), np.concatenate(bits_parts))
            state[unique] = STATE_L2
            raw = table.tobytes()
            self._v4_l2 = {slot: raw[32 * i : 32 * i + 32] for i, slot in enumerate(unique.tolist())}
        self._v4_state = state

    def compile(self) -> Compiled:
        """Full contents of a slot, for a bulk load."""
        words = _pack_words(self._v4_state.reshape(V4_L1_WORDS, 32))
        l16 = np.zeros(V6_L16_ENTRIES, dtype="<u4")
        hashes: dict[MapKind, tuple[list[bytes], list[bytes]]] = {kind: ([], []) for kind in HASH_KINDS}
        hashes[MapKind.V4L2] = ([np.fromiter(self._v4_l2, dtype="<u4", count=len(self._v4_l2)).tobytes()], list(self._v4_l2.values()))
        for (level, prefix), flags in self._v6_nodes().items():
            if level == 16:
                l16[prefix] = flags
            else:
                keys, values = hashes[_LEVEL_KIND[level]]
                keys.append(_v6_key(level, prefix))
                values.append(_U32.pack(flags))
        top = self._top_array()
        return Compiled(
            {MapKind.TOP: top.tobytes(), MapKind.V4L1: words.astype("<u8").tobytes(), MapKind.V6L16: l16.tobytes()},
            {kind: (b"".join(k), b"".join(v), len(v)) for kind, (k, v) in hashes.items()},
        )

    # ------------------------------------------------------------ incremental

    def add(self, cidr: str) -> list[Write]:
        """Add one CIDR; the writes that make the active maps reflect it (none for a non-CIDR, skipped)."""
        try:
            family, network, length = parse_cidr(cidr)
        except CidrParseError as exc:
            _skip(cidr, exc, self._skipped)
            return []
        if self._has((family, network, length)):
            return []
        if family == 6:
            self._cidrs.add((family, network, length))
            if length <= V6_TOP_MAX:
                self._v6_short_lengths[length] += 1
                return self._top_writes(_top_words(family, network, length))
            before = self._v6_snapshot(network, length)
            self._v6_add_counts(network, length, +1)
            return self._v6_writes(before)
        self._v4_by_len[length].add(network)
        if length <= V4_TOP16_MAX:
            return self._top_writes(_top_words(family, network, length))
        if length > 24:
            self._count_long(network >> 8, +1)
        return self._v4_refresh(_v4_slots(network, length))

    def remove(self, cidr: str) -> list[Write]:
        """Remove one CIDR; the writes that make the active maps reflect it (none for a non-CIDR)."""
        try:
            family, network, length = parse_cidr(cidr)
        except CidrParseError:
            try:
                self._skipped.pop(cidr, None)
            except TypeError:
                self._skipped.pop(repr(cidr), None)
            return []
        if not self._has((family, network, length)):
            return []
        if family == 6:
            self._cidrs.discard((family, network, length))
            if length <= V6_TOP_MAX:
                self._v6_short_lengths[length] -= 1
                return self._top_writes(_top_words(family, network, length))
            before = self._v6_snapshot(network, length)
            self._v6_add_counts(network, length, -1)
            return self._v6_writes(before)
        self._v4_by_len[length].discard(network)
        if length <= V4_TOP16_MAX:
            return self._top_writes(_top_words(family, network, length))
        if length > 24:
            self._count_long(network >> 8, -1)
        return self._v4_refresh(_v4_slots(network, length))

    def _count_long(self, slot: int, delta: int) -> None:
        """Keep ``_v4_long``: ``delta`` more (or fewer) /25../32 prefixes in ``slot``."""
        left = self._v4_long.get(slot, 0) + delta
        if left:
            self._v4_long[slot] = left
        else:
            self._v4_long.pop(slot, None)

    def apply_changes(self, added: Iterable[str], removed: Iterable[str]) -> list[Write]:
        """Many changes at once (a feed's churn: 30,000 against a million): ``removed``
        taken out, then ``added`` put in; the writes, ordered like ``add``'s (L2 entries
        before the L1 words that point at them, L1 words before the L2 deletes they stop
        pointing at), so a run of one kind can go to the kernel as one batch. IPv4 is
        parsed in bulk and every touched /24 recomputed once; IPv6 goes one by one."""
        v6: list[Write] = []
        v4_gone: list[str] = []
        v4_new: list[str] = []
        for cidr in removed:
            if not isinstance(cidr, str) or ":" in cidr or cidr in self._skipped:
                v6.extend(self.remove(cidr))  # IPv6, or a value skipped when it came: forgotten
            else:
                v4_gone.append(cidr)
        for cidr in added:
            (v6.extend(self.add(cidr)) if isinstance(cidr, str) and ":" in cidr else v4_new.append(cidr))
        top: set[int] = set()
        slot_parts: list[np.ndarray] = []
        for cidrs, delta, sink in ((v4_gone, -1, {}), (v4_new, +1, None)):
            parsed = self._parse_v4_many(cidrs, sink) if cidrs else None
            if parsed is None:
                continue
            networks, lengths = parsed
            for length in np.flatnonzero(np.bincount(lengths, minlength=33)).tolist():
                held = self._v4_by_len[length]
                nets = sorted_unique(networks[lengths == length])
                present = held.contains_many(nets)
                nets = nets[~present] if delta > 0 else nets[present]
                if not len(nets):
                    continue
                if delta > 0:
                    held.update(nets)
                else:
                    held.difference_update(nets)
                if length <= V4_TOP16_MAX:
                    for network in nets.tolist():
                        top.update(_top_words(4, network, length))
                    continue
                starts = nets >> 8
                if length <= 24:
                    slot_parts.append((starts[:, None] + np.arange(1 << (24 - length))).ravel())
                    continue
                slot_parts.append(starts)
                for slot, n in zip(*(a.tolist() for a in np.unique(starts, return_counts=True)), strict=True):
                    self._count_long(slot, delta * n)
        slots = sorted_unique(np.concatenate(slot_parts)).tolist() if slot_parts else []
        return v6 + self._top_writes(sorted(top)) + self._v4_refresh(slots)

    def _top_word(self, index: int) -> int:
        """Word ``index`` of ``top`` as the current prefixes imply it (at most 64
        blocks x 9 lengths of set lookups)."""
        if index < TOP_V4_16:
            family, first, block_bits, lengths = 4, (index - TOP_V4_8) * 64, 8, range(V4_TOP8_MAX + 1)
        elif index < TOP_V6_8:
            family, first, block_bits, lengths = 4, (index - TOP_V4_16) * 64, 16, range(V4_TOP8_MAX + 1, V4_TOP16_MAX + 1)
        else:
            family, first, block_bits, lengths = 6, (index - TOP_V6_8) * 64, 8, range(V6_TOP_MAX + 1)
        bits = 32 if family == 4 else 128
        present = [length for length in lengths if self._short_present(family, length)]
        word = 0
        for offset in range(64):
            block = (first + offset) << (bits - block_bits)
            for length in present:
                mask = ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
                if self._has((family, block & mask, length)):
                    word |= 1 << offset
                    break
        return word

    def _top_array(self) -> np.ndarray:
        """Every ``top`` word (as ``_top_word`` gives each), the IPv4 ones from the short
        prefixes' block ranges in numpy: word by word, a /16 held asked 65,536 set lookups
        (~0.17 s of every start with a million nets)."""
        bits = np.zeros(TOP_WORDS * 64, dtype=bool)
        for base, block_bits, lengths in ((TOP_V4_8, 8, range(V4_TOP8_MAX + 1)),
                                          (TOP_V4_16, 16, range(V4_TOP8_MAX + 1, V4_TOP16_MAX + 1))):
            for length in lengths:
                networks = self._v4_by_len[length]
                if not networks:
                    continue
                starts = (networks.array() >> (32 - block_bits)) + base * 64
                bits[(starts[:, None] + np.arange(1 << (block_bits - length))).ravel()] = True
        words = np.packbits(bits.reshape(TOP_WORDS, 64), axis=1, bitorder="little").view("<u8").ravel()
        for index in range(TOP_V6_8, TOP_WORDS):
            words[index] = self._top_word(index)
        return words

    def _short_present(self, family: int, length: int) -> bool:
        return bool(self._v4_by_len[length] if family == 4 else self._v6_short_lengths[length])

    def _top_writes(self, words: Iterable[int]) -> list[Write]:
        """The ``top`` words a short prefix covers, rewritten (they hold no pointers, so order is free)."""
        return [Write(MapKind.TOP, _U32.pack(index), _U64.pack(self._top_word(index))) for index in words]

    def _v4_refresh(self, slots: Iterable[int]) -> list[Write]:
        """Recompute the given /24 slots; L2 writes before the L1 words that point
        at them, L1 words before the L2 deletes they stop pointing at."""
        short_lengths = [length for length in range(V4_L1_SHORTEST, 25) if self._v4_by_len[length]]
        long_lengths = [length for length in range(25, 33) if self._v4_by_len[length]]
        slots = list(slots)
        blocked = self._v4_blocked_many(slots, short_lengths) if len(slots) > 64 else None
        l2_sets: list[Write] = []
        l2_deletes: list[Write] = []
        changed_words: set[int] = set()
        for i, slot in enumerate(slots):
            if blocked is not None and blocked[i]:
                new_state, bits = STATE_BLOCKED, None
            else:
                new_state, bits = self._v4_slot(slot, [] if blocked is not None else short_lengths, long_lengths)
            old_bits = self._v4_l2.get(slot)
            if bits != old_bits:
                if bits is None:
                    del self._v4_l2[slot]
                    l2_deletes.append(Write(MapKind.V4L2, _U32.pack(slot), None))
                else:
                    self._v4_l2[slot] = bits
                    l2_sets.append(Write(MapKind.V4L2, _U32.pack(slot), bits))
            if self._v4_state[slot] != new_state:
                self._v4_state[slot] = new_state
                changed_words.add(slot >> 5)
        ordered = sorted(changed_words)
        packed = _pack_words(self._v4_state.reshape(V4_L1_WORDS, 32)[ordered]).tolist() if ordered else []
        words = [Write(MapKind.V4L1, _U32.pack(w), _U64.pack(v)) for w, v in zip(ordered, packed, strict=True)]
        return l2_sets + words + l2_deletes

    def _v4_blocked_many(self, slots: list[int], short_lengths: list[int]) -> np.ndarray:
        """Per slot: does a /17../24 cover it (vectorised lookups)."""
        bases = np.array(slots, dtype=np.int64) << 8
        blocked = np.zeros(len(slots), dtype=bool)
        for length in short_lengths:
            blocked |= self._v4_by_len[length].contains_many(bases & _mask32(length))
        return blocked

    def _v4_slot(self, slot: int, short_lengths: list[int], long_lengths: list[int]) -> tuple[int, bytes | None]:
        base = slot << 8
        for length in short_lengths:
            if (base & _mask32(length)) in self._v4_by_len[length]:
                return STATE_BLOCKED, None
        if slot not in self._v4_long:
            return STATE_NONE, None
        bits = 0
        for length in long_lengths:
            width = 1 << (32 - length)
            for network in self._v4_by_len[length].in_range(base, base + 256):
                bits |= ((1 << width) - 1) << (network - base)
        if bits:
            return STATE_L2, bits.to_bytes(32, "little")
        return STATE_NONE, None

    # ------------------------------------------------------------ IPv6

    def _v6_add_counts(self, network: int, length: int, delta: int) -> None:
        for node, ancestors in _v6_paths(network, length):
            self._bump(self._v6_blocked, node, delta)
            for ancestor, flag in ancestors:
                self._bump(self._v6_below[flag], ancestor, delta)

    @staticmethod
    def _bump(counts: dict[tuple[int, int], int], node: tuple[int, int], delta: int) -> None:
        value = counts[node] + delta
        if value:
            counts[node] = value
        else:
            del counts[node]

    def _v6_flags(self, node: tuple[int, int]) -> int:
        flags = V6_BLOCKED if node in self._v6_blocked else 0
        for flag, counts in self._v6_below.items():
            if node in counts:
                flags |= flag
        return flags

    def _v6_nodes(self) -> dict[tuple[int, int], int]:
        nodes = {node: V6_BLOCKED for node in self._v6_blocked}
        for flag, counts in self._v6_below.items():
            for node in counts:
                nodes[node] = nodes.get(node, 0) | flag
        return nodes

    def _v6_snapshot(self, network: int, length: int) -> dict[tuple[int, int], int]:
        touched: set[tuple[int, int]] = set()
        for node, ancestors in _v6_paths(network, length):
            touched.add(node)
            touched.update(ancestor for ancestor, _ in ancestors)
        return {node: self._v6_flags(node) for node in touched}

    def _v6_writes(self, before: dict[tuple[int, int], int]) -> list[Write]:
        """Deepest nodes first when setting (a CHILDREN/EXACT flag never points
        at a missing node), shallowest first when deleting."""
        sets, deletes = [], []
        for node, old in before.items():
            new = self._v6_flags(node)
            if new == old:
                continue
            level, prefix = node
            kind, key = _LEVEL_KIND[level], _v6_key(level, prefix)
            if new or level == 16:
                sets.append((level, Write(kind, key, _U32.pack(new))))
            else:
                deletes.append((level, Write(kind, key, None)))
        sets.sort(key=lambda item: -item[0])
        deletes.sort(key=lambda item: item[0])
        return [w for _, w in sets] + [w for _, w in deletes]


# ---------------------------------------------------------------- helpers


def _mask32(length: int) -> int:
    return (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF


def _top_words(family: int, network: int, length: int) -> range:
    """The ``top`` words a short prefix's blocks fall in (1..4 words)."""
    if family == 6:
        first, count, base = network >> 120, 1 << (V6_TOP_MAX - length), TOP_V6_8
    elif length <= V4_TOP8_MAX:
        first, count, base = network >> 24, 1 << (V4_TOP8_MAX - length), TOP_V4_8
    else:
        first, count, base = network >> 16, 1 << (V4_TOP16_MAX - length), TOP_V4_16
    return range(base + (first >> 6), base + ((first + count - 1) >> 6) + 1)


def _v4_slots(network: int, length: int) -> range:
    start = network >> 8
    return range(start, start + (1 << (24 - length))) if length <= 24 else range(start, start + 1)


def _pack_words(states: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 states (0..3) -> n little-endian uint64 words, slot i at bits 2i..2i+1."""
    flat = states.reshape(-1)
    packed = flat[0::4] | (flat[1::4] << 2) | (flat[2::4] << 4) | (flat[3::4] << 6)
    return np.ascontiguousarray(packed).view("<u8")


def _v6_paths(network: int, length: int) -> Iterator[tuple[tuple[int, int], list[tuple[tuple[int, int], int]]]]:
    """For each node a prefix expands to: (node, [(ancestor node, flag it needs)]).

    Nodes are (level in bits, prefix of that many bits); ``length`` >= 9
    (shorter prefixes live in ``top``)."""
    level = next(level for level in V6_LEVELS if level >= length)
    spare = level - length
    base = network >> (128 - level)
    for low in range(1 << spare):
        prefix = base | low
        ancestors = []
        for above in V6_LEVELS:
            if above >= level:
                break
            if level == 128 and above > 64:
                break  # /128s are found from their /64 node (EXACT), not via /72../120
            flag = V6_EXACT if (level == 128 and above == 64) else V6_CHILDREN
            ancestors.append(((above, prefix >> (level - above)), flag))
        yield (level, prefix), ancestors


def _v6_key(level: int, prefix: int) -> bytes:
    if level == 16:
        return _U32.pack(prefix)
    if level < 64:
        return _U64.pack((prefix << (64 - level)) | level)
    if level == 64:
        return _U64.pack(prefix)
    if level == 128:
        return prefix.to_bytes(16, "big")
    return _V6_LONG_KEY.pack(level // 8, (prefix << (128 - level)).to_bytes(16, "big"))


def v4_l1_key(index: int) -> bytes:
    return _U32.pack(index)


def array_keys(count: int) -> bytes:
    return np.arange(count, dtype="<u4").tobytes()
