"""The raw tier's own counters in status, metrics and ``seawall status``, and the
raw worker's pass kinds (apply / check / verify) that find drift in seconds."""

from __future__ import annotations

import threading
import time
from typing import Any

from seawall.agent.metrics import families, snapshot_from_status
from seawall.agent.raw_worker import RawWorker
from seawall.agent.status import apply_raw_counters
from seawall.cli.status_view import render_status
from seawall.dataplane.iptables.dataplane import PASS_KIND
from seawall.policy.model import Action, InterfacePolicy, Policy, Rule, UntrackedState
from seawall.testing.traffic import wait_until


def status() -> dict[str, Any]:
    return {"interfaces": [
        {"name": "eth0", "mode": "xdp-native", "raw": {"backend": "nft"}, "counters": {"dropped": 7, "passed": 1, "failsafe": 0}},
        {"name": "eth1", "mode": "iptables-raw", "raw": {"backend": "nft"}, "counters": {"dropped": 0, "passed": 0, "failsafe": 0}},
        {"name": "eth2", "mode": "none", "raw": None, "counters": {"dropped": 0, "passed": 0, "failsafe": 0}},
    ]}


DROPS = {"eth0": {"ipv4": (3, 90), "ipv6": (0, 0)}, "eth1": {"ipv4": (1000, 42000), "ipv6": (5, 300)}}


def test_raw_drops_per_interface_and_family_in_status() -> None:
    s = status()
    apply_raw_counters(s, DROPS, {"rules": 2, "setHeaders": 1})
    eth0, eth1, eth2 = s["interfaces"]
    assert eth0["counters"]["dropped"] == 7  # XDP's own counter stays
    assert eth0["rawCounters"] == {"dropped": 3, "droppedBytes": 90, "families": {
        "ipv4": {"dropped": 3, "droppedBytes": 90}, "ipv6": {"dropped": 0, "droppedBytes": 0}}}
    assert eth1["counters"]["dropped"] == 1005  # a raw interface shows raw's drops
    assert eth1["rawCounters"]["families"]["ipv6"] == {"dropped": 5, "droppedBytes": 300}
    assert "rawCounters" not in eth2
    assert s["rawRepairs"] == {"rules": 2, "setHeaders": 1, "setContents": 0}
    apply_raw_counters(s, None)  # unreadable: the last values stay
    assert s["interfaces"][1]["counters"]["dropped"] == 1005


def test_raw_drops_and_repairs_as_metrics() -> None:
    s = status()
    apply_raw_counters(s, DROPS, {"rules": 2, "setHeaders": 1, "setContents": 4})
    snap = snapshot_from_status(s, {"eth0": ({"dropped": 7, "passed": 1, "failsafe": 0}, {"dropped": 700})}, {})
    got = {(x.name, tuple(sorted(x.labels.items()))): x.value for m in families(snap) for x in m.samples}
    eth1 = (("interface", "eth1"), ("mode", "iptables-raw"), ("tier", "raw"))
    assert got[("seawall_dropped_packets_total", (("family", "all"), ("interface", "eth0"), ("mode", "xdp-native"), ("tier", "xdp")))] == 7
    assert got[("seawall_dropped_packets_total", (("family", "ipv4"), ("interface", "eth0"), ("mode", "xdp-native"), ("tier", "raw")))] == 3
    assert got[("seawall_dropped_packets_total", (("family", "ipv4"), *eth1))] == 1000
    assert got[("seawall_dropped_bytes_total", (("family", "ipv6"), *eth1))] == 300
    assert got[("seawall_raw_repairs_total", (("kind", "rules"),))] == 2
    assert got[("seawall_raw_repairs_total", (("kind", "setContents"),))] == 4


def test_seawall_status_shows_raw_drops_and_repairs() -> None:
    s = status()
    apply_raw_counters(s, DROPS, {"rules": 2, "setHeaders": 0, "setContents": 1})
    text = render_status(s)
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in ("eth0", "eth1") and "nft" in line}
    assert "7 +3 raw" in rows["eth0"]
    assert "1005" in rows["eth1"]
    assert "raw dropped: 1005 packets, 42300 bytes (ipv4 1000, ipv6 5)" in text
    assert "raw drift repaired rules 2, set headers 0, set contents 1" in text


STATE = UntrackedState((InterfacePolicy("eth0", (Policy("p", 1.0, ingress=(Rule(Action.DENY),)),)),), {})


def test_the_worker_checks_the_last_state_every_few_seconds_and_verifies_on_refresh() -> None:
    kinds: list[str] = []
    lock = threading.Lock()
    reports: dict[str, Any] = {}

    def reconcile(state: UntrackedState) -> tuple[dict[str, Any], str | None]:
        with lock:
            kinds.append(PASS_KIND.get())
        return reports, None

    worker = RawWorker(reconcile, retry_s=0.1, check_s=0.05, verify_min_s=0.0)
    try:
        worker.submit(STATE)
        assert wait_until(lambda: worker.checks >= 3, timeout=5)
        completed = worker.completed
        assert completed == 1  # a check that found nothing (same reports) is no new result
        worker.submit(STATE)  # the loop's refresh: the same state again
        assert wait_until(lambda: "verify" in kinds, timeout=5)
        worker.submit(UntrackedState((), {}))  # a change
        assert wait_until(lambda: kinds.count("apply") == 2, timeout=5)
        with lock:
            assert kinds[0] == "apply" and set(kinds[1:4]) == {"check"}
    finally:
        worker.close()
    assert PASS_KIND.get() == "apply"  # the worker's thread set it, never ours


def test_a_refresh_soon_after_a_verify_is_only_a_check() -> None:
    kinds: list[str] = []

    def reconcile(state: UntrackedState) -> tuple[dict[str, Any], str | None]:
        kinds.append(PASS_KIND.get())
        return {}, None

    worker = RawWorker(reconcile, check_s=0, verify_min_s=3600)
    try:
        worker.submit(STATE)
        assert worker.wait_idle(5)
        worker.submit(STATE)
        assert worker.wait_idle(5)
        time.sleep(0.1)
        assert kinds == ["apply", "check"]  # check_s=0: no periodic checks at all
    finally:
        worker.close()


def test_check_passes_are_timed_apart_from_reconciles() -> None:
    from seawall.agent.metrics import AgentMetrics

    metrics = AgentMetrics()
    with metrics.raw_apply_seconds.time():
        pass
    token = PASS_KIND.set("check")
    try:
        for _ in range(3):
            with metrics.raw_apply_seconds.time():
                pass
    finally:
        PASS_KIND.reset(token)
    text = metrics.exposition(None)[0].decode()
    assert "seawall_raw_apply_seconds_count 1.0" in text
    assert "seawall_raw_check_seconds_count 3.0" in text


def test_a_refresh_interval_of_zero_turns_the_check_off_too() -> None:
    def reconcile(state: UntrackedState) -> tuple[dict[str, Any], str | None]:
        return {}, None

    worker = RawWorker(reconcile, check_s=0.02, verify_min_s=3600)
    try:
        worker.set_refresh(0)
        worker.submit(STATE)
        assert wait_until(lambda: worker.completed == 1, timeout=5)
        time.sleep(0.2)  # ten check periods
        assert worker.checks == 0
        worker.set_refresh(180)
        assert wait_until(lambda: worker.checks >= 2, timeout=5)
    finally:
        worker.close()
