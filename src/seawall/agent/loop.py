"""The agent loop: on every (coalesced) change, recompute the desired state and
hand it to the dataplane tiers' workers; fold what they report into the status
(``status.json``, ``seawall status``), Prometheus metrics and health.

The agent is given its tiers and its link reader (``seawall.agent.entry``
builds the real ones); each tier runs on its own ``TierWorker`` thread, which
owns when it runs: latest state wins, retries with back-off, periodic checks
(``xdpRefreshInterval`` reads the XDP maps back, ``iptablesRefreshInterval``
re-verifies the raw tier; 0 disables one) and counter reads. Both tiers
always run: the raw table enforces every untracked rule (XDP drops what it can
first, so raw counters for those stay at zero) — defence in depth, and no gap
if XDP fails on an interface. Nothing is changed before the datastore is in
sync. A failure (the calculation raised, a tier failed) is logged, shown in
status (``lastError``) and readiness, and retried; the loop keeps running.
SIGTERM stops the loop and leaves the kernel state in place (protection
continues); ``cleanup`` removes everything.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from seawall.agent.health import HealthState, liveness, readiness
from seawall.agent.http import Headers, ManagedServer, health_endpoint, metrics_endpoint
from seawall.agent.links import LinkTable, with_named
from seawall.agent.lock import lock_agent
from seawall.agent.metrics import AgentMetrics, snapshot_from_status
from seawall.agent.status import (
    AgentStatus,
    interfaces_status,
    invalid_resources,
    not_enforced,
    raw_repairs,
    verdict_totals,
    with_counters,
)
from seawall.agent.syncer import Syncer
from seawall.agent.worker import TierWorker
from seawall.api.felix import EffectiveFelixConfig
from seawall.calc import CalcMemo, NodeInterfaces, Snapshot, compute
from seawall.calc.validated import ValidatedResources
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.iptables.tier import RawCounters
from seawall.dataplane.tier import PassKind, Tier, TierReport
from seawall.dataplane.xdp.maps import Counters
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.datastore import Datastore
from seawall.policy import DesiredState

log = logging.getLogger("seawall.agent")
SWITCH_INTERVAL_S = 0.0005  # the interpreter's thread switch interval in the agent (default 5 ms)
STATUS_INTERVAL_S = 1.0
RETRY_S = 5.0  # the first retry after a failure; then doubling up to RETRY_MAX_S
RETRY_MAX_S = 60.0
XDP_CHECK_S = 1.0  # does every interface we attached to still run our program?
XDP_FIRST_WAIT_S = 10.0  # the first XDP pass (a cold fill) is waited for longer: see recompute (< liveness's 30 s)
XDP_WAIT_S = 0.25  # how long a calculation waits for the XDP pass it started before the raw tier's
RAW_CHECK_S = 2.0  # the raw tier's cheap drift check: a flush or a deleted rule is repaired within ~2-3 s
RAW_VERIFY_MIN_S = 30.0  # a full read-back of the raw tier's set members at most this often
GC_FULL_INTERVAL_S = 600.0  # a full cyclic collection at most this often (see _settle_gc)


@dataclass
class AgentOptions:
    node: str
    bpffs: Path
    run_dir: Path
    iptables_backend: str | None = None  # None: from FelixConfiguration
    metrics_host: str = "0.0.0.0"  # Felix's prometheusMetricsHost default: every address


class LinkReader(Protocol):
    """The node's links (``seawall.agent.netlink_watch.LinkWatcher``): ``on_change``
    is called from its own thread when they change."""

    on_change: Callable[[], None]

    def start(self) -> None: ...

    def current(self) -> LinkTable: ...

    def close(self) -> None: ...


def xdp_intervals(refresh_s: float) -> tuple[float, float]:
    """(check_s, verify_s) of the XDP worker for ``xdpRefreshInterval``: the
    attachment check always runs; the map read-back every interval (0: never)."""
    return XDP_CHECK_S, max(0.0, refresh_s)


def raw_intervals(refresh_s: float) -> tuple[float, float]:
    """(check_s, verify_s) of the raw worker for ``iptablesRefreshInterval``: 0
    turns every periodic pass off, the cheap check included (Calico's 0 means
    "never refresh"); otherwise the check runs every ``RAW_CHECK_S`` (never less
    often than the refresh) and the full read-back every interval, at most every
    ``RAW_VERIFY_MIN_S``."""
    if refresh_s <= 0:
        return 0.0, 0.0
    return min(RAW_CHECK_S, refresh_s), max(refresh_s, RAW_VERIFY_MIN_S)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _Signal(threading.Event):
    """An event that also wakes the loop when set."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake.set()


class Agent:
    def __init__(self, store: Datastore, options: AgentOptions, *, xdp: Tier[InterfaceReport, Mapping[str, Counters]],
                 raw: Tier[RawInterfaceReport, RawCounters], links: LinkReader) -> None:
        self.store = store
        self.options = options
        self.stop = threading.Event()
        self._wake = threading.Event()
        self.syncer = Syncer(store, changed=_Signal(self._wake))
        self.links = links
        links.on_change = self.syncer.changed.set  # a link change is a change to recompute
        self.metrics = AgentMetrics()
        self.xdp = TierWorker(xdp, retry_s=RETRY_S, retry_max_s=RETRY_MAX_S, check_s=XDP_CHECK_S,
                              on_pass=self._xdp_passed)
        self.raw = TierWorker(raw, retry_s=RETRY_S, retry_max_s=RETRY_MAX_S, check_s=RAW_CHECK_S,
                              verify_s=RAW_VERIFY_MIN_S, error_prefix="iptables raw tier: ",
                              on_pass=self._raw_passed)
        self.status = AgentStatus(node=options.node)
        self.config = EffectiveFelixConfig()  # Calico's defaults until the datastore has been read
        self.validated = ValidatedResources()
        self.memo = CalcMemo()
        self.metrics_server = ManagedServer("metrics", {"/metrics": self._serve_metrics})
        self.health_server = ManagedServer("health", {"/liveness": self._serve_liveness, "/readiness": self._serve_readiness})
        self._desired: DesiredState | None = None
        self._invalid: list[dict[str, Any]] = []
        self._links: LinkTable | None = None  # the table the last calculation used
        self._interfaces: NodeInterfaces | None = None
        self._kept_names: frozenset[str] = frozenset()  # explicitly named HEP interfaces seen, kept while absent
        self._calc_s = 0.0
        self._last_reconcile_ms: float | None = None  # calculation + XDP pass of the last change
        self._applied_at: str | None = None
        self._calc_error: str | None = None
        self._calc_retry_at: float | None = None
        self._shown_error: str | None = None
        self._folded: tuple[int, ...] = ()  # (desired, the XDP worker's state, results per worker) the status describes
        self._health = HealthState(last_tick=time.monotonic())
        self._gc_full_at = time.monotonic()

    # ------------------------------------------------------------ loop

    def run(self) -> None:
        """Raises AgentLockError, before touching the kernel, if another agent runs
        with the same run dir or bpffs (see ``seawall.agent.lock``)."""
        self.options.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_agent(self.options.run_dir, self.options.bpffs)  # first: one agent per node
        # The raw tier's thread does seconds of Python on a big set (rendering, ipset
        # plans) and would hold the interpreter lock for 5 ms at a time; a change that
        # arrives meanwhile must get to the XDP maps in a fraction of that.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.syncer.start()
        self.xdp.start()
        self.raw.start()
        self._serve()
        self._write_status()
        last_status = 0.0
        try:
            while not self.stop.is_set():
                self._wake.wait(timeout=0.2)
                self._wake.clear()
                if self.stop.is_set():
                    break
                try:
                    self._tick()
                    self._fold()
                    if time.monotonic() - last_status >= STATUS_INTERVAL_S:
                        last_status = time.monotonic()
                        self._status_tick()
                except Exception as exc:  # the loop outlives any one failure (shown by the next fold)
                    log.exception("agent loop iteration failed; trying again in %.0f s", RETRY_S)
                    self._calc_failed(f"{type(exc).__name__}: {exc}", fold=False)
                self._publish_health()
        finally:
            self.metrics_server.close()
            self.health_server.close()
            self.raw.close()
            self.xdp.close()
            self.syncer.close()
            self.links.close()
            self._lock.release()

    def _tick(self) -> None:
        if not self.syncer.in_sync:
            return  # the change stays set for when the syncer is back
        changed = self.syncer.changed.is_set()
        if self._calc_retry_at is not None:
            due = time.monotonic() >= self._calc_retry_at
        else:
            due = self._desired is None
        if not (changed or due):
            return
        if changed:
            # No coalescing delay: the syncer publishes whole revisions, and changes that
            # land while this calculation runs are taken together by the next one.
            self.syncer.changed.clear()
        self.recompute()

    def _status_tick(self) -> None:
        if self.syncer.in_sync and self._desired is not None and self.links.current() != self._links:
            self.recompute()  # safety net behind the link events: a link was (re-)created, went away or changed address
        self._update_counters()
        self._serve()
        self._write_status()

    # ------------------------------------------------------------ calculation

    def recompute(self) -> bool:
        """Compute the desired state and hand it to both tiers; True on success.
        A failure is logged, recorded in status and readiness, and retried."""
        started = time.monotonic()
        # No cyclic collection inside the calculation, and what it made frozen before the
        # tiers run: a feed's churn of a million-net set makes thousands of new buckets,
        # and each young-generation pass visited every member of them again (~0.1 s per
        # churn, measured with gc.callbacks). Cyclic garbage waits for _settle_gc.
        gc.disable()
        try:
            snapshot, invalid = self.validated.update(self.syncer.items())
            self.links.start()  # idempotent: from now on link events wake the loop
            links = self.links.current()
            interfaces = self._node_interfaces(links, snapshot)
            desired = compute(snapshot, self.options.node, interfaces, self.memo)
        except Exception as exc:
            log.exception("calculation failed; retrying in %.0f s", RETRY_S)
            self._calc_failed(f"{type(exc).__name__}: {exc}")
            return False
        finally:
            gc.enable()
        gc.freeze()
        # A first state, or other links under an equal state: the tiers must apply, not just check.
        force = self._desired is None or links != self._links or interfaces != self._interfaces
        self._calc_s = time.monotonic() - started
        self._calc_error, self._calc_retry_at = None, None
        self._interfaces, self._links, self._desired, self.config = interfaces, links, desired, desired.config
        self._invalid = invalid
        config = desired.config
        check_s, verify_s = xdp_intervals(config.xdpRefreshInterval)
        self.xdp.set_intervals(check_s=check_s, verify_s=verify_s)
        check_s, verify_s = raw_intervals(config.iptablesRefreshInterval)
        self.raw.set_intervals(check_s=check_s, verify_s=verify_s)
        # XDP first, and alone: the raw worker's Python work (rendering) holds the GIL, and
        # the XDP thread waits a switch interval (5 ms) to get it back after every map-write
        # syscall (measured: write -> drop 10.8 -> 18 ms p50 with both started together). A
        # pass that takes longer than XDP_WAIT_S is not waited for, except the first one (a cold
        # fill of a million entries, ~3 s alone): run side by side with the raw tier's first
        # pass, both crawl on the one GIL: XDP enforced at ~6.3 s instead of ~4.6-5.6 s (1M set,
        # measured). The raw tier then finishes 0-2 s later (its `ipset restore` no longer
        # overlaps XDP's Python work), a fair price where XDP runs; where it cannot, the XDP
        # pass fails fast and raw starts at once. XDP_FIRST_WAIT_S bounds the wait.
        first = self.xdp.applied is None
        self.xdp.submit(desired, force=force)
        self.xdp.wait_idle(XDP_FIRST_WAIT_S if first else XDP_WAIT_S)
        self.raw.submit(desired, force=force)  # on its own thread: XDP changes never wait for iptables/ipset processes
        self.memo.release()  # the old versions the calculation let go, freed once XDP has the new ones
        self.status = dataclasses.replace(
            self.status, in_sync=self.syncer.in_sync, revision=self.syncer.revision, invalid=invalid_resources(invalid),
            xdp_refresh_interval=config.xdpRefreshInterval,
            iptables_refresh_interval=config.iptablesRefreshInterval, not_enforced=not_enforced(desired),
            warnings=tuple(desired.warnings))
        self._fold(force=True)
        self._settle_gc()
        return True

    def _calc_failed(self, error: str, *, fold: bool = True) -> None:
        self._calc_error = error
        self._calc_retry_at = time.monotonic() + RETRY_S
        self._folded = ()
        self.metrics.reconcile_failures.inc()
        if fold:
            self._fold()

    def _node_interfaces(self, links: LinkTable, snapshot: Snapshot) -> NodeInterfaces:
        """The interfaces the calculation sees: the node's links, plus those a local
        HostEndpoint names explicitly (``interfaceName``) that were present since the
        agent started and are gone now. Such an endpoint resolves by name alone, so
        its policies, raw rules (``-i NAME``) and ipsets stay in place while the link
        is away, and a link re-created under that name is protected the moment it
        exists; XDP reports it as not existing (yet) and keeps its pins. Endpoints
        matched by address or ``*`` are unchanged, and a named interface never seen
        still gets the calculation's "does not exist" warning."""
        named = {hep.spec.interfaceName for hep in snapshot.hep.values()
                 if hep.spec.node == self.options.node and hep.spec.interfaceName not in (None, "", "*")}
        present = links.interfaces.addresses
        self._kept_names = frozenset(n for n in named if n in present or n in self._kept_names)
        return with_named(links.interfaces, self._kept_names)

    def _settle_gc(self) -> None:
        """Why: with a million-entry set resident, the cyclic collector's passes over
        the long-lived objects took 0.1-0.4 s each and landed inside reconciles
        (measured with gc.callbacks). Freezing after each calculation moves what is
        alive into the permanent generation, which collections skip; refcounting
        still frees whatever we drop later. Cyclic garbage is reclaimed by a full
        collection every GC_FULL_INTERVAL_S, right after a calculation."""
        now = time.monotonic()
        if now - self._gc_full_at >= GC_FULL_INTERVAL_S:
            gc.unfreeze()
            gc.collect()
            self._gc_full_at = now
        gc.freeze()

    # ------------------------------------------------------------ what the workers report

    def _xdp_passed(self, kind: PassKind, seconds: float, report: TierReport[Any]) -> None:
        """On the XDP worker's thread: what a datastore change waits for before XDP drops."""
        if kind is not PassKind.CHECK:
            self.metrics.apply_seconds.observe(self._calc_s + seconds)
            self._last_reconcile_ms = round((self._calc_s + seconds) * 1000, 2)
        self._passed(kind, report)

    def _raw_passed(self, kind: PassKind, seconds: float, report: TierReport[Any]) -> None:
        histogram = self.metrics.raw_check_seconds if kind is PassKind.CHECK else self.metrics.raw_apply_seconds
        histogram.observe(seconds)
        self._passed(kind, report)

    def _passed(self, kind: PassKind, report: TierReport[Any]) -> None:
        if report.error is not None and report.changed:
            self.metrics.reconcile_failures.inc()
        if kind is not PassKind.CHECK:
            self._applied_at = _now_iso()  # lastApplyTime: the last pass that applied or verified, of either tier
        self._wake.set()

    def _fold(self, *, force: bool = False) -> None:
        """Fold the workers' latest reports and errors into the status, and write it
        when something changed."""
        key = (id(self._desired), id(self.xdp.applied), self.xdp.completed, self.raw.completed)
        if key == self._folded and not force:
            return
        self._folded = key
        error = self._calc_error or self.xdp.error or self.raw.error
        status = self.status
        if error != self._shown_error:
            if error is not None:
                log.warning("%s; retrying", error)
                status = dataclasses.replace(status, last_error=error, last_error_time=_now_iso())
            else:
                status = dataclasses.replace(status, last_error=None)
            self._shown_error = error
        # Interfaces are described once the XDP worker has run the current state (a few
        # ms; seconds for a first million-entry load): until then the previous
        # description stays, never the new decisions beside a missing XDP report.
        if self._desired is not None and self.xdp.applied is self._desired:
            xdp = self.xdp.report.interfaces if self.xdp.report else {}
            raw = self.raw.report.interfaces if self.raw.report else {}
            status = dataclasses.replace(status, interfaces=interfaces_status(self._desired, xdp, raw),
                                         last_reconcile_ms=self._last_reconcile_ms)
        self.status = dataclasses.replace(status, last_apply_time=self._applied_at or status.last_apply_time)
        self._update_counters()
        self._publish_health()
        self._write_status()

    # ------------------------------------------------------------ counters, status, endpoints

    def _update_counters(self) -> None:
        xdp_counters = self.xdp.counters or {}
        raw_counters = self.raw.counters
        verdicts = {name: verdict_totals(c.packets) for name, c in xdp_counters.items()}
        raw_drops = raw_counters.drops if raw_counters is not None else None
        status = dataclasses.replace(self.status, in_sync=self.syncer.in_sync,
                                     interfaces=with_counters(self.status.interfaces, verdicts, raw_drops))
        if raw_counters is not None:
            status = dataclasses.replace(status, raw_repairs=raw_repairs(raw_counters.repairs))
        self.status = status
        for_metrics = {name: (verdict_totals(c.packets), verdict_totals(c.bytes)) for name, c in xdp_counters.items()}
        self.metrics.publish(snapshot_from_status(status, for_metrics, raw_counters.rules if raw_counters else {}))

    def _serve(self) -> None:
        """Start, restart or stop the endpoints to match the configuration (retries a failed bind)."""
        self.metrics_server.apply(metrics_endpoint(self.config, self.options.metrics_host))
        self.health_server.apply(health_endpoint(self.config))
        self.status = dataclasses.replace(self.status, metrics_error=self.metrics_server.error,
                                          health_error=self.health_server.error)

    def _publish_health(self) -> None:
        error = self._calc_error or self.xdp.error or self.raw.error
        self._health = HealthState(last_tick=time.monotonic(), in_sync=self.syncer.in_sync,
                                   reconciled=self._desired is not None, last_error=error)

    def _serve_metrics(self, headers: Headers) -> tuple[int, str, bytes]:
        body, content_type = self.metrics.exposition(headers.get("Accept"))
        return 200, content_type, body

    def _serve_liveness(self, headers: Headers) -> tuple[int, str, bytes]:
        del headers
        return _json(*liveness(self._health, time.monotonic()))

    def _serve_readiness(self, headers: Headers) -> tuple[int, str, bytes]:
        del headers
        return _json(*readiness(self._health))

    def _write_status(self) -> None:
        path = self.options.run_dir / "status.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.status.to_json(), indent=2, default=str))
        tmp.replace(path)


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(body) + "\n").encode()


__all__ = ["Agent", "AgentOptions", "LinkReader", "raw_intervals", "xdp_intervals"]
