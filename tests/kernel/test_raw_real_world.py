"""Faults of the real world, in namespaces: IPv6 neighbour discovery under a
blocklist, drift of the raw tier found in seconds, and the raw tier's own drop
counters (``RawDataplane``, as ``RawTier`` on the ``TierWorker`` the agent runs it on)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from seawall.agent.loop import RAW_CHECK_S
from seawall.agent.status import AgentStatus, raw_repairs, with_counters
from seawall.agent.worker import TierWorker
from seawall.api.felix import EffectiveFelixConfig
from seawall.dataplane.iptables import names, render as render_module
from seawall.dataplane.iptables.backend import SubprocessRunner, binaries
from seawall.dataplane.iptables.dataplane import RawDataplane
from seawall.dataplane.iptables.tier import RawTier
from seawall.policy import DesiredState, XdpDesiredState
from seawall.policy.model import (
    Action,
    CidrSet,
    EntityMatch,
    FailsafePort,
    InterfacePolicy,
    Policy,
    Rule,
    UntrackedState,
)
from seawall.testing.netns import ip, netns, run_in, veth_pair
from seawall.testing.traffic import send_udp, wait_until

VICTIM, BLOCKED = "10.91.0.1", "10.91.0.2"
VICTIM6, BLOCKED6 = "fd91::1", "fd91::2"
SET = "s:blocklist"


class RecordingRunner(SubprocessRunner):
    """The real runner, remembering every argv (to show what a check runs)."""

    def __init__(self, prefix: Sequence[str]) -> None:
        super().__init__(list(prefix))
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None = None) -> str:
        self.calls.append(list(argv))
        return super().__call__(argv, stdin)


@dataclass
class Lab:
    victim: str
    attacker: str
    iface: str
    attacker_iface: str
    dp: RawDataplane
    runner: RecordingRunner
    backend: str

    def sh(self, *argv: str, check: bool = True) -> str:
        return run_in(self.victim, list(argv), capture_output=True, text=True, check=check).stdout

    def state(self, cidrs: set[str], *, extra: int = 0) -> UntrackedState:
        members = set(cidrs) | {str(ipaddress.IPv4Address(0x0B000000 + i)) + "/32" for i in range(extra)}
        policy = Policy("blocklist", 1.0, ingress=(Rule(Action.DENY, source=EntityMatch(sets=(SET,))),))
        return UntrackedState((InterfacePolicy(self.iface, (policy,)),), {SET: CidrSet(SET, frozenset(members))},
                              failsafe_in=(FailsafePort(6, 22),), failsafe_out=())


@pytest.fixture(params=["NFT", "Legacy"])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with netns() as victim, netns() as attacker, veth_pair(victim, attacker, addr_a=f"{VICTIM}/24", addr_b=f"{BLOCKED}/24") as pair:
        ip("addr", "add", f"{VICTIM6}/64", "dev", pair.name_a, "nodad", ns=victim)
        ip("addr", "add", f"{BLOCKED6}/64", "dev", pair.name_b, "nodad", ns=attacker)
        runner = RecordingRunner(["ip", "netns", "exec", victim])
        dp = RawDataplane(request.param, runner=runner)
        try:
            yield Lab(victim, attacker, pair.name_a, pair.name_b, dp, runner, request.param)
        finally:
            dp.cleanup()


# ---------------------------------------------------------------- 1. neighbour discovery

TCP_SERVER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], 22)); s.listen(8); s.settimeout(20)
    print("ready", flush=True)
    try:
        c, _ = s.accept(); c.sendall(b"ok"); c.close()
    except OSError:
        pass
""")
TCP_CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.create_connection((sys.argv[2], 22), timeout=6, source_address=(sys.argv[1], 0))
    print(s.recv(2).decode())
""")


def failsafe_ssh_over_ipv6(victim: str, attacker: str, source: str, target: str) -> bool:
    """From ``source`` (in ``attacker``) to ``target`` tcp/22, after both sides forgot their neighbours."""
    for ns in (victim, attacker):
        ip("-6", "neigh", "flush", "all", ns=ns)
    server = subprocess.Popen(["ip", "netns", "exec", victim, sys.executable, "-c", TCP_SERVER, target],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = subprocess.run(["ip", "netns", "exec", attacker, sys.executable, "-c", TCP_CLIENT, source, target],
                                capture_output=True, text=True, timeout=20)
        return client.returncode == 0 and client.stdout.strip() == "ok"
    finally:
        server.kill()
        server.wait(5)


@pytest.mark.parametrize("blocked", [f"{BLOCKED6}/128", "::/0"])
def test_a_blocked_ipv6_source_resolves_the_host_and_reaches_failsafe_ssh(lab: Lab, blocked: str) -> None:
    lab.dp.reconcile(lab.state({blocked}))
    assert lab.dp.last_report is not None and lab.dp.last_report.ok
    assert failsafe_ssh_over_ipv6(lab.victim, lab.attacker, BLOCKED6, VICTIM6)
    # and the blocklist still blocks that source's other traffic
    drops_before = lab.dp.interface_drops()[lab.iface]["ipv6"][0]
    send_udp(lab.attacker, [BLOCKED6], VICTIM6, 7777, 10)
    dropped = lab.dp.interface_drops()[lab.iface]["ipv6"][0] - drops_before
    if blocked == "::/0":
        # ::/0 also drops the attacker's link-local background (MLD reports, hop limit 1):
        # the ten datagrams plus whatever of that fell into the window.
        assert dropped >= 10
    else:
        assert dropped == 10


def test_without_the_neighbour_discovery_lines_a_blocked_source_cannot_even_resolve(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault itself (so the test above proves the fix): no ND lines, ::/0 blocked -> no tcp/22."""
    monkeypatch.setattr(render_module, "ND_TYPES", range(0))
    lab.dp.reconcile(lab.state({"::/0"}))
    assert lab.dp.last_report is not None and lab.dp.last_report.ok
    assert not failsafe_ssh_over_ipv6(lab.victim, lab.attacker, BLOCKED6, VICTIM6)


# ---------------------------------------------------------------- 2. drift found in seconds

def ours_in_place(lab: Lab) -> bool:
    return not any(lab.dp.driver.check(lab.dp.last).values()) if lab.dp.last is not None else False


def test_drift_is_repaired_within_seconds_and_counted(lab: Lab) -> None:
    state = lab.state({f"{BLOCKED}/32"}, extra=100_000)
    worker = TierWorker(RawTier(dataplane=lab.dp), check_s=RAW_CHECK_S)  # the agent's defaults: check every RAW_CHECK_S
    worker.start()
    desired = DesiredState(state, XdpDesiredState(()), EffectiveFelixConfig())
    try:
        worker.submit(desired)
        assert worker.wait_idle(60)
        ipset = names.ipset_name(4, SET)
        # the check is cheap: headers only, never a member list, even at 100k members
        lab.runner.calls.clear()
        costs = []
        for _ in range(5):
            start = time.perf_counter()
            assert not any(lab.dp.driver.check(lab.dp.last).values())  # type: ignore[arg-type]
            costs.append(time.perf_counter() - start)
        assert all(c[:2] != ["ipset", "save"] and c[:3] != ["ipset", "list", ipset] for c in lab.runner.calls), lab.runner.calls
        backend = lab.dp.driver.backend()[0]
        assert {tuple(c[:3]) for c in lab.runner.calls} == {("ipset", "list", "-t"), (binaries(backend, 4)["save"], "-t", "raw"),
                                                            (binaries(backend, 6)["save"], "-t", "raw")}
        assert len(lab.runner.calls) == 5 * 3  # three processes per check
        print(f"\ncheck with a 100k-member set: median {sorted(costs)[2] * 1000:.1f} ms")

        timings = {}
        iptables = binaries(backend, 4)["save"].replace("-save", "")
        for kind, breakage in (("rules", [iptables, "-t", "raw", "-F"]),
                               ("setHeaders", ["ipset", "flush", ipset]),
                               ("rules", [iptables, "-t", "raw", "-D", "PREROUTING", "1"])):
            before = dict(lab.dp.repairs)
            start = time.monotonic()
            lab.sh(*breakage)
            repaired = lambda kind=kind, before=before: lab.dp.repairs[kind] > before[kind] and ours_in_place(lab)
            assert wait_until(repaired, timeout=10), (breakage, lab.dp.repairs)
            timings[" ".join(breakage)] = time.monotonic() - start
        print("repaired after: " + ", ".join(f"{k}: {v:.2f} s" for k, v in timings.items()))
        members = lab.sh("ipset", "list", "-t", ipset)
        assert "Number of entries: 100001" in members

        # an in-place edit keeping the count: not seen by the check, repaired by the refresh (verify)
        lab.sh("ipset", "del", ipset, f"{BLOCKED}/32")
        lab.sh("ipset", "add", ipset, "192.0.2.99/32")
        time.sleep(2 * 2.0 + 0.5)
        assert lab.dp.repairs["setContents"] == 0 and ours_in_place(lab)  # the cheap check cannot see it
        worker.set_intervals(verify_s=0.5)  # iptablesRefreshInterval comes round: the full read-back
        assert wait_until(lambda: lab.dp.repairs["setContents"] == 1, timeout=30), lab.dp.repairs
        assert worker.wait_idle(30)
        saved = lab.sh("ipset", "save", ipset).split("\n")
        assert f"add {ipset} {BLOCKED}" in saved and f"add {ipset} 192.0.2.99" not in saved
        status = AgentStatus(raw_repairs=raw_repairs(lab.dp.repairs)).to_json()
        assert status["rawRepairs"]["rules"] >= 2 and status["rawRepairs"]["setHeaders"] >= 1
        assert status["rawRepairs"]["setContents"] == 1
    finally:
        worker.close()


# ---------------------------------------------------------------- 3. the raw tier's own counters

def test_a_bounded_flood_is_counted_exactly_by_the_raw_tier(lab: Lab) -> None:
    lab.dp.reconcile(lab.state({f"{BLOCKED}/32", f"{BLOCKED6}/128"}))
    assert lab.dp.last_report is not None and lab.dp.last_report.ok
    link = ip("-j", "link", "show", lab.iface, ns=lab.victim).stdout
    mac = json.loads(link)[0]["address"]
    ip("neigh", "replace", VICTIM, "lladdr", mac, "dev", lab.attacker_iface, "nud", "permanent", ns=lab.attacker)
    ip("-6", "neigh", "replace", VICTIM6, "lladdr", mac, "dev", lab.attacker_iface, "nud", "permanent", ns=lab.attacker)
    sent4 = send_udp(lab.attacker, [BLOCKED], VICTIM, 9999, 20_000)
    sent6 = send_udp(lab.attacker, [BLOCKED6], VICTIM6, 9999, 3_000)
    assert (sent4, sent6) == (20_000, 3_000)
    before = AgentStatus.from_json({"interfaces": [{"name": lab.iface, "mode": "iptables-raw", "raw": {"backend": lab.backend},
                                                    "counters": {"dropped": 0, "passed": 0, "failsafe": 0}}]})
    entry = with_counters(before.interfaces, {}, lab.dp.interface_drops())[0].to_json()
    # exact: permanent neighbours on the sender, so no ARP/ND crosses (and ND is never dropped anyway)
    assert entry["rawCounters"]["families"]["ipv4"]["dropped"] == sent4
    assert entry["rawCounters"]["families"]["ipv6"]["dropped"] == sent6
    assert entry["counters"]["dropped"] == sent4 + sent6
    rules = lab.dp.rule_counters()
    assert rules[("blocklist", "ingress", 0)][0] == sent4 + sent6  # the per-rule counter agrees
