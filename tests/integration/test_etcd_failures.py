"""The etcd backend against a real etcd (Debian's etcd-server; no root needed):
compaction, restarts and outages, TLS, auth, huge sharded documents, and a
crash between writing shards and swapping the head.

Every wait is bounded; every server is stopped and its data dir removed by the
``etcd_server`` fixture, also when a test fails.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from seawall.datastore import (
    Create,
    DatastoreError,
    DatastoreUnavailable,
    EventType,
    RevisionCompacted,
    Update,
    WatchEvent,
    open_datastore,
)
from seawall.testing.etcd import EtcdServer, etcd_server, have_etcd, install_hint, make_tls

pytestmark = pytest.mark.skipif(not have_etcd(), reason=install_hint)

if have_etcd():
    from seawall.datastore import etcd_keys as ek
    from seawall.datastore.etcd import EtcdDatastore

PUT, DELETE = EventType.PUT, EventType.DELETE
Opener = Callable[..., "EtcdDatastore"]


@pytest.fixture
def server() -> Iterator[EtcdServer]:
    with etcd_server() as s:
        yield s


@pytest.fixture
def open_store(server: EtcdServer) -> Iterator[Opener]:
    handles: list[EtcdDatastore] = []

    def opener(**kw: Any) -> EtcdDatastore:
        handle = EtcdDatastore([server.endpoint], **kw)
        handles.append(handle)
        return handle

    yield opener
    for handle in handles:
        handle.close()


class Watcher:
    """Consumes ``ds.watch(start)`` in a thread: ``events`` and the ``error`` it
    ended with, if any."""

    def __init__(self, ds: EtcdDatastore, start: int, **kw: Any) -> None:
        self.stop = threading.Event()
        self.events: list[WatchEvent] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(ds, start, kw), daemon=True)
        self.thread.start()

    def _run(self, ds: EtcdDatastore, start: int, kw: dict[str, Any]) -> None:
        try:
            for event in ds.watch(start, stop=self.stop, **kw):
                self.events.append(event)
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            self.error = exc

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    def wait_events(self, count: int, timeout: float = 10.0) -> bool:
        return self.wait(lambda: len(self.events) >= count or self.error is not None, timeout)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(3.0)
        assert not self.thread.is_alive(), "watch did not return after stop"


def keys_under(server: EtcdServer, prefix: str) -> list[str]:
    out = server.etcdctl("get", "--prefix", "--keys-only", prefix).stdout
    return [line for line in out.splitlines() if line.strip()]


# ------------------------------------------------------------- compaction


def test_watch_from_a_compacted_revision_raises(open_store: Opener) -> None:
    ds = open_store()
    rev0 = ds.current_revision()
    for i in range(5):
        ds.create("K", f"n{i}", {"i": i})
    ds.compact(rev0 + 4)
    with pytest.raises(RevisionCompacted) as info:
        next(iter(ds.watch(rev0 + 2)))
    assert (info.value.requested, info.value.compacted) == (rev0 + 2, rev0 + 3)
    assert [e.name for e in _take(ds.watch(rev0 + 4), 2)] == ["n3", "n4"]
    ds.compact(rev0 + 2)  # below what is compacted: a no-op
    with pytest.raises(ValueError):
        ds.compact(ds.current_revision() + 10)


def _take(it: Iterator[WatchEvent], n: int) -> list[WatchEvent]:
    out = []
    for event in it:
        out.append(event)
        if len(out) == n:
            break
    return out


def test_compaction_under_an_open_lagging_watch_raises_not_hangs(open_store: Opener) -> None:
    """A watch that falls behind (its consumer stalls, so etcd's sender backs up)
    and is then overtaken by compaction ends with RevisionCompacted after a
    gap-free prefix of the events -- never a hang, never a silent gap."""
    ds = open_store(watch_queue_size=1)
    writer = open_store()
    start = ds.current_revision() + 1
    stop = threading.Event()
    it = ds.watch(start, stop=stop)
    writer.create("K", "first", {})
    assert next(it).name == "first"  # the watch is open and synced
    blob = "x" * 20_000
    n = 800  # ~16 MB of events: more than etcd's and gRPC's buffers hold
    for i in range(n):
        writer.create("K", f"n{i:04d}", {"b": blob})
    writer.compact(writer.current_revision())
    revisions = []
    started = time.monotonic()
    with pytest.raises(RevisionCompacted) as info:
        for event in it:
            revisions.append(event.revision)
            assert time.monotonic() - started < 30
    stop.set()
    assert revisions == list(range(start + 1, start + 1 + len(revisions)))  # no gap before the error
    assert len(revisions) < n
    assert info.value.requested == start + 1 + len(revisions)


# ------------------------------------------------------- restarts, outages


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_restart_under_an_open_watch_loses_nothing(open_store: Opener, server: EtcdServer, how: str) -> None:
    ds, writer = open_store(), open_store()
    start = ds.current_revision() + 1
    watcher = Watcher(ds, start)
    try:
        expected = []
        for i in range(3):
            kv = writer.create("K", f"before{i}", {"i": i})
            expected.append(("before" + str(i), kv.mod_revision))
        assert watcher.wait_events(3)
        server.stop() if how == "stop" else server.kill()
        time.sleep(0.5)
        server.start()
        for i in range(3):
            kv = writer.create("K", f"after{i}", {"i": i})
            expected.append(("after" + str(i), kv.mod_revision))
        watcher.wait_events(6, timeout=15)
        got = [(e.name, e.revision) for e in watcher.events]
        if watcher.error is None:
            assert got == expected  # every event, in order, exactly once
        else:  # the allowed alternative: a DatastoreError after a gap-free prefix
            assert isinstance(watcher.error, DatastoreError)
            assert got == expected[: len(got)]
    finally:
        watcher.close()


def test_watch_raises_unavailable_when_etcd_stays_down(open_store: Opener, server: EtcdServer) -> None:
    ds = open_store(reconnect_window=1.0)
    ds.create("K", "a", {})
    watcher = Watcher(ds, 1)
    try:
        assert watcher.wait_events(1)
        server.stop()
        stopped = time.monotonic()
        assert watcher.wait(lambda: watcher.error is not None, timeout=10)
        assert isinstance(watcher.error, DatastoreUnavailable)
        assert time.monotonic() - stopped < 5
    finally:
        watcher.close()


def test_store_restored_to_an_older_state_under_a_watch_raises(open_store: Opener, server: EtcdServer) -> None:
    ds = open_store()
    watcher = Watcher(ds, 1)
    try:
        for i in range(5):
            ds.create("K", f"n{i}", {})
        assert watcher.wait_events(5)
        server.stop()
        for child in server.data_dir.iterdir():  # a store replaced by an older (here: empty) one
            os.system(f"rm -rf '{child}'")
        server.start()
        assert watcher.wait(lambda: watcher.error is not None, timeout=15)
        assert isinstance(watcher.error, DatastoreError)
        assert "relist" in str(watcher.error)
    finally:
        watcher.close()


def test_operations_fail_fast_while_etcd_is_down_and_recover(open_store: Opener, server: EtcdServer) -> None:
    ds = open_store()
    ds.create("K", "a", {"v": 1})
    server.stop()
    for name, call in [
        ("get", lambda: ds.get("K", "a")),
        ("list", lambda: ds.list()),
        ("commit", lambda: ds.commit([Update("K", "a", {"v": 2})])),
        ("create", lambda: ds.create("K", "b", {})),
        ("current_revision", ds.current_revision),
        ("compact", lambda: ds.compact(1)),
    ]:
        started = time.monotonic()
        with pytest.raises(DatastoreUnavailable):
            call()
        assert time.monotonic() - started < 3, name
    server.start()
    assert ds.get("K", "a").value == {"v": 1}  # nothing was written meanwhile
    assert ds.update("K", "a", {"v": 3}).value == {"v": 3}


def test_unresponsive_endpoint_times_out() -> None:
    """A peer that accepts TCP but never speaks HTTP/2: bounded by ``timeout``."""
    with socket.socket() as sink:
        sink.bind(("127.0.0.1", 0))
        sink.listen(16)
        ds = EtcdDatastore([f"127.0.0.1:{sink.getsockname()[1]}"], timeout=1.0)
        try:
            started = time.monotonic()
            with pytest.raises(DatastoreUnavailable):
                ds.get("K", "a")
            with pytest.raises(DatastoreUnavailable):
                ds.create("K", "a", {})
            assert time.monotonic() - started < 8
        finally:
            ds.close()


def test_nothing_listening_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with EtcdDatastore([f"127.0.0.1:{port}"]) as ds:
        started = time.monotonic()
        with pytest.raises(DatastoreUnavailable):
            ds.list()
        assert time.monotonic() - started < 3


# ------------------------------------------------------------- TLS, auth


def test_tls_with_client_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = make_tls(tmp_path / "pki")
    with etcd_server(tls=tls) as server:
        # flags / options
        with open_datastore(
            server.url, ca_cert_file=str(tls.ca_cert), cert_file=str(tls.client_cert), key_file=str(tls.client_key)
        ) as ds:
            kv = ds.create("GlobalNetworkSet", "s", {"spec": {"nets": ["10.0.0.0/8"]}})
            assert [e.revision for e in _take(ds.watch(kv.mod_revision), 1)] == [kv.mod_revision]
        # Calico's environment variables, https:// endpoint selects TLS
        monkeypatch.delenv("SEAWALL_DATASTORE", raising=False)
        monkeypatch.setenv("ETCD_ENDPOINTS", server.client_url)
        monkeypatch.setenv("ETCD_CA_CERT_FILE", str(tls.ca_cert))
        monkeypatch.setenv("ETCD_CERT_FILE", str(tls.client_cert))
        monkeypatch.setenv("ETCD_KEY_FILE", str(tls.client_key))
        with open_datastore() as ds:
            assert ds.get("GlobalNetworkSet", "s").mod_revision == kv.mod_revision
        # no client certificate: refused
        monkeypatch.delenv("ETCD_CERT_FILE")
        monkeypatch.delenv("ETCD_KEY_FILE")
        with open_datastore() as ds:
            with pytest.raises(DatastoreUnavailable):
                ds.get("GlobalNetworkSet", "s")
        # plain gRPC against a TLS server: refused
        with EtcdDatastore([server.endpoint]) as ds:
            with pytest.raises(DatastoreUnavailable):
                ds.get("GlobalNetworkSet", "s")


def test_username_password_auth_and_token_renewal(monkeypatch: pytest.MonkeyPatch) -> None:
    with etcd_server(extra_args=("--auth-token-ttl", "1")) as server:
        server.etcdctl("user", "add", "root:s3cret")
        server.etcdctl("auth", "enable")
        with EtcdDatastore([server.endpoint], username="root", password="s3cret") as ds:
            kv = ds.create("K", "a", {"v": 1})
            watcher = Watcher(ds, kv.mod_revision)
            try:
                assert watcher.wait_events(1)
                time.sleep(2.5)  # the simple token expires after 1 s idle
                assert ds.get("K", "a") == kv
                ds.update("K", "a", {"v": 2})
                assert watcher.wait_events(2)
                assert [e.value for e in watcher.events] == [{"v": 1}, {"v": 2}]
            finally:
                watcher.close()
        monkeypatch.setenv("ETCD_USERNAME", "root")
        monkeypatch.setenv("ETCD_PASSWORD", "wrong")
        with open_datastore(server.url) as ds:
            with pytest.raises(DatastoreUnavailable, match="authentication"):
                ds.get("K", "a")
        # a flag wins over the environment
        with open_datastore(server.url, password="s3cret") as ds:
            assert ds.get("K", "a").value == {"v": 2}
        monkeypatch.delenv("ETCD_USERNAME")
        monkeypatch.delenv("ETCD_PASSWORD")
        with open_datastore(server.url) as ds:
            with pytest.raises(DatastoreUnavailable, match="authentication"):
                ds.get("K", "a")


# ---------------------------------------------------------- huge documents


def million_net_set(name: str, second_octet: int = 0) -> dict[str, Any]:
    nets = [f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.{second_octet}/32" for i in range(1_000_000)]
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkSet",
        "metadata": {"name": name, "labels": {"role": "blocklist"}},
        "spec": {"nets": nets},
    }


def test_a_million_net_global_network_set(open_store: Opener, server: EtcdServer) -> None:
    ds = open_store()
    value = million_net_set("huge")
    size = len(ek.encode_document(value))
    timings: dict[str, float] = {"json_bytes": size}
    watcher = Watcher(ds, ds.current_revision() + 1, kinds=["GlobalNetworkSet"])
    try:
        t = time.monotonic()
        (kv,) = ds.commit([Create("GlobalNetworkSet", "huge", value)])
        timings["commit_s"] = time.monotonic() - t
        t = time.monotonic()
        got = ds.get("GlobalNetworkSet", "huge")
        timings["get_s"] = time.monotonic() - t
        assert got == kv and got.value == value
        t = time.monotonic()
        listing = ds.list("GlobalNetworkSet")
        timings["list_s"] = time.monotonic() - t
        assert listing.items == [kv]
        t = time.monotonic()
        assert watcher.wait_events(1, timeout=60)
        timings["watch_event_after_list_s"] = time.monotonic() - t
        assert watcher.error is None
        (event,) = watcher.events
        assert (event.type, event.revision, event.value, event.prev_value) == (PUT, kv.mod_revision, value, None)

        # what etcd holds: a small Calico-shaped head, shards under 1 MiB each
        head = json.loads(server.etcdctl("get", "--print-value-only", ds.layout.head_key("GlobalNetworkSet", "huge").decode()).stdout)
        assert head["kind"] == "GlobalNetworkSet" and head["metadata"]["labels"] == {"role": "blocklist"}
        assert "spec" not in head and head[ek.MANIFEST_KEY]["size"] == size
        shard_keys = keys_under(server, ds.layout.shard_prefix)
        assert len(shard_keys) == head[ek.MANIFEST_KEY]["count"] == -(-size // ds.shard_size)

        # replace it: the update event carries both reassembled documents, and
        # the old generation is gone
        second = million_net_set("huge", second_octet=1)
        t = time.monotonic()
        updated = ds.update("GlobalNetworkSet", "huge", second, expected_revision=kv.mod_revision)
        timings["update_s"] = time.monotonic() - t
        assert watcher.wait_events(2, timeout=60)
        assert watcher.error is None
        assert (watcher.events[1].revision, watcher.events[1].value == second, watcher.events[1].prev_value == value) == (
            updated.mod_revision, True, True
        )
        assert len(keys_under(server, ds.layout.shard_prefix)) == len(shard_keys)
        t = time.monotonic()
        deleted = ds.delete("GlobalNetworkSet", "huge")
        timings["delete_s"] = time.monotonic() - t
        assert deleted.value == second
        assert keys_under(server, ds.layout.shard_prefix) == []
    finally:
        watcher.close()
    print("\n1M-net GlobalNetworkSet timings:", json.dumps({k: round(v, 3) for k, v in timings.items()}))


def test_crash_between_shard_writes_and_head_swap_keeps_the_old_version(
    open_store: Opener, server: EtcdServer
) -> None:
    # 64 KiB requests: a ~190 KB document needs pre-written shards
    ds = open_store(max_request_bytes=64 * 1024)
    v1 = {"spec": {"nets": [f"10.1.{i >> 8}.{i & 255}/32" for i in range(10_000)]}}
    v2 = {"spec": {"nets": [f"10.2.{i >> 8}.{i & 255}/32" for i in range(10_000)]}}
    v3 = {"spec": {"nets": [f"10.3.{i >> 8}.{i & 255}/32" for i in range(10_000)]}}
    first = ds.create("GlobalNetworkSet", "s", v1)
    gen1 = {ds.layout.parse_shard_key(k.encode())[2] for k in keys_under(server, ds.layout.shard_prefix)}
    assert len(gen1) == 1

    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash("process died after writing shards")

    ds._after_shards_written = crash
    with pytest.raises(Crash):
        ds.update("GlobalNetworkSet", "s", v2)
    ds._after_shards_written = None

    reader = open_store()
    assert reader.get("GlobalNetworkSet", "s") == first  # the old version, intact
    assert reader.list().items == [first]
    gens = {ds.layout.parse_shard_key(k.encode())[2] for k in keys_under(server, ds.layout.shard_prefix)}
    assert len(gens) == 2 and gen1 < gens  # the orphan generation is left behind...

    third = ds.update("GlobalNetworkSet", "s", v3, expected_revision=first.mod_revision)
    gens = {ds.layout.parse_shard_key(k.encode())[2] for k in keys_under(server, ds.layout.shard_prefix)}
    assert len(gens) == 1 and not gens & gen1  # ...and cleaned up by the next write
    assert reader.get("GlobalNetworkSet", "s") == third
    # watchers never saw the crashed write; the update's prev_value is v1
    events = _take(reader.watch(first.mod_revision), 2)
    assert [(e.revision, e.value == v, e.prev_value) for e, v in zip(events, (v1, v3), strict=True)] == [
        (first.mod_revision, True, None), (third.mod_revision, True, events[1].prev_value)
    ]
    assert events[1].prev_value == v1


def test_concurrent_writers_of_a_big_resource_leave_one_consistent_value(
    open_store: Opener, server: EtcdServer
) -> None:
    stores = [open_store(max_request_bytes=64 * 1024) for _ in range(2)]
    stores[0].create("GlobalNetworkSet", "s", {"spec": {"nets": []}})
    values = {
        (w, i): {"spec": {"nets": [f"10.{w}.{i}.{j & 255}/32" for j in range(8000)]}} for w in range(2) for i in range(4)
    }
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for i in range(4):
                stores[w].update("GlobalNetworkSet", "s", values[(w, i)])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    final = stores[0].get("GlobalNetworkSet", "s")
    assert final.value in values.values()

    def generations() -> set[str]:
        return {stores[0].layout.parse_shard_key(k.encode())[2] for k in keys_under(server, stores[0].layout.shard_prefix)}

    # A writer that lost a race may leave its pre-written generation behind (the
    # winner's stale-generation scan ran before it existed): garbage, never read,
    # and removed by the next write of the resource.
    assert 1 <= len(generations()) <= 2
    last = stores[1].update("GlobalNetworkSet", "s", values[(0, 0)], expected_revision=final.mod_revision)
    assert stores[0].get("GlobalNetworkSet", "s") == last
    assert len(generations()) == 1


def test_shards_never_surface_and_the_head_is_calico_shaped(open_store: Opener, server: EtcdServer) -> None:
    ds = open_store(shard_threshold=200, shard_size=50)
    small = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
             "metadata": {"name": "small"}, "spec": {"nets": ["10.0.0.0/8"]}}
    big = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
           "metadata": {"name": "big"}, "spec": {"nets": [f"10.0.{i}.0/24" for i in range(50)]}}
    rev0 = ds.current_revision()
    created = ds.commit([Create("GlobalNetworkSet", "small", small), Create("GlobalNetworkSet", "big", big)])
    assert {kv.mod_revision for kv in created} == {rev0 + 1}  # shards written in the commit's txn
    assert ds.current_revision() == rev0 + 1
    assert [kv.name for kv in ds.list().items] == ["big", "small"]
    events = _take(ds.watch(rev0 + 1), 2)
    assert [(e.name, e.value) for e in events] == [("small", small), ("big", big)]
    raw_small = json.loads(server.etcdctl("get", "--print-value-only", ds.layout.head_key("GlobalNetworkSet", "small").decode()).stdout)
    assert raw_small == small  # below the threshold: exactly what Calico would store
    raw_big = json.loads(server.etcdctl("get", "--print-value-only", ds.layout.head_key("GlobalNetworkSet", "big").decode()).stdout)
    assert set(raw_big) == {"apiVersion", "kind", "metadata", ek.MANIFEST_KEY}
    assert raw_big["metadata"]["name"] == "big"


def test_commit_larger_than_one_transaction_is_refused_cleanly(open_store: Opener) -> None:
    ds = open_store()
    rev0 = ds.current_revision()
    with pytest.raises(DatastoreError, match="split it"):
        ds.commit([Create("K", f"n{i}", {}) for i in range(200)])  # etcd allows 128 ops per txn
    assert ds.current_revision() == rev0
    assert ds.list().items == []


# ------------------------------------------------------------------- CLI


def _cli(*args: str, env: dict[str, str]) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "seawall", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_cli_flags_and_calico_environment_select_etcd(tmp_path: Path) -> None:
    seed = Path(__file__).resolve().parents[2] / "examples" / "dos-mitigation.yaml"
    tls = make_tls(tmp_path / "pki")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "SEAWALL_DATASTORE"))}
    with etcd_server(tls=tls) as server:
        flags = ["--etcd-endpoints", server.client_url, "--etcd-ca-cert-file", str(tls.ca_cert),
                 "--etcd-cert-file", str(tls.client_cert), "--etcd-key-file", str(tls.client_key)]
        applied = _cli(*flags, "apply", "-f", str(seed), env=env)
        assert applied.returncode == 0, applied.stderr
        keys = keys_under(server, "/calico/resources/v3/projectcalico.org/")
        assert "/calico/resources/v3/projectcalico.org/globalnetworksets/dos-mitigation" in keys
        calico_env = dict(env, ETCD_ENDPOINTS=server.client_url, ETCD_CA_CERT_FILE=str(tls.ca_cert),
                          ETCD_CERT_FILE=str(tls.client_cert), ETCD_KEY_FILE=str(tls.client_key))
        listed = _cli("get", "globalnetworksets", env=calico_env)
        assert listed.returncode == 0 and "dos-mitigation" in listed.stdout, listed.stderr
        # a flag wins over the environment: a wrong key file from the flag fails
        wrong = _cli("--etcd-key-file", str(tls.server_key), "get", "globalnetworksets", env=calico_env)
        assert wrong.returncode != 0 and "datastore" in wrong.stderr.lower()
        server.stop()
        started = time.monotonic()
        down = _cli("get", "globalnetworksets", env=calico_env)
        assert down.returncode != 0 and "Traceback" not in down.stderr
        assert "unavailable" in down.stderr.lower(), down.stderr
        assert time.monotonic() - started < 20
