"""Backends the contract suite runs against, and its watch helper.

Every backend must pass ``test_datastore_contract.py`` unchanged. To add one,
write a ``_<name>_opener(request, tmp_path, stack) -> Opener`` that prepares a
fresh, empty store (for etcd: a throwaway server or a unique key prefix),
registers its cleanup on ``stack`` (an ExitStack closed at teardown, after the
handles) and returns a function opening a new, independent handle on it; then
add it to ``_BACKENDS``.

etcd backends (skipped when Debian's etcd is not installed):

* ``etcd``: a fresh etcd server per test (~0.1 s to start), default settings:
  revisions and compaction are the server's own, as in production;
* ``etcd-sharded``: one server for the session, a unique key prefix per test,
  and sharding forced for every document (threshold 0, 7-byte shards), so the
  whole contract also holds for sharded resources. The contract asserts
  revisions relative to the test's start, so a shared server is fine here.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from seawall.datastore import Datastore, SqliteDatastore, WatchEvent
from seawall.testing import etcd as etcd_testing

Opener = Callable[[], Datastore]


def _sqlite_opener(request: pytest.FixtureRequest, tmp_path: Path, stack: contextlib.ExitStack) -> Opener:
    path = tmp_path / "store.db"
    return lambda: SqliteDatastore(path, poll_interval=0.001)


def _require_etcd() -> None:
    if not etcd_testing.have_etcd():
        pytest.skip(etcd_testing.install_hint)


def _etcd_opener(request: pytest.FixtureRequest, tmp_path: Path, stack: contextlib.ExitStack) -> Opener:
    _require_etcd()
    from seawall.datastore.etcd import EtcdDatastore

    server = stack.enter_context(etcd_testing.etcd_server())
    return lambda: EtcdDatastore([server.endpoint])


def _etcd_sharded_opener(
    request: pytest.FixtureRequest, tmp_path: Path, stack: contextlib.ExitStack
) -> Opener:
    _require_etcd()
    from seawall.datastore.etcd import EtcdDatastore

    server = request.getfixturevalue("shared_etcd_server")
    unique = secrets.token_hex(4)
    prefix = f"/contract-{unique}/calico/resources/v3/projectcalico.org/"
    shard_prefix = f"/contract-{unique}/seawall/shards/"
    return lambda: EtcdDatastore(
        [server.endpoint], prefix=prefix, shard_prefix=shard_prefix, shard_threshold=0, shard_size=7
    )


_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path, contextlib.ExitStack], Opener]] = {
    "sqlite": _sqlite_opener,
    "etcd": _etcd_opener,
    "etcd-sharded": _etcd_sharded_opener,
}


@pytest.fixture(scope="session")
def shared_etcd_server() -> Iterator[etcd_testing.EtcdServer]:
    """One etcd server for the whole session (tests use unique key prefixes)."""
    _require_etcd()
    with etcd_testing.etcd_server() as server:
        yield server


@pytest.fixture(params=sorted(_BACKENDS))
def datastore_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a new handle on the test's (one, fresh) store on each call; all
    handles are closed at teardown, then the store's own resources."""
    with contextlib.ExitStack() as stack:
        opener = _BACKENDS[request.param](request, tmp_path, stack)
        handles: list[Datastore] = []

        def open_handle() -> Datastore:
            handle = opener()
            handles.append(handle)
            return handle

        try:
            yield open_handle
        finally:
            for handle in handles:
                handle.close()


@pytest.fixture
def datastore(datastore_factory: Opener) -> Datastore:
    """The first handle on a fresh, empty store."""
    return datastore_factory()


def collect_events(
    ds: Datastore, start: int, count: int, *, kinds: Sequence[str] | None = None, timeout: float = 10.0
) -> list[WatchEvent]:
    """Up to ``count`` events of ``ds.watch(start)``, consumed in a thread and
    given up after ``timeout`` s (so a missing event fails, never hangs). An
    exception raised by the watch is re-raised here; the watch must end within
    2 s of its stop event."""
    stop = threading.Event()
    events: list[WatchEvent] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for event in ds.watch(start, kinds=kinds, stop=stop):
                events.append(event)
                if len(events) >= count:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    stop.set()
    thread.join(2.0)
    assert not thread.is_alive(), "watch did not return after stop was set"
    if errors:
        raise errors[0]
    return list(events)


@pytest.fixture
def collect() -> Callable[..., list[WatchEvent]]:
    """``collect(ds, start, count, *, kinds=None, timeout=10.0)``: see collect_events."""
    return collect_events
