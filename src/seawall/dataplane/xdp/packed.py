"""``PackedInts``: a mutable set of non-negative ints held as a sorted numpy array.

Why: the XDP tables keep every blocked IPv4 network per prefix length. As a
Python ``set`` a million networks cost ~100 MiB (an int object and a hash slot
each) and their bulk load a Python loop; as a sorted ``int64`` array they cost
8 MiB and load in one sort. Single changes go to two small overlays (a sorted
list of added values, a set of removed ones) and are folded into the array once
they grow past a fraction of it, so one change stays O(log n), a range query
(the networks inside one /24) is two bisections, and a bulk load stays vectorised.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

import numpy as np

_EMPTY = np.zeros(0, dtype=np.int64)
#: Overlays are folded into the array beyond max(FOLD_MIN, len(array) // FOLD_FRACTION) entries.
FOLD_MIN = 4096
FOLD_FRACTION = 16


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``numpy.unique`` by sorting: at a million int64 several times faster than its
    hash-based default, and the result is what this module keeps (sorted)."""
    if len(values) < 2:
        return values.astype(np.int64, copy=True)
    ordered = np.sort(values.astype(np.int64, copy=False))
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted unique union of a sorted unique array and any array. A few values
    into many are placed by bisection (one copy, no sort of the whole: a feed's
    15,000 new networks into a million cost a copy, not a million-entry sort)."""
    if not len(a):
        return sorted_unique(b)
    if not len(b):
        return a
    if len(b) * 8 > len(a):
        return sorted_unique(np.concatenate((a, b.astype(np.int64, copy=False))))
    fresh = sorted_unique(b)
    fresh = fresh[~_found(a, fresh)]
    return np.insert(a, np.searchsorted(a, fresh), fresh) if len(fresh) else a


def _found(base: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A bool per value: is it in ``base`` (sorted)? By bisection: O(k log n)."""
    if not len(base):
        return np.zeros(len(values), dtype=bool)
    index = np.minimum(np.searchsorted(base, values), len(base) - 1)
    return base[index] == values


def without(base: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``base`` (sorted unique) without ``values``: found by bisection, one copy."""
    values = values.astype(np.int64, copy=False)
    if not len(base) or not len(values):
        return base
    index = np.searchsorted(base, values)
    present = index < len(base)
    index = index[present]
    index = index[base[index] == values[present]]
    return np.delete(base, index) if len(index) else base


class PackedInts:
    __slots__ = ("_added", "_base", "_removed")

    def __init__(self) -> None:
        self._base: np.ndarray = _EMPTY  # sorted, unique
        self._added: list[int] = []  # sorted, not in _base (a range query is a bisect)
        self._removed: set[int] = set()  # in _base

    def _in_base(self, value: int) -> bool:
        base = self._base
        i = int(np.searchsorted(base, value))
        return i < len(base) and int(base[i]) == value

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        if self._in_added(value):
            return True
        return value not in self._removed and self._in_base(value)

    def _in_added(self, value: int) -> bool:
        added = self._added
        i = bisect.bisect_left(added, value)
        return i < len(added) and added[i] == value

    def in_range(self, low: int, high: int) -> list[int]:
        """The members in [low, high), sorted (O(log n + answer))."""
        base = self._base
        a, z = int(np.searchsorted(base, low)), int(np.searchsorted(base, high))
        found = [v for v in base[a:z].tolist() if v not in self._removed]
        added = self._added
        found += added[bisect.bisect_left(added, low) : bisect.bisect_left(added, high)]
        return sorted(found)

    def contains_many(self, values: np.ndarray) -> np.ndarray:
        """A bool per value (vectorised)."""
        self._fold()
        return _found(self._base, values)

    def __len__(self) -> int:
        return len(self._base) - len(self._removed) + len(self._added)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[int]:
        return iter(self.array().tolist())

    def add(self, value: int) -> None:
        if value in self._removed:
            self._removed.discard(value)
        elif not self._in_added(value) and not self._in_base(value):
            bisect.insort(self._added, value)
            self._maybe_fold()

    def discard(self, value: int) -> None:
        if self._in_added(value):
            self._added.pop(bisect.bisect_left(self._added, value))
        elif value not in self._removed and self._in_base(value):
            self._removed.add(value)
            self._maybe_fold()

    def update(self, values: np.ndarray | Iterable[int]) -> None:
        """Add many at once (one merge)."""
        array = values if isinstance(values, np.ndarray) else np.fromiter(values, dtype=np.int64)
        if not len(array):
            return
        self._fold()
        self._base = merge(self._base, array)

    def difference_update(self, values: np.ndarray) -> None:
        """Remove many at once (one pass)."""
        if not len(values):
            return
        self._fold()
        self._base = without(self._base, values)

    def array(self) -> np.ndarray:
        """Every member, sorted (a read-only view: do not modify)."""
        self._fold()
        return self._base

    def _maybe_fold(self) -> None:
        if len(self._added) + len(self._removed) > max(FOLD_MIN, len(self._base) // FOLD_FRACTION):
            self._fold()

    def _fold(self) -> None:
        if not self._added and not self._removed:
            return
        base = self._base
        if self._removed:
            base = without(base, np.fromiter(self._removed, dtype=np.int64, count=len(self._removed)))
        if self._added:
            base = merge(base, np.array(self._added, dtype=np.int64))
        self._base = base
        self._added, self._removed = [], set()
