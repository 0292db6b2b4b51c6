"""The one datastore interface every backend implements, shaped like etcd v3.

Why etcd-shaped: the cluster backend is etcd, and an agent built on list + watch
from a revision (Calico's watchercache) must not care which backend it talks to.
So the embedded SQLite backend offers exactly etcd's contract:

* one global, monotonically increasing revision; every successful write
  (a single call or a whole ``commit`` transaction) gets exactly one new revision,
  shared by all keys it touched (etcd's txn semantics);
* ``KeyValue.mod_revision`` is the resource's ``resourceVersion``; updates and
  deletes may compare-and-swap on it, a mismatch raises ``Conflict``;
* ``list`` returns a consistent snapshot plus the revision it reflects;
* ``watch(start_revision)`` yields every change with ``revision >= start_revision``
  (inclusive, as etcd), in order, with no gap and no duplicate; history older than
  the compacted revision raises ``RevisionCompacted`` so the caller relists.

Values are plain JSON-compatible dicts (the v3 resource as stored, without
``metadata.resourceVersion``, which is derived from ``mod_revision``). Backends do
not interpret them: validation belongs to ``seawall.api``.
"""

from __future__ import annotations

import abc
import builtins
import enum
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from seawall.datastore.errors import (  # noqa: F401  (part of the interface)
    AlreadyExists,
    Conflict,
    DatastoreError,
    DatastoreUnavailable,
    NotFound,
    RevisionCompacted,
)


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One stored resource with its etcd-style revisions."""

    kind: str
    name: str
    value: dict[str, Any]
    create_revision: int
    mod_revision: int


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. ``value`` is the new value (PUT) or None (DELETE);
    ``prev_value`` is the value before the change (None for a create).

    ``complete``: this is the last event of its revision that the watch yields, so
    a watcher that has applied it holds the datastore as of that revision (a
    transaction's events never show half applied: a big set's head and its new
    chunks arrive together). False on the other events of a multi-key revision.
    Not part of equality: it describes the delivery, not the change."""

    type: EventType
    kind: str
    name: str
    revision: int
    value: dict[str, Any] | None
    prev_value: dict[str, Any] | None
    complete: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int


@dataclass(frozen=True, slots=True)
class Create:
    kind: str
    name: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """Replace an existing key; ``expected_revision`` None means "whatever is there"."""

    kind: str
    name: str
    value: dict[str, Any]
    expected_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    name: str
    expected_revision: int | None = None


Op: TypeAlias = Create | Update | Delete


Keep: TypeAlias = Callable[[str, Any], Any]  # see Datastore.list


class Datastore(abc.ABC):
    """etcd v3-shaped resource store. Implementations must be safe to use from
    several threads and several processes at once."""

    @abc.abstractmethod
    def get(self, kind: str, name: str) -> KeyValue:
        """Return the resource or raise NotFound."""

    @abc.abstractmethod
    def list(self, kind: str | None = None, *, keep: Keep | None = None) -> ListResult:
        """All resources (of one kind, or all kinds), sorted by (kind, name),
        as one consistent snapshot with the revision it reflects.

        ``keep(kind, value)``, when given, replaces each value as soon as it is
        decoded, before the next is read: a reader that holds values in a compact
        form (the agent's member chunks) never holds them all decoded at once,
        whose short-lived strings would otherwise pin the allocator's arenas."""

    @abc.abstractmethod
    def commit(self, ops: Sequence[Op]) -> builtins.list[KeyValue]:
        """Apply all ops atomically under one new revision, or none of them.

        Raises the error of the first failing op (AlreadyExists, NotFound,
        Conflict) and then nothing has been written. Returns one KeyValue per op
        (for a Delete: the value that was deleted, with its old revisions).
        An empty list of ops is a no-op and does not consume a revision."""

    def create(self, kind: str, name: str, value: dict[str, Any]) -> KeyValue:
        return self.commit([Create(kind, name, value)])[0]

    def update(
        self, kind: str, name: str, value: dict[str, Any], expected_revision: int | None = None
    ) -> KeyValue:
        return self.commit([Update(kind, name, value, expected_revision)])[0]

    def delete(self, kind: str, name: str, expected_revision: int | None = None) -> KeyValue:
        return self.commit([Delete(kind, name, expected_revision)])[0]

    @abc.abstractmethod
    def current_revision(self) -> int:
        """The revision of the latest write (0 for an empty, never written store)."""

    @abc.abstractmethod
    def watch(
        self,
        start_revision: int,
        *,
        kinds: Sequence[str] | None = None,
        stop: threading.Event | None = None,
        prev: bool = True,
    ) -> Iterator[WatchEvent]:
        """Yield every event with revision >= start_revision, in revision order
        (events of one revision in a stable order), then block for new ones until
        ``stop`` is set. Raises RevisionCompacted (possibly later, mid-iteration,
        if the watcher falls behind compaction). ``prev=False``: every event's
        ``prev_value`` is None (not decoded: a watcher that keeps its own copy, like
        the agent's syncer, saves reading each big chunk twice)."""

    @abc.abstractmethod
    def compact(self, revision: int) -> None:
        """Discard history before ``revision`` (watch from < revision then fails)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent."""

    def __enter__(self) -> Datastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
