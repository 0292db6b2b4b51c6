"""Work reused between ``compute`` calls while its inputs are the same objects.

The agent keeps one validated resource object per stored version of a
resource, so object identity is an exact and free "unchanged" test. With a
memo, a million-net GlobalNetworkSet is canonicalised and parsed once per
version instead of on every reconcile, and an unchanged set keeps the same
``frozenset`` object all the way to the XDP driver (whose diff then costs
nothing). Pure: no I/O; entries not used by the latest ``compute`` are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class CalcMemo:
    """Identity-keyed memo with generational pruning.

    ``get(kind, inputs, make)`` returns ``make()`` the first time and the same
    result while every object in ``inputs`` is the very same object (held, so
    ids cannot be reused). ``sweep()`` forgets what the last round did not ask for.
    Entries that ``make`` asked for are remembered as its dependencies: reusing
    an outer entry keeps them alive too, so a big set parsed for an eligibility
    result is not parsed again when that result is later recomputed.
    """

    def __init__(self) -> None:
        # slot -> (inputs held, value, slots asked for while making it)
        self._entries: dict[Hashable, tuple[tuple[Any, ...], Any, tuple[Hashable, ...]]] = {}
        self._used: set[Hashable] = set()
        self._making: list[list[Hashable]] = []
        self._dropped: list[tuple[tuple[Any, ...], Any, tuple[Hashable, ...]]] = []
        self.hits = 0
        self.misses = 0

    def get(self, kind: str, inputs: tuple[Any, ...], make: Callable[[], T], key: Hashable = ()) -> T:
        slot = (kind, key, tuple(map(id, inputs)))
        if self._making:
            self._making[-1].append(slot)
        found = self._entries.get(slot)
        if found is not None and all(a is b for a, b in zip(found[0], inputs, strict=True)):
            self.hits += 1
            self._mark_used(slot)
            return found[1]  # type: ignore[no-any-return]
        self.misses += 1
        self._making.append([])
        try:
            value = make()
        finally:
            dependencies = tuple(self._making.pop())
        self._entries[slot] = (inputs, value, dependencies)
        self._used.add(slot)
        return value

    def recall(self, kind: str, key: Hashable) -> Any:
        """The value last ``keep``-ed under (kind, key), or None: a previous
        *version* of something (e.g. the set of that name before this update),
        for incremental work. Asked for inside a ``get`` it becomes a dependency
        of that entry, so it lives as long as the entry is reused."""
        slot = ("named", kind, key)
        if self._making:
            self._making[-1].append(slot)
        found = self._entries.get(slot)
        if found is None:
            return None
        self._used.add(slot)
        return found[1]

    def keep(self, kind: str, key: Hashable, value: Any) -> None:
        slot = ("named", kind, key)
        if self._making:
            self._making[-1].append(slot)
        self._entries[slot] = ((), value, ())
        self._used.add(slot)

    def _mark_used(self, slot: Hashable) -> None:
        pending = [slot]
        while pending:
            current = pending.pop()
            if current in self._used or current not in self._entries:
                continue
            self._used.add(current)
            pending.extend(self._entries[current][2])

    def sweep(self) -> None:
        """Forget what the last round did not ask for. What is forgotten is held until
        ``release`` (or the next sweep): freeing an old version of a million-net set (its
        buckets and members) took ~0.3 s, and the agent frees it after XDP has the new one."""
        self._dropped = [self._entries.pop(slot) for slot in set(self._entries) - self._used]
        self._used.clear()

    def release(self) -> None:
        """Free what the last sweep forgot."""
        self._dropped = []

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """(inputs, value) of every entry held (for tests and diagnostics)."""
        for inputs, value, _ in self._entries.values():
            yield inputs, value


class NoMemo(CalcMemo):
    """Computes everything every time (the default: ``compute`` stays history-free)."""

    def get(self, kind: str, inputs: tuple[Any, ...], make: Callable[[], T], key: Hashable = ()) -> T:
        return make()

    def sweep(self) -> None:
        return None

    def recall(self, kind: str, key: Hashable) -> Any:
        return None

    def keep(self, kind: str, key: Hashable, value: Any) -> None:
        return None
