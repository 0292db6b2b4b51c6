"""Scaffolding for multi-node tests and benchmarks: several ``seawall agent``
processes, each in its own node namespace, sharing one datastore.

Topology (every namespace fresh, every name unique per cluster)::

        control ns: etcd on 10.77.0.1            attack ns: bridge 10.78.0.10 (legit)
           bridge (management, 10.77.0.1/24)             + 10.78.0.66 (attacker)
             |             |             |                  + 10.78.0.67.. (more sources)
          veth          veth          veth               |          |          |
             |             |             |             veth       veth       veth
        node-a ns     node-b ns     node-c ns  <------------'          |          |
        mgmt 10.77.0.11  .12          .13       data 10.78.0.11      .12        .13

A node namespace has two links: a management veth to the control namespace's
bridge (the agent reaches etcd through it; an agent cannot reach 127.0.0.1 of
another namespace) and a data veth to the attack namespace's bridge, whose
node end is the protected interface (native XDP). The attack namespace holds
every traffic source on its bridge device, so one sender reaches all nodes.

The datastore is a ``store`` parameter: ``"etcd"`` (a real etcd in the control
namespace, :func:`seawall.testing.etcd.etcd_server`) or ``"sqlite"`` (one file
shared by the agents: the single-host reference). Resources go in through the
real CLI (``seawall apply``) run inside the control namespace; each agent's view
comes back through ``seawall status -o json`` (the command, run in-process).

Everything is removed on exit, also when the body fails: the agents are
stopped, then etcd, then ``seawall teardown`` runs in every node namespace,
then the links, namespaces and the private bpffs mounts go.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from seawall.cli.main import cli as seawall_cli
from seawall.testing.netns import bpffs, bridge, ip, netns, run_in, unique_name, veth_pair
from seawall.testing.traffic import send_udp, start_udp_sender, udp_receiver, wait_until

API = "projectcalico.org/v3"
NODES = ("node-a", "node-b", "node-c")
HEP_LABEL, SET_LABEL = "apply-dos-mitigation", "dos-blacklist"
HEP_SELECTOR, SET_SELECTOR = f"{HEP_LABEL} == 'true'", f"{SET_LABEL} == 'true'"

MGMT_NET, DATA_NET = "10.77.0", "10.78.0"
CONTROL_IP = f"{MGMT_NET}.1"  # etcd listens here, in the control namespace
LEGIT = f"{DATA_NET}.10"
ATTACKER = f"{DATA_NET}.66"
#: More attack-side sources (the "new CIDR" of a later change): .67, .68, ...
EXTRA_SOURCES = tuple(f"{DATA_NET}.{i}" for i in range(67, 72))
PORT = 8123
STORES = ("etcd", "sqlite")


# ------------------------------------------------------------------ resources


def host_endpoint(node: str, iface: str, expected_ip: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "HostEndpoint",
            "metadata": {"name": f"{node}-{iface}", "labels": {HEP_LABEL: "true"}},
            "spec": {"node": node, "interfaceName": iface, "expectedIPs": [expected_ip]}}


def network_set(nets: Sequence[str], *, name: str = "dos-mitigation") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "GlobalNetworkSet",
            "metadata": {"name": name, "labels": {SET_LABEL: "true"}}, "spec": {"nets": list(nets)}}


def deny_policy(*, name: str = "dos-mitigation") -> dict[str, Any]:
    """The seed's policy: doNotTrack, Deny ingress from the blocklist sets."""
    return {"apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": {"selector": HEP_SELECTOR, "doNotTrack": True, "applyOnForward": True, "types": ["Ingress"],
                     "ingress": [{"action": "Deny", "source": {"selector": SET_SELECTOR}}]}}


def documents(*resources: dict[str, Any]) -> str:
    return yaml.safe_dump_all(resources, sort_keys=False)


# ------------------------------------------------------------------ status predicates


def entry(status: dict[str, Any], iface: str) -> dict[str, Any]:
    """The status entry of ``iface``, {} if absent."""
    return next((i for i in status.get("interfaces", []) if i.get("name") == iface), {})


def xdp_v4(status: dict[str, Any], iface: str) -> int | None:
    return (entry(status, iface).get("xdpEntries") or {}).get("ipv4")


# ------------------------------------------------------------------ a node


@dataclass
class Node:
    name: str  # the agent's --node
    ns: str
    iface: str  # the protected (data) interface, in ``ns``
    ip: str  # its address
    mgmt_iface: str
    mgmt_ip: str
    fs: Path  # a real bpffs under /run: pins visible from the root namespace
    run_dir: Path
    log: Path
    agent: subprocess.Popen[bytes] | None = None
    store_url: str = ""
    _log_file: Any = field(default=None, repr=False)

    @property
    def pin(self) -> Path:
        """The pinned XDP program of the data interface (BPF_PROG_TEST_RUN probes it)."""
        return self.fs / "seawall" / "xdp" / self.iface / "prog"

    def host_endpoint(self) -> dict[str, Any]:
        return host_endpoint(self.name, self.iface, self.ip)

    # -- agent

    def start_agent(self, store_url: str | None = None) -> None:
        assert self.agent is None or self.agent.poll() is not None, f"{self.name}: an agent is already running"
        if store_url:
            self.store_url = store_url
        self._close_log()
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop_agent
        self._log_file.write(f"---- agent started {time.strftime('%H:%M:%S')}\n".encode())
        self._log_file.flush()
        self.agent = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "seawall", "--datastore", self.store_url, "agent",
             "--node", self.name, "--bpffs", str(self.fs), "--run-dir", str(self.run_dir)],
            stdout=self._log_file, stderr=subprocess.STDOUT,
        )

    def signal_agent(self, sig: int) -> None:
        """Send ``sig`` to the agent and wait for it to exit (SIGKILL after 15 s)."""
        if self.agent is None or self.agent.poll() is not None:
            return
        # `ip netns exec` execs the command: the Popen pid is the agent itself.
        os.kill(self.agent.pid, sig)
        try:
            self.agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait(timeout=10)

    def stop_agent(self) -> None:
        self.signal_agent(signal.SIGTERM)
        self._close_log()

    def kill_agent(self) -> None:
        """kill -9: no chance to clean anything up (the kernel state stays)."""
        self.signal_agent(signal.SIGKILL)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def agent_alive(self) -> bool:
        return self.agent is not None and self.agent.poll() is None

    def teardown(self) -> subprocess.CompletedProcess[str]:
        """``seawall teardown`` inside the node's namespace (needs no datastore)."""
        return run_in(self.ns, [sys.executable, "-m", "seawall", "teardown", "--bpffs", str(self.fs),
                                "--run-dir", str(self.run_dir)], check=False)

    def agent_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no agent log)"

    # -- status

    def status(self) -> dict[str, Any]:
        """``seawall status --run-dir DIR -o json`` (the command, in-process), or {}
        before the agent has published any."""
        result = CliRunner().invoke(seawall_cli, ["status", "--run-dir", str(self.run_dir), "-o", "json"])
        if result.exit_code != 0:
            return {}
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError:
            return {}

    def entry(self, status: dict[str, Any] | None = None) -> dict[str, Any]:
        return entry(self.status() if status is None else status, self.iface)

    def describe(self, status: dict[str, Any] | None = None) -> str:
        data = self.status() if status is None else status
        alive = "running" if self.agent_alive() else f"exited {self.agent.returncode}" if self.agent else "not started"
        brief = {k: data.get(k) for k in ("inSync", "revision", "lastError")}
        return (f"{self.name} (agent {alive}): {json.dumps(brief)} data iface: {json.dumps(self.entry(data))}\n"
                f"  agent log:\n{self.agent_log()}")

    # -- kernel

    def xdp_attached(self) -> bool:
        links = json.loads(ip("-j", "-d", "link", "show", "dev", self.iface, ns=self.ns).stdout)
        return links[0].get("xdp") is not None


# ------------------------------------------------------------------ the cluster


@dataclass
class Cluster:
    store: str  # "etcd" or "sqlite"
    store_url: str
    control: str  # namespace of etcd and of the CLI
    attack: str  # namespace of every traffic source
    nodes: list[Node]
    etcd: Any = None  # seawall.testing.etcd.EtcdServer when store == "etcd"

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    # -- CLI (inside the control namespace: where etcd is reachable)

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_in(self.control, [sys.executable, "-m", "seawall", "--datastore", self.store_url, *args],
                      input=stdin, check=False, timeout=timeout)

    def try_apply(self, *resources: dict[str, Any], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.cli("apply", "-f", "-", stdin=documents(*resources), timeout=timeout)

    def apply(self, *resources: dict[str, Any]) -> None:
        result = self.try_apply(*resources)
        assert result.returncode == 0, f"seawall apply failed:\n{result.stdout}{result.stderr}"

    def recipe(self, nets: Sequence[str], nodes: Sequence[Node] | None = None) -> list[dict[str, Any]]:
        """The seed's resources: a HostEndpoint per node (all by default), the set, the policy."""
        return [*(n.host_endpoint() for n in (self.nodes if nodes is None else nodes)),
                network_set(nets), deny_policy()]

    @contextlib.contextmanager
    def partitioned(self, node: Node) -> Iterator[None]:
        """Cut ``node`` off from etcd in both directions (a silent network
        partition: packets dropped, no reset) until the block ends; its data
        path is untouched."""
        rules = [["INPUT", "-s", node.mgmt_ip, "-j", "DROP"], ["OUTPUT", "-d", node.mgmt_ip, "-j", "DROP"]]
        for rule in rules:
            run_in(self.control, ["iptables", "-w", "-I", *rule])
        try:
            yield
        finally:
            for rule in rules:
                run_in(self.control, ["iptables", "-w", "-D", *rule], check=False)

    # -- agents

    def start_agents(self, nodes: Sequence[Node] | None = None) -> None:
        for n in self.nodes if nodes is None else nodes:
            n.start_agent(self.store_url)

    def stop_agents(self) -> None:
        """SIGTERM to every agent at once, then wait for each."""
        _stop_agents(self.nodes)

    def wait_for(self, predicate: Callable[[Node, dict[str, Any]], bool], what: str, *,
                 nodes: Sequence[Node] | None = None, timeout: float = 20) -> dict[str, dict[str, Any]]:
        """Poll every node's status until ``predicate(node, status)`` holds for
        all of them; returns the statuses by node name. Fails with each
        node's last status and agent log otherwise."""
        targets = list(self.nodes if nodes is None else nodes)
        last: dict[str, dict[str, Any]] = {}
        done: set[str] = set()

        def check() -> bool:
            for n in targets:
                if n.name in done:
                    continue
                last[n.name] = n.status()
                if predicate(n, last[n.name]):
                    done.add(n.name)
            return len(done) == len(targets)

        if not wait_until(check, timeout=timeout, interval=0.1):
            pending = [n for n in targets if n.name not in done]
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}; not yet on "
                                 f"{[n.name for n in pending]}\n" + "\n".join(n.describe(last.get(n.name)) for n in pending))
        return last

    def wait_enforcing(self, ipv4_entries: int, *, nodes: Sequence[Node] | None = None,
                       timeout: float = 20) -> dict[str, dict[str, Any]]:
        """Every node in sync, its data interface in native XDP with ``ipv4_entries`` CIDRs."""
        return self.wait_for(lambda n, s: bool(s.get("inSync")) and n.entry(s).get("mode") == "xdp-native"
                             and xdp_v4(s, n.iface) == ipv4_entries,
                             f"in sync, xdp-native with {ipv4_entries} IPv4 entries", nodes=nodes, timeout=timeout)

    def wait_in_sync(self, value: bool = True, *, nodes: Sequence[Node] | None = None,
                     timeout: float = 20) -> dict[str, dict[str, Any]]:
        return self.wait_for(lambda n, s: s.get("inSync") is value, f"inSync {value}", nodes=nodes, timeout=timeout)

    # -- traffic

    def traffic(self, sources: Sequence[str], *, nodes: Sequence[Node] | None = None, count: int = 30,
                rate: float = 3000, port: int = PORT) -> dict[str, dict[str, int]]:
        """Send ``count`` UDP datagrams from each source (in the attack namespace)
        to each node's data address; returns what each node received, per source."""
        targets = list(self.nodes if nodes is None else nodes)
        with contextlib.ExitStack() as stack:
            receivers = {n.name: stack.enter_context(udp_receiver(n.ns, n.ip, port)) for n in targets}
            for n in targets:
                send_udp(self.attack, list(sources), n.ip, port, count, rate=rate)
            time.sleep(0.3)
            return {name: rx.stop() for name, rx in receivers.items()}

    @contextlib.contextmanager
    def flood(self, sources: Sequence[str], *, nodes: Sequence[Node] | None = None, seconds: float = 30,
              rate: float = 500, port: int = PORT) -> Iterator[dict[str, dict[str, int]]]:
        """Background UDP from each source to each node for up to ``seconds``
        (stopped when the block ends); the yielded dict is filled with what
        each node received, per source, on exit."""
        targets = list(self.nodes if nodes is None else nodes)
        counts: dict[str, dict[str, int]] = {}
        with contextlib.ExitStack() as receiving:
            receivers = {n.name: receiving.enter_context(udp_receiver(n.ns, n.ip, port, limit_s=seconds + 60))
                         for n in targets}
            with contextlib.ExitStack() as sending:  # senders killed on exit, before the receivers stop
                for n in targets:
                    sending.enter_context(start_udp_sender(self.attack, list(sources), n.ip, port,
                                                           int(seconds * rate), rate=rate))
                yield counts
            time.sleep(0.3)  # what is in flight lands
            for name, rx in receivers.items():
                counts[name] = rx.stop()


def _stop_agents(nodes: Sequence[Node]) -> None:
    for node in nodes:
        if node.agent is not None and node.agent.poll() is None:
            node.agent.terminate()
    for node in nodes:
        node.stop_agent()


def _shutdown(nodes: Sequence[Node]) -> None:
    """Stop every agent (SIGTERM to all, then wait), then ``seawall teardown`` in
    every node namespace, all at once."""
    _stop_agents(nodes)
    cleaners = [subprocess.Popen(["ip", "netns", "exec", n.ns, sys.executable, "-m", "seawall", "teardown", "--bpffs",
                                  str(n.fs), "--run-dir", str(n.run_dir)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in nodes]
    for proc in cleaners:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _bridge_netfilter_off(ns: str) -> None:
    """br_netfilter is loaded on this machine: a new namespace starts with
    ``bridge-nf-call-iptables=1``, which would run bridged frames through
    iptables. Off in the namespaces that hold a bridge (absent without br_netfilter)."""
    for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
        run_in(ns, ["sysctl", "-q", "-w", f"net.bridge.{key}=0"], check=False)


@contextlib.contextmanager
def cluster_world(tmp_path: Path, *, store: str = "etcd", nodes: Sequence[str] = NODES,
                  etcd_args: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """A control namespace (etcd when ``store == "etcd"``), an attack namespace
    and one namespace per node, wired as in the module docstring. Agents are not
    started: ``cluster.start_agents()``. ``etcd_args`` go to etcd's command line."""
    if store not in STORES:
        raise ValueError(f"store {store!r}: expected one of {STORES}")
    if len(nodes) > 50:
        raise ValueError("at most 50 nodes (addresses .11 to .60)")
    tmp_path.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        control = stack.enter_context(netns())
        attack = stack.enter_context(netns())
        _bridge_netfilter_off(control)
        _bridge_netfilter_off(attack)
        mgmt_br = stack.enter_context(bridge(control, addr=f"{CONTROL_IP}/24"))
        data_br = stack.enter_context(bridge(attack, addr=f"{LEGIT}/24"))
        for address in (ATTACKER, *EXTRA_SOURCES):
            ip("addr", "add", f"{address}/24", "dev", data_br, ns=attack)
        members: list[Node] = []
        for index, name in enumerate(nodes):
            ns = stack.enter_context(netns())
            fs = stack.enter_context(bpffs(f"/run/seawall-test-{unique_name('fs')}"))
            host = 11 + index
            mgmt = stack.enter_context(veth_pair(ns, control, addr_a=f"{MGMT_NET}.{host}/24",
                                                 name_a=unique_name("swm"), name_b=unique_name("swmb")))
            ip("link", "set", mgmt.name_b, "master", mgmt_br, ns=control)
            data = stack.enter_context(veth_pair(ns, attack, addr_a=f"{DATA_NET}.{host}/24",
                                                 name_a=unique_name("swd"), name_b=unique_name("swdb")))
            ip("link", "set", data.name_b, "master", data_br, ns=attack)
            node = Node(name, ns, data.name_a, f"{DATA_NET}.{host}", mgmt.name_a, f"{MGMT_NET}.{host}", fs,
                        tmp_path / name / "run", tmp_path / name / "agent.log")
            node.log.parent.mkdir(parents=True, exist_ok=True)
            members.append(node)
        # Runs before the namespaces and the bpffs mounts go (LIFO): stop every agent, then clean up.
        stack.callback(_shutdown, members)
        server = None
        if store == "etcd":
            from seawall.testing.etcd import etcd_server

            server = stack.enter_context(etcd_server(netns=control, host=CONTROL_IP, extra_args=etcd_args))
            url = server.url
        else:
            url = f"sqlite://{tmp_path}/seawall.db"
        cluster = Cluster(store, url, control, attack, members, server)
        stack.callback(cluster.stop_agents)  # before etcd stops: agents exit with their datastore up
        yield cluster


__all__ = [
    "API", "ATTACKER", "CONTROL_IP", "Cluster", "DATA_NET", "EXTRA_SOURCES", "HEP_LABEL", "HEP_SELECTOR", "LEGIT",
    "MGMT_NET", "NODES", "Node", "PORT", "SET_LABEL", "SET_SELECTOR", "STORES", "cluster_world", "deny_policy",
    "documents", "entry", "host_endpoint", "network_set", "xdp_v4",
]
