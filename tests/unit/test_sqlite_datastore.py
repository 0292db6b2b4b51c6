"""What the SQLite backend promises beyond the shared contract: owner-only file
modes, WAL, several OS processes on one file, big values, batching, history
retention, and the datastore URL forms the CLI and agent accept."""

from __future__ import annotations

import math
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import seawall.datastore.sqlite as sqlite_module
from seawall.datastore import (
    DEFAULT_SQLITE_PATH,
    Create,
    DatastoreUnavailable,
    NotFound,
    RevisionCompacted,
    SqliteDatastore,
    WatchEvent,
    open_datastore,
    resolve_datastore_url,
)

WAIT = 10.0

# Run in a child process: open the store, signal ready, wait for "go", then write.
CHILD = r"""
import os, sys, time
from pathlib import Path
from seawall.datastore import Conflict, SqliteDatastore
path, tag, mode, count, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
ds = SqliteDatastore(path)
Path(f"{go}.{tag}.ready").touch()
deadline = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)
if mode == "create":
    for i in range(count):
        ds.create("K", f"{tag}-{i:04d}", {"tag": tag, "i": i})
        time.sleep(0.0005)  # give the other process a window, so that writes interleave
else:
    done = 0
    for _ in range(count * 1000):
        if done == count:
            break
        kv = ds.get("K", "counter")
        try:
            ds.update("K", "counter", {"n": kv.value["n"] + 1}, expected_revision=kv.mod_revision)
            done += 1
        except Conflict:
            pass
    assert done == count, done
ds.close()
"""


def start_children(path: Path, mode: str, count: int, tags: list[str]) -> list[subprocess.Popen[str]]:
    go = str(path.parent / "go")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), tag, mode, str(count), go],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tag in tags
    ]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(Path(f"{go}.{t}.ready").exists() for t in tags):
        time.sleep(0.005)
    Path(go).touch()
    return children


def finish(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        try:
            _out, err = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
        assert child.returncode == 0, err
        assert "locked" not in err


def collect(ds: SqliteDatastore, start: int, count: int, **kw: object) -> list[WatchEvent]:
    stop = threading.Event()
    events: list[WatchEvent] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for event in ds.watch(start, stop=stop, **kw):  # type: ignore[arg-type]
                events.append(event)
                if len(events) >= count:
                    return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT)
    stop.set()
    thread.join(2.0)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return events


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> SqliteDatastore:
    ds = SqliteDatastore(tmp_path / "s.db", poll_interval=0.001)
    yield ds
    ds.close()


# ------------------------------------------------------------ file and modes


def test_fresh_store_is_at_revision_zero(store: SqliteDatastore) -> None:
    assert store.current_revision() == 0
    assert store.compacted_revision() == 0
    assert store.list().revision == 0


def test_created_directory_is_0700_and_files_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "seawall.db"
    umask = os.umask(0o022)
    try:
        with SqliteDatastore(path) as ds:
            ds.create("K", "a", {})
            assert mode_of(tmp_path / "new") == 0o700
            assert mode_of(path.parent) == 0o700
            for name in ("seawall.db", "seawall.db-wal", "seawall.db-shm"):
                assert mode_of(path.parent / name) == 0o600, name
        assert os.umask(0o022) == 0o022  # restored
    finally:
        os.umask(umask)


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    """Seawall never chmods a file it did not create (ssh-style: refuse what is too open instead)."""
    path = tmp_path / "s.db"
    with SqliteDatastore(path) as ds:
        ds.create("K", "a", {})
    path.chmod(0o644)
    before = mode_of(tmp_path)
    with SqliteDatastore(path) as ds:
        assert ds.get("K", "a").value == {}
        assert mode_of(path) == 0o644
    assert mode_of(tmp_path) == before


def test_wal_mode_is_on(store: SqliteDatastore) -> None:
    store.create("K", "a", {})
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_unusable_path_raises_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(DatastoreUnavailable, match="cannot open"):
        SqliteDatastore(tmp_path / "file" / "s.db")


def test_closed_store_raises_unavailable(tmp_path: Path) -> None:
    ds = SqliteDatastore(tmp_path / "s.db")
    ds.close()
    with pytest.raises(DatastoreUnavailable):
        ds.get("K", "a")
    with pytest.raises(DatastoreUnavailable):
        ds.watch(1)


def test_watch_returns_when_the_store_is_closed(store: SqliteDatastore) -> None:
    finished = threading.Event()

    def run() -> None:
        for _event in store.watch(1):
            pass
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    time.sleep(0.05)
    store.close()
    assert finished.wait(1.0)


def test_writer_waits_for_a_lock_held_by_another_connection(store: SqliteDatastore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    started = time.monotonic()
    store.create("K", "a", {})  # blocks on the write lock, then succeeds
    assert time.monotonic() - started >= 0.2
    other.close()


# ------------------------------------------------------------ processes


def test_two_processes_create_concurrently(store: SqliteDatastore) -> None:
    finish(start_children(store.path, "create", 200, ["p1", "p2"]))
    items = store.list("K").items
    assert len(items) == 400
    assert sorted(kv.mod_revision for kv in items) == list(range(1, 401))
    assert store.current_revision() == 400
    writers = [kv.name[:2] for kv in sorted(items, key=lambda kv: kv.mod_revision)]
    switches = sum(a != b for a, b in zip(writers, writers[1:], strict=False))
    assert switches > 1, "the two processes did not actually write at the same time"


def test_two_processes_compare_and_swap_lose_no_update(store: SqliteDatastore) -> None:
    store.create("K", "counter", {"n": 0})
    finish(start_children(store.path, "increment", 100, ["p1", "p2"]))
    assert store.get("K", "counter").value == {"n": 200}


def test_watch_sees_another_process_writes(store: SqliteDatastore) -> None:
    result: list[list[WatchEvent]] = []
    thread = threading.Thread(target=lambda: result.append(collect(store, 1, 100)), daemon=True)
    thread.start()
    finish(start_children(store.path, "create", 100, ["other"]))
    thread.join(WAIT + 3)
    assert [(e.name, e.revision) for e in result[0]] == [(f"other-{i:04d}", i + 1) for i in range(100)]


# ------------------------------------------------------------ values


def test_million_entry_value_round_trips(store: SqliteDatastore) -> None:
    nets = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32" for i in range(1_000_000)]
    value = {"spec": {"nets": nets}}
    started = time.monotonic()
    kv = store.create("GlobalNetworkSet", "big", value)
    written = time.monotonic()
    assert store.get("GlobalNetworkSet", "big").value == value
    read = time.monotonic()
    print(f"1M-entry value: commit {written - started:.2f}s, get {read - written:.2f}s")
    (event,) = collect(store, kv.mod_revision, 1)
    assert event.value == value
    assert time.monotonic() - started < 20


def test_values_must_be_strict_json(store: SqliteDatastore) -> None:
    with pytest.raises(TypeError):
        store.commit([Create("K", "a", {}), Create("K", "b", {"s": {1, 2}})])
    with pytest.raises(ValueError):
        store.create("K", "c", {"f": math.nan})
    with pytest.raises(TypeError):
        store.create("K", "d", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert store.current_revision() == 0
    with pytest.raises(NotFound):
        store.get("K", "a")


# ------------------------------------------------------------ watch internals


def test_watch_batches_across_one_big_commit(
    store: SqliteDatastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_WATCH_BATCH_ROWS", 7)
    monkeypatch.setattr(sqlite_module, "_WATCH_BATCH_BYTES", 200)
    store.create("K", "first", {})
    store.commit([Create("K", f"n{i:03d}", {"pad": "x" * (i % 50)}) for i in range(100)])
    store.create("K", "last", {})
    events = collect(store, 1, 102)
    assert [e.name for e in events] == ["first", *(f"n{i:03d}" for i in range(100)), "last"]
    assert [e.revision for e in events] == [1] + [2] * 100 + [3]
    # Batches cut the big commit; only its last event completes it, whatever the batch edges.
    assert [e.name for e in events if e.complete] == ["first", "n099", "last"]


def test_watch_completes_a_revision_cut_at_its_last_row(
    store: SqliteDatastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that ends exactly at a revision's last row (row limit reached, nothing
    after it): that row still completes the revision (no wait for a later write)."""
    monkeypatch.setattr(sqlite_module, "_WATCH_BATCH_ROWS", 4)
    store.commit([Create("K", f"n{i}", {}) for i in range(4)])
    events = collect(store, 1, 4)
    assert [e.complete for e in events] == [False, False, False, True]


def test_watch_start_revision_must_be_positive(store: SqliteDatastore) -> None:
    with pytest.raises(ValueError):
        store.watch(0)


def test_watch_raises_when_it_falls_behind_compaction(store: SqliteDatastore) -> None:
    store.create("K", "a", {})
    stop = threading.Event()
    watch = store.watch(1, stop=stop)
    assert next(watch).name == "a"
    for i in range(5):
        store.create("K", f"n{i}", {})
    store.compact(store.current_revision())
    with pytest.raises(RevisionCompacted) as info:
        next(watch)
    assert (info.value.requested, info.value.compacted) == (2, 5)


def test_history_retention_compacts_automatically(tmp_path: Path) -> None:
    with SqliteDatastore(tmp_path / "s.db", history_retention=5) as ds:
        for i in range(20):
            ds.create("K", f"n{i}", {})
        assert ds.compacted_revision() == 15
        with pytest.raises(RevisionCompacted):
            collect(ds, 15, 1)
        assert [e.revision for e in collect(ds, 16, 5)] == [16, 17, 18, 19, 20]
        conn = sqlite3.connect(ds.path)
        try:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5
        finally:
            conn.close()


def test_filtered_watch_is_not_overtaken_by_compaction_of_other_kinds(tmp_path: Path) -> None:
    with SqliteDatastore(tmp_path / "s.db", history_retention=3, poll_interval=0.001) as ds:
        result: list[list[WatchEvent]] = []
        thread = threading.Thread(
            target=lambda: result.append(collect(ds, 1, 2, kinds=["A"])), daemon=True
        )
        thread.start()
        ds.create("A", "1", {})
        for i in range(20):
            ds.create("B", str(i), {})
            time.sleep(0.01)  # the watcher keeps up; only the kinds filter could leave it behind
        ds.create("A", "2", {})
        thread.join(WAIT + 3)
        assert [(e.kind, e.name) for e in result[0]] == [("A", "1"), ("A", "2")]


def test_compact_bounds(store: SqliteDatastore) -> None:
    for i in range(5):
        store.create("K", f"n{i}", {})
    with pytest.raises(ValueError):
        store.compact(6)
    store.compact(4)
    assert store.compacted_revision() == 3
    store.compact(2)  # below what is compacted: no-op
    assert store.compacted_revision() == 3


# ------------------------------------------------------------ URLs


def test_resolve_url_prefers_explicit_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEAWALL_DATASTORE", raising=False)
    assert DEFAULT_SQLITE_PATH == "/var/lib/seawall/seawall.db"
    assert resolve_datastore_url(None) == "sqlite:///var/lib/seawall/seawall.db"
    monkeypatch.setenv("SEAWALL_DATASTORE", "sqlite:///from/env.db")
    assert resolve_datastore_url(None) == "sqlite:///from/env.db"
    assert resolve_datastore_url("") == "sqlite:///from/env.db"
    assert resolve_datastore_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_open_absolute_and_relative_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = tmp_path / "abs" / "s.db"
    with open_datastore(f"sqlite://{absolute}") as ds:
        assert isinstance(ds, SqliteDatastore) and ds.path == absolute
        ds.create("K", "a", {})
    assert absolute.exists()
    monkeypatch.chdir(tmp_path)
    with open_datastore("sqlite://rel/s.db") as ds:
        assert isinstance(ds, SqliteDatastore)
    assert (tmp_path / "rel" / "s.db").exists()
    monkeypatch.setenv("SEAWALL_DATASTORE", f"sqlite://{absolute}")
    with open_datastore() as ds:
        assert ds.get("K", "a").value == {}



@pytest.mark.parametrize(
    "url", ["postgres://db/x", "/var/lib/seawall/seawall.db", "sqlite:/x.db", "sqlite://"]
)
def test_unknown_or_malformed_url_is_rejected(url: str) -> None:
    with pytest.raises(DatastoreUnavailable) as info:
        open_datastore(url)
    assert url in str(info.value)
    assert "sqlite:///" in str(info.value)


def test_history_is_bounded_in_bytes_as_well_as_revisions(tmp_path) -> None:
    from seawall.datastore import RevisionCompacted, SqliteDatastore

    store = SqliteDatastore(tmp_path / "bounded.db", history_max_bytes=2000)
    try:
        big = {"nets": ["x" * 100] * 4}  # ~420 characters of JSON per value
        store.create("GlobalNetworkSet", "s", big)
        for _ in range(10):
            store.update("GlobalNetworkSet", "s", big)
        head = store.current_revision()
        with pytest.raises(RevisionCompacted):
            next(iter(store.watch(1)))
        stop = threading.Event()
        events = store.watch(head, stop=stop)
        assert next(events).revision == head  # the latest commit is always kept
        stop.set()
        assert store.compacted_revision() >= head - 3
    finally:
        store.close()
