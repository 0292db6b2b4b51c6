"""The raw tier on its own thread: the latest desired state wins.

Why: with a million-entry set one raw reconcile costs about a second (ipset
diffs, ``ipset restore``, ``iptables-restore``), while an XDP change is a few
map writes. Run inline, every XDP change queued behind the raw tier's last
reconcile (measured: p50 ~1 s from write to drop with a 1M set resident). Here
the loop hands the state over and goes on; states submitted while a reconcile
runs collapse into the newest one. A failed reconcile is retried after
``retry_s`` unless a newer state arrives first.

Drift (someone flushes the raw table or our ipsets, deletes one of our rules)
must not wait for ``iptablesRefreshInterval`` (180 s by default): while idle,
every ``check_s`` the worker runs the last state again as a *check* pass —
``RawDataplane`` then only compares our chains (``iptables-save -t raw``) and
our ipsets' headers (``ipset list -t``: no members) with what it programmed,
and reconciles only on a difference. A submitted state equal to the last one
(the loop's refresh timer) runs as a *verify* pass, which also reads every
member of our sets back, so an in-place edit that kept the member count is
repaired too (at most once per ``verify_min_s``; more often it is a check).
The kind of pass reaches the dataplane through ``PASS_KIND`` (a context
variable), so the reconcile callable keeps its one-argument shape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from seawall.dataplane.iptables.dataplane import PASS_KIND
from seawall.policy.model import UntrackedState

log = logging.getLogger("seawall.agent.raw")

# state -> (per-interface reports, error or None)
ReconcileFn = Callable[[UntrackedState], tuple[dict[str, Any], str | None]]

CHECK_S = 2.0  # the cheap drift check: a flush or a deleted rule is repaired within ~2-3 s
VERIFY_MIN_S = 30.0  # a full read-back of set members at most this often


class RawWorker:
    def __init__(self, reconcile: ReconcileFn, *, retry_s: float = 5.0, check_s: float = CHECK_S,
                 verify_min_s: float = VERIFY_MIN_S) -> None:
        self._reconcile = reconcile
        self._retry_s = retry_s
        self._check_s = check_s
        self._default_check_s = check_s
        self._verify_min_s = verify_min_s
        self._verified_at = time.monotonic()
        self.checks = 0  # check passes run
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

    def set_refresh(self, interval_s: float) -> None:
        """``iptablesRefreshInterval`` 0 turns every periodic raw pass off, the
        cheap check included (as Calico's 0 means "never refresh"); otherwise
        the check runs every ``check_s``, never less often than the refresh."""
        with self._cond:
            self._check_s = 0.0 if interval_s <= 0 else min(self._default_check_s, interval_s)
            self._cond.notify_all()

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

    def _next(self) -> tuple[UntrackedState, str] | None:
        """The next state to run and the kind of pass: "apply", "verify" or "check"."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._pending is not None:
                    state, self._pending, self._busy = self._pending, None, True
                    last = self._last_state
                    same = last is not None and self.error is None and (state is last or state == last)
                    if not same:
                        return state, "apply"
                    return state, "verify" if now - self._verified_at >= self._verify_min_s else "check"
                if self._retry_at is not None and now >= self._retry_at and self._last_state is not None:
                    self._retry_at, self._busy = None, True
                    return self._last_state, "apply"
                check_at = None
                if self._check_s > 0 and self._last_state is not None and self._retry_at is None:
                    check_at = self.finished_at + self._check_s
                    if now >= check_at:
                        self._busy = True
                        return self._last_state, "check"
                due = [t for t in (self._retry_at, check_at) if t is not None]
                self._cond.wait(max(0.0, min(due) - now) if due else None)
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            state, kind = job
            token = PASS_KIND.set(kind)
            try:
                reports, error = self._reconcile(state)
            except Exception as exc:  # noqa: BLE001 - reported, retried; the thread must live on
                log.exception("raw tier reconcile failed")
                reports, error = self.reports, f"iptables raw tier: {type(exc).__name__}: {exc}"
            finally:
                PASS_KIND.reset(token)
            with self._cond:
                # a check that found nothing returns the very reports it had: not a new result
                unchanged = kind == "check" and reports is self.reports and error == self.error
                self.reports, self.error = reports, error
                self._last_state = state
                self._retry_at = time.monotonic() + self._retry_s if error else None
                if kind == "check":
                    self.checks += 1
                elif kind == "verify" and error is None:
                    self._verified_at = time.monotonic()
                if not unchanged:
                    self.completed += 1
                self.finished_at = time.monotonic()
                self._busy = False
                self._cond.notify_all()
