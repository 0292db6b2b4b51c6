"""The flat-cost tables agree with plain CIDR containment, in bulk and incrementally.

A small Python copy of the BPF lookup reads the table contents (as the kernel
would hold them after applying the writes) and is compared with ``ipaddress``.
"""

from __future__ import annotations

import ipaddress
import struct

import numpy as np
from hypothesis import given, settings, strategies as st

from seawall.dataplane.xdp.maps import KEY_SIZES, VALUE_SIZES
from seawall.dataplane.xdp.tables import (
    HASH_KINDS,
    TOP_V4_8,
    TOP_V4_16,
    TOP_V6_8,
    V6_BLOCKED,
    V6_CHILDREN,
    V6_EXACT,
    V6_LEVELS,
    BlocklistTables,
    Compiled,
    MapKind,
    Write,
)


class FakeMaps:
    """One slot's maps as dicts keyed like the kernel's, fed by Compiled or Writes,
    with a Python copy of the BPF lookup."""

    def __init__(self, compiled: Compiled | None = None) -> None:
        self.arrays = {kind: {} for kind in MapKind if kind.is_array}
        self.hashes: dict[MapKind, dict[bytes, bytes]] = {kind: {} for kind in HASH_KINDS}
        if compiled:
            for kind, values in compiled.arrays.items():
                size = VALUE_SIZES[kind]
                table = np.frombuffer(values, dtype=f"<u{size}")
                for i in np.flatnonzero(table).tolist():
                    self.arrays[kind][i] = values[size * i : size * i + size]
            for kind, (keys, values, count) in compiled.hashes.items():
                ks, vs = KEY_SIZES[kind], VALUE_SIZES[kind]
                for i in range(count):
                    self.hashes[kind][keys[ks * i : ks * i + ks]] = values[vs * i : vs * i + vs]

    def apply(self, writes: list[Write]) -> None:
        for w in writes:
            if w.kind.is_array:
                index = struct.unpack("<I", w.key)[0]
                assert w.value is not None
                if w.value == bytes(len(w.value)):
                    self.arrays[w.kind].pop(index, None)
                else:
                    self.arrays[w.kind][index] = w.value
            elif w.value is None:
                del self.hashes[w.kind][w.key]  # KeyError = deleting what is not there
            else:
                self.hashes[w.kind][w.key] = w.value

    def state(self) -> tuple:
        return (self.arrays, self.hashes)

    def _flags(self, kind: MapKind, key: bytes) -> int | None:
        raw = self.hashes[kind].get(key)
        return None if raw is None else struct.unpack("<I", raw)[0]

    def _top(self, word: int, bit: int) -> bool:
        raw = self.arrays[MapKind.TOP].get(word, bytes(8))
        return bool((struct.unpack("<Q", raw)[0] >> (bit & 63)) & 1)

    def blocked(self, address: str) -> bool:
        addr = ipaddress.ip_address(address)
        if addr.version == 6 and self._top(TOP_V6_8 + (int(addr) >> 126), int(addr) >> 120):
            return True
        if addr.version == 4:
            value = int(addr)
            if self._top(TOP_V4_8 + (value >> 30), value >> 24) or self._top(TOP_V4_16 + (value >> 22), value >> 16):
                return True
            slot = value >> 8
            word = self.arrays[MapKind.V4L1].get(slot >> 5, bytes(8))
            state = (struct.unpack("<Q", word)[0] >> ((slot & 31) * 2)) & 3
            if state == 1:
                return True
            if state == 2:
                bits = int.from_bytes(self.hashes[MapKind.V4L2][struct.pack("<I", slot)], "little")  # KeyError = dangling
                return bool((bits >> (value & 0xFF)) & 1)
            return False
        raw = addr.packed
        top = int.from_bytes(raw[:8], "big")
        l16 = self.arrays[MapKind.V6L16].get(top >> 48)
        flags = struct.unpack("<I", l16)[0] if l16 else 0
        if not flags:
            return False
        if flags & V6_BLOCKED:
            return True
        if not flags & V6_CHILDREN:
            return False
        for level in (24, 32, 40, 48, 56):
            key = (top & ~((1 << (64 - level)) - 1) & (2**64 - 1)) | level
            flags = self._flags(MapKind.V6MID, struct.pack("<Q", key))
            if flags is None:
                return False
            if flags & V6_BLOCKED:
                return True
            if not flags & V6_CHILDREN:
                return False
        flags = self._flags(MapKind.V6L64, struct.pack("<Q", top))
        if flags is None:
            return False
        if flags & V6_BLOCKED:
            return True
        if flags & V6_EXACT and raw in self.hashes[MapKind.V6X]:
            return True
        if not flags & V6_CHILDREN:
            return False
        for level in range(9, 16):
            flags = self._flags(MapKind.V6LONG, struct.pack("<I16s", level, raw[:level] + bytes(16 - level)))
            if flags is None:
                return False
            if flags & V6_BLOCKED:
                return True
            if not flags & V6_CHILDREN:
                return False
        return False


def contained(cidrs: set[str], address: str) -> bool:
    addr = ipaddress.ip_address(address)
    return any(addr.version == n.version and addr in n for n in (ipaddress.ip_network(c, strict=False) for c in cidrs))


def probes(cidrs: set[str]) -> list[str]:
    """Both ends of each CIDR and the addresses just outside."""
    out = ["0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        first, last = int(net.network_address), int(net.broadcast_address)
        top = (1 << net.max_prefixlen) - 1
        for value in (first, last, first - 1, last + 1):
            if 0 <= value <= top:
                out.append(str(ipaddress.ip_address(value) if net.version == 4 else ipaddress.IPv6Address(value)))
    return out


v4_cidr = st.builds(lambda a, p: f"{ipaddress.IPv4Address(a)}/{p}", st.integers(0, 2**32 - 1), st.integers(0, 32))
v6_cidr = st.builds(lambda a, p: f"{ipaddress.IPv6Address(a)}/{p}", st.integers(0, 2**128 - 1),
                    st.sampled_from(sorted({max(0, level - k) for level in V6_LEVELS for k in range(9)})))
clustered_v6 = st.builds(lambda a, p: f"2001:db8:{a:x}::{a:x}/{p}", st.integers(0, 15),
                        st.sampled_from([28, 32, 40, 48, 56, 60, 64, 72, 80, 96, 120, 124, 128]))
clustered_v4 = st.builds(lambda a, p: f"10.1.{a >> 8}.{a & 255}/{p}", st.integers(0, 2047), st.integers(20, 32))
cidr = st.one_of(v4_cidr, v6_cidr, clustered_v4, clustered_v6)


def test_seed_set() -> None:
    tables = BlocklistTables.from_cidrs(["1.2.3.4/32", "5.6.0.0/16"])
    maps = FakeMaps(tables.compile())
    assert maps.blocked("1.2.3.4") and not maps.blocked("1.2.3.5") and not maps.blocked("1.2.3.3")
    assert maps.blocked("5.6.0.0") and maps.blocked("5.6.255.255") and not maps.blocked("5.7.0.0")


def test_zero_length_prefixes_block_everything() -> None:
    maps = FakeMaps(BlocklistTables.from_cidrs(["0.0.0.0/0", "::/0"]).compile())
    assert maps.blocked("8.8.8.8") and maps.blocked("2001:db8::1") and maps.blocked("::")


@settings(max_examples=60, deadline=None)
@given(st.sets(cidr, max_size=25))
def test_bulk_compile_matches_containment(cidrs: set[str]) -> None:
    maps = FakeMaps(BlocklistTables.from_cidrs(cidrs).compile())
    for address in probes(cidrs):
        assert maps.blocked(address) == contained(cidrs, address), address


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), cidr), max_size=30))
def test_incremental_writes_match_containment_and_bulk(steps: list[tuple[bool, str]]) -> None:
    tables = BlocklistTables()
    maps = FakeMaps()
    current: set[str] = set()
    for add, item in steps:
        item = str(ipaddress.ip_network(item, strict=False))  # '::1/8' and '::/8' are one CIDR
        if add:
            maps.apply(tables.add(item))
            current.add(item)
        else:
            victim = item if item in current or not current else sorted(current)[0]
            maps.apply(tables.remove(victim))
            current.discard(victim)
        canonical = {str(ipaddress.ip_network(c, strict=False)) for c in current}
        for address in probes(current)[:40]:
            assert maps.blocked(address) == contained(canonical, address), (address, current)
    bulk = FakeMaps(BlocklistTables.from_cidrs(current).compile())
    assert bulk.state() == maps.state()


short_v4 = st.builds(lambda a, n: str(ipaddress.ip_network((a, n), strict=False)),
                    st.integers(0, 2**32 - 1), st.integers(0, 16))
short_v6 = st.builds(lambda a, n: str(ipaddress.ip_network((a, n), strict=False)),
                     st.integers(0, 2**128 - 1), st.integers(0, 8))


@settings(max_examples=60, deadline=None)
@given(st.sets(st.one_of(short_v4, short_v6, v4_cidr), max_size=12))
def test_bulk_top_words_are_the_words_one_by_one(cidrs: set[str]) -> None:
    """The bulk load's short-prefix bitmaps (numpy, by block ranges) are the words the
    incremental path rewrites one at a time."""
    tables = BlocklistTables.from_cidrs(cidrs)
    top = np.frombuffer(tables.compile().arrays[MapKind.TOP], dtype="<u8")
    assert top.tolist() == [tables._top_word(i) for i in range(len(top))]


def test_single_add_to_a_large_set_is_a_few_writes() -> None:
    tables = BlocklistTables.from_cidrs(f"10.{i >> 8}.{i & 255}.0/24" for i in range(20000))
    writes = tables.add("192.0.2.7/32")
    assert [w.kind for w in writes] == [MapKind.V4L2, MapKind.V4L1]
    assert len(tables.remove("192.0.2.7/32")) == 2


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 2**128 - 1), st.integers(0, 128))
@settings(max_examples=200, deadline=None)
def test_any_prefix_length_is_a_few_writes(v4: int, v4_len: int, v6: int, v6_len: int) -> None:
    """A /0 costs what a /32 costs: the short-prefix bitmaps take /0../16 (IPv4)
    and /0../8 (IPv6) in at most 4 words; longer prefixes expand to at most 128
    IPv6 nodes or 4 IPv4 L1 words, as before."""
    tables = BlocklistTables.from_cidrs(["10.0.0.0/8", "10.1.2.0/24", "10.1.2.3/32", "2001:db8::/32", "2001:db8::1/128"])
    for text, longest in ((f"{ipaddress.IPv4Address(v4)}/{v4_len}", 32), (f"{ipaddress.IPv6Address(v6)}/{v6_len}", 128)):
        length = int(text.rsplit("/", 1)[1])
        canonical = str(ipaddress.ip_network(text, strict=False))
        had = canonical in tables
        added = tables.add(text)
        removed = tables.remove(text) if not had else []
        short = length <= (16 if longest == 32 else 8)
        limit = 4 if short else 128 + len(V6_LEVELS) if longest == 128 else 6  # nodes + ancestors
        assert len(added) <= limit and len(removed) <= limit, (text, len(added), len(removed))
        if short:
            assert {w.kind for w in added + removed} <= {MapKind.TOP}


def test_a_slash_zero_beside_a_million_slots_touches_only_the_top_words() -> None:
    tables = BlocklistTables.from_cidrs(f"10.{i >> 8}.{i & 255}.0/24" for i in range(20000))
    writes = tables.add("0.0.0.0/0")
    assert [w.kind for w in writes] == [MapKind.TOP] * 4
    maps = FakeMaps(tables.compile())
    assert maps.blocked("203.0.113.9") and maps.blocked("10.0.0.1")
    assert len(tables.remove("0.0.0.0/0")) == 4
    assert not FakeMaps(tables.compile()).blocked("203.0.113.9")
    assert len(tables.add("::/0")) == 4 and len(tables.remove("::/0")) == 4


def _runs(writes: list[Write]) -> list[list[Write]]:
    """The batches ``PinnedMaps.apply`` sends: consecutive writes to one table, all sets or all deletes."""
    runs: list[list[Write]] = []
    for w in writes:
        if runs and runs[-1][0].kind is w.kind and (runs[-1][0].value is None) == (w.value is None):
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _pointers_valid(maps: FakeMaps) -> bool:
    """Every /24 the L1 words mark as 'look in L2' has its L2 entry (no dangling pointer)."""
    for word_index, value in maps.arrays[MapKind.V4L1].items():
        word = int.from_bytes(value, "little")
        for i in range(32):
            if (word >> (2 * i)) & 3 == 2 and struct.pack("<I", word_index * 32 + i) not in maps.hashes[MapKind.V4L2]:
                return False
    return True


@settings(max_examples=80, deadline=None)
@given(st.sets(cidr, max_size=30), st.sets(cidr, max_size=30), st.data())
def test_many_changes_at_once_match_the_bulk_build_and_keep_pointers_valid_between_batches(
        before: set[str], added: set[str], data: st.DataObject) -> None:
    before = {str(ipaddress.ip_network(c, strict=False)) for c in before}
    added = {str(ipaddress.ip_network(c, strict=False)) for c in added}
    removed = set(data.draw(st.lists(st.sampled_from(sorted(before)), unique=True))) if before else set()
    removed |= set(data.draw(st.lists(st.just("not-a-cidr"), max_size=1)))  # a value that never was a CIDR
    tables = BlocklistTables.from_cidrs(sorted(before))
    maps = FakeMaps(tables.compile())
    writes = tables.apply_changes(sorted(added), sorted(removed))
    for run in _runs(writes):
        maps.apply(run)
        assert _pointers_valid(maps)
    after = (before - removed) | added
    assert maps.state() == FakeMaps(BlocklistTables.from_cidrs(sorted(after)).compile()).state()
    assert sorted(tables.cidrs()) == sorted(after)
    for address in probes(after | (removed - {"not-a-cidr"}))[:60]:
        assert maps.blocked(address) == contained(after, address), address


def test_churn_of_thirty_thousand_in_a_large_set_rewrites_only_the_touched_slots() -> None:
    nets = [f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24" for i in range(200_000)]
    tables = BlocklistTables.from_cidrs(nets + ["10.0.0.7/32"])
    gone, new = nets[:15_000], [f"{60 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24" for i in range(15_000)]
    writes = tables.apply_changes(new, gone)
    kinds = {w.kind for w in writes}
    assert kinds == {MapKind.V4L1, MapKind.V4L2}  # 10.0.0.0/24 goes: its /32 needs an L2 entry again
    assert len([w for w in writes if w.kind is MapKind.V4L1]) <= 2 * 15_000 // 32 + 2
    assert "10.0.0.7/32" in tables and nets[15_000] in tables and new[-1] in tables and nets[0] not in tables
