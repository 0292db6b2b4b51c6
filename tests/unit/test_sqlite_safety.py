"""SQLite datastore: says what it does (no creation on read, no write lock for
readers, bounded busy wait, own error type) and checks its files as ssh does."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from seawall.datastore import DatastoreUnavailable, NotFound, open_datastore
from seawall.datastore.sqlite import SqliteDatastore


def _made(path: Path) -> Path:
    with SqliteDatastore(path) as ds:
        ds.create("K", "a", {})
    return path


def test_lazy_open_of_a_missing_file_reads_empty_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "s.db"
    noted: list[Path] = []
    ds = SqliteDatastore(path, create=None, on_missing_read=noted.append)
    listing = ds.list()
    assert listing.items == [] and listing.revision == 0
    assert ds.current_revision() == 0 and ds.compacted_revision() == 0
    with pytest.raises(NotFound):
        ds.get("K", "a")
    assert noted == [path.absolute()]  # said once, not per read
    assert not path.exists() and not path.parent.exists()
    ds.close()


def test_read_only_open_of_a_missing_file_reads_empty_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    ds = SqliteDatastore(path, create=False)
    assert ds.list().items == []
    with pytest.raises(DatastoreUnavailable, match="no datastore at"):
        ds.create("K", "a", {})
    assert not path.exists()
    ds.close()


def test_a_file_without_the_schema_reads_empty_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch(mode=0o600)
    ds = SqliteDatastore(path, create=None)
    assert ds.list().items == [] and path.stat().st_size == 0
    ds.close()


def test_an_eager_open_creates_the_file_at_once(tmp_path: Path) -> None:
    # create=True is the agent's mode: the store exists before it starts watching.
    ds = SqliteDatastore(tmp_path / "s.db")
    ds.close()
    assert (tmp_path / "s.db").exists()


def test_first_write_creates_and_announces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "new" / "s.db"
    with open_datastore(f"sqlite://{path}", create=None) as ds:
        assert not path.exists()
        ds.create("K", "a", {"x": 1})
        assert ds.get("K", "a").value == {"x": 1}
    assert path.exists()
    assert f"created new datastore {path}" in capsys.readouterr().err


def test_empty_datastore_url_is_an_error() -> None:
    with pytest.raises(DatastoreUnavailable, match="empty"):
        open_datastore("")


def test_readers_do_not_take_the_write_lock(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        start = time.monotonic()
        with SqliteDatastore(path, create=None) as ds:
            assert ds.get("K", "a").value == {}
        assert time.monotonic() - start < 0.5
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_busy_store_says_so_within_about_a_second(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with SqliteDatastore(path) as ds:
            start = time.monotonic()
            with pytest.raises(DatastoreUnavailable, match=f"{path} is busy"):
                ds.create("K", "b", {})
            assert time.monotonic() - start < 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_damaged_file_raises_the_datastore_error_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database at all" * 200)
    path.chmod(0o600)
    with pytest.raises(DatastoreUnavailable, match=str(path)):
        SqliteDatastore(path)


def test_a_malformed_page_raises_the_datastore_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteDatastore(path) as ds:
        for i in range(200):
            ds.create("K", f"n{i}", {"pad": "x" * 500})
    data = bytearray(path.read_bytes())
    for offset in range(4096, len(data), 4096):  # garbage in every page but the header
        data[offset : offset + 4096] = os.urandom(min(4096, len(data) - offset))
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(DatastoreUnavailable, match=str(path)):
        with SqliteDatastore(path, create=None) as ds:
            ds.list()


def test_a_symlinked_database_is_refused(tmp_path: Path) -> None:
    real = _made(tmp_path / "real.db")
    link = tmp_path / "link.db"
    link.symlink_to(real)
    with pytest.raises(DatastoreUnavailable, match="symbolic link"):
        SqliteDatastore(link)
    with pytest.raises(DatastoreUnavailable, match="symbolic link"):
        SqliteDatastore(link, create=None)


def test_a_dangling_symlink_is_not_followed_when_creating(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    link = tmp_path / "s.db"
    link.symlink_to(target)
    with pytest.raises(DatastoreUnavailable, match="symbolic link"):
        SqliteDatastore(link)
    assert not target.exists()


def test_a_file_writable_by_others_is_refused_not_chmodded(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    path.chmod(0o666)
    with pytest.raises(DatastoreUnavailable) as caught:
        SqliteDatastore(path)
    text = str(caught.value)
    assert str(path) in text and "0666" in text and "writable by group/others" in text
    assert f"chmod go-w {path}" in text and "uid 0" in text
    assert path.stat().st_mode & 0o777 == 0o666  # untouched


def test_an_existing_readable_file_is_not_chmodded(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    path.chmod(0o640)
    with SqliteDatastore(path) as ds:
        assert ds.get("K", "a").value == {}
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    os.chown(path, 65534, 65534)
    with pytest.raises(DatastoreUnavailable) as caught:
        SqliteDatastore(path)
    text = str(caught.value)
    assert str(path) in text and "uid 65534" in text and "chown" in text


def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    path = _made(directory / "s.db")
    os.chown(directory, 65534, 65534)
    with pytest.raises(DatastoreUnavailable, match=f"directory {directory} is owned by uid 65534"):
        SqliteDatastore(path)


def test_a_group_writable_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    directory.chmod(0o770)
    with pytest.raises(DatastoreUnavailable, match=f"directory {directory} is writable by group/others"):
        SqliteDatastore(directory / "s.db")
    assert not (directory / "s.db").exists()


def test_a_new_file_is_owner_only(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    assert path.stat().st_mode & 0o777 == 0o600


def test_password_file_and_redaction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "pw"
    secret.write_text("")
    with pytest.raises(DatastoreUnavailable, match="empty"):
        open_datastore("etcd://127.0.0.1:1", username="u", password_file=str(secret))
    with pytest.raises(DatastoreUnavailable, match="cannot read etcd password file"):
        open_datastore("etcd://127.0.0.1:1", username="u", password_file=str(tmp_path / "none"))
    with pytest.raises(DatastoreUnavailable) as caught:
        open_datastore("etcd://bob:hunter2@bad/path")
    assert "hunter2" not in str(caught.value) and "bob:***@" in str(caught.value)
    with pytest.raises(DatastoreUnavailable) as caught:
        open_datastore("etcd://", endpoints="http://bob:hunter2@h:x/")
    assert "hunter2" not in str(caught.value)


def test_url_credentials_are_used(tmp_path: Path) -> None:
    store = open_datastore("etcd://bob:pw%40x@127.0.0.1:1")
    try:
        assert store._username == "bob"  # type: ignore[attr-defined]
        assert store._password == "pw@x"  # type: ignore[attr-defined]
        assert "pw" not in repr(store)
    finally:
        store.close()


def test_another_applications_database_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE resources (id INTEGER PRIMARY KEY, blob TEXT)")
    conn.commit()
    conn.close()
    os.chmod(path, 0o600)
    before = path.read_bytes()
    for create in (True, None):
        with pytest.raises(DatastoreUnavailable, match="is not a Seawall database .*resources"):
            ds = SqliteDatastore(path, create=create)
            try:
                ds.list()
                ds.create("K", "a", {})
            finally:
                ds.close()
    assert path.read_bytes() == before
