"""Datastore URLs: how the CLI (``--datastore``) and the agent name a store.

One parser for both, so ``SEAWALL_DATASTORE`` and the default path mean the same
thing everywhere. Accepted: ``sqlite:///abs/path`` (three slashes: absolute),
``sqlite://relative/path``; ``etcd://host:port[,host:port]`` is reserved for the
etcd backend, which a later version adds.
"""

from __future__ import annotations

import os

from seawall.datastore.interface import Datastore, DatastoreUnavailable
from seawall.datastore.sqlite import SqliteDatastore

__all__ = ["DEFAULT_SQLITE_PATH", "ENV_VAR", "open_datastore", "resolve_datastore_url"]

DEFAULT_SQLITE_PATH = "/var/lib/seawall/seawall.db"
ENV_VAR = "SEAWALL_DATASTORE"

_SQLITE = "sqlite://"
_ETCD = "etcd://"
_ACCEPTED = "sqlite:///absolute/path, sqlite://relative/path or etcd://host:port[,host:port]"


def resolve_datastore_url(url: str | None) -> str:
    """The explicit URL if given (non-empty), else $SEAWALL_DATASTORE, else the
    SQLite default."""
    if url:
        return url
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    return _SQLITE + DEFAULT_SQLITE_PATH


def open_datastore(url: str | None = None) -> Datastore:
    """Open the datastore a URL names (resolved as ``resolve_datastore_url``).
    Raises DatastoreUnavailable for an unusable or unsupported URL."""
    resolved = resolve_datastore_url(url).strip()
    scheme, sep, rest = resolved.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        # "sqlite:///abs" leaves "/abs"; "sqlite://rel/path" leaves "rel/path".
        if not rest:
            raise DatastoreUnavailable(f"datastore URL {resolved!r} has no path; expected {_ACCEPTED}")
        return SqliteDatastore(rest)
    if sep and scheme == "etcd":
        raise DatastoreUnavailable("etcd datastore is not available in this version; use sqlite:///path")
    raise DatastoreUnavailable(f"unsupported datastore URL {resolved!r}; expected {_ACCEPTED}")
