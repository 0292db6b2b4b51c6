"""Backends the contract suite runs against, and its watch helper.

Every backend must pass ``test_datastore_contract.py`` unchanged. To add one,
write a ``_<name>_opener(tmp_path) -> Opener`` that prepares a fresh, empty store
(for etcd: a throwaway server or a unique key prefix) and returns a function
opening a new, independent handle on it; then add it to ``_BACKENDS``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from seawall.datastore import Datastore, SqliteDatastore, WatchEvent

Opener = Callable[[], Datastore]


def _sqlite_opener(tmp_path: Path) -> Opener:
    path = tmp_path / "store.db"
    return lambda: SqliteDatastore(path, poll_interval=0.001)


_BACKENDS: dict[str, Callable[[Path], Opener]] = {
    "sqlite": _sqlite_opener,
}


@pytest.fixture(params=sorted(_BACKENDS))
def datastore_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a new handle on the test's (one, fresh) store on each call; all
    handles are closed at teardown."""
    opener = _BACKENDS[request.param](tmp_path)
    handles: list[Datastore] = []

    def open_handle() -> Datastore:
        handle = opener()
        handles.append(handle)
        return handle

    yield open_handle
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
