"""The constants the XDP program and user space share have one source, ``abi.py``.

The C side reads them from generated headers committed under ``bpf/``; these
tests fail when a header differs from what ``abi.py`` generates (regenerate with
``python -m seawall.dataplane.xdp.abi``) or when a shared constant is defined a
second time on either side.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seawall.dataplane.xdp import abi, maps, reference, tables
from seawall.dataplane.xdp.build import BPF_DIR, OBJECT


@pytest.mark.parametrize("name", sorted(abi.headers()))
def test_committed_header_is_what_abi_generates(name: str) -> None:
    committed = (BPF_DIR / name).read_text()
    assert committed == abi.headers()[name], f"bpf/{name} is stale: run `python -m seawall.dataplane.xdp.abi`"


def test_generator_writes_the_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert abi.main([str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == abi.headers()
    capsys.readouterr()
    abi.main([str(tmp_path)])  # up to date: nothing rewritten
    assert capsys.readouterr().out == ""


def test_hand_written_c_defines_no_shared_constant() -> None:
    generated = set(abi.headers())
    for path in sorted([*BPF_DIR.glob("*.c"), *BPF_DIR.glob("*.h")]):
        if path.name in generated:
            continue
        text = path.read_text()
        defined = set(re.findall(r"^\s*#\s*define\s+(\w+)", text, re.M))
        assert not defined & set(abi.HEADER_CONSTANTS), f"{path.name} redefines {sorted(defined & set(abi.HEADER_CONSTANTS))}"
        for struct in abi.STRUCTS:
            assert not re.search(rf"^struct {struct.name}\s*{{", text, re.M), f"{path.name} redefines struct {struct.name}"
        assert 'SEC(".maps")' not in text, f"{path.name} defines a map: maps are defined in abi.py"


def test_outcomes_are_the_abi_numbers() -> None:
    assert {o.name: int(o) for o in reference.Outcome} == {
        "DROP": abi.OUT_DROP, "FAILSAFE": abi.OUT_FAILSAFE, "PASS": abi.OUT_PASS, "NOT_IP": abi.OUT_NOT_IP,
        "MALFORMED": abi.OUT_MALFORMED, "NEIGHBOUR": abi.OUT_NEIGHBOUR,
    }
    assert len(reference.Outcome) == abi.OUT_COUNT
    assert list(reference.ND_TYPES) == list(range(abi.ND_TYPE_FIRST, abi.ND_TYPE_LAST + 1))


def test_python_tables_follow_abi() -> None:
    assert {kind.value for kind in tables.MapKind} == set(abi.TABLES)
    assert set(maps.MAP_NAMES) == set(abi.MAP_NAMES) and len(maps.MAP_NAMES) == len(abi.MAP_NAMES)
    assert maps.KEY_SIZES == {tables.MapKind.TOP: 4, tables.MapKind.V4L1: 4, tables.MapKind.V4L2: 4, tables.MapKind.V6L16: 4,
                              tables.MapKind.V6MID: 8, tables.MapKind.V6L64: 8, tables.MapKind.V6LONG: 20, tables.MapKind.V6X: 16}
    assert maps.VALUE_SIZES == {tables.MapKind.TOP: 8, tables.MapKind.V4L1: 8, tables.MapKind.V4L2: 32, tables.MapKind.V6L16: 4,
                                tables.MapKind.V6MID: 4, tables.MapKind.V6L64: 4, tables.MapKind.V6LONG: 4, tables.MapKind.V6X: 4}
    for kind, entries in maps.ARRAY_ENTRIES.items():
        assert abi.TABLES[kind.value].entries == entries
    assert abi.TOP_WORDS == abi.TOP_V6_8 + 4 and abi.TOP_V6_8 == abi.TOP_V4_16 + (1 << 16) // 64
    assert abi.PORT_BITMAP.size * 8 == 1 << 16  # one bit per port
    assert (abi.CONFIG.format, abi.COUNTER.format, abi.V6KEY.format, abi.BITMAP256.format) == ("<II", "<QQ", "<I16s", "<4Q")


def test_compiled_object_has_the_abi_maps() -> None:
    """The object's maps (as libbpf parses the ELF, no kernel needed) are abi.py's."""
    from seawall.dataplane.xdp import libbpf

    if not OBJECT.exists():
        pytest.skip("blocklist.bpf.o not built (make setup)")
    try:
        obj = libbpf.BpfObject.open_file(OBJECT)
    except libbpf.LibbpfUnavailable as exc:
        pytest.skip(str(exc))
    with obj:
        assert abi.PROGRAM_NAME in obj.program_names()
        assert set(abi.MAP_NAMES) <= set(obj.map_names())
        for spec in abi.MAPS:
            for name in spec.names:
                assert (obj.map_key_size(name), obj.map_value_size(name)) == (spec.key_size, spec.value_size), name
                assert obj.map_type(name) == getattr(libbpf, spec.type), name
