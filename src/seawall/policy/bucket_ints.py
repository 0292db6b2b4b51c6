"""The integers of IPv4 ``NetSet`` buckets, kept from the parse that made them, and
the big IPv4 bucket held as nothing but them (``PackedV4``).

Why: a million-net set is parsed once, when validation checks the stored chunks
(``seawall.api.cidr_bulk.v4_rows`` yields every canonical net's address and
prefix length as it checks it). Without a place to keep them, the XDP tables,
the raw tier's canonical check and its netlink writer each parsed the same
million texts again (~0.3 s each at start). A bucket is an immutable
``frozenset`` shared by identity between versions and layers, so its integers
can be looked up by the bucket itself; the table holds buckets weakly, so it
never keeps an old version alive, and a bucket made by a change (not by a bulk
parse) is simply not in it: its consumers parse it as before.

A big bucket made by a bulk parse is a ``PackedV4``: its sorted integers and no
text at all. As a frozenset of texts a million-net set cost ~97 bytes a net (a
64-byte string and a 33-byte share of the hash table) on top of the integers the
tiers need anyway; packed it costs their 8. Texts are made when asked for (a
changed bucket's diff, a ``repr``): those paths cost the bucket, not the set. Pure.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterable, Iterator, Sequence, Set as AbstractSet
from typing import Any

import numpy as np

from seawall.api.cidr_bulk import v4_rows

LENGTH_BITS = 6  # packed = network << 6 | prefix length (0..32)

# bucket -> its members' packed integers (any order). Equal buckets have equal integers,
# so a lookup by an equal but distinct frozenset is right too.
_V4: weakref.WeakKeyDictionary[frozenset[str], np.ndarray] = weakref.WeakKeyDictionary()


def pack(networks: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    packed: np.ndarray = (networks.astype(np.int64) << LENGTH_BITS) | lengths
    return packed


def unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return packed >> LENGTH_BITS, packed & ((1 << LENGTH_BITS) - 1)


def key_of(text: str) -> int | None:
    """The packed integer of an IPv4 net text spelt ``a.b.c.d/n`` in decimal (no
    leading zeros), else None. Host bits are not checked: a ``PackedV4`` holds
    canonical nets only, so a text with host bits set matches none of them."""
    address, _, length = text.partition("/")
    plen = _LENGTHS.get(length)
    parts = address.split(".")
    if plen is None or len(parts) != 4:
        return None
    a, b, c, d = map(_OCTETS.get, parts)
    if a is None or b is None or c is None or d is None:
        return None
    return (((a << 24) | (b << 16) | (c << 8) | d) << LENGTH_BITS) | plen


# the only spellings ``key_of`` accepts: decimal, no leading zeros (one lookup checks and converts)
_OCTETS = {str(i): i for i in range(256)}
_LENGTHS = {str(i): i for i in range(33)}


def network_key(text: str) -> int | None:
    """``key_of`` when the text is a canonical IPv4 network (no host bits set), else None."""
    key = key_of(text)
    if key is None:
        return None
    network, length = key >> LENGTH_BITS, key & ((1 << LENGTH_BITS) - 1)
    return None if network & ((1 << (32 - length)) - 1) else key


def key_array(texts: Sequence[str]) -> np.ndarray:
    """The packed integer of every text, -1 where it is no canonical IPv4 net; in C loops."""
    ok, networks, lengths = v4_rows(texts)
    keys: np.ndarray = np.where(ok, pack(networks, lengths), -1)
    return keys


def keys_for(texts: Sequence[str]) -> list[int | None]:
    """``key_of`` of every text (None: not canonical IPv4); in C loops for many."""
    if len(texts) < _KEYS_BULK:
        return [key_of(t) for t in texts]
    return [k if k >= 0 else None for k in key_array(texts).tolist()]


_KEYS_BULK = 160  # measured: below ~150 texts the scalar parse beats the numpy one (fixed cost ~0.3 ms)


def text_of(key: int) -> str:
    n = key >> LENGTH_BITS
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}/{key & ((1 << LENGTH_BITS) - 1)}"


def texts_of(keys: np.ndarray) -> list[str]:
    return [text_of(k) for k in keys.tolist()]


def keys_of(texts: Iterable[str]) -> np.ndarray | None:
    """The packed integers of IPv4 net texts (sorted, unique), or None if one is not such a text."""
    keys = [key_of(t) for t in texts]
    if None in keys:
        return None
    return np.unique(np.array(keys, np.int64))


class PackedV4(AbstractSet[str]):
    """A bucket of canonical IPv4 nets held as their packed integers, sorted and
    unique (``ints``). A ``Set`` of texts: equal to the frozenset of the same nets."""

    __slots__ = ("__weakref__", "_text_hash", "_view", "ints")

    def __init__(self, ints: np.ndarray) -> None:
        self.ints = np.ascontiguousarray(ints, np.int64)
        self._view = self.ints.data  # bisected item by item as Python ints: no numpy call per test
        self._text_hash: int | None = None

    def __len__(self) -> int:
        return len(self.ints)

    def __contains__(self, text: object) -> bool:
        key = key_of(text) if isinstance(text, str) else None
        return key is not None and self.has_key(key)

    def __iter__(self) -> Iterator[str]:
        return iter(texts_of(self.ints))

    def has_key(self, key: int) -> bool:
        view = self._view
        at = bisect.bisect_left(view, key)
        return at < len(view) and view[at] == key

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedV4):
            return other is self or bool(np.array_equal(self.ints, other.ints))
        return super().__eq__(other)

    def __hash__(self) -> int:  # as the equal frozenset's (rare: NetSet hashes by bucket size)
        if self._text_hash is None:
            self._text_hash = hash(self.flat())
        return self._text_hash

    def __repr__(self) -> str:
        return f"PackedV4({len(self.ints)} nets)"

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> frozenset[str]:  # type: ignore[override]
        return frozenset(it)

    def flat(self) -> frozenset[str]:
        """The members as a frozenset of texts (made now: costs the bucket)."""
        return frozenset(texts_of(self.ints))

    def difference_keys(self, other: PackedV4) -> list[str]:
        """The texts of the members not in ``other``, found on the integers."""
        return texts_of(np.setdiff1d(self.ints, other.ints, assume_unique=True))


def remember_v4(bucket: frozenset[str], packed: np.ndarray) -> None:
    """``bucket``'s members are exactly the canonical IPv4 nets ``packed`` holds."""
    if len(packed) != len(bucket):
        raise ValueError(f"{len(packed)} integers for a bucket of {len(bucket)} nets")
    _V4[bucket] = packed


def v4_packed(bucket: AbstractSet[str]) -> np.ndarray | None:
    """The packed integers of a bucket known from its parse, else None (a layered
    bucket, made by a change, never is: and hashing it would copy it)."""
    if type(bucket) is PackedV4:
        return bucket.ints
    return _V4.get(bucket) if type(bucket) is frozenset else None
