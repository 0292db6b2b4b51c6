"""``NetSet``: a set of canonical CIDR texts that changes and compares in
proportion to what changed, not to its size.

Why: a million-net blocklist is one value crossing every layer (calc's unions,
the XDP eligibility, the desired state, both tiers' diffs). As a ``frozenset``
each small change copies and re-hashes a million strings, and each consumer's
``want - have`` walks them all again. A ``NetSet`` is split into ``BUCKETS``
immutable ``frozenset`` buckets by the CRC-32 of the text (IPv4 in the lower
half, IPv6 in the upper, so one family is a free view). CRC-32 and not ``hash``:
it is the bucketing the datastore stores big sets by (``seawall.api.members``),
so a stored chunk splits into whole buckets and a million-net set is assembled
from its chunks without hashing or copying a member. A change rebuilds only the
buckets it touches and shares every other bucket, by identity, with the version
it came from; so does a union with a small set, and a diff between two versions
skips every shared bucket at the cost of one pointer comparison.

It is a ``collections.abc.Set`` of ``str`` and compares equal to a ``frozenset``
with the same members, so code that treats it as a set keeps working (its hash
is computed by bucket, not frozenset's: never mix the two as keys of one dict). A
``NetSet`` is never stored or sent, only its members are. Pure.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from typing import Any

import numpy as np

from seawall.api.members import text_crc, text_crcs
from seawall.policy import bucket_ints
from seawall.policy.bucket_ints import PackedV4

PER_FAMILY = 4096  # = the most buckets a stored set has: a chunk is always whole buckets
BUCKETS = 2 * PER_FAMILY
_MASK = PER_FAMILY - 1
_EMPTY: frozenset[str] = frozenset()


class _Layered(Set[str]):
    """A big bucket with a few members added and removed: ``base`` (shared with the
    version it came from) without ``minus`` (a subset of it), with ``plus`` (disjoint
    from it). A feed's churn touches every bucket of a million-net set with a handful
    of changes each; copying the buckets cost one reference-count cache miss per
    member (~0.1 s per churn), a layer costs the changes. Compacted into a plain
    ``frozenset`` once the edits reach a share of the base (``_edit_limit``)."""

    __slots__ = ("__weakref__", "_len", "base", "minus", "plus")

    def __init__(self, base: frozenset[str] | PackedV4, plus: frozenset[str], minus: frozenset[str]) -> None:
        self.base, self.plus, self.minus = base, plus, minus
        self._len = len(base) - len(minus) + len(plus)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, text: object) -> bool:
        return text in self.plus or (text in self.base and text not in self.minus)

    def __iter__(self) -> Iterator[str]:
        minus = self.minus
        yield from (itertools.filterfalse(minus.__contains__, self.base) if minus else self.base)
        yield from self.plus

    def __hash__(self) -> int:  # as the equal frozenset's (rare: NetSet hashes by bucket)
        return hash(self.flat())

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> frozenset[str]:  # type: ignore[override]
        return frozenset(it)

    def flat(self) -> frozenset[str]:
        """The members as one plain frozenset (a copy of the base, in C)."""
        base = self.base.flat() if isinstance(self.base, PackedV4) else self.base
        return base.difference(self.minus).union(self.plus)


Bucket = frozenset[str] | _Layered | PackedV4


def _plain(bucket: Bucket) -> frozenset[str]:
    """A bucket as a frozenset, for set algebra in C (a layer's own would be Python loops)."""
    return bucket if type(bucket) is frozenset else bucket.flat()  # type: ignore[union-attr]


def _bucket_eq(one: Bucket, other: Bucket) -> bool:
    if isinstance(one, PackedV4) and isinstance(other, PackedV4):
        return one == other  # on the integers
    return _plain(one) == _plain(other)


def _packed_or_plain(ints: np.ndarray) -> Bucket:
    """Sorted unique packed IPv4 nets as a bucket: packed from ``_LAYER_MIN`` members on."""
    return PackedV4(ints) if len(ints) >= _LAYER_MIN else frozenset(bucket_ints.texts_of(ints))


def _compacted(base: frozenset[str] | PackedV4, plus: frozenset[str], minus: frozenset[str]) -> Bucket:
    """``(base - minus) | plus`` as one bucket; packed again when the base was."""
    if isinstance(base, PackedV4):
        plus_keys, minus_keys = bucket_ints.keys_of(plus), bucket_ints.keys_of(minus)
        if plus_keys is not None and minus_keys is not None:
            kept = np.setdiff1d(base.ints, minus_keys, assume_unique=True)
            return _packed_or_plain(np.union1d(kept, plus_keys))
        base = base.flat()
    return base.difference(minus).union(plus)


def _bucket_diff(mine: Bucket, before: Bucket) -> tuple[frozenset[str], frozenset[str]]:
    """(in ``mine`` only, in ``before`` only): from the layers alone when both stand on
    the same base (a churned set against its previous version), else in C."""
    mine_base = mine.base if isinstance(mine, _Layered) else mine
    before_base = before.base if isinstance(before, _Layered) else before
    if mine_base is before_base:
        mine_plus, mine_minus = (mine.plus, mine.minus) if isinstance(mine, _Layered) else (_EMPTY, _EMPTY)
        old_plus, old_minus = (before.plus, before.minus) if isinstance(before, _Layered) else (_EMPTY, _EMPTY)
        return (mine_plus - old_plus) | (old_minus - mine_minus), (old_plus - mine_plus) | (mine_minus - old_minus)
    if isinstance(mine, PackedV4) and isinstance(before, PackedV4):  # on the integers: texts for the changes only
        return frozenset(mine.difference_keys(before)), frozenset(before.difference_keys(mine))
    mine_set, before_set = _plain(mine), _plain(before)
    return mine_set - before_set, before_set - mine_set
_LAYER_MIN = 64  # a smaller bucket is copied: cheap, and no layer to keep


def _edit_limit(base_len: int, bucket: int) -> int:
    """Edits a layered bucket may carry before it is compacted: between a quarter and
    ~half of its base, staggered by bucket so a run of churns does not compact every
    bucket of a set in the same change."""
    return (base_len * (8 + (bucket & 7))) >> 5


def _changed(old: Bucket, gained: list[str], lost: list[str], bucket: int, in_base: frozenset[str]) -> Bucket:
    """``old`` with ``gained`` (not in it) put in and ``lost`` (in it) taken out;
    ``in_base``: which of them the old bucket's base holds."""
    if isinstance(old, _Layered):
        base, plus, minus = old.base, old.plus, old.minus
    else:
        base, plus, minus = old, _EMPTY, _EMPTY
    if len(base) < _LAYER_MIN:
        return _plain(base).difference(minus, lost).union(plus, gained)
    back = in_base.intersection(gained)  # were in ``minus``
    plus = plus.union(t for t in gained if t not in in_base).difference(lost) if gained else plus.difference(lost)
    minus = minus.difference(back).union(in_base.intersection(lost))
    if not plus and not minus:
        return base
    if len(plus) + len(minus) > _edit_limit(len(base), bucket):
        return _compacted(base, plus, minus)
    return _Layered(base, plus, minus)


def _base_of(bucket: Bucket) -> frozenset[str] | PackedV4:
    return bucket.base if isinstance(bucket, _Layered) else bucket


def _packed_base_members(buckets: dict[int, Bucket], touched: Iterable[int], plus: dict[int, list[str]],
                         minus: dict[int, list[str]]) -> dict[int, frozenset[str]]:
    """Per touched bucket with a packed base: which of its changed texts that base holds.
    One search for all of them: the bases' integers concatenated, each bucket's lifted by
    its rank (``<< 40``, above any packed net), are one sorted array (a churn asks this of
    30,000 texts over thousands of buckets; bisecting text by text cost ~2 µs each)."""
    ranked: list[tuple[int, PackedV4, list[str]]] = []
    for b in touched:
        base = _base_of(buckets.get(b, _EMPTY))
        if isinstance(base, PackedV4):
            ranked.append((b, base, [*plus.get(b, ()), *minus.get(b, ())]))
    if not ranked:
        return {}
    asked = [t for _, _, texts in ranked for t in texts]
    if len(asked) < _SEARCH_BULK:  # the agent's case (a chunk's few changes): numpy calls cost more than they save
        known = dict(zip(asked, bucket_ints.keys_for(asked), strict=True))
        return {b: frozenset(t for t in texts if (k := known[t]) is not None and base.has_key(k))
                for b, base, texts in ranked}
    keys = bucket_ints.key_array(asked)
    lift = np.arange(len(ranked), dtype=np.int64) << 40
    bases = np.concatenate([base.ints for _, base, _ in ranked]) + np.repeat(lift, [len(base) for _, base, _ in ranked])
    keys += np.repeat(lift, [len(texts) for _, _, texts in ranked])  # a text that is no net: -1, below its rank's keys
    at = np.minimum(np.searchsorted(bases, keys), len(bases) - 1)
    hits = (bases[at] == keys).tolist()
    out: dict[int, frozenset[str]] = {}
    first = 0
    for b, _, texts in ranked:
        last = first + len(texts)
        out[b] = frozenset(itertools.compress(texts, hits[first:last]))
        first = last
    return out


def unparsed_members(bucket: Bucket) -> Set[str]:
    """The members of ``bucket`` not known to be canonical IPv4 from the parse that made
    them: none of a packed bucket's, of a layer over one only what the layer added."""
    if bucket_ints.v4_packed(bucket) is not None:
        return _EMPTY
    if isinstance(bucket, _Layered) and bucket_ints.v4_packed(bucket.base) is not None:
        return bucket.plus
    return bucket


def v4_keys_and_rest(members: Iterable[str]) -> tuple[np.ndarray, list[str]]:
    """The canonical IPv4 members as packed integers (``bucket_ints``) and the others as
    texts: a packed bucket costs its integers, not a text per member. A member lands on
    the same side whatever bucket or representation holds it."""
    parts: list[np.ndarray] = []
    texts: list[str] = []
    removed: list[str] = []  # the layers' minus: members of packed bases, taken out at the end
    for bucket in (members.buckets() if isinstance(members, NetSet) else (members,)):
        packed = bucket_ints.v4_packed(bucket)  # type: ignore[arg-type]
        if packed is not None:
            parts.append(packed)
        elif isinstance(bucket, _Layered) and (packed := bucket_ints.v4_packed(bucket.base)) is not None:
            parts.append(packed)
            removed.extend(bucket.minus)
            texts.extend(bucket.plus)
        else:
            texts.extend(bucket)
    if texts:
        parsed = bucket_ints.key_array(texts)
        parts.append(parsed[parsed >= 0])
        texts = list(itertools.compress(texts, (parsed < 0).tolist()))
    keys = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if removed:  # canonical (each in a packed base); the buckets' keys are disjoint
        gone = np.sort(bucket_ints.key_array(removed))  # bisected: isin sorts all million (2x the time)
        at = np.minimum(np.searchsorted(gone, keys), len(gone) - 1)
        keys = keys[gone[at] != keys]
    return keys, texts


def _bucket(text: str) -> int:
    return (text_crc(text) & _MASK) | (PER_FAMILY if ":" in text else 0)


def _append_by_key(keys: Iterable[int], texts: Iterable[str]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for key, text in zip(keys, texts, strict=True):
        group = groups.get(key)
        if group is None:
            groups[key] = [text]
        else:
            group.append(text)
    return groups


def _grouped(texts: Iterable[str]) -> dict[int, list[str]]:
    """Texts by bucket; many of them with their CRCs and families computed in C loops."""
    if isinstance(texts, (list, tuple, frozenset, set)) and len(texts) >= _GROUP_BULK:
        ordered = list(texts)
        with contextlib.suppress(UnicodeEncodeError):
            crcs = np.fromiter(map(zlib.crc32, map(str.encode, ordered)), np.int64, len(ordered))
            return _append_by_key(_bucket_keys(ordered, crcs).tolist(), ordered)
        return _append_by_key(map(_bucket, ordered), ordered)
    texts = list(texts)
    return _append_by_key(map(_bucket, texts), texts)


_BULK = 4096  # from this many texts on, group them with numpy
_GROUP_BULK = 256  # from this many changes on, their CRCs are computed in C loops
_SEARCH_BULK = 2048  # from this many changed texts on, packed bases answer in one search


def _bucketed(texts: Sequence[str] | Set[str]) -> dict[int, Bucket]:
    """``_grouped`` for many texts: CRCs and families in C loops, one stable sort."""
    ordered = list(texts)
    return _bucketed_by_crc(ordered, text_crcs(ordered))


def _bucket_keys(ordered: list[str], crcs: np.ndarray, all_v4: bool = False) -> np.ndarray:
    """``_bucket`` of every text, from its CRC-32, in C loops (``all_v4``: known IPv4, no
    family test)."""
    if all_v4:
        return crcs & _MASK
    v6 = np.fromiter(map(str.__contains__, ordered, itertools.repeat(":")), bool, len(ordered))
    return (crcs & _MASK) | (v6.astype(np.int64) * PER_FAMILY)


def _bucketed_by_crc(ordered: list[str], crcs: np.ndarray, v4: np.ndarray | None = None) -> dict[int, Bucket]:
    """``ordered`` by bucket; ``v4``: the texts' packed integers when every one is canonical
    IPv4 (``bucket_ints``), remembered for each bucket made."""
    if not ordered:
        return {}
    keys = _bucket_keys(ordered, crcs, v4 is not None)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], cuts)).tolist()
    ends = np.concatenate((cuts, [len(keys)])).tolist()
    sorted_texts = list(operator.itemgetter(*order.tolist())(ordered)) if len(ordered) > 1 else list(ordered)
    bucket_ids = keys[starts].tolist()
    if v4 is None:
        return {b: frozenset(sorted_texts[a:z]) for b, a, z in zip(bucket_ids, starts, ends, strict=True)}
    # canonical IPv4 with its integers: a big bucket is packed (no text kept), a small one
    # a frozenset whose integers are remembered
    sorted_v4 = v4[order]
    plain: dict[int, Bucket] = {}
    for b, a, z in zip(bucket_ids, starts, ends, strict=True):
        if z - a >= _LAYER_MIN:
            plain[b] = _packed_or_plain(np.unique(sorted_v4[a:z]))
            continue
        bucket = plain[b] = frozenset(sorted_texts[a:z])
        if len(bucket) == z - a:  # (a text given twice: not remembered)
            bucket_ints.remember_v4(bucket, sorted_v4[a:z])
    return plain


_KEY_BITS = 38  # a packed IPv4 key: network << 6 | length (``bucket_ints``)
_OWNER_SHIFT = _KEY_BITS + 12  # above the key and the 12 bits of a v4 bucket (PER_FAMILY)


def packed_v4_sets(keys: np.ndarray, crcs: np.ndarray, owners: np.ndarray, count: int) -> list[NetSet]:
    """Canonical IPv4 nets of ``count`` owners (a stored chunk each) as one NetSet per
    owner: packed keys, their texts' CRC-32s and owner numbers, one entry per stored net.
    One sort of (owner, bucket, key) over all of them, where a sort per chunk (and a
    unique per bucket) cost ~0.3 s a million at every start; a net given twice is kept once."""
    assert PER_FAMILY == 1 << (_OWNER_SHIFT - _KEY_BITS)
    order = np.sort((owners.astype(np.int64) << _OWNER_SHIFT) | ((crcs & _MASK) << _KEY_BITS) | keys)
    if len(order) > 1:
        order = order[np.concatenate(([True], order[1:] != order[:-1]))]
    groups = order >> _KEY_BITS
    cuts = np.flatnonzero(np.diff(groups)) + 1
    starts = np.concatenate(([0], cuts)).tolist()
    ends = np.concatenate((cuts, [len(order)])).tolist()
    ids = groups[starts].tolist() if len(order) else []
    ints = order & ((1 << _KEY_BITS) - 1)
    per_owner: list[dict[int, Bucket]] = [{} for _ in range(count)]
    for group, a, z in zip(ids, starts, ends, strict=True):
        run = ints[a:z].copy()  # its own array: a view would keep all million alive
        if z - a >= _LAYER_MIN:
            bucket: Bucket = PackedV4(run)
        else:
            bucket = frozenset(bucket_ints.texts_of(run))
            bucket_ints.remember_v4(bucket, run)
        per_owner[group >> (_OWNER_SHIFT - _KEY_BITS)][group & _MASK] = bucket
    return [NetSet._of_buckets(b) for b in per_owner]


def split_by_crc(texts: Sequence[str], keep: Callable[[np.ndarray], np.ndarray],
                 v4: np.ndarray | None = None) -> tuple[NetSet, list[str]]:
    """``texts`` as a NetSet of those whose CRC-32 ``keep`` accepts (a vectorised test
    over the CRCs), and the others: the CRC is computed once per text and serves both
    the test and the bucketing (a stored chunk's members and its strays). ``v4``: the
    texts' packed integers, when all are canonical IPv4 (kept with the buckets)."""
    ordered = list(texts)
    if not ordered:
        return NetSet.EMPTY, []
    crcs = text_crcs(ordered)
    kept = keep(crcs)
    if kept.all():
        return NetSet._of_buckets(_bucketed_by_crc(ordered, crcs, v4)), []
    mine = np.flatnonzero(kept).tolist()
    others = [ordered[i] for i in np.flatnonzero(~kept).tolist()]
    return NetSet._of_buckets(_bucketed_by_crc([ordered[i] for i in mine], crcs[kept],
                                               None if v4 is None else v4[kept])), others


class NetSet(Set[str]):
    """An immutable set of canonical CIDR strings, bucketed for cheap changes."""

    __slots__ = ("__weakref__", "_buckets", "_cached_hash", "_delta", "_len")

    _buckets: dict[int, Bucket]  # only non-empty buckets
    _len: int
    _cached_hash: int | None
    #: (the set this one was made from, members added, members removed): a
    #: feed's 30,000 changes against a million are then known without a diff
    _delta: tuple[weakref.ref[NetSet], frozenset[str], frozenset[str]] | None

    def __init__(self, texts: Iterable[str] = ()) -> None:
        if isinstance(texts, NetSet):
            self._init(texts._buckets, texts._len)
            return
        if not isinstance(texts, (list, tuple, Set)):
            texts = list(texts)
        if len(texts) >= _BULK:
            buckets = _bucketed(texts)
        else:
            buckets = {b: frozenset(group) for b, group in _grouped(texts).items()}
        self._init(buckets, sum(map(len, buckets.values())))

    def _init(self, buckets: dict[int, Bucket], length: int) -> None:
        self._buckets = buckets
        self._len = length
        self._cached_hash = None
        self._delta = None

    def _derived(self, parent: NetSet, added: frozenset[str], removed: frozenset[str]) -> NetSet:
        self._delta = (weakref.ref(parent), added, removed)
        return self

    def delta_from(self, old: NetSet) -> tuple[frozenset[str], frozenset[str]] | None:
        """(added, removed) when this set was made from ``old`` by a change (``with_changes``,
        or a union whose parts were), without looking at any bucket; else None."""
        if old is self:
            return _EMPTY, _EMPTY
        delta = self._delta
        if delta is not None and delta[0]() is old:
            return delta[1], delta[2]
        return None

    def parent(self) -> NetSet | None:
        """The set this one was made from by a known change (see ``delta_from``), if still alive."""
        return self._delta[0]() if self._delta is not None else None

    def added_since_parent(self) -> frozenset[str] | None:
        return self._delta[1] if self._delta is not None else None

    @classmethod
    def _of_buckets(cls, buckets: dict[int, Bucket], length: int | None = None) -> NetSet:
        out = cls.__new__(cls)
        out._init(buckets, sum(map(len, buckets.values())) if length is None else length)
        return out

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> NetSet:  # type: ignore[override]
        return cls(it)

    # ------------------------------------------------------------ the Set protocol

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        for bucket in self._buckets.values():
            yield from bucket

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        bucket = self._buckets.get(_bucket(text))
        return bucket is not None and text in bucket

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, NetSet):
            if self._len != other._len or self._buckets.keys() != other._buckets.keys():
                return False
            theirs = other._buckets
            return all(mine is theirs[b] or _bucket_eq(mine, theirs[b]) for b, mine in self._buckets.items())
        if isinstance(other, Set):
            return self._len == len(other) and all(text in self for text in other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._cached_hash is None:
            self._cached_hash = self._hash_members()
        return self._cached_hash

    def _hash_members(self) -> int:
        # by bucket and bucket size only: the same for every representation of a bucket
        # (packed, layered, plain), and no member hashed. Weak on purpose: nothing on a
        # hot path keys by a NetSet (caches go by identity). Never mix with frozensets as keys.
        h = self._len
        for b, bucket in self._buckets.items():
            h ^= hash((b, len(bucket)))
        return h

    def __repr__(self) -> str:
        shown = sorted(itertools.islice(self, 4))
        more = f", … {self._len - len(shown)} more" if self._len > len(shown) else ""
        return f"NetSet({', '.join(shown)}{more})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (NetSet, (list(self),))

    # ------------------------------------------------------------ fast paths

    def __sub__(self, other: Iterable[Any]) -> NetSet:
        if not isinstance(other, NetSet):
            if not isinstance(other, Set):
                return NotImplemented
            return self.with_changes(removed=(t for t in other if isinstance(t, str)))
        buckets: dict[int, Bucket] = {}
        theirs = other._buckets
        for b, mine in self._buckets.items():
            other_bucket = theirs.get(b)
            if other_bucket is None:
                buckets[b] = mine
            elif other_bucket is not mine:
                left = _plain(mine) - _plain(other_bucket)
                if left:
                    buckets[b] = mine if len(left) == len(mine) else left
        return NetSet._of_buckets(buckets)

    def __or__(self, other: Iterable[Any]) -> NetSet:
        if isinstance(other, NetSet):
            return NetSet.union((self, other))
        if not isinstance(other, Set):
            return NotImplemented
        if not all(isinstance(t, str) for t in other):
            raise TypeError("a NetSet holds CIDR strings only")
        return self.with_changes(added=other)

    __ror__ = __or__

    def __and__(self, other: Iterable[Any]) -> NetSet:
        if not isinstance(other, NetSet):
            return NetSet(t for t in other if t in self) if isinstance(other, Set) else NotImplemented
        buckets: dict[int, Bucket] = {}
        small, big = (self, other) if len(self._buckets) <= len(other._buckets) else (other, self)
        for b, mine in small._buckets.items():
            theirs = big._buckets.get(b)
            if theirs is None:
                continue
            both = mine if mine is theirs else _plain(mine) & _plain(theirs)
            if both:
                buckets[b] = both
        return NetSet._of_buckets(buckets)

    __rand__ = __and__

    # ------------------------------------------------------------ changes

    def with_changes(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> NetSet:
        """This set with ``removed`` taken out, then ``added`` put in. Costs the
        touched buckets only; returns ``self`` when nothing changes. The result
        remembers the change (``delta_from(self)``)."""
        plus = _grouped(added)
        minus = _grouped(removed)
        if not plus and not minus:
            return self
        buckets = dict(self._buckets)
        length = self._len
        really_added: list[str] = []
        really_removed: list[str] = []
        touched = plus.keys() | minus.keys()
        packed_in_base = _packed_base_members(buckets, touched, plus, minus)
        for b in touched:
            old = buckets.get(b, _EMPTY)
            # The members that really flip, found on the few changed texts (their membership
            # of the old base asked once: a packed base answers from its integers); then the
            # bucket moved by them: a layer over its old base (see ``_Layered``), not a copy.
            plus_b, minus_b = set(plus.get(b, ())), set(minus.get(b, ()))
            in_base = packed_in_base.get(b)
            if in_base is None:
                in_base = _base_of(old).intersection(plus_b | minus_b)  # type: ignore[union-attr]
            if isinstance(old, _Layered):
                present = (old.plus & (plus_b | minus_b)) | in_base.difference(old.minus)
            else:
                present = in_base
            gained = list(plus_b.difference(present))
            lost = list(minus_b.intersection(present).difference(plus_b))
            if not gained and not lost:
                continue
            really_added.extend(gained)
            really_removed.extend(lost)
            new = _changed(old, gained, lost, b, in_base)
            length += len(gained) - len(lost)
            if new:
                buckets[b] = new
            else:
                buckets.pop(b, None)
        if not really_added and not really_removed:
            return self
        return NetSet._of_buckets(buckets, length)._derived(self, frozenset(really_added), frozenset(really_removed))

    def one_sided(self, old: NetSet) -> tuple[int, int]:
        """A lower bound of ``changes_from``'s (added, removed) sizes, from lengths only:
        the sizes themselves when the change is known (``delta_from``), else the members
        of this set's buckets that ``old`` has no bucket for, and of ``old``'s buckets this
        set has none for. A consumer that rebuilds on a big change asks this first: a set
        that arrives whole (from nothing) would otherwise be listed as texts, a packed
        bucket's made one by one (~1 s a million), only to be rebuilt from the set."""
        known = self.delta_from(old)
        if known is not None:
            return len(known[0]), len(known[1])
        theirs = old._buckets
        mine = self._buckets
        gained = sum(len(bucket) for b, bucket in mine.items() if b not in theirs)
        lost = sum(len(bucket) for b, bucket in theirs.items() if b not in mine)
        return gained, lost

    def changes_from(self, old: NetSet) -> tuple[frozenset[str], frozenset[str]]:
        """(added, removed): what turns ``old`` into this set. Buckets the two
        share cost one identity check each."""
        known = self.delta_from(old)
        if known is not None:
            return known
        added: list[str] = []
        removed: list[str] = []
        theirs = old._buckets
        for b, mine in self._buckets.items():
            before = theirs.get(b)
            if before is mine:
                continue
            if before is None:
                added.extend(mine)
            else:
                plus, minus = _bucket_diff(mine, before)
                added.extend(plus)
                removed.extend(minus)
        for b, before in theirs.items():
            if b not in self._buckets:
                removed.extend(before)
        return frozenset(added), frozenset(removed)

    @staticmethod
    def union(parts: Sequence[NetSet], previous: tuple[Sequence[NetSet], NetSet] | None = None) -> NetSet:
        """The union of ``parts``, sharing every bucket only one part has. With
        ``previous`` = (the parts of an earlier union, that union), a bucket in
        which every part is the same object as before is taken from it: a change
        to one set costs its changed buckets, however many sets are united."""
        live = [p for p in parts if p._len]
        if not live:
            return NetSet.EMPTY
        if len(live) == 1:
            return live[0]
        union = NetSet._union(parts, live, previous)
        if previous is not None:
            union._delta = NetSet._union_delta(parts, previous, union)
        return union

    @staticmethod
    def union_of_disjoint(parts: Sequence[NetSet], previous: tuple[Sequence[NetSet], NetSet] | None = None) -> NetSet:
        """``union`` for parts that never share a bucket (a chunked set: a chunk owns
        its buckets). With ``previous``, only the changed parts' buckets are swapped:
        O(what changed), not O(parts); the result knows its change when they do."""
        if previous is None or len(previous[0]) != len(parts):
            return NetSet.union(parts, previous)
        old_parts, old_union = previous
        changed = [i for i, (new, old) in enumerate(zip(parts, old_parts, strict=True)) if new is not old]
        if not changed:
            return old_union
        buckets = dict(old_union._buckets)
        for i in changed:
            for b in old_parts[i]._buckets:
                buckets.pop(b, None)
        for i in changed:
            buckets.update(parts[i]._buckets)
        union = NetSet._of_buckets(buckets)
        deltas = _part_deltas(parts, old_parts)
        if deltas is not None:
            union._delta = (weakref.ref(old_union), frozenset().union(*deltas[0]), frozenset().union(*deltas[1]))
        return union

    @staticmethod
    def _union_delta(parts: Sequence[NetSet], previous: tuple[Sequence[NetSet], NetSet],
                     union: NetSet) -> tuple[weakref.ref[NetSet], frozenset[str], frozenset[str]] | None:
        """The union's change from the previous union when every part's change is known:
        a net added to a part is new unless the old union had it; one removed is gone
        unless another part still holds it (the new union answers both)."""
        old_parts, old_union = previous
        if len(old_parts) != len(parts) or union is old_union:
            return None
        deltas = _part_deltas(parts, old_parts)
        if deltas is None:
            return None
        plus, minus = deltas
        changed = [i for i, (new, old) in enumerate(zip(parts, old_parts, strict=True)) if new is not old]
        others = [p for i, p in enumerate(parts) if i not in changed and p._len]
        if len(changed) == 1 and sum(p._len for p in others) <= len(plus[0]) + len(minus[0]):
            # One part changed and the rest are small (a feed's churn in a big set beside the
            # seed's few nets): a net it gained or lost flips in the union unless another part
            # holds it, found by two C differences, not two membership tests per net.
            held = frozenset().union(*others)
            return weakref.ref(old_union), plus[0] - held, minus[0] - held
        added = frozenset(t for d in plus for t in d if t not in old_union)
        removed = frozenset(t for d in minus for t in d if t not in union)
        return weakref.ref(old_union), added, removed

    @staticmethod
    def _union(parts: Sequence[NetSet], live: list[NetSet], previous: tuple[Sequence[NetSet], NetSet] | None) -> NetSet:
        old_parts, old_union = previous if previous is not None else ((), NetSet.EMPTY)
        reuse = len(old_parts) == len(parts)
        largest = max(live, key=lambda p: len(p._buckets))
        buckets = dict(largest._buckets)  # shared as is where no other part has the bucket
        several: dict[int, list[Bucket]] = {}
        for p in live:
            if p is largest:
                continue
            for b, bucket in p._buckets.items():
                have = buckets.get(b)
                if have is None:
                    buckets[b] = bucket
                elif have is not bucket:
                    several.setdefault(b, [have]).append(bucket)
        for b, found in several.items():
            if reuse and all(p._buckets.get(b) is q._buckets.get(b) for p, q in zip(parts, old_parts, strict=True)):
                hit = old_union._buckets.get(b)
                if hit is not None:
                    buckets[b] = hit
                    continue
            if all(isinstance(f, PackedV4) for f in found):  # two big sets over the same bucket
                buckets[b] = PackedV4(np.unique(np.concatenate([f.ints for f in found])))  # type: ignore[union-attr]
            else:
                buckets[b] = frozenset().union(*map(_plain, found))
        return NetSet._of_buckets(buckets)

    def family(self, version: int) -> NetSet:
        """The members of one IP family (4 or 6), sharing this set's buckets."""
        if version == 4:
            keep = {b: s for b, s in self._buckets.items() if b < PER_FAMILY}
        elif version == 6:
            keep = {b: s for b, s in self._buckets.items() if b >= PER_FAMILY}
        else:
            raise ValueError(f"IP version must be 4 or 6, not {version!r}")
        if len(keep) == len(self._buckets):
            return self
        return NetSet._of_buckets(keep) if keep else NetSet.EMPTY

    def has_family(self, version: int) -> bool:
        if version not in (4, 6):
            raise ValueError(f"IP version must be 4 or 6, not {version!r}")
        return any((b >= PER_FAMILY) == (version == 6) for b in self._buckets)

    def buckets(self) -> Iterable[Bucket]:
        """The non-empty buckets (immutable; shared between versions): for
        consumers that cache work per bucket by identity."""
        return self._buckets.values()

    def shared_buckets(self, other: NetSet) -> int:
        """How many buckets the two hold by the very same object (for tests and diagnostics)."""
        return sum(1 for b, s in self._buckets.items() if other._buckets.get(b) is s)

    EMPTY: NetSet


NetSet.EMPTY = NetSet._of_buckets({}, 0)


def _part_deltas(parts: Sequence[NetSet], old_parts: Sequence[NetSet]) -> tuple[list[frozenset[str]], list[frozenset[str]]] | None:
    """(added, removed) of every part that changed (same position, another object),
    when each was made from its old self by a known change; else None."""
    plus: list[frozenset[str]] = []
    minus: list[frozenset[str]] = []
    for new, old in zip(parts, old_parts, strict=True):
        if new is old:
            continue
        delta = new.delta_from(old)
        if delta is None:
            return None
        plus.append(delta[0])
        minus.append(delta[1])
    return plus, minus


def as_netset(texts: Iterable[str]) -> NetSet:
    """``texts`` as a NetSet (itself when it already is one)."""
    return texts if isinstance(texts, NetSet) else NetSet(texts)
