"""The agent's syncer against a fake store that can fail: out of sync while the
datastore is unreachable, last items kept, bounded backoff, relist on return."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from seawall.agent.syncer import Syncer
from seawall.datastore import (
    Datastore,
    DatastoreUnavailable,
    EventType,
    KeyValue,
    ListResult,
    RevisionCompacted,
    WatchEvent,
)

WAIT = 5.0


class FakeStore(Datastore):
    """``items`` is what ``list`` returns; ``events`` feeds open watches;
    ``fail`` (an exception instance or None) makes list/watch raise it."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.revision = 10
        self.fail: BaseException | None = None
        self.events: queue.Queue[WatchEvent | BaseException] = queue.Queue()
        self.list_calls: list[float] = []
        self.lock = threading.Lock()

    def get(self, kind: str, name: str) -> KeyValue:  # pragma: no cover - unused
        raise NotImplementedError

    def list(self, kind: str | None = None, *, keep: Any = None) -> ListResult:
        with self.lock:
            self.list_calls.append(time.monotonic())
            if self.fail is not None:
                raise self.fail
            return ListResult(
                [KeyValue(k, n, v if keep is None else keep(k, v), 1, self.revision)
                 for (k, n), v in sorted(self.items.items())], self.revision
            )

    def commit(self, ops: Sequence[Any]) -> list[KeyValue]:  # pragma: no cover - unused
        raise NotImplementedError

    def current_revision(self) -> int:
        return self.revision

    def watch(
        self, start_revision: int, *, kinds: Sequence[str] | None = None, stop: threading.Event | None = None,
        prev: bool = True,
    ) -> Iterator[WatchEvent]:
        while stop is None or not stop.is_set():
            if self.fail is not None:
                raise self.fail
            try:
                item = self.events.get(timeout=0.01)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            yield item

    def compact(self, revision: int) -> None:  # pragma: no cover - unused
        raise NotImplementedError

    def close(self) -> None:
        pass


def wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def store() -> FakeStore:
    s = FakeStore()
    s.items[("GlobalNetworkSet", "a")] = {"spec": {"nets": ["10.0.0.0/8"]}}
    return s


@pytest.fixture
def syncer(store: FakeStore) -> Iterator[Syncer]:
    s = Syncer(store, retry_initial=0.02, retry_max=0.16)
    s.start()
    yield s
    s.close()
    assert not s._thread.is_alive()


def test_lists_then_applies_watch_events(store: FakeStore, syncer: Syncer) -> None:
    wait_for(lambda: syncer.in_sync)
    assert syncer.items() == [("GlobalNetworkSet", "a", {"spec": {"nets": ["10.0.0.0/8"]}})]
    assert syncer.revision == 10
    store.events.put(WatchEvent(EventType.PUT, "HostEndpoint", "h", 11, {"spec": {}}, None))
    store.events.put(WatchEvent(EventType.DELETE, "GlobalNetworkSet", "a", 12, None, {}))
    wait_for(lambda: syncer.revision == 12)
    assert syncer.items() == [("HostEndpoint", "h", {"spec": {}})]


def test_a_revision_becomes_visible_whole(store: FakeStore, syncer: Syncer) -> None:
    """Events of a transaction not yet complete are held back: no reader sees a head
    without its chunks, and ``changed`` fires once, at the revision's last event."""
    wait_for(lambda: syncer.in_sync)
    syncer.changed.clear()
    store.events.put(WatchEvent(EventType.PUT, "HostEndpoint", "h", 11, {"spec": {}}, None, complete=False))
    store.events.put(WatchEvent(EventType.PUT, "HostEndpoint", "i", 11, {"spec": {}}, None, complete=False))
    time.sleep(0.1)
    assert syncer.revision == 10 and not syncer.changed.is_set()
    assert [n for _, n, _ in syncer.items()] == ["a"]
    store.events.put(WatchEvent(EventType.DELETE, "GlobalNetworkSet", "a", 11, None, {}))
    wait_for(lambda: syncer.revision == 11)
    assert syncer.changed.is_set()
    assert sorted(n for _, n, _ in syncer.items()) == ["h", "i"]


def test_unreachable_store_keeps_last_items_out_of_sync_then_relists(store: FakeStore, syncer: Syncer) -> None:
    wait_for(lambda: syncer.in_sync)
    before = syncer.items()
    calls = len(store.list_calls)
    store.fail = DatastoreUnavailable("etcd down")
    # the open watch fails: out of sync, the last state kept
    wait_for(lambda: not syncer.in_sync)
    assert syncer.items() == before
    assert "etcd down" in (syncer.last_error or "")
    # retries, with a growing but bounded delay
    wait_for(lambda: len(store.list_calls) >= calls + 6, timeout=10)
    assert not syncer.in_sync
    assert syncer.items() == before
    assert syncer.failures >= 6
    gaps = [b - a for a, b in zip(store.list_calls[calls:], store.list_calls[calls + 1 :], strict=False)]
    assert gaps[-1] > gaps[0]  # backoff grows...
    assert max(gaps) < 0.16 * 1.5 + 0.1  # ...up to retry_max (plus scheduling slack)
    # the store is back with different content: relist, in sync, backoff reset
    store.items = {("GlobalNetworkPolicy", "p"): {"spec": {"order": 1}}}
    store.revision = 20
    store.fail = None
    wait_for(lambda: syncer.in_sync)
    assert syncer.items() == [("GlobalNetworkPolicy", "p", {"spec": {"order": 1}})]
    assert syncer.revision == 20
    assert syncer.failures == 0 and syncer.last_error is None
    assert syncer.changed.is_set()


def test_compaction_relists_without_going_out_of_sync(store: FakeStore, syncer: Syncer) -> None:
    wait_for(lambda: syncer.in_sync)
    calls = len(store.list_calls)
    states: list[bool] = []
    watcher = threading.Thread(target=lambda: [states.append(syncer.in_sync) or time.sleep(0.001) for _ in range(200)])
    watcher.start()
    store.events.put(RevisionCompacted(11, 15))
    wait_for(lambda: len(store.list_calls) > calls)
    watcher.join()
    assert all(states)
    assert syncer.in_sync


def test_unexpected_exception_does_not_kill_the_syncer(store: FakeStore, syncer: Syncer) -> None:
    wait_for(lambda: syncer.in_sync)
    store.events.put(RuntimeError("bug in a backend"))
    wait_for(lambda: not syncer.in_sync or syncer.resyncs > 0)
    wait_for(lambda: syncer.in_sync)
    assert syncer._thread.is_alive()
    assert syncer.resyncs >= 1


def test_close_interrupts_the_backoff_promptly(store: FakeStore) -> None:
    store.fail = DatastoreUnavailable("down")
    s = Syncer(store, retry_initial=30, retry_max=60)
    s.start()
    wait_for(lambda: s.failures >= 1)
    started = time.monotonic()
    s.close()
    assert time.monotonic() - started < 1.0
    assert not s._thread.is_alive()
    assert not s.in_sync


def test_next_delay_is_bounded() -> None:
    s = Syncer(FakeStore(), retry_initial=0.5, retry_max=10)
    for failures, low, high in [(1, 0.4, 0.6), (2, 0.8, 1.2), (3, 1.6, 2.4), (10, 8.0, 10.0), (1000, 8.0, 10.0)]:
        s.failures = failures
        assert all(low <= s.next_delay() <= high for _ in range(50))
    with pytest.raises(ValueError):
        Syncer(FakeStore(), retry_initial=0)


class SilentlyPartitionedStore(FakeStore):
    """The watch stays open and quiet (no error, as with dropped packets) while
    unary reads fail: only the probe can notice."""

    def __init__(self) -> None:
        super().__init__()
        self.partitioned = False

    def current_revision(self) -> int:
        if self.partitioned:
            raise DatastoreUnavailable("deadline exceeded")
        return self.revision


def test_the_probe_notices_a_silent_partition_and_its_end() -> None:
    store = SilentlyPartitionedStore()
    store.items[("GlobalNetworkSet", "s")] = {"spec": {}}
    syncer = Syncer(store, probe_s=0.05)
    syncer.start()
    try:
        wait_for(lambda: syncer.in_sync)
        store.partitioned = True
        wait_for(lambda: not syncer.in_sync, timeout=2.0)
        assert syncer.listed  # the watch itself never failed
        assert syncer.items() == [("GlobalNetworkSet", "s", {"spec": {}})]  # last state kept
        store.partitioned = False
        wait_for(lambda: syncer.in_sync, timeout=2.0)
        assert len(store.list_calls) == 1  # no relist needed: the watch was never broken
    finally:
        syncer.close()
