"""One worker per dataplane tier, on its own thread: the latest desired state wins.

Why a thread per tier: with a million-entry set one raw reconcile costs about a
second (ipset diffs, ``ipset restore``, ``iptables-restore``) while an XDP
change is a few map writes; run inline, every XDP change queued behind the raw
tier's last reconcile (measured: p50 ~1 s from write to drop with a 1M set
resident). The loop hands each worker the new state and goes on; states
submitted while a pass runs collapse into the newest one.

What the worker decides, the same way for every tier (``seawall.dataplane.tier``):

* **apply or repeat**: a submitted state whose part for this tier
  (``tier.enforced``) equals the last one applied without error runs as a
  CHECK (or a VERIFY when one is due), not an APPLY; ``force`` makes it an
  APPLY anyway (the links changed under an equal state).
* **retry with back-off**: a failed pass (raised, or a report with an error)
  is retried as an APPLY of the last state after ``retry_s``, doubling per
  consecutive failure up to ``retry_max_s``, unless a newer state comes first.
* **periodic passes**: a CHECK every ``check_s`` after the last pass (drift:
  someone flushed our chains, detached our program) and a VERIFY every
  ``verify_s`` (everything read back); 0 turns one off. A change arriving
  non-stop must not starve the VERIFY: overdue by a whole interval, the
  change itself runs as one.
* **counters**: read on this thread after every pass and every ``counters_s``,
  so no other thread ever touches the tier; readers get the latest snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from seawall.dataplane.tier import PassKind, Tier, TierReport
from seawall.policy.desired import DesiredState

log = logging.getLogger("seawall.agent.worker")

R = TypeVar("R")
C = TypeVar("C")

#: on_pass(kind, seconds, report): after every pass (on the worker's thread)
PassCallback = Callable[[PassKind, float, TierReport[Any]], None]


class TierWorker(Generic[R, C]):
    def __init__(self, tier: Tier[R, C], *, retry_s: float = 5.0, retry_max_s: float = 60.0, check_s: float = 0.0,
                 verify_s: float = 0.0, counters_s: float = 1.0, error_prefix: str = "",
                 on_pass: PassCallback | None = None, on_counters: Callable[[], None] | None = None) -> None:
        self.tier = tier
        self.retry_s, self.retry_max_s = retry_s, retry_max_s
        self.check_s, self.verify_s, self.counters_s = check_s, verify_s, counters_s
        self.error_prefix = error_prefix
        self._on_pass, self._on_counters = on_pass, on_counters
        self._cond = threading.Condition()
        self._pending: tuple[DesiredState, bool] | None = None
        self._busy = False
        self._closed = False
        self._failures = 0
        self._retry_at: float | None = None
        self._last: DesiredState | None = None  # the state of the last pass
        self._last_part: object = None  # its part for this tier, when applied without error
        self._verified_at = 0.0
        self._counters_at = 0.0
        # Results, replaced whole (readers on other threads need no lock):
        self.report: TierReport[R] | None = None
        self.error: str | None = None
        self.counters: C | None = None
        self.completed = 0  # passes that produced a result (successful or not)
        self.checks = 0  # CHECK passes run
        self.finished_at = 0.0  # monotonic time of the last finished pass
        self._thread = threading.Thread(target=self._run, name=f"seawall-{tier.name}", daemon=True)

    # ------------------------------------------------------------ API (any thread)

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    @property
    def applied(self) -> DesiredState | None:
        """The state of the last finished pass (the one ``report`` describes)."""
        return self._last

    def set_intervals(self, *, check_s: float | None = None, verify_s: float | None = None) -> None:
        with self._cond:
            if check_s is not None:
                self.check_s = check_s
            if verify_s is not None:
                self.verify_s = verify_s
            self._cond.notify_all()

    def submit(self, desired: DesiredState, *, force: bool = False) -> None:
        with self._cond:
            pending_force = self._pending[1] if self._pending is not None else False
            self._pending = (desired, force or pending_force)
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
        """Finish the pass in progress (never leave the kernel half-written), then stop."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.tier.close()

    # ------------------------------------------------------------ the thread

    def _next(self) -> tuple[DesiredState, PassKind] | None:
        """The next pass (state, kind), or None for a counters read; waits until one is due."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                verify_due = self.verify_s > 0 and now - self._verified_at >= self.verify_s
                if self._pending is not None:
                    desired, force = self._pending
                    self._pending, self._busy = None, True
                    part = self.tier.enforced(desired)
                    same = (not force and self._last_part is not None and self.error is None
                            and (part is self._last_part or part == self._last_part))
                    if same:
                        return desired, PassKind.VERIFY if verify_due else PassKind.CHECK
                    overdue = self.verify_s > 0 and now - self._verified_at >= 2 * self.verify_s
                    return desired, PassKind.VERIFY if overdue and self._last is not None else PassKind.APPLY
                if self._last is not None:
                    if self._retry_at is not None:
                        if now >= self._retry_at:
                            self._retry_at, self._busy = None, True
                            return self._last, PassKind.APPLY
                    elif verify_due:
                        self._busy = True
                        return self._last, PassKind.VERIFY
                    elif self.check_s > 0 and now >= self.finished_at + self.check_s:
                        self._busy = True
                        return self._last, PassKind.CHECK
                    if self.counters_s > 0 and now >= self._counters_at + self.counters_s:
                        self._busy = True
                        return None
                due = [t for t in self._due() if t is not None]
                self._cond.wait(max(0.0, min(due) - now) if due else None)
            raise _Closed

    def _due(self) -> list[float | None]:
        if self._last is None:
            return []
        times: list[float | None]
        if self._retry_at is not None:
            times = [self._retry_at]
        else:
            times = [self._verified_at + self.verify_s if self.verify_s > 0 else None,
                     self.finished_at + self.check_s if self.check_s > 0 else None]
        return times + [self._counters_at + self.counters_s if self.counters_s > 0 else None]

    def _run(self) -> None:
        while True:
            try:
                job = self._next()
            except _Closed:
                return
            if job is None:
                self._read_counters()
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                continue
            self._pass(*job)

    def _pass(self, desired: DesiredState, kind: PassKind) -> None:
        started = time.monotonic()
        try:
            report = self.tier.reconcile(desired, verify=kind)
        except Exception as exc:  # noqa: BLE001 - reported, retried; the thread must live on
            log.exception("%s tier: %s pass failed", self.tier.name, kind.value)
            report = TierReport(self.report.interfaces if self.report else {},
                                f"{self.error_prefix}{type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - started
        previous = self.report
        unchanged = kind is PassKind.CHECK and previous is not None and (
            not report.changed or (report.interfaces is previous.interfaces and report.error == previous.error))
        with self._cond:
            self.report, self.error = report, report.error
            first = self._last is None
            self._last = desired
            self._last_part = self.tier.enforced(desired) if report.error is None else None
            if report.error is None:
                self._failures, self._retry_at = 0, None
                if kind is PassKind.VERIFY or first:
                    self._verified_at = time.monotonic()
            else:
                self._failures += 1
                delay = min(self.retry_s * 2 ** (self._failures - 1), max(self.retry_s, self.retry_max_s))
                self._retry_at = time.monotonic() + delay
            if kind is PassKind.CHECK:
                self.checks += 1
            if not unchanged:
                self.completed += 1
            self.finished_at = time.monotonic()
        self._read_counters()
        if self._on_pass is not None:
            self._on_pass(kind, elapsed, report)
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def _read_counters(self) -> None:
        try:
            self.counters = self.tier.counters()
        except Exception:  # noqa: BLE001 - counters are best effort; the last ones stay
            log.debug("%s tier: reading counters failed", self.tier.name, exc_info=True)
        self._counters_at = time.monotonic()
        if self._on_counters is not None:
            self._on_counters()


class _Closed(Exception):
    """The worker was closed while waiting for work."""
