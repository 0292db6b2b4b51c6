"""Embedded SQLite backend: etcd v3 semantics (one global revision, CAS on
mod_revision, list + watch from a revision) in one local file, so a single host
needs no datastore daemon.

Schema (see ``_SCHEMA``):

* ``meta(key, value)``: ``revision`` (latest write, 0 when never written),
  ``compacted_revision`` (events <= it are gone), ``schema_version``.
* ``resources(kind, name, create_revision, mod_revision, value)``, primary key
  ``(kind, name)``; ``value`` is compact JSON text and is the last column so
  reading the revisions never touches a big value's overflow pages.
* ``events(revision, seq, type, kind, name, size, value, prev_value)``, primary
  key ``(revision, seq)``; ``seq`` is the op's index within its commit, ``size``
  the characters of value + prev_value; ``meta.history_size`` is their sum.

History is bounded twice: at most ``history_retention`` revisions and at most
``history_max_bytes`` of event values (a 1,000,000-net set is ~18 MB, and each
update of it stores the new and the old value). The latest commit is always
kept, so a watcher that is caught up never sees a compaction error.

Durability: WAL with ``synchronous=NORMAL``. A commit is atomic and the file
never corrupts, and a crash of the *process* loses nothing; but after a power
loss or kernel crash the last few commits before it may be rolled back (they
were not yet fsynced). FULL costs ~4x the commit rate for that guarantee.

Threading model: a small pool of connections. Every ``get``/``list``/``commit``
/``compact``/``current_revision`` borrows one connection for its duration, so no
two threads ever use a connection at the same time, and readers run in parallel
with a writer (WAL). Each ``watch`` generator opens its own dedicated connection
and closes it when the generator ends (exhausted, stopped, closed or collected).
Processes coordinate through SQLite's file locks: writers use ``BEGIN IMMEDIATE``
and queue behind each other up to ``busy_timeout``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sqlite3
import stat
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from seawall.datastore.interface import (
    AlreadyExists,
    Conflict,
    Create,
    Datastore,
    DatastoreUnavailable,
    Delete,
    EventType,
    Keep,
    KeyValue,
    ListResult,
    NotFound,
    Op,
    RevisionCompacted,
    Update,
    WatchEvent,
)

__all__ = ["SqliteDatastore"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS resources (
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) STRICT;
CREATE TABLE IF NOT EXISTS events (
    revision   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('PUT', 'DELETE')),
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    value      TEXT,
    prev_value TEXT,
    PRIMARY KEY (revision, seq)
) STRICT;
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('compacted_revision', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('history_size', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', 1);
"""

_BUSY_TIMEOUT_S = 1.0  # a busy store is reported within about a second
_WAL_SIZE_LIMIT = 64 * 1024 * 1024  # truncate the -wal file back to this after checkpoints
_MAX_IDLE_CONNECTIONS = 4
_WATCH_BATCH_ROWS = 256
_WATCH_BATCH_BYTES = 32 * 1024 * 1024  # stop a batch early once its values exceed this
_SEQ_DONE = 1 << 62  # "every seq of this revision has been seen"


_T = TypeVar("_T")


class _Missing(DatastoreUnavailable):
    """There is no datastore (file or schema) at the path yet."""


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _check_owner(path: Path, st: os.stat_result, what: str) -> None:
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise DatastoreUnavailable(
            f"refusing SQLite datastore: {what} {path} is owned by {_owner(st.st_uid)}, not by you "
            f"({_owner(me)}) or root; fix with: chown {me} {path}"
        )


def check_dir_safety(directory: Path) -> None:
    """Refuse a directory owned by another user, or writable by group/others
    (unless sticky, as /tmp)."""
    st = os.stat(directory)
    _check_owner(directory, st, "directory")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        raise DatastoreUnavailable(
            f"refusing SQLite datastore: directory {directory} is writable by group/others "
            f"(mode {mode:04o}, owner {_owner(st.st_uid)}); fix with: chmod go-w {directory}"
        )


def check_file_safety(path: Path) -> bool:
    """As ssh checks its files: False when ``path`` does not exist; raise
    DatastoreUnavailable when it (or its -wal/-shm) is a symlink, not a regular
    file, owned by another user, or writable by group/others, or when its
    directory is unsafe. Never changes anything."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    check_dir_safety(path.parent)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file != path:
            try:
                st = os.lstat(file)
            except FileNotFoundError:
                continue
        if stat.S_ISLNK(st.st_mode):
            raise DatastoreUnavailable(
                f"refusing SQLite datastore: {file} is a symbolic link (to {os.readlink(file)}); "
                "Seawall does not follow symlinks for its database: name the real file"
            )
        if not stat.S_ISREG(st.st_mode):
            raise DatastoreUnavailable(f"refusing SQLite datastore: {file} is not a regular file")
        _check_owner(file, st, "file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise DatastoreUnavailable(
                f"refusing SQLite datastore: {file} is writable by group/others "
                f"(mode {mode:04o}, owner {_owner(st.st_uid)}); fix with: chmod go-w {file}"
            )
    return True


def _dumps(value: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        raise TypeError(f"a resource value must be a dict, not {type(value).__name__}")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


class SqliteDatastore(Datastore):
    """The embedded default datastore: one SQLite file in WAL mode."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        history_retention: int = 10_000,
        history_max_bytes: int = 256 * 1024 * 1024,
        poll_interval: float = 0.002,
        create: bool | None = True,
        busy_timeout: float = _BUSY_TIMEOUT_S,
        on_create: Callable[[Path], None] | None = None,
        on_missing_read: Callable[[Path], None] | None = None,
    ) -> None:
        """``create``: True = create file and schema now if missing; None = only
        on the first write; False = never (read-only use). With None or False a
        read of a store that does not exist yet sees it empty (revision 0) and
        creates nothing; ``on_missing_read`` is then called once with the path
        (the CLI prints a note). ``on_create`` is called with the path after
        this object created a new database file."""
        if history_retention < 1:
            raise ValueError("history_retention must be >= 1")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        if busy_timeout <= 0:
            raise ValueError("busy_timeout must be > 0")
        self.path = Path(path).absolute()  # watch connections must not follow a chdir
        self.history_retention = history_retention
        self.history_max_bytes = history_max_bytes
        self.poll_interval = poll_interval
        self.busy_timeout = busy_timeout
        self._create = create
        self._on_create = on_create
        self._on_missing_read = on_missing_read
        self._noted_missing = False
        self._lock = threading.Lock()
        self._ready_lock = threading.Lock()
        self._ready = False
        self._idle: list[sqlite3.Connection] = []
        self._closed = threading.Event()
        try:
            self._ensure_ready(write=bool(create))
        except DatastoreUnavailable as exc:
            if create is not True and isinstance(exc, _Missing):
                return  # reads see it empty; with None the first write creates it
            raise
        except (OSError, sqlite3.Error) as exc:
            raise self._wrap(exc, "cannot open") from exc

    # ----------------------------------------------------------- connections

    def _wrap(self, exc: BaseException, what: str = "") -> DatastoreUnavailable:
        """A DatastoreUnavailable naming the file for an sqlite3/OS error."""
        where = f"SQLite datastore {self.path}"
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
            return DatastoreUnavailable(
                f"{where} is busy: another process holds its lock "
                f"(gave up after {self.busy_timeout:g} s); try again"
            )
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return DatastoreUnavailable(f"{where} is damaged or not a Seawall database: {exc}")
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DatastoreUnavailable(f"{what + ' ' if what else ''}{where}: {detail}")

    def _ensure_ready(self, *, write: bool) -> None:
        """Check the file is safe and has the schema; with ``write``, create the
        file/schema when missing (the only time the write lock is taken here)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            created = False
            if not check_file_safety(self.path):
                if not write:
                    raise _Missing(f"no datastore at {self.path} (nothing has been written yet)")
                created = self._create_file()
            conn = self._connect()
            try:
                if not self._has_schema(conn):
                    if not write:
                        raise _Missing(f"no datastore at {self.path} (the file has no Seawall schema)")
                    self._set_up_schema(conn)
            except BaseException:
                conn.close()
                raise
            self._release(conn)
            self._ready = True
        if created and self._on_create is not None:
            self._on_create(self.path)

    def _create_file(self) -> bool:
        """Create directory and file owner-only, never following a symlink. False
        when another process created the file first."""
        parent = self.path.parent
        old_umask = os.umask(0o077)
        try:
            if not parent.exists():
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            check_dir_safety(parent)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                check_file_safety(self.path)
                return False
            os.close(fd)
            return True
        finally:
            os.umask(old_umask)

    def _has_schema(self, conn: sqlite3.Connection) -> bool:
        """Read-only check (no write lock); raises on a foreign schema version."""
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            foreign = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
            if foreign:  # another application's database: never add our schema to it
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise DatastoreUnavailable(
                    f"{self.path} is not a Seawall database (it holds other tables: {shown}); Seawall leaves it unchanged"
                ) from None
            return False
        if row is None:
            return False
        if int(row[0]) != SCHEMA_VERSION:
            raise DatastoreUnavailable(
                f"{str(self.path)!r} has schema version {row[0]}, this version reads {SCHEMA_VERSION}"
            )
        return True

    def _set_up_schema(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatastoreUnavailable(f"cannot switch {str(self.path)!r} to WAL ({mode})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            version = self._meta(conn, "schema_version")
            if version != SCHEMA_VERSION:
                raise DatastoreUnavailable(
                    f"{str(self.path)!r} has schema version {version}, "
                    f"this version reads {SCHEMA_VERSION}"
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: SQLite never creates the file (only _create_file does), and the
        # path is re-checked first, so a symlink swapped in later is refused too.
        # isolation_level=None: no implicit transactions, we BEGIN/COMMIT ourselves.
        # check_same_thread=False: pooled and watch connections may move between
        # threads, but are never used by two threads at once.
        if not check_file_safety(self.path):
            raise _Missing(f"no datastore at {self.path}")
        uri = "file:" + urllib.parse.quote(str(self.path)) + "?mode=rw"
        conn = sqlite3.connect(
            uri, uri=True, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()
        with self._lock:
            if not self._closed.is_set() and len(self._idle) < _MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    @contextlib.contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        if self._closed.is_set():
            raise DatastoreUnavailable(f"SQLite datastore {str(self.path)!r} is closed")
        try:
            self._ensure_ready(write=write and self._create is not False)
        except (OSError, sqlite3.Error) as exc:
            raise self._wrap(exc) from exc
        with self._lock:
            if self._closed.is_set():
                raise DatastoreUnavailable(f"SQLite datastore {str(self.path)!r} is closed")
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._connect()
            yield conn
        except (OSError, sqlite3.Error) as exc:  # locked after busy_timeout, disk full, malformed
            raise self._wrap(exc) from exc
        finally:
            if conn is not None:
                self._release(conn)

    def close(self) -> None:
        """Close pooled connections; later calls raise DatastoreUnavailable and
        running watches return. Connections in use are closed when returned."""
        with self._lock:
            self._closed.set()
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ----------------------------------------------------------------- reads

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> int:
        return int(conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def _read(self, read: Callable[[], _T], empty: _T) -> _T:
        """``read()``, or ``empty`` when there is no store yet and this object may
        not create it now (``create`` None/False; the note is given once)."""
        try:
            return read()
        except _Missing:
            if self._create is True:
                raise
            if not self._noted_missing:
                self._noted_missing = True
                if self._on_missing_read is not None:
                    self._on_missing_read(self.path)
            return empty

    def _meta_now(self, key: str) -> int:
        with self._connection() as conn:
            return self._meta(conn, key)

    def current_revision(self) -> int:
        return self._read(lambda: self._meta_now("revision"), 0)

    def compacted_revision(self) -> int:
        """Events with revision <= this are gone (0 when nothing was compacted)."""
        return self._read(lambda: self._meta_now("compacted_revision"), 0)

    def get(self, kind: str, name: str) -> KeyValue:
        row = self._read(lambda: self._row(kind, name), None)
        if row is None:
            raise NotFound(kind, name)
        return KeyValue(kind, name, json.loads(row[2]), row[0], row[1])

    def _row(self, kind: str, name: str) -> tuple[int, int, str] | None:
        with self._connection() as conn:
            return conn.execute(
                "SELECT create_revision, mod_revision, value FROM resources WHERE kind=? AND name=?",
                (kind, name),
            ).fetchone()

    def list(self, kind: str | None = None, *, keep: Keep | None = None) -> ListResult:
        return self._read(lambda: self._list(kind, keep), ListResult(items=[], revision=0))

    def _list(self, kind: str | None, keep: Keep | None) -> ListResult:
        with self._connection() as conn:
            conn.execute("BEGIN")  # one read transaction = one WAL snapshot
            try:
                revision = self._meta(conn, "revision")
                if kind is None:
                    cursor = conn.execute(
                        "SELECT kind, name, create_revision, mod_revision, value FROM resources"
                        " ORDER BY kind, name"
                    )
                else:
                    cursor = conn.execute(
                        "SELECT kind, name, create_revision, mod_revision, value FROM resources"
                        " WHERE kind=? ORDER BY kind, name",
                        (kind,),
                    )
                if keep is None:
                    items = [KeyValue(k, n, json.loads(v), c, m) for k, n, c, m, v in cursor]
                else:
                    items = [KeyValue(k, n, keep(k, json.loads(v)), c, m) for k, n, c, m, v in cursor]
            finally:
                conn.execute("COMMIT")
        return ListResult(items=items, revision=revision)

    # ---------------------------------------------------------------- writes

    def commit(self, ops: Sequence[Op]) -> builtins.list[KeyValue]:
        """Apply ``ops`` in one ``BEGIN IMMEDIATE`` transaction under one revision.

        Returned ``KeyValue.value`` for a Create/Update is the caller's dict itself
        (not a copy: values can be tens of MB). Two ops on the same key in one
        commit raise ValueError (etcd rejects duplicate keys in a txn too)."""
        ops = list(ops)
        if not ops:
            return []
        seen: set[tuple[str, str]] = set()
        for op in ops:
            if not isinstance(op, (Create, Update, Delete)):
                raise TypeError(f"not a datastore op: {op!r}")
            key = (op.kind, op.name)
            if key in seen:
                raise ValueError(f"{op.kind}({op.name}) appears twice in one commit")
            seen.add(key)
        # Serialise before taking the write lock: it is the slow part for big values.
        texts = [None if isinstance(op, Delete) else _dumps(op.value) for op in ops]
        with self._connection(write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                revision = self._meta(conn, "revision") + 1
                sizes: list[int] = []
                results = [
                    self._apply(conn, revision, seq, op, text, sizes)
                    for seq, (op, text) in enumerate(zip(ops, texts, strict=True))
                ]
                conn.execute("UPDATE meta SET value=? WHERE key='revision'", (revision,))
                added = sum(result_size for result_size in sizes)
                conn.execute("UPDATE meta SET value=value+? WHERE key='history_size'", (added,))
                floor = max(revision - self.history_retention, self._size_floor(conn, revision))
                if floor > self._meta(conn, "compacted_revision"):
                    self._compact_locked(conn, floor)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return results

    @staticmethod
    def _apply(
        conn: sqlite3.Connection, revision: int, seq: int, op: Op, text: str | None, sizes: builtins.list[int]
    ) -> KeyValue:
        """Apply one op; append the size of the event it wrote to ``sizes``."""
        row = conn.execute(
            "SELECT create_revision, mod_revision, size FROM resources WHERE kind=? AND name=?",
            (op.kind, op.name),
        ).fetchone()
        if isinstance(op, Create):
            if row is not None:
                raise AlreadyExists(op.kind, op.name)
            assert text is not None
            conn.execute(
                "INSERT INTO resources (kind, name, create_revision, mod_revision, size, value)"
                " VALUES (?,?,?,?,?,?)",
                (op.kind, op.name, revision, revision, len(text), text),
            )
            conn.execute(
                "INSERT INTO events (revision, seq, type, kind, name, value, prev_value, size)"
                " VALUES (?,?,'PUT',?,?,?,NULL,?)",
                (revision, seq, op.kind, op.name, text, len(text)),
            )
            sizes.append(len(text))
            return KeyValue(op.kind, op.name, op.value, revision, revision)
        if row is None:
            raise NotFound(op.kind, op.name)
        create_revision, mod_revision, old_size = row
        if op.expected_revision is not None and op.expected_revision != mod_revision:
            raise Conflict(op.kind, op.name, op.expected_revision, mod_revision)
        if isinstance(op, Update):
            # prev_value is copied inside SQLite: the old text never enters Python.
            assert text is not None
            conn.execute(
                "INSERT INTO events (revision, seq, type, kind, name, value, prev_value, size)"
                " SELECT ?, ?, 'PUT', kind, name, ?, value, ? FROM resources WHERE kind=? AND name=?",
                (revision, seq, text, len(text) + old_size, op.kind, op.name),
            )
            conn.execute(
                "UPDATE resources SET mod_revision=?, size=?, value=? WHERE kind=? AND name=?",
                (revision, len(text), text, op.kind, op.name),
            )
            sizes.append(len(text) + old_size)
            return KeyValue(op.kind, op.name, op.value, create_revision, revision)
        old_text = conn.execute(
            "SELECT value FROM resources WHERE kind=? AND name=?", (op.kind, op.name)
        ).fetchone()[0]
        conn.execute("DELETE FROM resources WHERE kind=? AND name=?", (op.kind, op.name))
        conn.execute(
            "INSERT INTO events (revision, seq, type, kind, name, value, prev_value, size)"
            " VALUES (?,?,'DELETE',?,?,NULL,?,?)",
            (revision, seq, op.kind, op.name, old_text, old_size),
        )
        sizes.append(old_size)
        return KeyValue(op.kind, op.name, json.loads(old_text), create_revision, mod_revision)

    @staticmethod
    def _compact_locked(conn: sqlite3.Connection, compacted: int) -> None:
        removed = conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM events WHERE revision <= ?", (compacted,)
        ).fetchone()[0]
        conn.execute("UPDATE meta SET value=value-? WHERE key='history_size'", (removed,))
        conn.execute("DELETE FROM events WHERE revision <= ?", (compacted,))
        conn.execute("UPDATE meta SET value=? WHERE key='compacted_revision'", (compacted,))

    def _size_floor(self, conn: sqlite3.Connection, revision: int) -> int:
        """The revision to compact to so that history fits ``history_max_bytes``
        (0 if it already fits). Never compacts the latest commit."""
        excess = self._meta(conn, "history_size") - self.history_max_bytes
        if excess <= 0:
            return 0
        floor = 0
        rows = conn.execute(
            "SELECT revision, SUM(size) FROM events WHERE revision < ? GROUP BY revision ORDER BY revision",
            (revision,),
        )
        for seen, size in rows:
            floor = seen
            excess -= size
            if excess <= 0:
                break
        return floor

    def compact(self, revision: int) -> None:
        """Discard events with revision < ``revision``; a watch from a smaller
        revision then raises RevisionCompacted. Compacting to or below what is
        already compacted is a no-op; beyond the current revision is ValueError
        (as etcd's "future revision")."""
        with self._connection(write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._meta(conn, "revision")
                if revision > current:
                    raise ValueError(
                        f"cannot compact to revision {revision}: current revision is {current}"
                    )
                if revision - 1 > self._meta(conn, "compacted_revision"):
                    self._compact_locked(conn, revision - 1)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # ----------------------------------------------------------------- watch

    def watch(
        self,
        start_revision: int,
        *,
        kinds: Sequence[str] | None = None,
        stop: threading.Event | None = None,
        prev: bool = True,
    ) -> Iterator[WatchEvent]:
        """Yield events with revision >= ``start_revision``, then wait for more by
        polling ``PRAGMA data_version`` every ``poll_interval`` seconds. Returns
        when ``stop`` is set or the store is closed. ``start_revision`` must be
        >= 1 (etcd's "0 = from now" is deliberately not supported)."""
        if start_revision < 1:
            raise ValueError(f"start_revision must be >= 1, got {start_revision}")
        if self._closed.is_set():
            raise DatastoreUnavailable(f"SQLite datastore {str(self.path)!r} is closed")
        return self._watch(start_revision, None if kinds is None else list(kinds), stop, prev)

    def _watch(
        self, start_revision: int, kinds: builtins.list[str] | None, stop: threading.Event | None, prev: bool = True
    ) -> Iterator[WatchEvent]:
        waiter = stop if stop is not None else self._closed
        try:
            self._ensure_ready(write=False)
            conn = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise self._wrap(exc) from exc
        try:
            yield from self._watch_on(conn, waiter, start_revision, kinds, prev)
        except (OSError, sqlite3.Error) as exc:
            raise self._wrap(exc) from exc
        finally:
            conn.close()

    def _watch_on(
        self,
        conn: sqlite3.Connection,
        waiter: threading.Event,
        start_revision: int,
        kinds: builtins.list[str] | None,
        prev: bool = True,
    ) -> Iterator[WatchEvent]:
        kind_filter = ""
        if kinds is not None:
            kind_filter = f" AND kind IN ({','.join('?' * len(kinds))})"
        query = (
            # prev=False: the previous values are not even read (a big chunk's text, twice)
            f"SELECT revision, seq, type, kind, name, value, {'prev_value' if prev else 'NULL'} FROM events"
            " WHERE (revision, seq) > (?, ?)" + kind_filter +  # a range search on the PK
            f" ORDER BY revision, seq LIMIT {_WATCH_BATCH_ROWS}"
        )
        # Position: every event up to (after_rev, after_seq) has been handled.
        after_rev, after_seq = start_revision - 1, _SEQ_DONE
        data_version: int | None = None
        while not (waiter.is_set() or self._closed.is_set()):
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == data_version:
                waiter.wait(self.poll_interval)
                continue
            data_version = version  # read before the batch: a later commit changes it
            batch, caught_up, head, compacted, last_complete = self._watch_batch(
                conn, query, kind_filter, after_rev, after_seq, kinds or []
            )
            needed = after_rev + 1 if after_seq == _SEQ_DONE else after_rev
            if needed <= compacted:
                raise RevisionCompacted(needed, compacted)
            last = len(batch) - 1
            for i, (revision, seq, type_, kind, name, value, prev_value) in enumerate(batch):
                if waiter.is_set() or self._closed.is_set():
                    return
                after_rev, after_seq = revision, seq
                # One read transaction sees whole commits: a revision ends where the next row's
                # begins, or at the batch's end when nothing more was waiting.
                complete = batch[i + 1][0] != revision if i < last else last_complete
                yield WatchEvent(
                    EventType(type_), kind, name, revision, _loads(value), _loads(prev_value), complete
                )
            if caught_up:
                # Nothing else up to head matches: skip past it so that a kinds
                # filter does not leave the position behind compaction.
                if head >= after_rev:
                    after_rev, after_seq = head, _SEQ_DONE
            else:
                data_version = None  # more rows are waiting: fetch again at once

    @staticmethod
    def _watch_batch(
        conn: sqlite3.Connection, query: str, kind_filter: str, after_rev: int, after_seq: int, kinds: builtins.list[str]
    ) -> tuple[builtins.list[tuple[Any, ...]], bool, int, int, bool]:
        """One read transaction: (rows, caught_up, head revision, compacted revision,
        whether the last row ends its revision). Stops early once the fetched values
        exceed the byte budget."""
        conn.execute("BEGIN")
        try:
            head = SqliteDatastore._meta(conn, "revision")
            compacted = SqliteDatastore._meta(conn, "compacted_revision")
            cursor = conn.execute(query, (after_rev, after_seq, *kinds))
            rows: list[tuple[Any, ...]] = []
            size = 0
            caught_up = True
            for row in cursor:
                rows.append(row)
                size += len(row[5] or "") + len(row[6] or "")
                if size >= _WATCH_BATCH_BYTES:
                    caught_up = False
                    break
            else:
                caught_up = len(rows) < _WATCH_BATCH_ROWS
            cursor.close()
            last_complete = caught_up
            if not caught_up:  # cut short: does the last row's revision go on?
                rev, seq = rows[-1][0], rows[-1][1]
                last_complete = conn.execute(
                    "SELECT 1 FROM events WHERE revision = ? AND seq > ?" + kind_filter + " LIMIT 1", (rev, seq, *kinds)
                ).fetchone() is None
        finally:
            conn.execute("COMMIT")
        return rows, caught_up, head, compacted, last_complete
