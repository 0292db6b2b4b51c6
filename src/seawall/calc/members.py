"""A chunked GlobalNetworkSet's members as the calculation sees them, kept up to date by difference.

The datastore holds a big set as a head and content-named chunks
(``seawall.api.members``). A change to a few nets replaces a few chunks; here
each replaced chunk is compared with the previous chunk of the same bucket, only
the nets that differ are parsed, and the set's ``NetSet`` is patched with them.
So one net added to a million-net set costs the parsing of one net and the
rebuild of one ``NetSet`` bucket.

A head may also name overlay chunks (nets added and removed on top of the base
chunks, see ``seawall.api.members``): each is parsed by difference with its
previous version, grouped by base bucket, and applied to the base buckets it
covers; a bucket whose base did not change is moved from its last effective
version by exactly what changed in the overlay, so the change is known to the
consumers without a diff. Pure.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from seawall.api.cidr import parse_cidr
from seawall.api.cidr_bulk import canonical_texts, v4_rows
from seawall.api.members import ChunkDoc, JoinedTexts, MembersHead, text_crcs
from seawall.policy import bucket_ints
from seawall.policy.netset import NetSet, packed_v4_sets, split_by_crc

Bad = tuple[object, ...]


def canonical_or_none(value: object) -> str | None:
    """The canonical text of a stored net, or None when it is not a CIDR (it matches nothing: dropped).
    Canonical IPv4 text, what a chunk nearly always holds, is told by its packed key (~2 µs,
    where the full parse costs ~7: a fold re-checks ~100 values in each of 1,024 chunks)."""
    if type(value) is str and bucket_ints.network_key(value) is not None:
        return value
    try:
        return parse_cidr(value).text
    except (ValueError, TypeError):
        return None


BULK_MIN = 512  # from this many values on, the vectorised check is cheaper
OVERLAY_BULK_MIN = 32  # an overlay chunk's new values are parsed together (the rest is a dict lookup)


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
    stored values that are no CIDR. ``values``: the stored (hashable) values, the very
    list of the stored document (no copy: a set of them kept for the next diff cost
    ~32 MiB per million nets; it is made when a diff needs it); ``exact``: they are
    exactly the canonical members (the usual chunk)."""

    set: str
    index: int
    values: Sequence[object]
    exact: bool
    canonical: NetSet
    bad: frozenset[object]

    @property
    def stored(self) -> frozenset[object]:
        return frozenset(self.values)

    @property
    def one_to_one(self) -> bool:
        """Every good stored value has its own canonical form (so a difference is exact)."""
        return self.exact or len(self.stored) - len(self.bad) == len(self.canonical)


def _own_buckets(canonical: Iterable[str], index: int, buckets: int,
                 v4: np.ndarray | None = None) -> tuple[NetSet, frozenset[str]]:
    """The members of bucket ``index`` (of ``buckets``) as a NetSet, grouped by the
    CRC-32 computed once per member, and the strays: members of another bucket
    (a foreign writer's chunk), not part of the set. ``v4``: the members' packed
    integers (in the order given) when all are canonical IPv4."""
    low = buckets - 1
    own, strays = split_by_crc(list(canonical), lambda crcs: (crcs & low) == index, v4)
    return own, frozenset(strays)


def _all_canonical_v4(values: Sequence[object]) -> tuple[Sequence[str], np.ndarray] | None:
    """A big chunk's values with their packed integers, when every one is canonical
    IPv4 text (the usual stored chunk); else None. A value stored twice stays twice
    (the buckets drop it: no set of a million texts is made to find duplicates)."""
    if len(values) < BULK_MIN:
        return None
    ordered = values
    ok, networks, lengths = v4_rows(ordered)
    if not ok.all():
        return None
    return ordered, bucket_ints.pack(networks, lengths)  # type: ignore[return-value]


def _stray_values(strays: frozenset[str], raw: Iterable[object]) -> frozenset[object]:
    """The stored values the stray canonical texts came from."""
    if not strays:
        return frozenset()
    return frozenset(v for v in raw if canonical_or_none(v) in strays)


def chunk_members(doc: ChunkDoc, previous: ChunkMembers | None, buckets: int) -> ChunkMembers:
    """Parse a chunk of a set of ``buckets`` buckets; with the previous chunk of the
    same bucket, parse only what differs. Members of another bucket count as bad."""
    nets = doc.nets.texts() if isinstance(doc.nets, JoinedTexts) else doc.nets  # (a joined chunk: texts for now)
    if isinstance(doc.nets, JoinedTexts) or set(map(type, nets)) <= {str}:  # the usual case, checked in a C loop
        hashable: Sequence[object] = nets
    else:
        hashable = [n for n in nets if isinstance(n, (str, int, float, bool, type(None)))]
    unhashable = len(hashable) != len(nets)
    if previous is not None and previous.one_to_one and not unhashable:
        raw = frozenset(hashable)
        before = previous.stored
        came = raw - before
        removed, _ = canonical_split(before - raw - previous.bad)
        added, added_bad = canonical_split(came)
        own, strays = _own_buckets(added, doc.index, buckets)
        canonical = previous.canonical.with_changes(own, removed)
        bad = (previous.bad & raw) | added_bad | _stray_values(strays, came)
        exact = not bad and (own == added == came if previous.exact
                             else len(canonical) == len(raw) and canonical == raw)
    else:
        plain = _all_canonical_v4(hashable)
        if plain is not None:  # parsed once: the integers stay with the buckets (``bucket_ints``)
            # canonical IPv4 texts and their keys are one to one: the members are the values
            # exactly unless some are strays
            canonical, strays = _own_buckets(plain[0], doc.index, buckets, plain[1])
            bad = _stray_values(strays, hashable)
            exact = not bad
        else:
            raw = frozenset(hashable)
            good, bad = canonical_split(raw)
            canonical, strays = _own_buckets(good, doc.index, buckets)
            bad = bad | _stray_values(strays, raw)
            exact = not bad and len(canonical) == len(raw) and canonical == raw
        if unhashable:
            bad = bad | {repr(n) for n in nets if not isinstance(n, (str, int, float, bool, type(None)))}
            exact = False
    kept = doc.nets if isinstance(doc.nets, JoinedTexts) else hashable  # the compact form when there is one
    return ChunkMembers(doc.set, doc.index, kept, exact, canonical, bad)


FRESH_MIN = 8 * BULK_MIN  # from this many nets over chunks parsed afresh, they are parsed together


def fresh_chunks(docs: Sequence[ChunkDoc], buckets: int) -> list[ChunkMembers]:
    """``chunk_members(doc, None, buckets)`` of each doc, the usual chunks (canonical IPv4
    of their own bucket) parsed in one pass: a start, a restart or a set that arrives
    whole parses a million nets, and chunk by chunk the fixed costs of a thousand bulk
    parses, CRC loops and sorts came to ~0.6 s of the ~1.3 s (measured here). A chunk
    with anything else in it goes the usual way."""
    out: list[ChunkMembers | None] = []
    first = 0
    while first < len(docs):  # ~32k nets at a time: their texts do not all live at once (peak RSS)
        last, size = first, 0
        while last < len(docs) and (size < FRESH_GROUP or last == first):
            size += len(docs[last].nets)
            last += 1
        out.extend(_fresh_group(docs[first:last], buckets))
        first = last
    return [m if m is not None else chunk_members(d, None, buckets) for m, d in zip(out, docs, strict=True)]


FRESH_GROUP = 1 << 15


def _fresh_group(docs: Sequence[ChunkDoc], buckets: int) -> list[ChunkMembers | None]:
    """``fresh_chunks`` of a few chunks; None for a chunk that is not the usual one."""
    texts = [d.nets.texts() if isinstance(d.nets, JoinedTexts) else d.nets for d in docs]
    plain = [i for i, t in enumerate(texts) if t and (isinstance(docs[i].nets, JoinedTexts)
                                                        or set(map(type, t)) <= {str})]
    out: list[ChunkMembers | None] = [None] * len(docs)
    if plain:
        every: list[str] = list(itertools.chain.from_iterable(texts[i] for i in plain))
        ok, networks, lengths = v4_rows(every)
        crcs = text_crcs(every)
        owners = np.repeat(np.arange(len(plain)), [len(texts[i]) for i in plain])
        ok &= (crcs & (buckets - 1)) == np.array([docs[i].index for i in plain], np.int64)[owners]
        usual = np.bincount(owners, weights=~ok, minlength=len(plain)) == 0
        if usual.any():
            take = usual[owners]
            sets = packed_v4_sets(bucket_ints.pack(networks[take], lengths[take]), crcs[take],
                                  np.cumsum(usual)[owners[take]] - 1, int(usual.sum()))
            for i, canonical in zip(itertools.compress(plain, usual.tolist()), sets, strict=True):
                doc = docs[i]
                kept = doc.nets if isinstance(doc.nets, JoinedTexts) else texts[i]
                out[i] = ChunkMembers(doc.set, doc.index, kept, True, canonical, frozenset())
    return out


_NO_CHANGES: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())


def _overlaid(chunk: ChunkMembers, canonical: NetSet) -> ChunkMembers:
    """``chunk`` with the overlay's members: no stored chunk any more (it claims no stored values)."""
    return dataclasses.replace(chunk, values=(), exact=False, canonical=canonical)


@dataclass(frozen=True, slots=True, eq=False)
class OverlayMembers:
    """One overlay chunk: canonical nets added and removed, per base bucket; the stored
    values that are no CIDR; and every stored value's canonical form (so that its next
    version is parsed by difference)."""

    set: str
    index: int  # overlay bucket
    buckets: int  # the base bucket count it was grouped for
    changes: dict[int, tuple[frozenset[str], frozenset[str]]]  # base bucket -> (added, removed)
    bad: frozenset[object]
    texts: dict[object, str | None]  # stored value -> canonical text (None: not a CIDR)
    #: the stored (added, removed) values when every one that parses is canonical: the next
    #: version can then be parsed by difference (None: parse it whole)
    stored: tuple[frozenset[str], frozenset[str]] | None = None
    _strays: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False)  # width -> strays

    def at(self, bucket: int) -> tuple[frozenset[str], frozenset[str]]:
        return self.changes.get(bucket, _NO_CHANGES)

    def strays(self, width: int) -> tuple[str, ...]:
        """Nets stored in this overlay chunk that belong to another overlay bucket (not members);
        worked out once per width (a set's members ask on every update, the overlay may hold
        100,000 nets)."""
        found = self._strays.get(width)
        if found is None:
            found = self._strays[width] = tuple(
                n for b, (a, r) in self.changes.items() if b & (width - 1) != self.index for n in (*a, *r))
        return found


def _group(texts: list[str], buckets: int) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    if texts:
        for text, bucket in zip(texts, (text_crcs(texts) & (buckets - 1)).tolist(), strict=True):
            grouped.setdefault(bucket, []).append(text)
    return grouped


def overlay_members(doc: ChunkDoc, previous: OverlayMembers | None, buckets: int) -> OverlayMembers:
    """Parse an overlay chunk for a set of ``buckets`` base buckets. With the previous
    version of the same overlay bucket, only the stored values that came or went are
    parsed and regrouped (a churn adds 30,000 to an overlay that may hold 100,000)."""
    stored = (frozenset(doc.nets), frozenset(doc.removed)) if set(map(type, (*doc.nets, *doc.removed))) <= {str} \
        else None
    if stored is None or previous is None or previous.stored is None or previous.buckets != buckets:
        return _overlay_whole(doc, buckets, stored)
    texts = dict(previous.texts)
    came = [new - old for new, old in zip(stored, previous.stored, strict=True)]
    gone = [old - new for new, old in zip(stored, previous.stored, strict=True)]
    fresh = [v for v in set().union(*came) if v not in texts]
    if fresh:
        texts.update(zip(fresh, canonical_texts(fresh, small=OVERLAY_BULK_MIN), strict=True))
    if any(texts[v] != v for v in fresh if texts[v] is not None):
        return _overlay_whole(doc, buckets, stored)  # a spelling that is not canonical: two values may be one net
    plus = [_group([v for v in side if texts[v] is not None], buckets) for side in came]
    minus = [_group([v for v in side if texts.get(v) is not None], buckets) for side in gone]
    for value in set().union(*gone) - stored[0] - stored[1]:
        texts.pop(value, None)
    changes = dict(previous.changes)
    for bucket in set().union(*plus, *minus):
        sides = changes.get(bucket, _NO_CHANGES)
        new_sides = tuple(sides[i].difference(minus[i].get(bucket, ())).union(plus[i].get(bucket, ()))
                          for i in (0, 1))
        if new_sides[0] or new_sides[1]:
            changes[bucket] = new_sides  # type: ignore[assignment]
        else:
            changes.pop(bucket, None)
    gone_values = set().union(*gone)
    bad = frozenset(v for v in previous.bad if v not in gone_values or v in stored[0] or v in stored[1]) | {
        v for v in fresh if texts[v] is None}
    return OverlayMembers(doc.set, doc.index, buckets, changes, bad, texts, stored)


def _overlay_whole(doc: ChunkDoc, buckets: int, stored: tuple[frozenset[str], frozenset[str]] | None) -> OverlayMembers:
    hashable = (str, int, float, bool, type(None))
    values = [v for v in (*doc.nets, *doc.removed) if isinstance(v, hashable)]
    bad: set[object] = {repr(v) for v in (*doc.nets, *doc.removed) if not isinstance(v, hashable)}
    distinct = list(dict.fromkeys(values))
    texts: dict[object, str | None] = dict(zip(distinct, canonical_texts(distinct, small=OVERLAY_BULK_MIN), strict=True))
    bad.update(v for v, t in texts.items() if t is None)
    grouped = [_group([t for t in (texts.get(v) for v in side if isinstance(v, hashable)) if t is not None], buckets)
               for side in (doc.nets, doc.removed)]
    changes = {b: (frozenset(grouped[0].get(b, ())), frozenset(grouped[1].get(b, ())))
               for b in grouped[0].keys() | grouped[1].keys()}
    exact = stored is not None and all(t is None or t == v for v, t in texts.items())
    return OverlayMembers(doc.set, doc.index, buckets, changes, frozenset(bad), texts, stored if exact else None)


def overlaid(base: ChunkMembers | None, index: int, overlay: OverlayMembers | None,
             last: tuple[ChunkMembers | None, OverlayMembers | None, ChunkMembers | None] | None) -> ChunkMembers | None:
    """Base bucket ``index`` with its overlay's changes: ``(base - removed) | added``.
    With ``last`` = (base, overlay, result) of the previous call for this bucket and
    the same base, the result is moved by what changed in the overlay only (its NetSet
    then knows its change: no diff downstream)."""
    added, removed = overlay.at(index) if overlay is not None else _NO_CHANGES
    if last is not None and last[0] is base and last[2] is not None:
        if last[1] is overlay:
            return last[2]
        old_added, old_removed = last[1].at(index) if last[1] is not None else _NO_CHANGES
        if old_added is added and old_removed is removed:
            return last[2]
        candidates = (added ^ old_added) | (removed ^ old_removed)
        if not candidates:
            return last[2]
        in_base = base.canonical if base is not None else NetSet.EMPTY
        now_in: list[str] = []
        now_out: list[str] = []
        for n in candidates:  # one membership test each (a packed base parses the text for it)
            (now_in if n in added or (n not in removed and n in in_base) else now_out).append(n)
        moved = last[2].canonical.with_changes(now_in, now_out)
        return last[2] if moved is last[2].canonical else _overlaid(last[2], moved)
    if not added and not removed:
        return base
    if base is None:
        owner = overlay.set if overlay is not None else ""
        return ChunkMembers(owner, index, (), False, NetSet.EMPTY.with_changes(added), frozenset())
    return _overlaid(base, base.canonical.with_changes(added, removed - added))


@dataclass(frozen=True, slots=True, eq=False)
class SetMembers:
    """A chunked set's manifest and, per bucket, its members as the calculation sees them
    (the base chunk with the overlay applied; None: the chunk is missing). ``missing``
    and ``bad`` are worked out once: the calculation asks on every update."""

    name: str
    head: MembersHead
    chunks: tuple[ChunkMembers | None, ...]
    base: tuple[ChunkMembers | None, ...] | None = None  # the base chunks when an overlay applies
    overlays: tuple[OverlayMembers | None, ...] = ()
    missing: tuple[int, ...] = field(init=False)  # buckets the head names whose chunk is absent (+ overlays)
    bad: Bad = field(init=False)  # stored values that are no CIDR, over all chunks

    def __post_init__(self) -> None:
        base = self.base if self.base is not None else self.chunks
        object.__setattr__(self, "missing", tuple(
            i for i, (d, c) in enumerate(zip(self.head.chunks, base, strict=True)) if d and c is None) + tuple(
            self.head.buckets + k for k, (d, o) in enumerate(zip(self.head.overlay, self.overlays, strict=False))
            if d and o is None))
        width = len(self.head.overlay)
        object.__setattr__(self, "bad", tuple(v for c in base if c is not None for v in c.bad) + tuple(
            v for o in self.overlays if o is not None for v in (*o.bad, *o.strays(width))))


def assemble(members: SetMembers, previous: tuple[tuple[NetSet, ...], NetSet] | None) -> tuple[tuple[NetSet, ...], NetSet]:
    """The set's canonical members, and the parts they were united from (keep both
    for the next call). A chunk's nets are whole buckets of the set, so the union
    shares every bucket as is; with the previous (parts, set), a change costs the
    changed chunks' buckets, and the result knows its change from the previous set."""
    parts = tuple(c.canonical if c is not None else NetSet.EMPTY for c in members.chunks)
    usable = previous if previous is not None and len(previous[0]) == len(parts) else None
    return parts, NetSet.union_of_disjoint(parts, usable)  # a chunk owns its buckets (strays are not members)
