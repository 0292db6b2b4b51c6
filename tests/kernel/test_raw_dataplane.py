"""RawDataplane against the real kernel: reconcile an UntrackedState in a victim
namespace, send real UDP from a blocked and an allowed source, and read the
per-rule counters back as (policy, direction, rule index) -> (packets, bytes)."""

from __future__ import annotations

import shutil
import time

import pytest

from seawall.dataplane.iptables.backend import SubprocessRunner
from seawall.dataplane.iptables.dataplane import RawDataplane
from seawall.dataplane.iptables.names import ipset_name
from seawall.dataplane.iptables.ruleset import parse_save
from seawall.policy.model import (
    Action,
    CidrSet,
    EntityMatch,
    InterfacePolicy,
    Policy,
    PortRange,
    Rule,
    UntrackedState,
)
from seawall.testing.netns import ip, netns, veth_pair
from seawall.testing.traffic import send_udp, udp_receiver

VICTIM = "10.88.0.1"
BLOCKED = "10.88.0.5"  # in 10.88.0.4/30
ALLOWED = "10.88.0.2"
PORT = 80
SENT_BLOCKED = 150
SENT_ALLOWED = 120


def _state(iface: str) -> UntrackedState:
    dos = Policy("dos", 10.0, ingress=(
        Rule(Action.LOG, source=EntityMatch(nets=("10.88.0.4/30",))),
        Rule(Action.DENY, source=EntityMatch(sets=("blocked",))),
        Rule(Action.ALLOW, protocol=17, destination=EntityMatch(ports=(PortRange(PORT, PORT),))),
    ))
    return UntrackedState(
        interfaces=(InterfacePolicy(iface, (dos,)),),
        sets={"blocked": CidrSet("blocked", frozenset({"10.88.0.4/30"}))},
    )


def _no_trace(runner: SubprocessRunner, backend: str) -> None:
    for base in ("iptables", "ip6tables"):
        # runs: iptables-nft-save iptables-legacy-save ip6tables-nft-save ip6tables-legacy-save
        saved = parse_save(runner([f"{base}-{backend}-save", "-t", "raw"], None))
        if saved is None:
            continue
        assert not [c for c in saved.chains if c.startswith("sw-")]
        assert not any("sw-" in r.args or "sw:" in r.args for rules in saved.chains.values() for r in rules)
    assert not [n for n in runner(["ipset", "list", "-n"], None).split() if n.startswith("sw")]


def test_reconcile_report_and_rule_counters() -> None:
    for tool in ("ipset", "iptables-nft", "iptables-legacy"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    with netns() as victim, netns() as attacker, \
            veth_pair(victim, attacker, addr_a=f"{VICTIM}/24", addr_b=f"{BLOCKED}/24") as pair:
        ip("addr", "add", f"{ALLOWED}/24", "dev", pair.name_b, ns=attacker)
        runner = SubprocessRunner(["ip", "netns", "exec", victim])
        dp = RawDataplane(runner=runner)
        backend = None
        try:
            reports = dp.reconcile(_state(pair.name_a))
            assert set(reports) == {pair.name_a}
            rep = reports[pair.name_a]
            backend = rep.backend
            assert rep.mode == "iptables-raw" and rep.backend in ("nft", "legacy") and rep.backend_reason
            assert rep.programmed and rep.ok and not rep.errors and not rep.drift_repaired
            assert rep.chains == [f"sw-fh-{pair.name_a}"]
            assert (rep.ingress_policies, rep.egress_policies) == (1, 0)
            assert rep.ipset_members == {ipset_name(4, "blocked"): 1, ipset_name(6, "blocked"): 0}

            assert dp.rule_counters() == {("dos", "ingress", i): (0, 0) for i in range(3)}

            with udp_receiver(victim, VICTIM, PORT, limit_s=60) as rx:
                assert send_udp(attacker, [BLOCKED], VICTIM, PORT, SENT_BLOCKED) == SENT_BLOCKED
                assert send_udp(attacker, [ALLOWED], VICTIM, PORT, SENT_ALLOWED) == SENT_ALLOWED
                time.sleep(0.3)
                got = rx.stop()
            assert got.get(BLOCKED, 0) == 0 and got.get(ALLOWED, 0) == SENT_ALLOWED

            counters = dp.rule_counters()
            log_p, log_b = counters[("dos", "ingress", 0)]
            deny_p, deny_b = counters[("dos", "ingress", 1)]
            allow_p, allow_b = counters[("dos", "ingress", 2)]
            assert deny_p == SENT_BLOCKED and deny_b > 0
            assert log_p == SENT_BLOCKED and log_b == deny_b
            assert allow_p == SENT_ALLOWED and allow_b > 0

            # the same state again: nothing to program, still reported as programmed
            again = dp.reconcile(_state(pair.name_a))[pair.name_a]
            assert again.programmed and not again.errors and not again.drift_repaired
            assert dp.rule_counters()[("dos", "ingress", 1)][0] == SENT_BLOCKED
        finally:
            errors = dp.cleanup()
        assert errors == []
        assert dp.rule_counters() == {}
        _no_trace(runner, backend or "nft")
