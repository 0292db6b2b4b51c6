"""List, then watch the datastore from that revision; relist on compaction or error.

The agent changes nothing in the kernel until ``in_sync`` (the first list has
been read); after a lost watch it relists, and the kernel keeps the last state
meanwhile. ``changed`` is set on every change so the loop can coalesce them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from seawall.datastore import Datastore, DatastoreError, EventType, RevisionCompacted

log = logging.getLogger("seawall.syncer")
KINDS = ("HostEndpoint", "GlobalNetworkSet", "GlobalNetworkPolicy", "FelixConfiguration")
RETRY_S = 0.5


class Syncer:
    def __init__(self, store: Datastore) -> None:
        self.store = store
        self.changed = threading.Event()
        self.stop = threading.Event()
        self.in_sync = False
        self.revision = 0
        self.resyncs = 0
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._thread = threading.Thread(target=self._run, name="seawall-syncer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)

    def items(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            return [(kind, name, value) for (kind, name), value in self._items.items()]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                listing = self.store.list()
                with self._lock:
                    self._items = {(kv.kind, kv.name): kv.value for kv in listing.items if kv.kind in KINDS}
                    self.revision = listing.revision
                self.in_sync = True
                self.changed.set()
                for event in self.store.watch(listing.revision + 1, kinds=KINDS, stop=self.stop):
                    with self._lock:
                        if event.type is EventType.DELETE:
                            self._items.pop((event.kind, event.name), None)
                        else:
                            self._items[(event.kind, event.name)] = event.value or {}
                        self.revision = event.revision
                    self.changed.set()
            except RevisionCompacted as exc:
                log.warning("watch lost (%s); relisting", exc)
            except DatastoreError as exc:
                log.warning("datastore error (%s); relisting in %.1f s", exc, RETRY_S)
                self.in_sync = False
                time.sleep(RETRY_S)
            self.resyncs += 1
