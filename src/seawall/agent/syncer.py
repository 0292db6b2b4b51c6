"""List, then watch the datastore from that revision; relist on compaction or error.

The agent changes nothing in the kernel until ``in_sync`` (the first list has
been read); after a lost watch it relists, and the kernel keeps the last state
meanwhile. ``changed`` is set once per revision, when its last event has arrived
(``WatchEvent.complete``): what ``items`` returns is always the datastore as of one
revision, never half a transaction, so the loop needs no coalescing delay.

While the datastore is unreachable (any DatastoreError other than a
compaction, e.g. etcd down: the etcd backend's watch raises
DatastoreUnavailable once it cannot reconnect within its window), ``in_sync``
is False, the last items are kept (the agent keeps enforcing the last state),
and the syncer retries with a bounded exponential backoff (``retry_initial``
doubling up to ``retry_max``, with jitter). The first successful relist marks
it in sync again and resets the backoff. A compaction relists at once (the
items stay valid meanwhile). An unexpected exception is treated like a
datastore error rather than killing the thread.

A silently partitioned node (packets dropped, no reset) would keep a healthy
looking watch for ~20 s (gRPC keepalive). So a probe thread reads the current
revision every ``probe_s``: after ``PROBE_FAILURES`` failed reads in a row the
syncer reports ``in_sync`` False (the kernel keeps the last state) until a read
succeeds again. (Comparing that revision with the watch's is no staleness test:
etcd's revision also moves for keys outside our kinds.)
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from seawall.api.members import CHUNK_KIND, compact_chunk
from seawall.datastore import Datastore, DatastoreError, EventType, RevisionCompacted, WatchEvent

log = logging.getLogger("seawall.syncer")
# the resources, and the member chunks of big GlobalNetworkSets (``seawall.api.members``)
KINDS = ("HostEndpoint", "GlobalNetworkSet", "GlobalNetworkPolicy", "FelixConfiguration", CHUNK_KIND)
RETRY_S = 0.5  # first retry after a datastore error
RETRY_MAX_S = 5.0  # the backoff never grows beyond this (a reconnect is noticed within ~5 s)
PROBE_S = 1.0  # how often the probe reads the store's current revision
PROBE_FAILURES = 2  # failed probe reads in a row before the store counts as unreachable


class Syncer:
    def __init__(self, store: Datastore, *, retry_initial: float = RETRY_S, retry_max: float = RETRY_MAX_S,
                 probe_s: float = PROBE_S, changed: threading.Event | None = None) -> None:
        if retry_initial <= 0 or retry_max < retry_initial:
            raise ValueError("need 0 < retry_initial <= retry_max")
        self.store = store
        self.changed = changed if changed is not None else threading.Event()
        self.stop = threading.Event()
        self.listed = False  # the watch runs on a complete listing
        self.probe_ok = True  # the probe's last reads succeeded
        self.probe_s = probe_s
        self.revision = 0
        self.resyncs = 0
        self.failures = 0  # consecutive failed attempts (0 while healthy)
        self.last_error: str | None = None
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._thread = threading.Thread(target=self._run, name="seawall-syncer", daemon=True)
        self._prober = threading.Thread(target=self._probe, name="seawall-syncer-probe", daemon=True)

    @property
    def in_sync(self) -> bool:
        return self.listed and self.probe_ok

    def start(self) -> None:
        self._thread.start()
        if self.probe_s > 0:
            self._prober.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        if self._prober.is_alive():
            self._prober.join(timeout=5)

    def _probe(self) -> None:
        failures = 0
        while not self.stop.wait(self.probe_s):
            try:
                self.store.current_revision()
            except Exception as exc:  # noqa: BLE001 - any failure counts
                failures += 1
                if failures >= PROBE_FAILURES and self.probe_ok:
                    log.warning("datastore unreachable (%s); keeping the last state", exc)
                    self.probe_ok = False
                    self.changed.set()
                continue
            failures = 0
            if not self.probe_ok:
                log.warning("datastore reachable again")
                self.probe_ok = True
                self.changed.set()

    def items(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            return [(kind, name, value) for (kind, name), value in self._items.items()]

    def next_delay(self) -> float:
        """The wait before the next attempt after ``failures`` consecutive failures."""
        base = min(self.retry_max, self.retry_initial * (2 ** max(0, self.failures - 1)))
        return min(self.retry_max, base * random.uniform(0.8, 1.2))

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._list_and_watch()
            except RevisionCompacted as exc:
                log.warning("watch lost (%s); relisting", exc)
            except Exception as exc:  # noqa: BLE001 - DatastoreError or a bug: keep the last state, retry
                self.listed = False
                self.failures += 1
                self.last_error = str(exc)
                delay = self.next_delay()
                if isinstance(exc, DatastoreError):
                    log.warning("datastore error (%s); relisting in %.1f s", exc, delay)
                else:
                    log.exception("syncer failed unexpectedly; relisting in %.1f s", delay)
                self.stop.wait(delay)
            self.resyncs += 1

    def _list_and_watch(self) -> None:
        listing = self.store.list(keep=_kept)  # chunks compacted as they are read
        items = {(kv.kind, kv.name): kv.value for kv in listing.items if kv.kind in KINDS}
        revision = listing.revision
        del listing
        with self._lock:
            self._items = items
            self.revision = revision
        self.listed = True
        self.failures = 0
        self.last_error = None
        self.changed.set()
        staged: list[WatchEvent] = []  # the events of a revision not yet complete
        for event in self.store.watch(revision + 1, kinds=KINDS, stop=self.stop, prev=False):
            staged.append(event)
            if not event.complete:
                continue
            with self._lock:  # a revision becomes visible whole: readers never see half a transaction
                for e in staged:
                    if e.type is EventType.DELETE:
                        self._items.pop((e.kind, e.name), None)
                    else:
                        self._items[(e.kind, e.name)] = _kept(e.kind, e.value or {})
                self.revision = event.revision
            staged.clear()
            self.changed.set()


def _kept(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    """A value as the syncer keeps it: a member chunk's nets joined (``compact_chunk``)."""
    return compact_chunk(value) if kind == CHUNK_KIND else value
