"""The agent loop: on every (coalesced) change or refresh tick, recompute the
desired state and reconcile the dataplanes; publish status for ``seawall
status``, Prometheus metrics and health (``seawall.agent.http``).

Both tiers always run: the raw table enforces every untracked rule (XDP drops
what it can first, so raw counters for those stay at zero) — defence in depth,
and no gap if XDP fails on an interface. Nothing is changed before the
datastore is in sync. A change reconciles both tiers, XDP first (the fast
path: map writes; raw needs iptables/ipset processes). Each tier also has its
own refresh timer, as in Felix: ``xdpRefreshInterval`` reads the XDP maps back
and repairs them, ``iptablesRefreshInterval`` re-runs the raw tier's
reconcile (which compares with the kernel's tables every time); 0 disables
one. A reconcile that raises, or leaves the raw tier with errors, is logged,
shown in status (``lastError``) and readiness, and retried after
``RETRY_S``; the loop keeps running. SIGTERM stops the loop and leaves the
kernel state in place (protection continues); ``cleanup`` removes everything.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seawall.agent.health import HealthState, liveness, readiness
from seawall.agent.http import Headers, ManagedServer, health_endpoint, metrics_endpoint
from seawall.agent.links import LinkTable, with_named
from seawall.agent.lock import lock_agent
from seawall.agent.metrics import AgentMetrics, snapshot_from_status
from seawall.agent.netlink_watch import LinkWatcher
from seawall.agent.raw_worker import RawWorker
from seawall.agent.status import apply_raw_counters, reconcile_status
from seawall.agent.syncer import Syncer
from seawall.api.felix import EffectiveFelixConfig
from seawall.calc import CalcMemo, NodeInterfaces, Snapshot, compute
from seawall.calc.validated import ValidatedResources
from seawall.dataplane.iptables.backend import CommandError
from seawall.dataplane.iptables.dataplane import RawDataplane
from seawall.dataplane.iptables.driver import RawReport
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.xdp.driver import TeardownReport, XdpDriver
from seawall.dataplane.xdp.reference import Outcome
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.datastore import Datastore
from seawall.policy import DesiredState
from seawall.policy.model import UntrackedState

log = logging.getLogger("seawall.agent")
COALESCE_S = 0.005  # let a burst of changes land before recomputing
STATUS_INTERVAL_S = 1.0
RETRY_S = 5.0  # after a failed reconcile
GC_FULL_INTERVAL_S = 600.0  # a full cyclic collection at most this often (see _settle_gc)


@dataclass
class AgentOptions:
    node: str
    bpffs: Path
    run_dir: Path
    iptables_backend: str | None = None  # None: from FelixConfiguration
    metrics_host: str = "0.0.0.0"  # Felix's prometheusMetricsHost default: every address


@dataclass(frozen=True, slots=True)
class Pass:
    """One reconcile: which tiers, and whether XDP reads its maps back (verify)."""

    xdp: bool
    raw: bool
    verify_xdp: bool = False


def plan_pass(now: float, *, changed: bool, reconciled: bool, retry_at: float | None,
              xdp_verified_at: float, xdp_interval: float, raw_at: float, raw_interval: float) -> Pass | None:
    """What the loop reconciles now (pure). A change (or the first reconcile, or a
    retry) runs both tiers; a change skips the XDP read-back to stay fast, unless
    it is overdue by a whole interval (changes arriving non-stop must not starve
    it). Otherwise each tier runs when its own refresh interval (0: never) is due."""
    xdp_due = xdp_interval > 0 and now - xdp_verified_at >= xdp_interval
    raw_due = raw_interval > 0 and now - raw_at >= raw_interval
    if changed or not reconciled or (retry_at is not None and now >= retry_at):
        overdue = xdp_interval > 0 and now - xdp_verified_at >= 2 * xdp_interval
        return Pass(True, True, verify_xdp=reconciled and xdp_due and (overdue or not changed))
    if xdp_due or raw_due:
        return Pass(xdp_due, raw_due, verify_xdp=xdp_due)
    return None


def verdict_totals(values: Mapping[Outcome, int]) -> dict[str, int]:
    """XDP outcome counters -> dropped / passed / failsafe, as ``seawall status`` shows them."""
    dropped, failsafe = values.get(Outcome.DROP, 0), values.get(Outcome.FAILSAFE, 0)
    passed = sum(n for outcome, n in values.items() if outcome not in (Outcome.DROP, Outcome.FAILSAFE))
    return {"dropped": dropped, "passed": passed, "failsafe": failsafe}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Agent:
    def __init__(self, store: Datastore, options: AgentOptions) -> None:
        self.store = store
        self.options = options
        self.syncer = Syncer(store)
        self.xdp = XdpDriver(options.bpffs)
        self.raw: RawDataplane | None = None
        self.stop = threading.Event()
        self.status: dict[str, Any] = {"node": options.node, "inSync": False, "interfaces": [], "lastError": None}
        self.config = EffectiveFelixConfig()  # Calico's defaults until the datastore has been read
        self.validated = ValidatedResources()
        self.memo = CalcMemo()
        self.metrics = AgentMetrics()
        self.metrics_server = ManagedServer("metrics", {"/metrics": self._serve_metrics})
        self.health_server = ManagedServer("health", {"/liveness": self._serve_liveness, "/readiness": self._serve_readiness})
        self._interfaces: NodeInterfaces | None = None
        # Links by identity (name, ifindex, addresses), pushed by netlink events: a change wakes the loop.
        self.links = LinkWatcher(self.syncer.changed.set)
        self._links: LinkTable | None = None  # the table the last reconcile used
        self._kept_names: frozenset[str] = frozenset()  # explicitly named HEP interfaces seen, kept while absent
        self._xdp_lost: frozenset[str] = frozenset()  # interfaces whose XDP program was found gone
        self._desired: DesiredState | None = None
        self._xdp_reports: dict[str, InterfaceReport] = {}
        self.raw_worker = RawWorker(self._raw_reconcile, retry_s=RETRY_S)
        self._raw_seen = 0
        self._xdp_verified_at = 0.0
        self._raw_at = 0.0
        self._retry_at: float | None = None
        self._last_error: str | None = None
        self._health = HealthState(last_tick=time.monotonic())
        self._gc_full_at = time.monotonic()

    # ------------------------------------------------------------ loop

    def run(self) -> None:
        """Raises AgentLockError, before touching the kernel, if another agent runs
        with the same run dir or bpffs (see ``seawall.agent.lock``)."""
        self.options.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_agent(self.options.run_dir, self.options.bpffs)  # first: one agent per node
        self.syncer.start()
        self._serve()
        self._write_status()
        last_status = 0.0
        try:
            while not self.stop.is_set():
                triggered = self.syncer.changed.wait(timeout=0.2)
                if self.stop.is_set():
                    break
                try:
                    self._tick(triggered)
                    if time.monotonic() - last_status >= STATUS_INTERVAL_S:
                        last_status = time.monotonic()
                        self._status_tick()
                except Exception as exc:  # the loop outlives any one failure
                    log.exception("agent loop iteration failed; reconciling again in %.0f s", RETRY_S)
                    self._record_error(f"{type(exc).__name__}: {exc}")
                    self._retry_at = time.monotonic() + RETRY_S
                self._publish_health()
        finally:
            self.metrics_server.close()
            self.health_server.close()
            self.raw_worker.close()
            self.syncer.close()
            self.links.close()
            self.xdp.close()
            self._lock.release()

    def _tick(self, triggered: bool) -> None:
        if not self.syncer.in_sync:
            if triggered:  # keep the change for when the syncer is back, without spinning on it
                self.stop.wait(0.2)
            return
        config = self.config
        todo = plan_pass(time.monotonic(), changed=triggered, reconciled=self._desired is not None,
                         retry_at=self._retry_at, xdp_verified_at=self._xdp_verified_at,
                         xdp_interval=config.xdpRefreshInterval, raw_at=self._raw_at,
                         raw_interval=config.iptablesRefreshInterval)
        if todo is None:
            return
        if triggered:
            time.sleep(COALESCE_S)
            self.syncer.changed.clear()
        self.reconcile(xdp=todo.xdp, raw=todo.raw, verify_xdp=todo.verify_xdp)

    def _status_tick(self) -> None:
        if self.syncer.in_sync and self._desired is not None and self._links_stale():
            self.reconcile()  # a link was (re-)created, went away or changed address; or lost its XDP program
        self._raw_finished()
        self._update_counters()
        self._serve()
        self._write_status()

    # ------------------------------------------------------------ reconcile

    def reconcile(self, *, xdp: bool = True, raw: bool = True, verify_xdp: bool = False) -> bool:
        """Reconcile the given tiers (both, unless a refresh of one); True on success.
        A failure (raised, or errors the raw tier reports) is logged, recorded in
        status and readiness, and retried after ``RETRY_S``; it is not raised."""
        started = time.monotonic()
        try:
            error = self._reconcile(xdp=xdp, raw=raw, verify_xdp=verify_xdp)
            if error is not None:
                log.warning("%s; retrying in %.0f s", error, RETRY_S)
        except Exception as exc:
            log.exception("reconcile failed; retrying in %.0f s", RETRY_S)
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        self.metrics.apply_seconds.observe(elapsed)
        self.status["lastReconcileMs"] = round(elapsed * 1000, 2)
        if error is None:
            self._retry_at, self._last_error = None, None
            self.status["lastError"] = None
        else:
            self._record_error(error)
            self.metrics.reconcile_failures.inc()
            self._retry_at = time.monotonic() + RETRY_S
        self._update_counters()
        self._serve()
        self._publish_health()
        self._write_status()
        self._settle_gc()
        return error is None

    def _settle_gc(self) -> None:
        """Why: with a million-entry set resident, the cyclic collector's passes over
        the long-lived objects took 0.1-0.4 s each and landed inside reconciles
        (measured with gc.callbacks). Freezing after each reconcile moves what is
        alive into the permanent generation, which collections skip; refcounting
        still frees whatever we drop later. Cyclic garbage is reclaimed by a full
        collection every GC_FULL_INTERVAL_S, right after a reconcile."""
        now = time.monotonic()
        if now - self._gc_full_at >= GC_FULL_INTERVAL_S:
            gc.unfreeze()
            gc.collect()
            self._gc_full_at = now
        gc.freeze()

    def _links_stale(self) -> bool:
        """Safety net behind the netlink events (checked every status tick): the
        link table differs from the one last reconciled, or an interface the XDP
        driver attached to no longer has our program (re-read by ifindex), so
        ``status`` must not go on reporting it."""
        if self.links.current() != self._links:
            return True
        read = getattr(self.xdp, "lost_attachments", None)  # test doubles may not have it
        lost = frozenset(read()) if read else frozenset()
        stale = bool(lost) and lost != self._xdp_lost  # once per loss: a conflict that stays must not spin
        self._xdp_lost = lost
        return stale

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

    def _reconcile(self, *, xdp: bool, raw: bool, verify_xdp: bool) -> str | None:
        snapshot, invalid = self.validated.update(self.syncer.items())
        self.links.start()  # idempotent: from now on link events wake the loop
        links = self.links.current()
        interfaces = self._node_interfaces(links, snapshot)
        first = self._desired is None
        if first or links != self._links or interfaces != self._interfaces:
            xdp = raw = True  # the other tier's last report would describe other interfaces
        desired = compute(snapshot, self.options.node, interfaces, self.memo)
        config = desired.config
        self._interfaces, self._links, self._desired, self.config = interfaces, links, desired, config
        if xdp:
            self._xdp_reports = self.xdp.reconcile(desired.xdp, verify=verify_xdp)
            if verify_xdp or first:  # the first reconcile rewrites (or adopts and rewrites) every map
                self._xdp_verified_at = time.monotonic()
        if raw:  # on its own thread: XDP changes never wait for iptables/ipset processes
            self.raw_worker.set_refresh(config.iptablesRefreshInterval)
            self.raw_worker.submit(desired.untracked)
            self._raw_at = time.monotonic()
        self._raw_seen = self.raw_worker.completed
        error = self.raw_worker.error
        self.status.update(reconcile_status(desired, self._xdp_reports, self.raw_worker.reports))
        self.status.update({
            "inSync": self.syncer.in_sync,
            "revision": self.syncer.revision,
            "invalid": invalid,
            "lastApplyTime": _now_iso(),
            "xdpRefreshInterval": config.xdpRefreshInterval,
            "iptablesRefreshInterval": config.iptablesRefreshInterval,
        })
        return error

    def _raw_reconcile(self, state: UntrackedState) -> tuple[dict[str, RawInterfaceReport], str | None]:
        """Runs on the raw worker's thread."""
        if self.raw is None:
            self.raw = RawDataplane(self.options.iptables_backend or self.config.iptablesBackend)
        with self.metrics.raw_apply_seconds.time():
            reports = self.raw.reconcile(state)
        report = self.raw.last_report
        error = None
        if report is not None and not report.ok:
            error = "iptables raw tier: " + "; ".join(_raw_errors(report))
        return reports, error

    def _raw_finished(self) -> None:
        """Fold in what the raw worker finished since the last look: its reports
        into the status, its error into lastError and readiness."""
        if self.raw_worker.completed == self._raw_seen or self._desired is None:
            return
        self._raw_seen = self.raw_worker.completed
        error = self.raw_worker.error
        self.status.update(reconcile_status(self._desired, self._xdp_reports, self.raw_worker.reports))
        if error is None:
            if self._last_error is not None and self._last_error.startswith("iptables raw tier"):
                self._last_error = None
                self.status["lastError"] = None
        else:
            log.warning("%s; the raw tier retries in %.0f s", error, RETRY_S)
            self._record_error(error)
            self.metrics.reconcile_failures.inc()

    def _record_error(self, error: str) -> None:
        self._last_error = error
        self.status["lastError"] = error
        self.status["lastErrorTime"] = _now_iso()

    # ------------------------------------------------------------ counters, status, endpoints

    def _update_counters(self) -> None:
        self.status["inSync"] = self.syncer.in_sync
        xdp_counters: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        for entry in self.status.get("interfaces", []):
            counters = self.xdp.counters(entry["name"])
            if counters is not None:
                packets = verdict_totals(counters.packets)
                entry["counters"] = packets
                xdp_counters[entry["name"]] = (packets, verdict_totals(counters.bytes))
        raw_rules: dict[tuple[str, str, int], tuple[int, int]] = {}
        raw_drops: dict[str, dict[str, tuple[int, int]]] | None = None
        if self.raw is not None:  # iptables-save -c -t raw, both families: the raw tier's own drop counters
            try:
                raw_rules, raw_drops = self.raw.read_counters()
            except (CommandError, OSError) as exc:
                log.debug("reading raw rule counters failed: %s", exc)
                raw_rules = dict(self.metrics.snapshot().raw_rules)
        apply_raw_counters(self.status, raw_drops, self.raw.repairs if self.raw is not None else None)
        self.metrics.publish(snapshot_from_status(self.status, xdp_counters, raw_rules))

    def _serve(self) -> None:
        """Start, restart or stop the endpoints to match the configuration (retries a failed bind)."""
        self.metrics_server.apply(metrics_endpoint(self.config, self.options.metrics_host))
        self.health_server.apply(health_endpoint(self.config))
        self.status["metricsError"] = self.metrics_server.error
        self.status["healthError"] = self.health_server.error

    def _publish_health(self) -> None:
        self._health = HealthState(last_tick=time.monotonic(), in_sync=self.syncer.in_sync,
                                   reconciled=self._desired is not None, last_error=self._last_error)

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
        tmp.write_text(json.dumps(self.status, indent=2, default=str))
        tmp.replace(path)

    def cleanup(self) -> None:
        """Remove everything Seawall installed (explicit clean-up)."""
        self.xdp.cleanup()
        RawDataplane(self.options.iptables_backend or self.config.iptablesBackend).cleanup()


def cleanup(bpffs: Path, iptables_backend: str = "Auto") -> TeardownReport:
    """Remove everything Seawall installed on this host, without a datastore
    (``seawall teardown`` must work while the datastore is unreachable): only
    what is in the kernel (every interface of this network namespace: Seawall
    programs pinned elsewhere or not at all too) and under ``<bpffs>/seawall``
    is looked at. Returns what was removed and what was left (foreign programs)."""
    driver = XdpDriver(bpffs)
    try:
        report = driver.teardown()
    finally:
        driver.close()
    errors = RawDataplane(iptables_backend).cleanup()
    report.left += [f"iptables raw: {error}" for error in errors or ()]
    return report


def _raw_errors(report: RawReport) -> list[str]:
    errors = list(report.errors)
    for family in report.families.values():
        errors += family.errors
    return errors


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(body) + "\n").encode()


__all__ = ["Agent", "AgentOptions", "Pass", "cleanup", "plan_pass", "verdict_totals"]
