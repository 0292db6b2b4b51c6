"""Raw tier features with real packets beyond the UDP differential test:
IPv6 (ip6tables), ICMP type matching, and egress (raw OUTPUT) policy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from seawall.dataplane.iptables.backend import SubprocessRunner
from seawall.dataplane.iptables.driver import RawDriver
from seawall.dataplane.iptables.render import render
from seawall.policy.model import (
    Action,
    CidrSet,
    EntityMatch,
    FailsafePort,
    IcmpMatch,
    InterfacePolicy,
    Policy,
    PortRange,
    Rule,
    UntrackedState,
)
from seawall.testing.netns import ip, netns, veth_pair
from seawall.testing.traffic import send_udp, udp_receiver

VICTIM, BLOCKED, ALLOWED = "10.89.0.1", "10.89.0.2", "10.89.0.3"
VICTIM6, BLOCKED6, ALLOWED6 = "fd89::1", "fd89::2", "fd89::3"
PORT = 7777


@dataclass
class Lab:
    victim: str
    attacker: str
    iface: str
    attacker_iface: str
    driver: RawDriver

    def program(self, *policies: Policy, sets: dict[str, CidrSet] | None = None) -> None:
        state = UntrackedState(interfaces=(InterfacePolicy(self.iface, policies),), sets=sets or {})
        report = self.driver.reconcile(render(state))
        assert not report.errors, report.errors


@pytest.fixture(params=["NFT", "Legacy"])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with netns() as victim, netns() as attacker, veth_pair(victim, attacker, addr_a=f"{VICTIM}/24", addr_b=f"{BLOCKED}/24") as pair:
        ip("addr", "add", f"{ALLOWED}/24", "dev", pair.name_b, ns=attacker)
        for ns, dev, addrs in ((victim, pair.name_a, [VICTIM6]), (attacker, pair.name_b, [BLOCKED6, ALLOWED6])):
            for addr in addrs:
                ip("addr", "add", f"{addr}/64", "dev", dev, "nodad", ns=ns)
        driver = RawDriver(request.param, runner=SubprocessRunner(["ip", "netns", "exec", victim]))
        try:
            yield Lab(victim, attacker, pair.name_a, pair.name_b, driver)
        finally:
            driver.cleanup()


def test_ipv6_deny_from_a_set(lab: Lab) -> None:
    link = json.loads(ip("-j", "link", "show", lab.iface, ns=lab.victim).stdout)[0]
    ip("-6", "neigh", "replace", VICTIM6, "lladdr", link["address"], "dev", lab.attacker_iface, "nud", "permanent", ns=lab.attacker)
    lab.program(Policy("v6", None, ingress=(Rule(Action.DENY, source=EntityMatch(sets=("s:v6",))),)),
                sets={"s:v6": CidrSet("s:v6", frozenset({f"{BLOCKED6}/128", "10.99.0.0/16"}))})
    with udp_receiver(lab.victim, VICTIM6, PORT) as rx:
        send_udp(lab.attacker, [BLOCKED6, ALLOWED6], VICTIM6, PORT, 20, rate=2000)
        time.sleep(0.3)
        counts = rx.stop()
    assert counts.get(BLOCKED6, 0) == 0 and counts[ALLOWED6] == 20


ICMP_ECHO = textwrap.dedent("""
    import socket, struct, sys
    def checksum(data):
        total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        total = (total >> 16) + (total & 0xFFFF)
        return ~(total + (total >> 16)) & 0xFFFF
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.bind((sys.argv[1], 0))
    for seq in range(int(sys.argv[3])):
        header = struct.pack("!BBHHH", 8, 0, 0, 7, seq)
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + b"seawall!"), 7, seq) + b"seawall!"
        s.sendto(packet, (sys.argv[2], 0))
""")


def icmp_in_echos(ns: str) -> int:
    snmp = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"], capture_output=True, text=True, check=True).stdout
    lines = [line.split() for line in snmp.splitlines() if line.startswith("Icmp:")]
    return int(lines[1][lines[0].index("InEchos")])


def test_icmp_type_match_drops_echo_requests_only_from_the_matched_source(lab: Lab) -> None:
    lab.program(Policy("noping", None, ingress=(
        Rule(Action.DENY, protocol=1, icmp=IcmpMatch(type=8), source=EntityMatch(nets=(f"{BLOCKED}/32",))),)))
    before = icmp_in_echos(lab.victim)
    for src in (BLOCKED, ALLOWED):
        subprocess.run(["ip", "netns", "exec", lab.attacker, sys.executable, "-c", ICMP_ECHO, src, VICTIM, "5"], check=True, timeout=30)
    time.sleep(0.3)
    assert icmp_in_echos(lab.victim) - before == 5  # only the allowed source's echoes reached the stack
    with udp_receiver(lab.victim, VICTIM, PORT) as rx:  # UDP from the same source is not an echo request
        send_udp(lab.attacker, [BLOCKED], VICTIM, PORT, 5, rate=1000)
        time.sleep(0.2)
        assert rx.stop()[BLOCKED] == 5


SEND_COUNTING_REFUSALS = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refused = 0
    for _ in range(int(sys.argv[3])):
        try:
            s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
        except PermissionError:  # raw OUTPUT DROP of a local packet: EPERM to the sender
            refused += 1
    print(refused)
""")


def test_egress_policy_drops_locally_generated_traffic(lab: Lab) -> None:
    lab.program(Policy("out", None, egress=(
        Rule(Action.DENY, protocol=17, destination=EntityMatch(nets=(f"{BLOCKED}/32",), ports=(PortRange(PORT, PORT),))),)))
    refused = {}
    with udp_receiver(lab.attacker, BLOCKED, PORT) as to_blocked, udp_receiver(lab.attacker, ALLOWED, PORT) as to_allowed:
        for dst in (BLOCKED, ALLOWED):
            out = subprocess.run(["ip", "netns", "exec", lab.victim, sys.executable, "-c", SEND_COUNTING_REFUSALS, dst, str(PORT), "10"],
                                 capture_output=True, text=True, check=True, timeout=30).stdout
            refused[dst] = int(out)
        time.sleep(0.3)
        got_blocked, got_allowed = to_blocked.stop(), to_allowed.stop()
    assert sum(got_blocked.values()) == 0 and refused[BLOCKED] == 10
    assert sum(got_allowed.values()) == 10 and refused[ALLOWED] == 0


def test_outbound_failsafe_port_passes_an_egress_deny(lab: Lab) -> None:
    state = UntrackedState(
        interfaces=(InterfacePolicy(lab.iface, (Policy("out", None, egress=(
            Rule(Action.DENY, destination=EntityMatch(nets=(f"{BLOCKED}/32",))),)),)),),
        sets={},
        failsafe_out=(FailsafePort(17, PORT),),
    )
    report = lab.driver.reconcile(render(state))
    assert not report.errors, report.errors
    refused = {}
    for port in (PORT, PORT + 1):
        out = subprocess.run(["ip", "netns", "exec", lab.victim, sys.executable, "-c", SEND_COUNTING_REFUSALS, BLOCKED, str(port), "5"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        refused[port] = int(out)
    assert refused == {PORT: 0, PORT + 1: 5}  # the failsafe destination port goes out; the rest is denied
