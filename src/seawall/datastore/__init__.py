"""Seawall's revisioned resource store: one etcd v3-shaped interface
(``interface``), the embedded SQLite backend, the etcd v3 backend
(``EtcdDatastore``, imported lazily so that grpc is only loaded when used), and
URL-based opening."""

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name == "EtcdDatastore":
        from seawall.datastore.etcd import EtcdDatastore

        return EtcdDatastore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_SQLITE_PATH",
    "AlreadyExists",
    "Conflict",
    "Create",
    "Datastore",
    "DatastoreError",
    "DatastoreUnavailable",
    "Delete",
    "EtcdDatastore",
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
