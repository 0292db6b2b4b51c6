"""``BlocklistMaps`` over real kernel maps created from ``abi.MAPS``: with the
arrays BPF_F_MMAPABLE (this build: filled, zeroed and compared through a shared
mapping) and without (an older build's maps kept by an in-place upgrade:
element batches). Both paths must agree with each other and with the kernel's
own element reads."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from seawall.dataplane.xdp import abi, libbpf as L
from seawall.dataplane.xdp.maps import BlocklistMaps
from seawall.dataplane.xdp.tables import BlocklistTables, MapKind

CIDRS = (
    [f"10.{i >> 8}.{i & 255}.7/32" for i in range(3000)]  # /24s with L2 bitmaps
    + ["11.0.0.0/8", "12.34.0.0/16", "13.1.2.0/24", "14.0.0.0/12"]  # top bitmap and whole /24s
    + ["2001:db8::/32", "2001:db8:1:2::/64", "2001:db8:ffff::1/128", "2a00::/16", "2a01:4f8::/29", "fd00:1::/8"]
)


def _create(mmapable: bool) -> dict[str, int]:
    fds: dict[str, int] = {}
    for spec in abi.MAPS:
        flags = 0
        if spec.flags == "BPF_F_NO_PREALLOC":
            flags = L.BPF_F_NO_PREALLOC
        elif spec.flags == "BPF_F_MMAPABLE" and mmapable:
            flags = L.BPF_F_MMAPABLE
        for name in spec.names:
            fds[name] = L.map_create(getattr(L, spec.type), name, spec.key_size, spec.value_size, spec.entries,
                                     map_flags=flags)
    return fds


@pytest.fixture(params=[True, False], ids=["mmapable", "element-batches"])
def maps(request: pytest.FixtureRequest) -> Iterator[BlocklistMaps]:
    m = BlocklistMaps(_create(request.param))
    try:
        yield m
    finally:
        m.close()


def _array_value(m: BlocklistMaps, kind: MapKind, slot: int, index: int) -> bytes | None:
    size = abi.TABLES[kind.value].value_size
    return L.map_lookup(m.fds[f"sw_{kind.value}_{'ab'[slot]}"], struct.pack("<I", index), size)


def test_a_loaded_slot_holds_its_set_and_reads_back_as_the_kernel_sees_it(maps: BlocklistMaps) -> None:
    tables = BlocklistTables.from_cidrs(CIDRS)
    compiled = tables.compile()
    maps.load_slot(1, compiled)
    assert maps.holds(1, compiled)
    assert not maps.holds(0, compiled)
    read = maps.read_slot(1)
    assert all(read[kind] for kind in (MapKind.TOP, MapKind.V4L1, MapKind.V4L2, MapKind.V6L16))
    for kind in (MapKind.TOP, MapKind.V4L1, MapKind.V6L16):  # what the mapping shows, the kernel returns
        for key, value in list(read[kind].items())[:50]:
            assert _array_value(maps, kind, 1, struct.unpack("<I", key)[0]) == value
    other = BlocklistTables.from_cidrs(CIDRS[1:])
    assert not maps.holds(1, other.compile())  # one /32 fewer: a different L2 bitmap


def test_element_writes_land_where_packets_look_and_an_outside_edit_is_seen(maps: BlocklistMaps) -> None:
    tables = BlocklistTables.from_cidrs(CIDRS)
    maps.load_slot(0, tables.compile())
    writes = tables.add("15.0.0.0/24") + tables.add("16.0.0.0/16") + tables.add("2a02::/16")
    assert maps.apply(writes, slot=0) == len(writes)
    assert maps.holds(0, tables.compile())
    index = (15 << 16) >> 5  # the sw_v4l1 word of 15.0.0.0/24
    assert _array_value(maps, MapKind.V4L1, 0, index) != bytes(8)
    L.map_update(maps.fds["sw_v4l1_a"], struct.pack("<I", index), bytes(8))  # someone zeroes it
    assert not maps.holds(0, tables.compile())
    maps.clear_slot(0)
    maps.load_slot(0, tables.compile())  # a rewrite repairs it
    assert maps.holds(0, tables.compile())


def test_clearing_a_slot_leaves_every_table_empty(maps: BlocklistMaps) -> None:
    tables = BlocklistTables.from_cidrs(CIDRS)
    maps.load_slot(1, tables.compile())
    maps.clear_slot(1)
    assert all(not entries for entries in maps.read_slot(1).values())
    assert maps.holds(1, BlocklistTables().compile())


def test_both_paths_store_the_same_bytes() -> None:
    compiled = BlocklistTables.from_cidrs(CIDRS).compile()
    mapped, batched = BlocklistMaps(_create(True)), BlocklistMaps(_create(False))
    try:
        for m in (mapped, batched):
            m.load_slot(0, compiled)
        assert mapped.read_slot(0) == batched.read_slot(0)
        assert mapped.holds(0, compiled) and batched.holds(0, compiled)
    finally:
        mapped.close()
        batched.close()


def test_the_expected_tag_kept_for_the_next_agent_is_the_tag_a_load_gives() -> None:
    """A restart learns the tag its pinned program should have from the last agent's note
    next to the object, not by loading the object again; a note for another build (or
    kernel) is not believed."""
    import json

    from seawall.dataplane.xdp import loader

    path, key = loader._tag_key()
    note = loader._tag_file(path)
    note.unlink(missing_ok=True)
    loader._EXPECTED_TAG.clear()
    loaded = loader.expected_tag()  # by a load, and kept
    assert json.loads(note.read_text()) == {"key": key, "tag": loaded}
    loader._EXPECTED_TAG.clear()
    assert loader.expected_tag() == loaded  # from the note
    note.write_text(json.dumps({"key": key + "-another-build", "tag": "0" * 16}))
    loader._EXPECTED_TAG.clear()
    assert loader.expected_tag() == loaded  # not believed: loaded again
    assert json.loads(note.read_text())["key"] == key
