"""What the XDP program and user space must agree on, written once.

Outcome indices, node flags, table offsets and sizes, the layouts of the
structs user space packs, and every map's name, type, size, key and value:
``bpf/blocklist.bpf.c`` gets them from two generated headers,
``bpf/seawall_abi.h`` (the numbers, also used by ``bpf/ethernet.h``) and
``bpf/seawall_maps.h`` (structs and map definitions); Python imports them from
here (``reference``, ``tables``, ``maps``, ``loader``). Change a value here,
then regenerate the committed headers::

    python -m seawall.dataplane.xdp.abi

``tests/unit/test_xdp_abi.py`` fails when the committed headers differ from
what this module generates, so neither side can change alone. Pure: no I/O
(except :func:`main`, which writes the headers).
"""

from __future__ import annotations

import struct as _struct
import sys
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------- numbers (seawall_abi.h)

#: Outcome indices: the ``sw_stats`` key the program counts a frame under.
OUT_DROP = 0
OUT_FAILSAFE = 1
OUT_PASS = 2
OUT_NOT_IP = 3
OUT_MALFORMED = 4
OUT_NEIGHBOUR = 5
OUT_COUNT = 6

#: IPv6 neighbour discovery (RFC 4861): ICMPv6 types 133 (router solicitation)
#: to 137 (redirect), only with hop limit 255.
ND_TYPE_FIRST = 133
ND_TYPE_LAST = 137
ND_HOP_LIMIT = 255

#: How far the parsers look: VLAN tags (802.1Q/802.1ad), IPv6 extension headers.
MAX_VLAN_TAGS = 2
IPV6_MAX_EXT_HEADERS = 6

#: 2-bit state of one /24 in ``sw_v4l1_*``.
V4_STATE_NONE = 0
V4_STATE_BLOCKED = 1
V4_STATE_L2 = 2

#: IPv6 trie node flags (the u32 values of the ``sw_v6*`` maps).
V6_BLOCKED = 1
V6_CHILDREN = 2
V6_EXACT = 4

#: Word offsets in the short-prefix bitmaps ``sw_top_*``.
TOP_V4_8 = 0  # 256 bits: one per IPv4 /8
TOP_V4_16 = 4  # 65,536 bits: one per IPv4 /16
TOP_V6_8 = 1028  # 256 bits: one per IPv6 /8
TOP_WORDS = 1032

V4_SLOTS = 1 << 24  # one per /24
V4_L1_ENTRIES = V4_SLOTS // 32  # 2 bits per /24, 32 per u64
#: Hash map sizes as compiled; the driver sizes each map to its set at load
#: (loader.capacity_for), since hash maps allocate their buckets up front.
V4_L2_ENTRIES = 1 << 16
V6_ENTRIES = 1 << 16
V6_L16_ENTRIES = 1 << 16
HIT_ENTRIES = 16384

#: ``sw_failsafe`` keys, and the port bitmap each holds (bit p: destination port p).
FAILSAFE_TCP = 0
FAILSAFE_UDP = 1
FAILSAFE_ENTRIES = 2
PORT_BITMAP_WORDS = 1024

#: ``sw_cfg.hit_shift`` is masked with this (sample 1 in 2^hit_shift drops, 0..15).
HIT_SHIFT_MAX = 15

#: Numbers emitted as ``#define`` into seawall_abi.h, in this order.
HEADER_CONSTANTS = (
    "OUT_DROP", "OUT_FAILSAFE", "OUT_PASS", "OUT_NOT_IP", "OUT_MALFORMED", "OUT_NEIGHBOUR", "OUT_COUNT",
    "ND_TYPE_FIRST", "ND_TYPE_LAST", "ND_HOP_LIMIT",
    "MAX_VLAN_TAGS", "IPV6_MAX_EXT_HEADERS",
    "V4_STATE_NONE", "V4_STATE_BLOCKED", "V4_STATE_L2",
    "V6_BLOCKED", "V6_CHILDREN", "V6_EXACT",
    "TOP_V4_8", "TOP_V4_16", "TOP_V6_8", "TOP_WORDS",
    "V4_SLOTS", "V4_L1_ENTRIES", "V4_L2_ENTRIES", "V6_ENTRIES", "V6_L16_ENTRIES", "HIT_ENTRIES",
    "FAILSAFE_TCP", "FAILSAFE_UDP", "FAILSAFE_ENTRIES", "PORT_BITMAP_WORDS",
    "HIT_SHIFT_MAX",
)

# ---------------------------------------------------------------- structs (seawall_maps.h)

_C_TYPES = {"__u8": ("B", 1), "__u32": ("I", 4), "__u64": ("Q", 8)}


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    ctype: str  # "__u8", "__u32" or "__u64"
    count: int | str = 1  # an array length: a number or a HEADER_CONSTANTS name
    comment: str = ""

    @property
    def length(self) -> int:
        return self.count if isinstance(self.count, int) else int(globals()[self.count])


@dataclass(frozen=True, slots=True)
class Struct:
    """A C struct both sides use. Fields are laid out without padding (the
    generated header asserts ``sizeof`` equals :attr:`size`)."""

    name: str
    fields: tuple[Field, ...]

    @property
    def format(self) -> str:
        """The ``struct`` module format (little-endian, as on x86-64 and the BPF target)."""
        parts = []
        for f in self.fields:
            code = _C_TYPES[f.ctype][0]
            n = f.length
            parts.append(("" if n == 1 else str(n)) + ("s" if code == "B" and n > 1 else code))
        return "<" + "".join(parts)

    @property
    def size(self) -> int:
        return _struct.calcsize(self.format)


CONFIG = Struct("config", (
    Field("active", "__u32", comment="0 = slot a, 1 = slot b"),
    Field("hit_shift", "__u32", comment="sample 1 in 2^hit_shift drops into sw_hits (0..15)"),
))
BITMAP256 = Struct("bitmap256", (Field("w", "__u64", 4),))
V6KEY = Struct("v6key", (
    Field("len", "__u32", comment="level in bytes: 9..15"),
    Field("addr", "__u8", 16, "bytes beyond len are zero"),
))
V6ADDR = Struct("v6addr", (Field("addr", "__u8", 16),))
PORT_BITMAP = Struct("port_bitmap", (Field("w", "__u64", "PORT_BITMAP_WORDS", "bit p set: destination port p is failsafe"),))
COUNTER = Struct("counter", (Field("packets", "__u64"), Field("bytes", "__u64")))
HIT_KEY = Struct("hit_key", (Field("addr", "__u8", 16, "IPv4 as ::ffff:a.b.c.d"),))
STRUCTS = (CONFIG, BITMAP256, V6KEY, V6ADDR, PORT_BITMAP, COUNTER, HIT_KEY)

# ---------------------------------------------------------------- maps (seawall_maps.h)

PROGRAM_NAME = "seawall_xdp"
SLOT_NAMES = ("a", "b")


@dataclass(frozen=True, slots=True)
class MapSpec:
    """One map (``slotted``: one per slot, ``<name>_a`` and ``<name>_b``)."""

    name: str
    type: str  # BPF_MAP_TYPE_*
    max_entries: str  # a HEADER_CONSTANTS name or a number
    key: str  # C type: "__u32", "__u64" or "struct <name>"
    value: str
    flags: str | None = None
    slotted: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{s}" for s in SLOT_NAMES) if self.slotted else (self.name,)

    @property
    def entries(self) -> int:
        return int(self.max_entries) if self.max_entries.isdigit() else int(globals()[self.max_entries])

    @property
    def key_size(self) -> int:
        return _c_size(self.key)

    @property
    def value_size(self) -> int:
        return _c_size(self.value)

    def _definition(self) -> tuple[str, str, str, str, str | None]:
        return self.type, self.max_entries, self.key, self.value, self.flags


def _c_size(ctype: str) -> int:
    if ctype.startswith("struct "):
        return next(s.size for s in STRUCTS if s.name == ctype[7:])
    return _C_TYPES[ctype][1]


_NO_PREALLOC = "BPF_F_NO_PREALLOC"
#: Arrays the agent maps into its memory: a slot filled, zeroed or compared by memcpy
#: (a 2 MiB slot: ~0.1 ms, against ~60 ms as a batch of 262,144 element updates).
_MMAPABLE = "BPF_F_MMAPABLE"
CFG_MAP = "sw_cfg"
FAILSAFE_MAP = "sw_failsafe"
STATS_MAP = "sw_stats"
HITS_MAP = "sw_hits"

#: The slotted lookup tables, by kind (``tables.MapKind`` values); map ``sw_<kind>_<slot>``.
TABLES: dict[str, MapSpec] = {
    "top": MapSpec("sw_top", "BPF_MAP_TYPE_ARRAY", "TOP_WORDS", "__u32", "__u64", _MMAPABLE, True),
    "v4l1": MapSpec("sw_v4l1", "BPF_MAP_TYPE_ARRAY", "V4_L1_ENTRIES", "__u32", "__u64", _MMAPABLE, True),
    "v4l2": MapSpec("sw_v4l2", "BPF_MAP_TYPE_HASH", "V4_L2_ENTRIES", "__u32", "struct bitmap256", _NO_PREALLOC, True),
    "v6l16": MapSpec("sw_v6l16", "BPF_MAP_TYPE_ARRAY", "V6_L16_ENTRIES", "__u32", "__u32", _MMAPABLE, True),
    "v6mid": MapSpec("sw_v6mid", "BPF_MAP_TYPE_HASH", "V6_ENTRIES", "__u64", "__u32", _NO_PREALLOC, True),
    "v6l64": MapSpec("sw_v6l64", "BPF_MAP_TYPE_HASH", "V6_ENTRIES", "__u64", "__u32", _NO_PREALLOC, True),
    "v6x": MapSpec("sw_v6x", "BPF_MAP_TYPE_HASH", "V6_ENTRIES", "struct v6addr", "__u32", _NO_PREALLOC, True),
    "v6long": MapSpec("sw_v6long", "BPF_MAP_TYPE_HASH", "V6_ENTRIES", "struct v6key", "__u32", _NO_PREALLOC, True),
}

#: Every map, in the program's definition order.
MAPS: tuple[MapSpec, ...] = (
    MapSpec(CFG_MAP, "BPF_MAP_TYPE_ARRAY", "1", "__u32", "struct config"),
    *TABLES.values(),
    MapSpec(FAILSAFE_MAP, "BPF_MAP_TYPE_ARRAY", "FAILSAFE_ENTRIES", "__u32", "struct port_bitmap"),
    MapSpec(STATS_MAP, "BPF_MAP_TYPE_PERCPU_ARRAY", "OUT_COUNT", "__u32", "struct counter"),
    MapSpec(HITS_MAP, "BPF_MAP_TYPE_LRU_PERCPU_HASH", "HIT_ENTRIES", "struct hit_key", "__u64"),
)
MAP_NAMES: tuple[str, ...] = tuple(name for spec in MAPS for name in spec.names)

# ---------------------------------------------------------------- the headers

_GENERATED = "/* Generated by `python -m seawall.dataplane.xdp.abi` from src/seawall/dataplane/xdp/abi.py: do not edit. */"


def abi_header() -> str:
    """``bpf/seawall_abi.h``: the numbers, as ``#define``s."""
    lines = [_GENERATED, "#ifndef SEAWALL_ABI_H", "#define SEAWALL_ABI_H", ""]
    lines += [f"#define {name} {int(globals()[name])}" for name in HEADER_CONSTANTS]
    return "\n".join([*lines, "", "#endif", ""])


def maps_header() -> str:
    """``bpf/seawall_maps.h``: the shared structs (with size checks) and every map definition."""
    lines = [_GENERATED, "#ifndef SEAWALL_MAPS_H", "#define SEAWALL_MAPS_H", "",
             "#include <linux/bpf.h>", "#include <bpf/bpf_helpers.h>", '#include "seawall_abi.h"', ""]
    for s in STRUCTS:
        lines.append(f"struct {s.name} {{")
        for f in s.fields:
            comment = f" /* {f.comment} */" if f.comment else ""
            array = "" if f.count == 1 else f"[{f.count}]"
            lines.append(f"\t{f.ctype} {f.name}{array};{comment}")
        lines += ["};", f'_Static_assert(sizeof(struct {s.name}) == {s.size}, "struct {s.name}: see abi.py");', ""]
    # Consecutive maps with one definition share one anonymous struct, as written by hand before.
    groups: list[list[MapSpec]] = []
    for spec in MAPS:
        if groups and groups[-1][0]._definition() == spec._definition():
            groups[-1].append(spec)
        else:
            groups.append([spec])
    for group in groups:
        first = group[0]
        lines += ["struct {", f"\t__uint(type, {first.type});", f"\t__uint(max_entries, {first.max_entries});"]
        if first.flags:
            lines.append(f"\t__uint(map_flags, {first.flags});")
        lines += [f"\t__type(key, {first.key});", f"\t__type(value, {first.value});"]
        lines.append("} " + ", ".join(f'{name} SEC(".maps")' for spec in group for name in spec.names) + ";")
        lines.append("")
    lines.append(f"#define SEAWALL_PROGRAM {PROGRAM_NAME} /* the XDP function (loader finds it by name) */")
    return "\n".join([*lines, "", "#endif", ""])


def headers() -> dict[str, str]:
    """File name (in ``bpf/``) -> the text it must hold."""
    return {"seawall_abi.h": abi_header(), "seawall_maps.h": maps_header()}


def main(argv: list[str] | None = None) -> int:
    """Write the headers into ``bpf/`` (or the directory given)."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else Path(__file__).resolve().parent / "bpf"
    for name, text in headers().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
