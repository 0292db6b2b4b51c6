"""A chunked GlobalNetworkSet's members as the calculation sees them, kept up to date by difference.

The datastore holds a big set as a head and content-named chunks
(``seawall.api.members``). A change to a few nets replaces a few chunks; here
each replaced chunk is compared with the previous chunk of the same bucket, only
the nets that differ are parsed, and the set's ``NetSet`` is patched with them.
So one net added to a million-net set costs the parsing of one net and the
rebuild of one ``NetSet`` bucket. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from seawall.api.cidr import parse_cidr
from seawall.api.cidr_bulk import canonical_texts
from seawall.api.members import ChunkDoc, MembersHead
from seawall.policy.netset import NetSet, split_by_crc

Bad = tuple[object, ...]


def canonical_or_none(value: object) -> str | None:
    """The canonical text of a stored net, or None when it is not a CIDR (it matches nothing: dropped)."""
    try:
        return parse_cidr(value).text
    except (ValueError, TypeError):
        return None


BULK_MIN = 512  # from this many values on, the vectorised check is cheaper


def canonical_split(values: frozenset[object]) -> tuple[frozenset[str], frozenset[object]]:
    """The canonical forms of the values that parse, and the values that do not."""
    if len(values) >= BULK_MIN:
        ordered = list(values)
        texts = canonical_texts(ordered)
        return (frozenset(t for t in texts if t is not None),
                frozenset(v for v, t in zip(ordered, texts, strict=True) if t is None))
    good: set[str] = set()
    bad: list[object] = []
    for value in values:
        text = canonical_or_none(value)
        if text is None:
            bad.append(value)
        else:
            good.add(text)
    return frozenset(good), frozenset(bad)


@dataclass(frozen=True, slots=True, eq=False)
class ChunkMembers:
    """One chunk's nets: as stored, canonical (a ``NetSet``: whole buckets of the
    set's own ``NetSet``, since a chunk is a bucket of the same CRC-32), and the
    stored values that are no CIDR."""

    set: str
    index: int
    raw: frozenset[object]
    canonical: NetSet
    bad: frozenset[object]

    @property
    def one_to_one(self) -> bool:
        """Every good stored value has its own canonical form (so a difference is exact)."""
        return len(self.raw) - len(self.bad) == len(self.canonical)


def _own_buckets(canonical: Iterable[str], index: int, buckets: int) -> tuple[NetSet, frozenset[str]]:
    """The members of bucket ``index`` (of ``buckets``) as a NetSet, grouped by the
    CRC-32 computed once per member, and the strays: members of another bucket
    (a foreign writer's chunk), not part of the set."""
    low = buckets - 1
    own, strays = split_by_crc(list(canonical), lambda crcs: (crcs & low) == index)
    return own, frozenset(strays)


def _stray_values(strays: frozenset[str], raw: Iterable[object]) -> frozenset[object]:
    """The stored values the stray canonical texts came from."""
    if not strays:
        return frozenset()
    return frozenset(v for v in raw if canonical_or_none(v) in strays)


def chunk_members(doc: ChunkDoc, previous: ChunkMembers | None, buckets: int) -> ChunkMembers:
    """Parse a chunk of a set of ``buckets`` buckets; with the previous chunk of the
    same bucket, parse only what differs. Members of another bucket count as bad."""
    if set(map(type, doc.nets)) <= {str}:  # the usual case, checked in a C loop
        hashable: Sequence[object] = doc.nets
    else:
        hashable = [n for n in doc.nets if isinstance(n, (str, int, float, bool, type(None)))]
    unhashable = len(hashable) != len(doc.nets)
    raw = frozenset(hashable)
    if previous is not None and previous.one_to_one and not unhashable:
        removed, _ = canonical_split(previous.raw - raw - previous.bad)
        added, added_bad = canonical_split(raw - previous.raw)
        own, strays = _own_buckets(added, doc.index, buckets)
        canonical = previous.canonical.with_changes(own, removed)
        bad = (previous.bad & raw) | added_bad | _stray_values(strays, raw - previous.raw)
    else:
        good, bad = canonical_split(raw)
        canonical, strays = _own_buckets(good, doc.index, buckets)
        bad = bad | _stray_values(strays, raw)
        if unhashable:
            bad = bad | {repr(n) for n in doc.nets if not isinstance(n, (str, int, float, bool, type(None)))}
    return ChunkMembers(doc.set, doc.index, raw, canonical, bad)


@dataclass(frozen=True, slots=True, eq=False)
class SetMembers:
    """A chunked set's manifest and, per bucket, its chunk (None: the chunk is missing).
    ``missing`` and ``bad`` are worked out once: the calculation asks on every update."""

    name: str
    head: MembersHead
    chunks: tuple[ChunkMembers | None, ...]
    missing: tuple[int, ...] = field(init=False)  # buckets the head names whose chunk is absent
    bad: Bad = field(init=False)  # stored values that are no CIDR, over all chunks

    def __post_init__(self) -> None:
        object.__setattr__(self, "missing", tuple(
            i for i, (d, c) in enumerate(zip(self.head.chunks, self.chunks, strict=True)) if d and c is None))
        object.__setattr__(self, "bad", tuple(v for c in self.chunks if c is not None for v in c.bad))


def assemble(members: SetMembers, previous: tuple[tuple[NetSet, ...], NetSet] | None) -> tuple[tuple[NetSet, ...], NetSet]:
    """The set's canonical members, and the parts they were united from (keep both
    for the next call). A chunk's nets are whole buckets of the set, so the union
    shares every bucket as is; with the previous (parts, set), a change costs the
    changed chunks' buckets, and the result knows its change from the previous set."""
    parts = tuple(c.canonical if c is not None else NetSet.EMPTY for c in members.chunks)
    usable = previous if previous is not None and len(previous[0]) == len(parts) else None
    return parts, NetSet.union_of_disjoint(parts, usable)  # a chunk owns its buckets (strays are not members)
