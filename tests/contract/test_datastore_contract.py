"""The datastore contract: what the CLI and the agent's list+watch rely on.

Runs against every backend in ``conftest._BACKENDS`` through the ``Datastore``
interface only, so a backend that passes is interchangeable with the others.
Revisions are asserted relative to the store's revision at the start of a test
(``rev0``), never as absolute numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from seawall.datastore import (
    AlreadyExists,
    Conflict,
    Create,
    Datastore,
    Delete,
    EventType,
    KeyValue,
    NotFound,
    RevisionCompacted,
    Update,
    WatchEvent,
)

PUT, DELETE = EventType.PUT, EventType.DELETE
WAIT = 10.0  # upper bound for any wait on the happy path; failures surface as short lists
Collect = Callable[..., list[WatchEvent]]  # the ``collect`` fixture, see conftest
Factory = Callable[[], Datastore]


def put(
    kind: str, name: str, rev: int, value: dict[str, Any], prev: dict[str, Any] | None = None
) -> WatchEvent:
    return WatchEvent(PUT, kind, name, rev, value, prev)


def delete(kind: str, name: str, rev: int, prev: dict[str, Any]) -> WatchEvent:
    return WatchEvent(DELETE, kind, name, rev, None, prev)


# ------------------------------------------------------------------ CRUD


def test_create_then_get(datastore: Datastore) -> None:
    rev0 = datastore.current_revision()
    kv = datastore.create("HostEndpoint", "web-1", {"spec": {"node": "n1"}})
    assert kv == KeyValue("HostEndpoint", "web-1", {"spec": {"node": "n1"}}, rev0 + 1, rev0 + 1)
    assert datastore.get("HostEndpoint", "web-1") == kv
    assert datastore.current_revision() == rev0 + 1


def test_values_round_trip(datastore: Datastore) -> None:
    value = {
        "metadata": {"name": "ünïcødé-✓", "labels": {"a/b": "c"}},
        "spec": {"nets": ["10.0.0.0/8", "2001:db8::/32"], "n": 3, "f": 1.5, "t": True},
        "status": {"none": None, "empty": {}, "list": []},
    }
    datastore.create("GlobalNetworkSet", "s", value)
    assert datastore.get("GlobalNetworkSet", "s").value == value
    assert datastore.list("GlobalNetworkSet").items[0].value == value


def test_get_missing_raises_not_found(datastore: Datastore) -> None:
    with pytest.raises(NotFound) as info:
        datastore.get("HostEndpoint", "nope")
    assert (info.value.kind, info.value.name) == ("HostEndpoint", "nope")


def test_create_existing_raises_already_exists_and_writes_nothing(datastore: Datastore) -> None:
    first = datastore.create("K", "a", {"v": 1})
    with pytest.raises(AlreadyExists) as info:
        datastore.create("K", "a", {"v": 2})
    assert (info.value.kind, info.value.name) == ("K", "a")
    assert datastore.get("K", "a") == first
    assert datastore.current_revision() == first.mod_revision


def test_update_bumps_mod_revision_and_keeps_create_revision(datastore: Datastore) -> None:
    created = datastore.create("K", "a", {"v": 1})
    updated = datastore.update("K", "a", {"v": 2})
    assert updated == KeyValue("K", "a", {"v": 2}, created.create_revision, created.mod_revision + 1)
    assert datastore.get("K", "a") == updated


def test_update_missing_raises_not_found(datastore: Datastore) -> None:
    rev0 = datastore.current_revision()
    with pytest.raises(NotFound):
        datastore.update("K", "a", {"v": 1})
    with pytest.raises(NotFound):
        datastore.update("K", "a", {"v": 1}, expected_revision=rev0)
    assert datastore.current_revision() == rev0


def test_update_compare_and_swap_on_resource_version(datastore: Datastore) -> None:
    created = datastore.create("K", "a", {"v": 1})
    current = datastore.update("K", "a", {"v": 2})
    with pytest.raises(Conflict) as info:
        datastore.update("K", "a", {"v": 3}, expected_revision=created.mod_revision)
    assert (info.value.kind, info.value.name) == ("K", "a")
    assert (info.value.expected, info.value.actual) == (created.mod_revision, current.mod_revision)
    assert datastore.get("K", "a") == current
    assert datastore.current_revision() == current.mod_revision
    updated = datastore.update("K", "a", {"v": 3}, expected_revision=current.mod_revision)
    assert updated == KeyValue("K", "a", {"v": 3}, created.create_revision, current.mod_revision + 1)


def test_delete_returns_deleted_value_with_old_revisions(datastore: Datastore) -> None:
    datastore.create("K", "a", {"v": 1})
    last = datastore.update("K", "a", {"v": 2})
    deleted = datastore.delete("K", "a")
    assert deleted == last
    assert datastore.current_revision() == last.mod_revision + 1
    with pytest.raises(NotFound):
        datastore.get("K", "a")
    with pytest.raises(NotFound):
        datastore.delete("K", "a")
    assert datastore.list("K").items == []


def test_delete_with_expected_revision(datastore: Datastore) -> None:
    created = datastore.create("K", "a", {"v": 1})
    current = datastore.update("K", "a", {"v": 2})
    with pytest.raises(Conflict) as info:
        datastore.delete("K", "a", expected_revision=created.mod_revision)
    assert (info.value.expected, info.value.actual) == (created.mod_revision, current.mod_revision)
    assert datastore.get("K", "a") == current
    assert datastore.delete("K", "a", expected_revision=current.mod_revision) == current
    with pytest.raises(NotFound):
        datastore.get("K", "a")


def test_recreate_after_delete_gets_new_create_revision(datastore: Datastore) -> None:
    first = datastore.create("K", "a", {"v": 1})
    datastore.delete("K", "a")
    again = datastore.create("K", "a", {"v": 2})
    assert again.create_revision == again.mod_revision == first.mod_revision + 2


def test_list_sorted_by_kind_and_name_with_kind_filter(datastore: Datastore) -> None:
    for kind, name in [("B", "y"), ("A", "y"), ("B", "a"), ("A", "b"), ("C", "m")]:
        datastore.create(kind, name, {"k": kind, "n": name})
    everything = datastore.list()
    assert [(kv.kind, kv.name) for kv in everything.items] == [
        ("A", "b"), ("A", "y"), ("B", "a"), ("B", "y"), ("C", "m")
    ]
    assert datastore.get("A", "y").value == {"k": "A", "n": "y"}  # same name, other kind
    assert everything.revision == datastore.current_revision()
    only_b = datastore.list("B")
    assert [kv.name for kv in only_b.items] == ["a", "y"]
    assert only_b.revision == everything.revision
    assert datastore.list("Nothing").items == []
    assert all(kv == datastore.get(kv.kind, kv.name) for kv in everything.items)


# ---------------------------------------------------------- transactions


@pytest.mark.parametrize(
    ("third", "error"),
    [
        (Create("K", "existing", {"v": 9}), AlreadyExists),
        (Update("K", "missing", {"v": 9}), NotFound),
        (Delete("K", "missing"), NotFound),
        (Update("K", "existing", {"v": 9}, expected_revision=-5), Conflict),
        (Delete("K", "existing", expected_revision=-5), Conflict),
    ],
)
def test_commit_is_all_or_nothing(datastore: Datastore, third: Any, error: type[Exception]) -> None:
    existing = datastore.create("K", "existing", {"v": 0})
    doomed = datastore.create("K", "doomed", {"v": 0})
    before = datastore.list()
    with pytest.raises(error):
        datastore.commit([Create("K", "new", {"v": 1}), Update("K", "doomed", {"v": 1}), third])
    assert datastore.current_revision() == doomed.mod_revision
    assert datastore.list() == before
    assert datastore.get("K", "existing") == existing
    # the next successful write takes the very next revision: nothing was consumed
    assert datastore.create("K", "after", {}).mod_revision == doomed.mod_revision + 1


def test_commit_raises_the_first_failing_op(datastore: Datastore) -> None:
    datastore.create("K", "a", {})
    with pytest.raises(NotFound):
        datastore.commit([Update("K", "missing", {}), Create("K", "a", {})])
    with pytest.raises(AlreadyExists):
        datastore.commit([Create("K", "a", {}), Update("K", "missing", {})])


def test_one_revision_per_commit_shared_by_all_its_keys(datastore: Datastore, collect: Collect) -> None:
    datastore.create("K", "upd", {"v": 0})
    gone = datastore.create("K", "del", {"v": 0})
    rev0 = datastore.current_revision()
    results = datastore.commit(
        [
            Create("K", "new", {"v": 1}),
            Update("K", "upd", {"v": 1}),
            Delete("K", "del"),
            Create("J", "x", {}),
        ]
    )
    rev = rev0 + 1
    assert datastore.current_revision() == rev
    assert [kv.mod_revision for kv in results] == [rev, rev, gone.mod_revision, rev]
    assert results[2] == gone
    assert {(kv.kind, kv.name): kv.mod_revision for kv in datastore.list().items} == {
        ("J", "x"): rev, ("K", "new"): rev, ("K", "upd"): rev
    }
    events = collect(datastore, rev, 4)
    assert [(e.type, e.kind, e.name, e.revision) for e in events] == [
        (PUT, "K", "new", rev), (PUT, "K", "upd", rev), (DELETE, "K", "del", rev), (PUT, "J", "x", rev)
    ]


def test_empty_commit_is_a_no_op(datastore: Datastore) -> None:
    datastore.create("K", "a", {})
    rev0 = datastore.current_revision()
    assert datastore.commit([]) == []
    assert datastore.current_revision() == rev0


def test_same_key_twice_in_one_commit_is_rejected(datastore: Datastore) -> None:
    rev0 = datastore.current_revision()
    with pytest.raises(ValueError):
        datastore.commit([Create("K", "a", {"v": 1}), Update("K", "a", {"v": 2})])
    assert datastore.current_revision() == rev0
    with pytest.raises(NotFound):
        datastore.get("K", "a")


def test_revisions_strictly_increase(datastore: Datastore) -> None:
    seen = [datastore.current_revision()]
    for i in range(20):
        if i % 2 == 0:
            kv = datastore.create("K", f"n{i}", {})
        else:
            kv = datastore.update("K", f"n{i - 1}", {"i": i})
        seen.append(kv.mod_revision)
        assert datastore.current_revision() == kv.mod_revision
    assert seen == sorted(set(seen))


def test_list_is_a_consistent_snapshot_under_concurrent_commits(datastore: Datastore) -> None:
    datastore.commit([Create("K", "a", {"n": 0}), Create("K", "b", {"n": 0})])
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(1, 101):
                datastore.commit([Update("K", "a", {"n": i}), Update("K", "b", {"n": i})])
        finally:
            done.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    snapshots = 0
    deadline = time.monotonic() + WAIT
    while snapshots < 2000 and time.monotonic() < deadline:
        result = datastore.list("K")
        a, b = result.items
        assert a.value == b.value
        assert a.mod_revision == b.mod_revision == result.revision
        snapshots += 1
        if done.is_set():
            break
    thread.join(WAIT)
    assert not thread.is_alive()
    assert datastore.get("K", "a").value == {"n": 100}


# ----------------------------------------------------------------- watch


def test_watch_replays_history_exactly(datastore: Datastore, collect: Collect) -> None:
    rev0 = datastore.current_revision()
    datastore.create("K", "a", {"v": 1})
    datastore.create("K", "b", {"v": 1})
    datastore.update("K", "a", {"v": 2})
    datastore.delete("K", "b")
    datastore.commit([Create("K", "c", {"v": 1}), Update("K", "a", {"v": 3})])
    expected = [
        put("K", "a", rev0 + 1, {"v": 1}),
        put("K", "b", rev0 + 2, {"v": 1}),
        put("K", "a", rev0 + 3, {"v": 2}, {"v": 1}),
        delete("K", "b", rev0 + 4, {"v": 1}),
        put("K", "c", rev0 + 5, {"v": 1}),
        put("K", "a", rev0 + 5, {"v": 3}, {"v": 2}),
    ]
    assert collect(datastore, rev0 + 1, len(expected)) == expected
    assert collect(datastore, rev0 + 3, 4) == expected[2:]
    assert collect(datastore, rev0 + 6, 1, timeout=0.3) == []


def test_watch_from_list_revision_plus_one_sees_only_later_changes(
    datastore: Datastore, collect: Collect
) -> None:
    datastore.create("K", "a", {"v": 1})
    datastore.create("K", "b", {"v": 1})
    snapshot = datastore.list()
    datastore.update("K", "a", {"v": 2})
    datastore.delete("K", "b")
    rev = snapshot.revision
    assert collect(datastore, rev + 1, 2) == [
        put("K", "a", rev + 1, {"v": 2}, {"v": 1}),
        delete("K", "b", rev + 2, {"v": 1}),
    ]
    assert collect(datastore, rev + 3, 1, timeout=0.3) == []


def test_watch_has_no_gap_and_no_duplicate_under_a_concurrent_writer(
    datastore: Datastore, collect: Collect
) -> None:
    n = 300
    start = datastore.current_revision() + 1
    written: list[WatchEvent] = []

    def writer() -> None:
        for i in range(n):
            if i % 3 == 2:
                kv = datastore.update("K", f"k{i - 1:03d}", {"i": i})
                written.append(put("K", kv.name, kv.mod_revision, {"i": i}, {"i": i - 1}))
            else:
                kv = datastore.create("K", f"k{i:03d}", {"i": i})
                written.append(put("K", kv.name, kv.mod_revision, {"i": i}))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    events = collect(datastore, start, n)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert events == written
    assert [e.revision for e in events] == list(range(start, start + n))
    assert collect(datastore, start + n, 1, timeout=0.3) == []


def test_watch_kinds_filter(datastore: Datastore, collect: Collect) -> None:
    rev0 = datastore.current_revision()
    datastore.create("A", "1", {})
    datastore.create("B", "1", {})
    datastore.create("C", "1", {})
    datastore.commit([Create("A", "2", {}), Create("B", "2", {})])
    events = collect(datastore, rev0 + 1, 3, kinds=["A", "C"])
    assert [(e.kind, e.name, e.revision) for e in events] == [
        ("A", "1", rev0 + 1), ("C", "1", rev0 + 3), ("A", "2", rev0 + 4)
    ]
    assert collect(datastore, rev0 + 5, 1, kinds=["A", "C"], timeout=0.3) == []
    assert [e.name for e in collect(datastore, rev0 + 1, 2, kinds=["B"])] == ["1", "2"]


def test_watch_marks_where_each_revision_ends(datastore: Datastore, collect: Collect) -> None:
    """``complete`` is False on every event of a transaction but its last, so a watcher
    can publish whole revisions only (also when a kinds filter hides the last key)."""
    rev0 = datastore.current_revision()
    datastore.create("A", "0", {})
    datastore.commit([Create("A", "1", {}), Create("A", "2", {}), Create("B", "1", {})])
    datastore.commit([Create("A", "3", {}), Create("B", "2", {}), Create("A", "4", {})])
    events = collect(datastore, rev0 + 1, 7)
    assert [(e.kind, e.name, e.revision, e.complete) for e in events] == [
        ("A", "0", rev0 + 1, True), ("A", "1", rev0 + 2, False), ("A", "2", rev0 + 2, False), ("B", "1", rev0 + 2, True),
        ("A", "3", rev0 + 3, False), ("B", "2", rev0 + 3, False), ("A", "4", rev0 + 3, True),
    ]
    filtered = collect(datastore, rev0 + 1, 5, kinds=["A"])
    assert [(e.name, e.revision, e.complete) for e in filtered] == [
        ("0", rev0 + 1, True), ("1", rev0 + 2, False), ("2", rev0 + 2, True), ("3", rev0 + 3, False), ("4", rev0 + 3, True),
    ]


def test_watch_without_previous_values(datastore: Datastore) -> None:
    """``prev=False``: the same events, each with ``prev_value`` None."""
    rev0 = datastore.current_revision()
    datastore.create("K", "a", {"v": 1})
    datastore.update("K", "a", {"v": 2})
    datastore.delete("K", "a")
    stop = threading.Event()
    events = []
    for event in datastore.watch(rev0 + 1, stop=stop, prev=False):
        events.append(event)
        if len(events) == 3:
            stop.set()
            break
    assert [(e.type, e.revision, e.value, e.prev_value) for e in events] == [
        (PUT, rev0 + 1, {"v": 1}, None), (PUT, rev0 + 2, {"v": 2}, None), (DELETE, rev0 + 3, None, None)]


def test_watch_from_a_future_revision_waits_for_it(datastore: Datastore, collect: Collect) -> None:
    rev0 = datastore.current_revision()
    result: list[list[WatchEvent]] = []
    thread = threading.Thread(target=lambda: result.append(collect(datastore, rev0 + 3, 2)), daemon=True)
    thread.start()
    time.sleep(0.05)
    for i in range(4):
        datastore.create("K", f"n{i}", {"i": i})
    thread.join(WAIT + 3)
    assert [(e.name, e.revision) for e in result[0]] == [("n2", rev0 + 3), ("n3", rev0 + 4)]


def test_stop_ends_a_waiting_watch_promptly(datastore: Datastore) -> None:
    datastore.create("K", "a", {})
    stop = threading.Event()
    events: list[WatchEvent] = []
    finished = threading.Event()

    def run() -> None:
        for event in datastore.watch(datastore.current_revision(), stop=stop):
            events.append(event)
        finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(events) == 1
    time.sleep(0.05)  # let it block waiting for more
    stop.set()
    assert finished.wait(1.0), "watch did not return within 1 s of stop"
    thread.join(1.0)


def test_stop_ends_a_watch_while_events_are_flowing(datastore: Datastore) -> None:
    rev0 = datastore.current_revision()
    datastore.commit([Create("K", f"n{i}", {}) for i in range(50)])
    stop = threading.Event()
    count = 0
    finished = threading.Event()

    def run() -> None:
        nonlocal count
        for _event in datastore.watch(rev0 + 1, stop=stop):
            count += 1
            stop.set()
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    assert finished.wait(2.0)
    assert 1 <= count <= 50


def test_compaction_makes_old_revisions_unavailable(datastore: Datastore, collect: Collect) -> None:
    rev0 = datastore.current_revision()
    for i in range(10):
        datastore.create("K", f"n{i}", {"i": i})
    datastore.compact(rev0 + 6)
    with pytest.raises(RevisionCompacted) as info:
        collect(datastore, rev0 + 5, 1)
    assert info.value.requested == rev0 + 5
    assert info.value.compacted == rev0 + 5  # oldest available is compacted + 1
    with pytest.raises(RevisionCompacted):
        collect(datastore, rev0 + 1, 1)
    events = collect(datastore, rev0 + 6, 5)
    assert [(e.name, e.revision) for e in events] == [(f"n{i}", rev0 + 1 + i) for i in range(5, 10)]
    # compaction drops history only, never current state
    assert len(datastore.list("K").items) == 10
    assert datastore.get("K", "n0").value == {"i": 0}


def test_delete_event_carries_prev_value_and_create_has_none(
    datastore: Datastore, collect: Collect
) -> None:
    rev0 = datastore.current_revision()
    datastore.create("K", "a", {"v": 1})
    datastore.update("K", "a", {"v": 2})
    datastore.delete("K", "a")
    events = collect(datastore, rev0 + 1, 3)
    assert [(e.type, e.value, e.prev_value) for e in events] == [
        (PUT, {"v": 1}, None),
        (PUT, {"v": 2}, {"v": 1}),
        (DELETE, None, {"v": 2}),
    ]


# ------------------------------------------------------ several handles


def test_second_handle_sees_writes_of_the_first(
    datastore: Datastore, datastore_factory: Factory
) -> None:
    other = datastore_factory()
    kv = datastore.create("K", "a", {"v": 1})
    assert other.get("K", "a") == kv
    assert other.current_revision() == datastore.current_revision()
    assert other.list() == datastore.list()
    updated = other.update("K", "a", {"v": 2}, expected_revision=kv.mod_revision)
    assert datastore.get("K", "a") == updated
    with pytest.raises(Conflict):
        datastore.update("K", "a", {"v": 3}, expected_revision=kv.mod_revision)


def test_watch_in_one_handle_sees_commits_from_another(
    datastore: Datastore, datastore_factory: Factory, collect: Collect
) -> None:
    writer = datastore_factory()
    start = datastore.current_revision() + 1
    result: list[list[WatchEvent]] = []
    thread = threading.Thread(target=lambda: result.append(collect(datastore, start, 20)), daemon=True)
    thread.start()
    for i in range(20):
        writer.create("K", f"n{i:02d}", {"i": i})
    thread.join(WAIT + 3)
    assert [(e.name, e.revision) for e in result[0]] == [(f"n{i:02d}", start + i) for i in range(20)]


def test_compare_and_swap_loses_no_update_across_handles(
    datastore: Datastore, datastore_factory: Factory
) -> None:
    datastore.create("K", "counter", {"n": 0})
    per_thread = 50

    def increment(ds: Datastore) -> None:
        done = 0
        for _attempt in range(per_thread * 100):
            if done == per_thread:
                return
            kv = ds.get("K", "counter")
            try:
                ds.update("K", "counter", {"n": kv.value["n"] + 1}, expected_revision=kv.mod_revision)
                done += 1
            except Conflict:
                continue

    handles = (datastore, datastore_factory())
    threads = [threading.Thread(target=increment, args=(ds,), daemon=True) for ds in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert datastore.get("K", "counter").value == {"n": 2 * per_thread}


def test_close_is_idempotent(datastore_factory: Factory) -> None:
    handle = datastore_factory()
    handle.create("K", "a", {})
    handle.close()
    handle.close()
    with datastore_factory() as again:
        assert again.get("K", "a").value == {}
