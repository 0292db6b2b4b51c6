"""The errors every datastore raises: plain exception types, no I/O, so pure code (the etcd
key layout) can raise them without importing the interface."""

from __future__ import annotations


class DatastoreError(Exception):
    """Base class of every error a datastore raises."""


class NotFound(DatastoreError):
    """The key does not exist (get/update/delete)."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"resource does not exist: {kind}({name})")
        self.kind = kind
        self.name = name


class AlreadyExists(DatastoreError):
    """Create of a key that already exists."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"resource already exists: {kind}({name})")
        self.kind = kind
        self.name = name


class Conflict(DatastoreError):
    """Compare-and-swap failed: the stored mod_revision is not the expected one."""

    def __init__(self, kind: str, name: str, expected: int, actual: int) -> None:
        super().__init__(
            f"update conflict: {kind}({name}) has resourceVersion {actual}, "
            f"the request expected {expected}"
        )
        self.kind = kind
        self.name = name
        self.expected = expected
        self.actual = actual


class RevisionCompacted(DatastoreError):
    """The requested watch start revision is no longer available: relist."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"revision {requested} has been compacted (oldest available is {compacted + 1}); relist"
        )
        self.requested = requested
        self.compacted = compacted


class DatastoreUnavailable(DatastoreError):
    """The backend cannot be reached or opened."""
