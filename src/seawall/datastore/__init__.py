"""Seawall's revisioned resource store: one etcd v3-shaped interface
(``interface``), the embedded SQLite backend, and URL-based opening."""

from seawall.datastore.interface import (
    AlreadyExists,
    Conflict,
    Create,
    Datastore,
    DatastoreError,
    DatastoreUnavailable,
    Delete,
    EventType,
    KeyValue,
    ListResult,
    NotFound,
    Op,
    RevisionCompacted,
    Update,
    WatchEvent,
)
from seawall.datastore.sqlite import SqliteDatastore
from seawall.datastore.url import DEFAULT_SQLITE_PATH, open_datastore, resolve_datastore_url

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "AlreadyExists",
    "Conflict",
    "Create",
    "Datastore",
    "DatastoreError",
    "DatastoreUnavailable",
    "Delete",
    "EventType",
    "KeyValue",
    "ListResult",
    "NotFound",
    "Op",
    "RevisionCompacted",
    "SqliteDatastore",
    "Update",
    "WatchEvent",
    "open_datastore",
    "resolve_datastore_url",
]
