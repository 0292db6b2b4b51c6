"""The real agent in ``iptables-raw`` mode: its status (``seawall status`` table
and json) and metrics carry the raw tier's own drop counters, and a flush of the
raw table is repaired within seconds (default settings), counted as a repair."""

from __future__ import annotations

import time
from pathlib import Path

from seawall.testing.netns import run_in
from seawall.testing.traffic import send_udp
from tests.kernel.agent_world import agent_world, deny_from_set, felix_config, host_endpoint, network_set

PORT = 8125
FLOOD = 5000


def test_raw_mode_reports_the_raw_drops_and_repairs_a_flush(tmp_path: Path) -> None:
    host, blocked, allowed = "10.93.0.1", "10.93.0.2", "10.93.0.3"
    with agent_world(tmp_path, host_cidr=f"{host}/24", sources=[blocked, allowed]) as world:
        world.apply(felix_config(xdpEnabled=False), host_endpoint(world.iface, world.host_ip),
                    network_set([f"{blocked}/32"]), deny_from_set())
        world.start_agent()
        world.wait_for(lambda i: i.get("mode") == "iptables-raw" and bool((i.get("raw") or {}).get("programmed")),
                       "raw tier programmed")
        received = world.traffic([allowed], PORT, count=5)  # the neighbours are resolved; nothing of it is dropped
        assert received.get(allowed) == 5
        sent = send_udp(world.outside, [blocked], world.host_ip, PORT, FLOOD, rate=20_000)  # bounded: count and 60 s
        assert sent == FLOOD
        # exact: ARP is not IP (raw never sees it), the allowed datagrams are not dropped
        status = world.wait_for(lambda i: i["counters"]["dropped"] == FLOOD, "the flood counted by the raw tier")
        entry = world.interface(status)
        assert entry["rawCounters"]["dropped"] == FLOOD
        assert entry["rawCounters"]["families"]["ipv4"]["dropped"] == FLOOD
        assert entry["rawCounters"]["families"]["ipv6"]["dropped"] == 0
        table = world.cli("status", "--run-dir", str(world.run_dir))
        assert table.returncode == 0, table.stderr
        row = next(line for line in table.stdout.splitlines() if line.startswith(world.iface) and "iptables-raw" in line)
        assert str(FLOOD) in row.split(), row
        assert f"raw dropped: {FLOOD} packets" in table.stdout

        # drift: someone flushes the raw table; the agent (default settings) repairs it within 10 s
        assert status["rawRepairs"] == {"rules": 0, "setHeaders": 0, "setContents": 0}
        flushed = time.monotonic()
        run_in(world.victim, ["iptables-nft", "-t", "raw", "-F"], check=True)
        run_in(world.victim, ["iptables-legacy", "-t", "raw", "-F"], check=False)
        world.wait_for(lambda i: True, "in sync")
        deadline = flushed + 10
        while time.monotonic() < deadline and world.status().get("rawRepairs", {}).get("rules", 0) < 1:
            time.sleep(0.1)
        repaired_after = time.monotonic() - flushed
        assert world.status()["rawRepairs"]["rules"] >= 1, world.agent_log()
        print(f"\nflush repaired by the agent after {repaired_after:.2f} s (status.json lags up to 1 s)")
        received = world.traffic([blocked, allowed], PORT, count=20)
        assert received.get(blocked, 0) == 0 and received.get(allowed) == 20, received
