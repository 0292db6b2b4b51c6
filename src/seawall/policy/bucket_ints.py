"""The integers of IPv4 ``NetSet`` buckets, kept from the parse that made them.

Why: a million-net set is parsed once, when validation checks the stored chunks
(``seawall.api.cidr_bulk.v4_rows`` yields every canonical net's address and
prefix length as it checks it). Without a place to keep them, the XDP tables,
the raw tier's canonical check and its netlink writer each parsed the same
million texts again (~0.3 s each at start). A bucket is an immutable
``frozenset`` shared by identity between versions and layers, so its integers
can be looked up by the bucket itself; the table holds buckets weakly, so it
never keeps an old version alive, and a bucket made by a change (not by a bulk
parse) is simply not in it: its consumers parse it as before. Pure.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Set as AbstractSet

import numpy as np

LENGTH_BITS = 6  # packed = network << 6 | prefix length (0..32)

# bucket -> its members' packed integers (any order). Equal buckets have equal integers,
# so a lookup by an equal but distinct frozenset is right too.
_V4: weakref.WeakKeyDictionary[frozenset[str], np.ndarray] = weakref.WeakKeyDictionary()


def pack(networks: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    packed: np.ndarray = (networks.astype(np.int64) << LENGTH_BITS) | lengths
    return packed


def unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return packed >> LENGTH_BITS, packed & ((1 << LENGTH_BITS) - 1)


def remember_v4(bucket: frozenset[str], packed: np.ndarray) -> None:
    """``bucket``'s members are exactly the canonical IPv4 nets ``packed`` holds."""
    if len(packed) != len(bucket):
        raise ValueError(f"{len(packed)} integers for a bucket of {len(bucket)} nets")
    _V4[bucket] = packed


def v4_packed(bucket: AbstractSet[str]) -> np.ndarray | None:
    """The packed integers of a bucket known from its parse, else None (a layered
    bucket, made by a change, never is: and hashing it would copy it)."""
    return _V4.get(bucket) if type(bucket) is frozenset else None


def known_v4(buckets: Iterable[AbstractSet[str]]) -> tuple[np.ndarray, list[AbstractSet[str]]]:
    """The packed integers of every bucket known, and the buckets that are not."""
    parts: list[np.ndarray] = []
    unknown: list[AbstractSet[str]] = []
    for bucket in buckets:
        packed = _V4.get(bucket) if type(bucket) is frozenset else None
        if packed is None:
            unknown.append(bucket)
        else:
            parts.append(packed)
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64)), unknown
