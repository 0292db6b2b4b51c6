"""The agent's Prometheus endpoint, health endpoints and per-tier refresh
intervals, end to end: `seawall agent` in a namespace under a real UDP flood,
scraped over HTTP from inside that namespace; the FelixConfiguration turns
the endpoint on, moves it and turns it off while the agent runs."""

from __future__ import annotations

import http.client
import json
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from seawall.testing.netns import in_netns
from seawall.testing.traffic import send_udp, udp_receiver, wait_until
from tests.kernel import test_agent_e2e
from tests.kernel.test_agent_e2e import ALLOWED, BLOCKED, PORT, VICTIM, World, seed, start_agent

world = test_agent_e2e.world  # the same fixture: a victim and an attacker namespace on a veth

HEALTH_PORT = 9099  # the default: Felix's healthPort on healthHost localhost
FLOOD = 3000
# Below the ephemeral range (32768-60999): a connect to a port nothing listens on can otherwise pick
# that very port as its source and connect to itself (CI saw its own request come back as the reply).
PORTS = range(20000, 32000)


def felix(**spec: object) -> str:
    return ("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec: "
            + json.dumps(spec) + "\n")


def http_get(ns: str, port: int, path: str) -> tuple[int, str] | None:
    """(status, body) from 127.0.0.1:port inside ``ns``; None if nothing listens."""
    with in_netns(ns):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
            return None


def scrape(ns: str, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    got = http_get(ns, port, "/metrics")
    if got is None or got[0] != 200:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(got[1]) for s in family.samples}


def lbl(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def stop(agent: subprocess.Popen[str], world: World) -> None:
    if agent.poll() is None:
        agent.kill()
        agent.wait(timeout=10)
    world.cleanup()


def test_metrics_health_and_a_runtime_config_change(world: World) -> None:
    port, moved = random.sample(PORTS, 2)
    assert world.cli("apply", "-f", "-", stdin=seed(world.iface, [f"{BLOCKED}/32", "5.6.0.0/16"])
                     + "---\n" + felix(prometheusMetricsEnabled=True, prometheusMetricsPort=port)).returncode == 0
    agent = start_agent(world)
    try:
        assert wait_until(world.in_xdp, timeout=30), agent.stderr.read() if agent.poll() is not None else world.status()
        with udp_receiver(world.victim, VICTIM, PORT) as rx:
            sent = send_udp(world.attacker, [BLOCKED], VICTIM, PORT, FLOOD, rate=20000)
            send_udp(world.attacker, [ALLOWED], VICTIM, PORT, 20)
            time.sleep(0.3)
            received = rx.stop()
        assert sent == FLOOD and received.get(ALLOWED) == 20
        not_received = sent - received.get(BLOCKED, 0)
        assert not_received == FLOOD

        dropped = lbl(interface=world.iface, mode="xdp-native", verdict="dropped")
        passed = lbl(interface=world.iface, mode="xdp-native", verdict="passed")

        def counted() -> bool:
            # The agent publishes its counters periodically: one snapshot can fall between the
            # flood and the allowed packets, so wait for a scrape that holds both.
            now = scrape(world.victim, port)
            return (now.get(("seawall_packets_total", dropped), 0) >= not_received
                    and now.get(("seawall_packets_total", passed), 0) >= 20)
        assert wait_until(counted, timeout=10), scrape(world.victim, port)
        got = scrape(world.victim, port)
        assert got[("seawall_bytes_total", dropped)] >= not_received * 28  # at least IP + UDP headers each
        assert got[("seawall_in_sync", ())] == 1
        assert got[("seawall_apply_seconds_count", ())] > 0
        assert got[("seawall_datastore_revision", ())] > 0
        assert got[("seawall_interfaces", lbl(mode="xdp-native"))] == 1
        assert got[("seawall_set_entries", lbl(interface=world.iface, family="ipv4", tier="xdp"))] == 2
        assert got[("seawall_set_entries", lbl(interface=world.iface, family="ipv4", tier="raw"))] == 2
        # the raw tier holds the same Deny rule; XDP dropped everything first, so its counter stays at zero
        assert got[("seawall_raw_rule_packets_total", lbl(policy="dos-mitigation", direction="ingress", rule="0"))] == 0

        ready = http_get(world.victim, HEALTH_PORT, "/readiness")
        assert ready is not None and ready[0] == 200 and json.loads(ready[1])["ready"] is True
        live = http_get(world.victim, HEALTH_PORT, "/liveness")
        assert live is not None and live[0] == 200
        assert world.status().get("metricsError") is None

        # Move the endpoint, then turn it off: the agent follows without a restart.
        assert world.cli("apply", "-f", "-", stdin=felix(prometheusMetricsEnabled=True, prometheusMetricsPort=moved)).returncode == 0
        assert wait_until(lambda: scrape(world.victim, moved).get(("seawall_in_sync", ())) == 1, timeout=10)
        assert http_get(world.victim, port, "/metrics") is None
        assert world.cli("apply", "-f", "-", stdin=felix(prometheusMetricsEnabled=False)).returncode == 0
        assert wait_until(lambda: http_get(world.victim, moved, "/metrics") is None, timeout=10)
        ready = http_get(world.victim, HEALTH_PORT, "/readiness")
        assert ready is not None and ready[0] == 200
        assert agent.poll() is None
    finally:
        stop(agent, world)


def test_a_busy_metrics_port_is_reported_and_retried(world: World) -> None:
    port = random.choice(PORTS)
    assert world.cli("apply", "-f", "-", stdin=seed(world.iface, [f"{BLOCKED}/32"])
                     + "---\n" + felix(prometheusMetricsEnabled=True, prometheusMetricsPort=port)).returncode == 0
    with in_netns(world.victim):
        squatter = socket.socket()
        squatter.bind(("0.0.0.0", port))
        squatter.listen()
    agent = start_agent(world)
    try:
        assert wait_until(lambda: "cannot listen on 0.0.0.0:" in (world.status().get("metricsError") or ""), timeout=30), world.status()
        assert wait_until(world.in_xdp, timeout=10)  # enforcement is not held up by the endpoint
        assert world.traffic([BLOCKED, ALLOWED]).get(BLOCKED, 0) == 0
        squatter.close()
        assert wait_until(lambda: scrape(world.victim, port).get(("seawall_in_sync", ())) == 1, timeout=10)
        assert wait_until(lambda: world.status().get("metricsError", "x") is None, timeout=5)
        assert agent.poll() is None
    finally:
        squatter.close()
        stop(agent, world)


def _raw_rules(world: World, backend: str, chain: str) -> int:
    # runs: iptables-nft iptables-legacy
    out = subprocess.run(["ip", "netns", "exec", world.victim, f"iptables-{backend}", "-t", "raw", "-S", chain],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


def _flush(world: World, backend: str, chain: str) -> None:
    # runs: iptables-nft iptables-legacy
    subprocess.run(["ip", "netns", "exec", world.victim, f"iptables-{backend}", "-t", "raw", "-F", chain],
                   capture_output=True, timeout=30, check=True)


def test_each_tier_repairs_drift_on_its_own_refresh_interval(world: World) -> None:
    chain = f"sw-fh-{world.iface}"
    assert world.cli("apply", "-f", "-", stdin=seed(world.iface, [f"{BLOCKED}/32"])
                     + "---\n" + felix(xdpRefreshInterval="1s", iptablesRefreshInterval="0")).returncode == 0
    agent = start_agent(world)
    try:
        assert wait_until(world.in_xdp, timeout=30), world.status()

        def raw_status() -> dict:
            entry = next((i for i in world.status().get("interfaces", []) if i["name"] == world.iface), {})
            return entry.get("raw") or {}

        assert wait_until(lambda: raw_status().get("programmed"), timeout=30), world.status()  # the raw tier's own thread
        backend = raw_status()["backend"]
        rules = _raw_rules(world, backend, chain)
        assert rules > 0

        # XDP refreshes every second, the raw tier never: a flushed chain stays flushed.
        _flush(world, backend, chain)
        before = world.status()["lastApplyTime"]
        assert wait_until(lambda: world.status()["lastApplyTime"] != before, timeout=5)  # XDP passes do run
        time.sleep(2.5)
        assert _raw_rules(world, backend, chain) == 0
        assert world.traffic([BLOCKED]).get(BLOCKED, 0) == 0  # XDP still drops

        # Now the other way round: the raw tier's own timer repairs the chain.
        assert world.cli("apply", "-f", "-", stdin=felix(xdpRefreshInterval="0", iptablesRefreshInterval="1s")).returncode == 0
        assert wait_until(lambda: _raw_rules(world, backend, chain) == rules, timeout=10)  # (the change itself)
        assert wait_until(lambda: world.status().get("iptablesRefreshInterval") == 1.0, timeout=5)
        revision = world.status()["revision"]
        _flush(world, backend, chain)
        assert wait_until(lambda: _raw_rules(world, backend, chain) == rules, timeout=10)
        status = world.status()
        assert status["revision"] == revision and status["lastError"] is None  # the timer, not a change or a retry
        assert agent.poll() is None
    finally:
        stop(agent, world)
