"""Scaffolding for end-to-end tests of ``seawall agent`` in network namespaces.

A *world* is a protected host (the victim namespace, where the agent runs as a
subprocess through ``ip netns exec``) and an outside namespace holding every
source address the tests send from, joined by a veth pair. The protected
interface is either the victim's veth end (native XDP), a Linux bridge with the
veth as its port, or a macvlan on the veth (neither of the last two has native
XDP: generic mode or the iptables raw tier). Resources go in through the real
CLI (``seawall apply``/``delete``) into a per-test SQLite file; the agent's view
comes back through ``seawall status -o json``.

Everything a world creates is removed on exit, also when the test fails: the
agent is stopped, ``seawall agent --cleanup`` runs in the victim namespace,
then the links, namespaces and the private bpffs go.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seawall.testing.netns import bpffs, bridge, ip, macvlan, netns, run_in, unique_name, veth_pair
from seawall.testing.traffic import send_udp, udp_receiver, wait_until

NODE = "e2e-node"
API = "projectcalico.org/v3"
#: The labels of the Calico page's recipe.
HEP_LABEL, SET_LABEL = "apply-dos-mitigation", "dos-blacklist"
HEP_SELECTOR, SET_SELECTOR = f"{HEP_LABEL} == 'true'", f"{SET_LABEL} == 'true'"
TOPOLOGIES = ("veth", "bridge", "macvlan")


# ------------------------------------------------------------------ resources


def host_endpoint(iface: str, expected_ip: str, *, name: str = "production-host") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "HostEndpoint",
            "metadata": {"name": name, "labels": {HEP_LABEL: "true"}},
            "spec": {"interfaceName": iface, "node": NODE, "expectedIPs": [expected_ip]}}


def network_set(nets: list[str], *, name: str = "dos-mitigation") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "GlobalNetworkSet",
            "metadata": {"name": name, "labels": {SET_LABEL: "true"}}, "spec": {"nets": list(nets)}}


def policy(ingress: list[dict[str, Any]], *, name: str = "dos-mitigation", order: float | None = None,
           do_not_track: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": HEP_SELECTOR, "types": ["Ingress"], "ingress": ingress}
    if do_not_track:
        spec |= {"doNotTrack": True, "applyOnForward": True}
    if order is not None:
        spec["order"] = order
    return {"apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def deny_from_set(*, name: str = "dos-mitigation") -> dict[str, Any]:
    """The page's policy: doNotTrack, Deny from the blocklist set."""
    return policy([{"action": "Deny", "source": {"selector": SET_SELECTOR}}], name=name)


def felix_config(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "FelixConfiguration", "metadata": {"name": "default"}, "spec": spec}


def documents(*resources: dict[str, Any]) -> str:
    return yaml.safe_dump_all(resources, sort_keys=False)


# ------------------------------------------------------------------ the world


@dataclass
class AgentWorld:
    victim: str  # namespace of the protected host (the agent runs here)
    outside: str  # namespace of every sender
    iface: str  # the protected interface, in ``victim``
    host_ip: str  # the victim's address on ``iface``
    db: str
    run_dir: Path
    fs: Path
    log: Path
    agent: subprocess.Popen[bytes] | None = None
    _log_file: Any = field(default=None, repr=False)

    # -- CLI

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "seawall", "--datastore", self.db, *args], input=stdin,
                              capture_output=True, text=True, timeout=60)

    def apply(self, *resources: dict[str, Any]) -> None:
        result = self.cli("apply", "-f", "-", stdin=documents(*resources))
        assert result.returncode == 0, f"seawall apply failed:\n{result.stdout}{result.stderr}"

    def delete(self, kind: str, name: str) -> None:
        result = self.cli("delete", kind, name)
        assert result.returncode == 0, f"seawall delete {kind} {name} failed:\n{result.stdout}{result.stderr}"

    # -- agent

    def start_agent(self) -> None:
        assert self.agent is None or self.agent.poll() is not None, "an agent is already running"
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop_agent
        self.agent = subprocess.Popen(
            ["ip", "netns", "exec", self.victim, sys.executable, "-m", "seawall", "--datastore", self.db, "agent",
             "--node", NODE, "--bpffs", str(self.fs), "--run-dir", str(self.run_dir)],
            stdout=self._log_file, stderr=subprocess.STDOUT,
        )

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """``seawall agent --cleanup`` on the protected host: remove everything Seawall installed."""
        subprocess.run(["ip", "netns", "exec", self.victim, sys.executable, "-m", "seawall", "--datastore", self.db,
                        "agent", "--cleanup", "--node", NODE, "--bpffs", str(self.fs), "--run-dir", str(self.run_dir)],
                       capture_output=True, timeout=60)

    def agent_log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no agent log)"

    # -- status

    def status(self) -> dict[str, Any]:
        """``seawall status -o json``, or {} before the agent has published any."""
        out = subprocess.run([sys.executable, "-m", "seawall", "status", "--run-dir", str(self.run_dir), "-o", "json"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return {}
        try:
            return json.loads(out.stdout)
        except json.JSONDecodeError:
            return {}

    def interface(self, status: dict[str, Any] | None = None, name: str | None = None) -> dict[str, Any]:
        """The status entry of the protected interface (or ``name``), {} if absent."""
        data = self.status() if status is None else status
        wanted = name or self.iface
        return next((i for i in data.get("interfaces", []) if i.get("name") == wanted), {})

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 15) -> dict[str, Any]:
        """Poll the status until ``predicate(interface entry)`` holds (the agent
        in sync); returns that whole status. Fails with the last status and the
        agent's log otherwise."""
        last: dict[str, Any] = {}

        def check() -> bool:
            nonlocal last
            last = self.status()
            return bool(last.get("inSync")) and predicate(self.interface(last))

        if not wait_until(check, timeout=timeout, interval=0.05):
            exited = f" (agent exited with {self.agent.returncode})" if self.agent and self.agent.poll() is not None else ""
            raise AssertionError(f"timed out waiting for: {what}{exited}\nlast status: {json.dumps(last, indent=1)}\n"
                                 f"agent log:\n{self.agent_log()}")
        return last

    def counters(self) -> dict[str, int]:
        return self.interface().get("counters", {})

    # -- kernel

    def xdp_attachment(self, name: str | None = None) -> dict[str, Any] | None:
        """The ``xdp`` object of ``ip -j -d link show`` for the interface (None: no XDP program attached)."""
        links = json.loads(ip("-j", "-d", "link", "show", "dev", name or self.iface, ns=self.victim).stdout)
        return links[0].get("xdp")

    def xdp_in_link_text(self, name: str | None = None) -> bool:
        """Whether plain ``ip -d link show`` mentions an XDP program (``xdp``/``xdpgeneric``/``prog/xdp``)."""
        text = ip("-d", "link", "show", "dev", name or self.iface, ns=self.victim).stdout
        return any(word.startswith(("xdp", "prog/xdp")) for word in text.split())

    # -- traffic

    def traffic(self, sources: list[str], port: int, count: int = 30, *, rate: float = 3000) -> dict[str, int]:
        """Send ``count`` UDP datagrams from each source to ``host_ip:port``;
        returns what the protected host received per source."""
        with udp_receiver(self.victim, self.host_ip, port) as rx:
            send_udp(self.outside, sources, self.host_ip, port, count, rate=rate)
            time.sleep(0.3)
            return rx.stop()


def _bridge_netfilter_off(ns: str) -> None:
    """With br_netfilter loaded, every new namespace starts with
    ``net.bridge.bridge-nf-call-iptables=1``: a frame bridged up to the host then
    crosses iptables PREROUTING (the raw tier) at the bridge port, *before* the
    bridge device's generic XDP hook, so raw drops first and the XDP counters
    stay at zero. Turned off in the victim namespace only (the sysctls are per
    namespace), the order is that of a host without br_netfilter: XDP, then raw."""
    for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
        run_in(ns, ["sysctl", "-q", "-w", f"net.bridge.{key}=0"], check=False)  # absent without br_netfilter


@contextlib.contextmanager
def agent_world(tmp_path: Path, *, topology: str = "veth", host_cidr: str, sources: list[str]) -> Iterator[AgentWorld]:
    """A world whose protected interface is a veth end (``veth``), a bridge
    with the veth as its port (``bridge``) or a macvlan on the veth
    (``macvlan``); ``host_cidr`` is the victim's address on it, ``sources`` the
    outside namespace's addresses (same prefix length as ``host_cidr``)."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"topology {topology!r}: expected one of {TOPOLOGIES}")
    prefix = host_cidr.partition("/")[2]
    with contextlib.ExitStack() as stack:
        victim = stack.enter_context(netns())
        outside = stack.enter_context(netns())
        fs = stack.enter_context(bpffs(f"/run/seawall-test-{unique_name('fs')}"))
        pair = stack.enter_context(veth_pair(victim, outside, addr_a=host_cidr if topology == "veth" else None,
                                             addr_b=f"{sources[0]}/{prefix}"))
        for address in sources[1:]:
            ip("addr", "add", f"{address}/{prefix}", "dev", pair.name_b, ns=outside)
        if topology == "bridge":
            iface = stack.enter_context(bridge(victim, addr=host_cidr))
            ip("link", "set", pair.name_a, "master", iface, ns=victim)
            _bridge_netfilter_off(victim)
        elif topology == "macvlan":
            iface = stack.enter_context(macvlan(victim, pair.name_a, addr=host_cidr))
            # The parent veth answers ARP for the macvlan's address too (arp_ignore=0), and
            # frames sent to the parent's MAC never reach the macvlan: pin the macvlan's MAC.
            mac = json.loads(ip("-j", "link", "show", "dev", iface, ns=victim).stdout)[0]["address"]
            ip("neigh", "replace", host_cidr.partition("/")[0], "lladdr", mac, "dev", pair.name_b, "nud", "permanent",
               ns=outside)
        else:
            iface = pair.name_a
        world = AgentWorld(victim, outside, iface, host_cidr.partition("/")[0], f"sqlite://{tmp_path}/seawall.db",
                           tmp_path / "run", fs, tmp_path / "agent.log")
        try:
            yield world
        finally:
            world.stop_agent()
            world.cleanup()


__all__ = [
    "API", "AgentWorld", "HEP_LABEL", "HEP_SELECTOR", "NODE", "SET_LABEL", "SET_SELECTOR", "TOPOLOGIES",
    "agent_world", "deny_from_set", "documents", "felix_config", "host_endpoint", "network_set", "policy",
]
