"""The raw tier on its own thread: the latest desired state wins.

Why: with a million-entry set one raw reconcile costs about a second (ipset
diffs, ``ipset restore``, ``iptables-restore``), while an XDP change is a few
map writes. Run inline, every XDP change queued behind the raw tier's last
reconcile (measured: p50 ~1 s from write to drop with a 1M set resident). Here
the loop hands the state over and goes on; states submitted while a reconcile
runs collapse into the newest one. A failed reconcile is retried after
``retry_s`` unless a newer state arrives first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from seawall.policy.model import UntrackedState

log = logging.getLogger("seawall.agent.raw")

# state -> (per-interface reports, error or None)
ReconcileFn = Callable[[UntrackedState], tuple[dict[str, Any], str | None]]


class RawWorker:
    def __init__(self, reconcile: ReconcileFn, *, retry_s: float = 5.0) -> None:
        self._reconcile = reconcile
        self._retry_s = retry_s
        self._cond = threading.Condition()
        self._pending: UntrackedState | None = None
        self._busy = False
        self._closed = False
        self._retry_at: float | None = None
        self._last_state: UntrackedState | None = None
        self.reports: dict[str, Any] = {}
        self.error: str | None = None
        self.completed = 0  # reconciles finished (successful or not)
        self.finished_at = 0.0  # monotonic time of the last finished reconcile
        self._thread = threading.Thread(target=self._run, name="seawall-raw", daemon=True)
        self._thread.start()

    def submit(self, state: UntrackedState) -> None:
        with self._cond:
            self._pending = state
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return self._pending is None and not self._busy

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 30.0) -> None:
        """Finish the reconcile in progress (never leave iptables half-written), then stop."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout)

    def _next(self) -> UntrackedState | None:
        with self._cond:
            while not self._closed:
                if self._pending is not None:
                    state, self._pending, self._busy = self._pending, None, True
                    return state
                if self._retry_at is not None and time.monotonic() >= self._retry_at and self._last_state is not None:
                    self._retry_at, self._busy = None, True
                    return self._last_state
                wait = None if self._retry_at is None else max(0.0, self._retry_at - time.monotonic())
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while (state := self._next()) is not None:
            try:
                reports, error = self._reconcile(state)
            except Exception as exc:  # noqa: BLE001 - reported, retried; the thread must live on
                log.exception("raw tier reconcile failed")
                reports, error = self.reports, f"iptables raw tier: {type(exc).__name__}: {exc}"
            with self._cond:
                self.reports, self.error = reports, error
                self._last_state = state
                self._retry_at = time.monotonic() + self._retry_s if error else None
                self.completed += 1
                self.finished_at = time.monotonic()
                self._busy = False
                self._cond.notify_all()
