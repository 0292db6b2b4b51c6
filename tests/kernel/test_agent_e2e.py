"""The seed's recipe end to end: CLI apply -> SQLite -> `seawall agent` in a
namespace -> XDP (and raw) drop the blocked source; status reports it; the
attack response (a CIDR added) takes effect; SIGTERM leaves protection on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seawall.testing.netns import bpffs, ip, netns, unique_name, veth_pair
from seawall.testing.traffic import send_udp, udp_receiver, wait_until

VICTIM, BLOCKED, ALLOWED, LATER = "10.90.0.1", "10.90.0.2", "10.90.0.3", "10.90.0.4"
PORT = 8123
NODE = "jasper"


def seed(iface: str, nets: list[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in nets)
    return f"""apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: production-host
  labels:
    apply-dos-mitigation: true
spec:
  interfaceName: {iface}
  node: {NODE}
  expectedIPs: ["{VICTIM}"]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: dos-mitigation
  labels:
    dos-blacklist: 'true'
spec:
  nets: [{quoted}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: dos-mitigation
spec:
  selector: apply-dos-mitigation == 'true'
  doNotTrack: true
  applyOnForward: true
  types:
  - Ingress
  ingress:
  - action: Deny
    source:
      selector: dos-blacklist == 'true'
"""


@dataclass
class World:
    victim: str
    attacker: str
    iface: str
    db: str
    run_dir: Path
    fs: Path

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "seawall", "--datastore", self.db, *args], input=stdin,
                              capture_output=True, text=True, timeout=60)

    def status(self) -> dict:
        """The agent's status, or {} before it has published any."""
        out = subprocess.run([sys.executable, "-m", "seawall", "status", "--run-dir", str(self.run_dir), "-o", "json"],
                             capture_output=True, text=True, timeout=30)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def cleanup(self) -> None:
        """`seawall agent --cleanup` on the protected host: remove everything Seawall installed."""
        subprocess.run(["ip", "netns", "exec", self.victim, sys.executable, "-m", "seawall", "--datastore", self.db, "agent",
                        "--cleanup", "--node", NODE, "--bpffs", str(self.fs), "--run-dir", str(self.run_dir)],
                       capture_output=True, timeout=60)

    def in_xdp(self) -> bool:
        return any(i.get("mode") == "xdp-native" for i in self.status().get("interfaces", []))

    def traffic(self, sources: list[str], count: int = 30) -> dict[str, int]:
        with udp_receiver(self.victim, VICTIM, PORT) as rx:
            send_udp(self.attacker, sources, VICTIM, PORT, count, rate=3000)
            time.sleep(0.3)
            return rx.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with netns() as victim, netns() as attacker, bpffs(f"/run/seawall-test-{unique_name('fs')}") as fs:
        with veth_pair(victim, attacker, addr_a=f"{VICTIM}/24", addr_b=f"{BLOCKED}/24") as pair:
            for addr in (ALLOWED, LATER):
                ip("addr", "add", f"{addr}/24", "dev", pair.name_b, ns=attacker)
            yield World(victim, attacker, pair.name_a, f"sqlite://{tmp_path}/seawall.db", tmp_path / "run", fs)


def start_agent(world: World) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", world.victim, sys.executable, "-m", "seawall", "--datastore", world.db, "agent",
         "--node", NODE, "--bpffs", str(world.fs), "--run-dir", str(world.run_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def test_seed_recipe_end_to_end(world: World) -> None:
    assert world.cli("apply", "-f", "-", stdin=seed(world.iface, [f"{BLOCKED}/32", "5.6.0.0/16"])).returncode == 0
    agent = start_agent(world)
    try:
        def ready() -> bool:
            try:
                data = world.status()
            except (subprocess.CalledProcessError, json.JSONDecodeError):
                return False
            return data.get("inSync") and any(i["name"] == world.iface and i["mode"] == "xdp-native" for i in data["interfaces"])
        assert wait_until(ready, timeout=30), agent.stderr.read() if agent.poll() is not None else world.status()
        received = world.traffic([BLOCKED, ALLOWED])
        assert received.get(BLOCKED, 0) == 0 and received[ALLOWED] == 30
        assert wait_until(lambda: next(i for i in world.status()["interfaces"] if i["name"] == world.iface)["counters"]["dropped"] >= 30,
                          timeout=5)

        # Under attack: add a CIDR to the set; it is dropped shortly after the apply.
        assert world.cli("apply", "-f", "-", stdin=seed(world.iface, [f"{BLOCKED}/32", "5.6.0.0/16", f"{LATER}/32"])).returncode == 0
        assert wait_until(lambda: world.traffic([LATER], count=5).get(LATER, 0) == 0, timeout=10)

        # SIGTERM: the agent exits, protection stays.
        os.kill(agent.pid, signal.SIGTERM)
        agent.wait(timeout=15)
        assert world.traffic([BLOCKED, ALLOWED]).get(BLOCKED, 0) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
        world.cleanup()
    assert world.traffic([BLOCKED], count=5)[BLOCKED] == 5  # clean-up removed everything


def test_an_interface_that_appears_later_is_protected(world: World) -> None:
    late = unique_name("swl")
    assert world.cli("apply", "-f", "-", stdin=seed(late, [f"{BLOCKED}/32"])).returncode == 0
    agent = start_agent(world)
    try:
        assert wait_until(lambda: world.status().get("inSync") is True, timeout=30)
        with veth_pair(world.victim, world.attacker, name_a=late, addr_a="10.91.0.1/24", addr_b="10.91.0.2/24"):
            def protected() -> bool:
                entry = next((i for i in world.status().get("interfaces", []) if i["name"] == late), None)
                return entry is not None and entry["mode"] == "xdp-native"
            assert wait_until(protected, timeout=15), world.status()
    finally:
        agent.kill()
        agent.wait(timeout=10)
        world.cleanup()


def test_bad_data_in_the_datastore_is_reported_and_never_weakens_enforcement(world: World) -> None:
    from seawall.datastore import SqliteDatastore

    assert world.cli("apply", "-f", "-", stdin=seed(world.iface, [f"{BLOCKED}/32"])).returncode == 0
    agent = start_agent(world)
    try:
        assert wait_until(world.in_xdp, timeout=30)
        with SqliteDatastore(world.db.removeprefix("sqlite://")) as store:  # someone writes garbage past the CLI
            kv = store.get("GlobalNetworkSet", "dos-mitigation")
            store.update("GlobalNetworkSet", "dos-mitigation", {**kv.value, "spec": {"nets": ["not-a-cidr"]}}, kv.mod_revision)
        assert wait_until(lambda: any(i["name"] == "dos-mitigation" for i in world.status().get("invalid", [])), timeout=10)
        entry = next(i for i in world.status()["invalid"] if i["name"] == "dos-mitigation")
        assert entry["action"] == "kept the last valid version" and "not-a-cidr" in entry["reason"]
        assert world.traffic([BLOCKED, ALLOWED]).get(BLOCKED, 0) == 0  # still enforced
    finally:
        agent.kill()
        agent.wait(timeout=10)
        world.cleanup()


def test_kill_9_and_restart_under_a_flood_lets_nothing_through(world: World) -> None:
    from seawall.testing.traffic import start_udp_sender

    assert world.cli("apply", "-f", "-", stdin=seed(world.iface, [f"{BLOCKED}/32"])).returncode == 0
    agent = start_agent(world)
    second = None
    try:
        assert wait_until(world.in_xdp, timeout=30)
        with udp_receiver(world.victim, VICTIM, PORT) as rx, \
                start_udp_sender(world.attacker, [BLOCKED, ALLOWED], VICTIM, PORT, 8000, rate=4000):
            time.sleep(0.3)
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait(timeout=10)
            time.sleep(0.3)
            (world.run_dir / "status.json").unlink()
            second = start_agent(world)
            assert wait_until(world.in_xdp, timeout=30)
            time.sleep(0.5)
            counts = rx.stop()
        assert counts.get(BLOCKED, 0) == 0  # nothing through: not while dead, not while adopting
        assert counts.get(ALLOWED, 0) > 1000
    finally:
        for proc in (agent, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        world.cleanup()
