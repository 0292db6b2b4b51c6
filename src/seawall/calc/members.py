"""A chunked GlobalNetworkSet's members as the calculation sees them, kept up to date by difference.

The datastore holds a big set as a head and content-named chunks
(``seawall.api.members``). A change to a few nets replaces a few chunks; here
each replaced chunk is compared with the previous chunk of the same bucket, only
the nets that differ are parsed, and the set's ``NetSet`` is patched with them.
So one net added to a million-net set costs the parsing of one net and the
rebuild of one ``NetSet`` bucket. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seawall.api.cidr import parse_cidr
from seawall.api.cidr_bulk import canonical_texts
from seawall.api.members import ChunkDoc, MembersHead, bucket_of
from seawall.policy.netset import NetSet

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
    """One chunk's nets: as stored, canonical, and the stored values that are no CIDR."""

    set: str
    index: int
    raw: frozenset[object]
    canonical: frozenset[str]
    bad: frozenset[object]

    @property
    def one_to_one(self) -> bool:
        """Every good stored value has its own canonical form (so a difference is exact)."""
        return len(self.raw) - len(self.bad) == len(self.canonical)


def _strays(canonical: frozenset[str], index: int, buckets: int, raw: frozenset[object]) -> tuple[frozenset[str], frozenset[object]]:
    """Members that belong to another bucket (a foreign writer's chunk): not part of
    the set. Their canonical texts and the stored values they came from."""
    strays = frozenset(t for t in canonical if bucket_of(t, buckets) != index)
    if not strays:
        return strays, frozenset()
    return strays, frozenset(v for v in raw if canonical_or_none(v) in strays)


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
        strays, stray_values = _strays(added, doc.index, buckets, raw - previous.raw)
        canonical = (previous.canonical - removed) | (added - strays)
        bad = (previous.bad & raw) | added_bad | stray_values
    else:
        canonical, bad = canonical_split(raw)
        strays, stray_values = _strays(canonical, doc.index, buckets, raw)
        canonical, bad = canonical - strays, bad | stray_values
        if unhashable:
            bad = bad | {repr(n) for n in doc.nets if not isinstance(n, (str, int, float, bool, type(None)))}
    return ChunkMembers(doc.set, doc.index, raw, canonical, bad)


@dataclass(frozen=True, slots=True, eq=False)
class SetMembers:
    """A chunked set's manifest and, per bucket, its chunk (None: the chunk is missing)."""

    name: str
    head: MembersHead
    chunks: tuple[ChunkMembers | None, ...]

    @property
    def missing(self) -> tuple[int, ...]:
        return tuple(i for i, (d, c) in enumerate(zip(self.head.chunks, self.chunks, strict=True)) if d and c is None)

    @property
    def bad(self) -> Bad:
        return tuple(v for c in self.chunks if c is not None for v in c.bad)


def assemble(members: SetMembers, previous: tuple[SetMembers, NetSet] | None) -> NetSet:
    """The set's canonical members. With the previous (members, NetSet) of this
    set, only the buckets whose chunk changed are looked at."""
    if previous is not None and len(previous[0].chunks) == len(members.chunks):
        before, netset = previous
        added: set[str] = set()
        removed: set[str] = set()
        for old, new in zip(before.chunks, members.chunks, strict=True):
            if old is new:
                continue
            old_nets = old.canonical if old is not None else frozenset()
            new_nets = new.canonical if new is not None else frozenset()
            added |= new_nets - old_nets
            removed |= old_nets - new_nets
        # a net that moved between chunks (not possible with one bucketing, but cheap to get right)
        moved = added & removed
        return netset.with_changes(added - moved, removed - moved)
    return NetSet(text for c in members.chunks if c is not None for text in c.canonical)
