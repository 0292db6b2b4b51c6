"""The agent's metrics, health and refresh scheduling, without the kernel.

Pure parts (collector families, health answers, server and reconcile plans)
are tested directly; the HTTP server and the loop's failure handling are tested
for real on loopback, with fake dataplanes standing in for XDP and iptables.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from seawall.agent import loop
from seawall.agent.health import HealthState, liveness, readiness
from seawall.agent.http import Endpoint, ManagedServer, health_endpoint, metrics_endpoint, plan
from seawall.agent.loop import Agent, AgentOptions
from seawall.agent.metrics import AgentMetrics, InterfaceSample, MetricsSnapshot, snapshot_from_status
from seawall.agent.status import AgentStatus, InvalidResource, Verdicts, interface_status, verdict_totals
from seawall.api.felix import EffectiveFelixConfig
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.iptables.tier import RawCounters
from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp.reference import Outcome
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.datastore import SqliteDatastore
from seawall.policy import InterfaceDecisions
from seawall.testing.fake_tiers import FakeLinks, FakeTier
from seawall.testing.traffic import wait_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(metrics: AgentMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.exposition(None)
    assert content_type.startswith("text/plain")
    return samples(body.decode())


def lbl(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


SNAPSHOT = MetricsSnapshot(
    interfaces=(
        InterfaceSample("eth0", "xdp-native", packets={"dropped": 2000, "passed": 15, "failsafe": 3},
                        bytes={"dropped": 120000, "passed": 900, "failsafe": 180},
                        xdp_entries={"ipv4": 2, "ipv6": 1},
                        ipset_members={"sw4-s:abc": 2, "sw6-s:abc": 1, "sw4-s:def": 5}),
        InterfaceSample("eth1", "iptables-raw", ipset_members={"sw4-s:abc": 2}),
    ),
    raw_rules={("dos-mitigation", "ingress", 0): (7, 420), ("allow-ssh", "ingress", 1): (0, 0)},
    in_sync=True, revision=42, invalid=2,
)


# ---------------------------------------------------------------- collector


def test_collector_yields_every_family_from_the_snapshot() -> None:
    metrics = AgentMetrics()
    metrics.publish(SNAPSHOT)
    got = scrape(metrics)
    assert got[("seawall_packets_total", lbl(interface="eth0", mode="xdp-native", verdict="dropped"))] == 2000
    assert got[("seawall_packets_total", lbl(interface="eth0", mode="xdp-native", verdict="passed"))] == 15
    assert got[("seawall_packets_total", lbl(interface="eth0", mode="xdp-native", verdict="failsafe"))] == 3
    assert got[("seawall_bytes_total", lbl(interface="eth0", mode="xdp-native", verdict="dropped"))] == 120000
    # no XDP program on eth1: no XDP counter series invented for it
    assert not any(name == "seawall_packets_total" and dict(labels)["interface"] == "eth1" for name, labels in got)
    assert got[("seawall_set_entries", lbl(interface="eth0", family="ipv4", tier="xdp"))] == 2
    assert got[("seawall_set_entries", lbl(interface="eth0", family="ipv6", tier="xdp"))] == 1
    assert got[("seawall_set_entries", lbl(interface="eth0", family="ipv4", tier="raw"))] == 7  # two IPv4 sets summed
    assert got[("seawall_set_entries", lbl(interface="eth0", family="ipv6", tier="raw"))] == 1
    assert got[("seawall_set_entries", lbl(interface="eth1", family="ipv4", tier="raw"))] == 2
    assert got[("seawall_raw_rule_packets_total", lbl(policy="dos-mitigation", direction="ingress", rule="0"))] == 7
    assert got[("seawall_raw_rule_bytes_total", lbl(policy="dos-mitigation", direction="ingress", rule="0"))] == 420
    assert got[("seawall_raw_rule_packets_total", lbl(policy="allow-ssh", direction="ingress", rule="1"))] == 0
    assert got[("seawall_interfaces", lbl(mode="xdp-native"))] == 1
    assert got[("seawall_interfaces", lbl(mode="iptables-raw"))] == 1
    assert got[("seawall_interfaces", lbl(mode="xdp-offload"))] == 0  # every mode present, so a drop to 0 shows
    assert got[("seawall_in_sync", ())] == 1
    assert got[("seawall_datastore_revision", ())] == 42
    assert got[("seawall_invalid_resources", ())] == 2


def test_a_scrape_sees_the_latest_published_snapshot() -> None:
    metrics = AgentMetrics()
    assert scrape(metrics)[("seawall_in_sync", ())] == 0  # before anything is published
    metrics.publish(SNAPSHOT)
    assert scrape(metrics)[("seawall_in_sync", ())] == 1
    metrics.publish(MetricsSnapshot(in_sync=False, revision=43))
    got = scrape(metrics)
    assert (got[("seawall_in_sync", ())], got[("seawall_datastore_revision", ())]) == (0, 43)
    assert not any(name == "seawall_packets_total" for name, _ in got)


def test_registries_are_private_to_each_agent() -> None:
    from prometheus_client import REGISTRY

    first, second = AgentMetrics(), AgentMetrics()  # the global registry would refuse a duplicate
    first.apply_seconds.observe(1.0)
    assert scrape(second)[("seawall_apply_seconds_count", ())] == 0
    assert REGISTRY.get_sample_value("seawall_apply_seconds_count") is None


def test_apply_histogram_buckets_cover_milliseconds_to_seconds() -> None:
    metrics = AgentMetrics()
    for seconds in (0.0007, 0.003, 0.003, 0.2, 4.0):
        metrics.apply_seconds.observe(seconds)
    got = scrape(metrics)
    bucket = {dict(labels)["le"]: value for (name, labels), value in got.items() if name == "seawall_apply_seconds_bucket"}
    assert (bucket["0.001"], bucket["0.005"], bucket["0.25"], bucket["5.0"], bucket["+Inf"]) == (1, 3, 4, 5, 5)
    assert got[("seawall_apply_seconds_count", ())] == 5
    assert got[("seawall_apply_seconds_sum", ())] == pytest.approx(4.2067)


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    metrics = AgentMetrics()
    metrics.publish(SNAPSHOT)
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    names = {f.name for f in openmetrics_families(body.decode())}
    assert {"seawall_packets", "seawall_in_sync", "seawall_apply_seconds"} <= names


def test_snapshot_from_the_status_object_the_agent_publishes() -> None:
    decision = InterfaceDecisions("eth0", "production-host", ("dos-mitigation",), (), frozenset())
    xdp = InterfaceReport("eth0", Mode.XDP_NATIVE, "fastest mode", entries={"ipv4": 3, "ipv6": 0})
    raw = RawInterfaceReport("eth0", Mode.RAW, "nft", "", chains=["sw-fh-eth0"], ipset_members={"sw4-x": 3, "sw6-x": 0})
    status = AgentStatus(node="n", in_sync=True, revision=9, invalid=(InvalidResource("GlobalNetworkSet", "bad"),),
                         interfaces=(interface_status(decision, xdp, raw),
                                     interface_status(InterfaceDecisions("lo", "h", (), (), frozenset()), None, None)))
    snap = snapshot_from_status(status, {"eth0": ({"dropped": 5, "passed": 1, "failsafe": 0}, {"dropped": 300})},
                                {("p", "ingress", 0): (1, 2)})
    # the XDP totals as the agent folds them (Verdicts) give the same samples
    typed = snapshot_from_status(status, {"eth0": (Verdicts(5, 1, 0), {"dropped": 300})}, {("p", "ingress", 0): (1, 2)})
    assert typed == snap
    assert snap.in_sync and snap.revision == 9 and snap.invalid == 1
    eth0, lo = snap.interfaces
    assert (eth0.name, eth0.mode, eth0.packets["dropped"], eth0.bytes["dropped"]) == ("eth0", "xdp-native", 5, 300)
    assert eth0.xdp_entries == {"ipv4": 3, "ipv6": 0} and eth0.ipset_members == {"sw4-x": 3, "sw6-x": 0}
    assert (lo.mode, lo.packets, lo.ipset_members) == ("none", {}, {})
    assert snap.raw_rules == {("p", "ingress", 0): (1, 2)}


def test_verdict_totals_fold_xdp_outcomes_like_seawall_status() -> None:
    values = {Outcome.DROP: 10, Outcome.FAILSAFE: 2, Outcome.PASS: 5, Outcome.NOT_IP: 1, Outcome.MALFORMED: 1}
    assert verdict_totals(values) == Verdicts(dropped=10, passed=7, failsafe=2)


# ---------------------------------------------------------------- health


def test_liveness_follows_the_loop_tick() -> None:
    state = HealthState(last_tick=100.0)
    assert liveness(state, now=101.0, timeout=30)[0] == 200
    assert liveness(state, now=130.0, timeout=30)[0] == 200
    code, body = liveness(state, now=130.5, timeout=30)
    assert code == 503 and body["live"] is False and "30.5 s" in body["reason"]


@pytest.mark.parametrize(("state", "code", "reason"), [
    (HealthState(0, in_sync=False, reconciled=True), 503, "not in sync"),
    (HealthState(0, in_sync=True, reconciled=False), 503, "first reconcile has not completed"),
    (HealthState(0, in_sync=True, reconciled=True, last_error="iptables raw tier: boom"), 503, "boom"),
    (HealthState(0, in_sync=False, reconciled=True, last_error="boom"), 503, "not in sync"),
    (HealthState(0, in_sync=True, reconciled=False, last_error="boom"), 503, "last reconcile failed: boom"),
    (HealthState(0, in_sync=True, reconciled=True), 200, "succeeded"),
])
def test_readiness_needs_sync_and_a_successful_reconcile(state: HealthState, code: int, reason: str) -> None:
    got_code, body = readiness(state)
    assert (got_code, body["ready"]) == (code, code == 200)
    assert reason in body["reason"]
    json.dumps(body)  # the HTTP body


# ---------------------------------------------------------------- FelixConfiguration health fields


def _felix_errors(spec: str) -> str:
    from seawall.api import load_text
    from seawall.api.errors import ValidationFailed

    text = f"apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {{name: default}}\nspec: {spec}"
    try:
        load_text(text, "f.yaml")
    except ValidationFailed as exc:
        return str(exc)
    return ""


def test_felix_health_fields_validate_and_overlay() -> None:
    from seawall.api import load_text
    from seawall.api.felix import effective_config

    for ok in ("{healthEnabled: false}", "{healthHost: 0.0.0.0, healthPort: 19099}", "{healthHost: '::1'}",
               "{healthHost: node-1.Example.com}"):
        assert _felix_errors(ok) == "", ok
    assert "spec.healthPort" in _felix_errors("{healthPort: 0}")
    assert "spec.healthPort" in _felix_errors("{healthPort: 70000}")
    assert "must be an IP address or a host name" in _felix_errors("{healthHost: 'not a host'}")
    assert "spec.healthEnabled" in _felix_errors("{healthEnabled: sometimes}")
    doc = "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {healthPort: 19099}"
    config = effective_config(load_text(doc, "f.yaml")[0].resource, None)
    assert (config.healthEnabled, config.healthHost, config.healthPort) == (True, "localhost", 19099)


# ---------------------------------------------------------------- endpoint plans


def test_endpoints_follow_the_felix_configuration() -> None:
    defaults = EffectiveFelixConfig()
    assert metrics_endpoint(defaults, "0.0.0.0") is None  # Felix: prometheusMetricsEnabled defaults to false
    assert health_endpoint(defaults) == Endpoint("localhost", 9099)
    on = EffectiveFelixConfig(prometheusMetricsEnabled=True, prometheusMetricsPort=9200, healthEnabled=False)
    assert metrics_endpoint(on, "127.0.0.1") == Endpoint("127.0.0.1", 9200)
    assert health_endpoint(on) is None


@pytest.mark.parametrize(("running", "wanted", "action"), [
    (None, None, "none"),
    (None, Endpoint("0.0.0.0", 9091), "start"),  # also: a failed bind is retried
    (Endpoint("0.0.0.0", 9091), Endpoint("0.0.0.0", 9091), "none"),
    (Endpoint("0.0.0.0", 9091), Endpoint("0.0.0.0", 9092), "restart"),
    (Endpoint("0.0.0.0", 9091), Endpoint("127.0.0.1", 9091), "restart"),
    (Endpoint("0.0.0.0", 9091), None, "stop"),
])
def test_server_plan(running: Endpoint | None, wanted: Endpoint | None, action: str) -> None:
    assert plan(running, wanted) == action


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str]:
    """(HTTP status, body); status 0 when nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError) as exc:
        return 0, str(exc)


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_managed_server_starts_restarts_stops_and_survives_a_busy_port() -> None:
    calls = []

    def hello(headers: Any) -> tuple[int, str, bytes]:
        calls.append(headers.get("Accept"))
        return 200, "text/plain", b"hi\n"

    server = ManagedServer("test", {"/hello": hello, "/boom": lambda _h: 1 / 0})
    first, second = free_port(), free_port()
    busy = socket.socket()
    try:
        assert server.apply(Endpoint("127.0.0.1", first)) == "start"
        assert get(first, "/hello") == (200, "hi\n")
        assert get(first, "/nope")[0] == 404
        assert get(first, "/boom")[0] == 500
        assert get(first, "/hello") == (200, "hi\n")  # a failing route did not kill the server
        assert server.apply(Endpoint("127.0.0.1", first)) == "none"

        busy.bind(("127.0.0.1", second))
        busy.listen()
        assert server.apply(Endpoint("127.0.0.1", second)) == "restart"
        assert server.endpoint is None and "cannot listen on 127.0.0.1:" in (server.error or "")
        assert refused(first)
        busy.close()
        assert server.apply(Endpoint("127.0.0.1", second)) == "start"  # retried
        assert server.error is None and get(second, "/hello")[0] == 200

        assert server.apply(None) == "stop"
        assert refused(second) and server.error is None
    finally:
        busy.close()
        server.close()
    assert len(calls) == 3


# ---------------------------------------------------------------- the loop with fake tiers
# (when each tier runs — changes, refreshes, retries — is the worker's: tests/unit/test_tier_worker.py)


def fake_agent(store: SqliteDatastore, options: AgentOptions) -> tuple[Agent, FakeTier, FakeTier, FakeLinks]:
    xdp = FakeTier("xdp")
    raw = FakeTier("raw", part=lambda desired: desired.untracked, fail="raise", message="iptables-restore: exploded",
                   counts=RawCounters)
    links = FakeLinks()
    return Agent(store, options, xdp=xdp, raw=raw, links=links), xdp, raw, links


def felix_default(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration", "metadata": {"name": "default"}, "spec": spec}


def test_the_loop_survives_failed_reconciles_and_reports_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "RETRY_S", 0.3)
    health_port, metrics_port = free_port(), free_port()
    store = SqliteDatastore(tmp_path / "db.sqlite")
    store.create("FelixConfiguration", "default", felix_default(
        healthHost="127.0.0.1", healthPort=health_port, prometheusMetricsEnabled=True, prometheusMetricsPort=metrics_port))
    agent, _, raw, _ = fake_agent(store, AgentOptions("node-x", tmp_path / "bpffs", tmp_path / "run", metrics_host="127.0.0.1"))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        def status() -> dict[str, Any]:
            try:
                return json.loads((tmp_path / "run" / "status.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return {}

        # raised: logged, in status and readiness, retried; the loop and liveness carry on
        assert wait_until(lambda: "exploded" in (status().get("lastError") or ""), timeout=10), status()
        assert wait_until(lambda: get(health_port, "/readiness")[0] == 503, timeout=5)
        code, body = get(health_port, "/readiness")
        assert "last reconcile failed: iptables raw tier: RuntimeError: iptables-restore: exploded" in json.loads(body)["reason"]
        assert get(health_port, "/liveness")[0] == 200
        assert wait_until(lambda: len(raw.passes) >= 2, timeout=5)  # retried
        assert thread.is_alive()

        # reported errors count as a failure too
        raw.fail, raw.message = "report", "iptables raw tier: raw table (IPv4): line 3 failed"
        assert wait_until(lambda: "line 3 failed" in (status().get("lastError") or ""), timeout=5), status()
        assert get(health_port, "/readiness")[0] == 503

        raw.fail = None
        assert wait_until(lambda: get(health_port, "/readiness")[0] == 200, timeout=10)
        assert wait_until(lambda: status().get("lastError", "x") is None, timeout=5)
        assert json.loads(get(health_port, "/readiness")[1])["ready"] is True

        _, text = get(metrics_port, "/metrics")
        got = samples(text)
        assert got[("seawall_reconcile_failures_total", ())] >= 2
        assert got[("seawall_apply_seconds_count", ())] >= 1
        assert got[("seawall_raw_apply_seconds_count", ())] >= 3  # every pass is timed, the failed ones too
        assert got[("seawall_in_sync", ())] == 1

        # disabling the endpoints in the datastore closes their ports
        kv = store.get("FelixConfiguration", "default")
        store.update("FelixConfiguration", "default", felix_default(healthEnabled=False), kv.mod_revision)
        assert wait_until(lambda: refused(health_port) and refused(metrics_port), timeout=5)
    finally:
        agent.stop.set()
        thread.join(timeout=10)
        store.close()
    assert not thread.is_alive()


def test_stopping_the_agent_closes_its_endpoints(tmp_path: Path) -> None:
    health_port = free_port()
    store = SqliteDatastore(tmp_path / "db.sqlite")
    store.create("FelixConfiguration", "default", felix_default(healthHost="127.0.0.1", healthPort=health_port))
    agent, xdp, raw, links = fake_agent(store, AgentOptions("node-x", tmp_path / "bpffs", tmp_path / "run"))
    raw.fail = None
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: not refused(health_port) and get(health_port, "/readiness")[0] == 200, timeout=10)
        started = time.monotonic()
    finally:
        agent.stop.set()
        thread.join(timeout=10)
        store.close()
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert refused(health_port)
    assert xdp.closed and raw.closed and links.closed  # the kernel state stays; the handles go
