"""The agent loop: on every (coalesced) change or refresh tick, recompute the
desired state and reconcile both dataplanes; publish status for ``seawall status``.

Both tiers always run: the raw table enforces every untracked rule (XDP drops
what it can first, so raw counters for those stay at zero) — defence in depth,
and no gap if XDP fails on an interface. Nothing is changed before the
datastore is in sync. SIGTERM stops the loop and leaves the kernel state in
place (protection continues); ``cleanup`` removes everything.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seawall.agent.links import read_interfaces
from seawall.agent.status import reconcile_status
from seawall.agent.syncer import Syncer
from seawall.calc import CalcMemo, NodeInterfaces, compute
from seawall.calc.validated import ValidatedResources
from seawall.dataplane.iptables.dataplane import RawDataplane
from seawall.dataplane.xdp.desired import XdpDesiredState
from seawall.dataplane.xdp.driver import XdpDriver
from seawall.datastore import Datastore

log = logging.getLogger("seawall.agent")
COALESCE_S = 0.005  # let a burst of changes land before recomputing
STATUS_INTERVAL_S = 1.0


@dataclass
class AgentOptions:
    node: str
    bpffs: Path
    run_dir: Path
    iptables_backend: str | None = None  # None: from FelixConfiguration


class Agent:
    def __init__(self, store: Datastore, options: AgentOptions) -> None:
        self.store = store
        self.options = options
        self.syncer = Syncer(store)
        self.xdp = XdpDriver(options.bpffs)
        self.raw: RawDataplane | None = None
        self.stop = threading.Event()
        self.status: dict[str, Any] = {"node": options.node, "inSync": False, "interfaces": []}
        self._last_refresh = 0.0
        self._interfaces: NodeInterfaces | None = None
        self.validated = ValidatedResources()
        self.memo = CalcMemo()

    def run(self) -> None:
        self.options.run_dir.mkdir(parents=True, exist_ok=True)
        self.syncer.start()
        self._write_status()
        last_status = 0.0
        try:
            while not self.stop.is_set():
                triggered = self.syncer.changed.wait(timeout=0.2)
                if self.stop.is_set():
                    break
                refresh_due = time.monotonic() - self._last_refresh >= self._refresh_interval()
                if (triggered or refresh_due) and self.syncer.in_sync:
                    time.sleep(COALESCE_S)
                    self.syncer.changed.clear()
                    self.reconcile(verify=refresh_due and not triggered)
                if time.monotonic() - last_status >= STATUS_INTERVAL_S:
                    if self.syncer.in_sync and read_interfaces() != self._interfaces:
                        self.reconcile()  # a link or address appeared or went away
                    self._update_counters()
                    self._write_status()
                    last_status = time.monotonic()
        finally:
            self.syncer.close()
            self.xdp.close()

    def _refresh_interval(self) -> float:
        return float(self.status.get("refreshInterval", 90.0)) or 90.0

    def reconcile(self, *, verify: bool = False) -> None:
        started = time.monotonic()
        snapshot, invalid = self.validated.update(self.syncer.items())
        self._interfaces = read_interfaces()
        desired = compute(snapshot, self.options.node, self._interfaces, self.memo)
        config = desired.config
        if self.raw is None:
            self.raw = RawDataplane(self.options.iptables_backend or config.iptablesBackend)
        xdp_state = XdpDesiredState(desired.xdp.interfaces, config.xdpEnabled, config.genericXDPEnabled)
        # XDP first: it is the fast path (map writes); raw needs iptables/ipset processes.
        xdp_reports = self.xdp.reconcile(xdp_state, verify=verify)
        raw_reports = self.raw.reconcile(desired.untracked)
        self.status.update(reconcile_status(desired, xdp_reports, raw_reports))
        self.status.update({
            "inSync": self.syncer.in_sync,
            "revision": self.syncer.revision,
            "invalid": invalid,
            "lastApplyTime": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "refreshInterval": config.xdpRefreshInterval,
            "lastReconcileMs": round((time.monotonic() - started) * 1000, 2),
        })
        self._last_refresh = time.monotonic()
        self._update_counters()
        self._write_status()

    def _update_counters(self) -> None:
        self.status["inSync"] = self.syncer.in_sync
        for entry in self.status.get("interfaces", []):
            counters = self.xdp.counters(entry["name"])
            if counters is not None:
                entry["counters"] = {"dropped": counters.dropped, "passed": counters.passed, "failsafe": counters.failsafe}

    def _write_status(self) -> None:
        path = self.options.run_dir / "status.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.status, indent=2, default=str))
        tmp.replace(path)

    def cleanup(self) -> None:
        """Remove everything Seawall installed (explicit clean-up)."""
        self.xdp.cleanup()
        RawDataplane(self.options.iptables_backend or "Auto").cleanup()
