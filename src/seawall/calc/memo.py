"""Work reused between ``compute`` calls while its inputs are the same objects.

The agent keeps one validated resource object per stored version of a
resource, so object identity is an exact and free "unchanged" test. With a
memo, a million-net GlobalNetworkSet is canonicalised and parsed once per
version instead of on every reconcile, and an unchanged set keeps the same
``frozenset`` object all the way to the XDP driver (whose diff then costs
nothing). Pure: no I/O; entries not used by the latest ``compute`` are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class CalcMemo:
    """Identity-keyed memo with generational pruning.

    ``get(kind, inputs, make)`` returns ``make()`` the first time and the same
    result while every object in ``inputs`` is the very same object (held, so
    ids cannot be reused). ``sweep()`` forgets what the last round did not ask for.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, Hashable], tuple[tuple[Any, ...], Any]] = {}
        self._used: set[tuple[str, Hashable]] = set()
        self.hits = 0
        self.misses = 0

    def get(self, kind: str, inputs: tuple[Any, ...], make: Callable[[], T], key: Hashable = ()) -> T:
        slot = (kind, (key, tuple(map(id, inputs))))
        self._used.add(slot)
        found = self._entries.get(slot)
        if found is not None and all(a is b for a, b in zip(found[0], inputs, strict=True)):
            self.hits += 1
            return found[1]  # type: ignore[no-any-return]
        self.misses += 1
        value = make()
        self._entries[slot] = (inputs, value)
        return value

    def sweep(self) -> None:
        for slot in set(self._entries) - self._used:
            del self._entries[slot]
        self._used.clear()

    def __len__(self) -> int:
        return len(self._entries)


class NoMemo(CalcMemo):
    """Computes everything every time (the default: ``compute`` stays history-free)."""

    def get(self, kind: str, inputs: tuple[Any, ...], make: Callable[[], T], key: Hashable = ()) -> T:
        return make()

    def sweep(self) -> None:
        return None
