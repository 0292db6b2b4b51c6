"""The raw driver against the real kernel, in a fresh network namespace per test, for
both iptables backends: real UDP from an attacker namespace, foreign rules that must
survive, drift repair, a 1M-member set and a bulk swap under a flood."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from seawall.dataplane.iptables.backend import Backend, SubprocessRunner, binaries
from seawall.dataplane.iptables.driver import RawDriver
from seawall.dataplane.iptables.rendered import IpSetContent, RenderedRaw, TableContent
from seawall.dataplane.iptables.ruleset import parse_save
from seawall.testing.netns import ip, netns, run_in, veth_pair
from seawall.testing.traffic import send_udp, start_udp_sender, udp_receiver

PORT = 5399
BACKENDS = [pytest.param(Backend.LEGACY, id="legacy"), pytest.param(Backend.NFT, id="nft")]


def require_backend(backend: Backend, family: int = 4) -> None:
    for name in binaries(backend, family).values():
        if shutil.which(name) is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{name} missing in CI")
            pytest.skip(f"{name} is not installed")
    if shutil.which("ipset") is None:
        pytest.skip("ipset is not installed")


@dataclass
class Topo:
    victim: str
    attacker: str
    iface: str  # victim's end
    dst: str
    blocked: str
    allowed: str
    family: int

    @property
    def set_family(self) -> str:
        return "inet6" if self.family == 6 else "inet"


@contextlib.contextmanager
def topology(family: int = 4) -> Iterator[Topo]:
    if family == 4:
        dst, blocked, allowed, plen = "10.77.0.1", "10.77.0.2", "10.77.0.3", 24
    else:
        dst, blocked, allowed, plen = "fd77::1", "fd77::2", "fd77::3", 64
    with netns() as victim, netns() as attacker, \
            veth_pair(victim, attacker, addr_a=f"{dst}/{plen}", addr_b=f"{blocked}/{plen}") as pair:
        ip("addr", "add", f"{allowed}/{plen}", "dev", pair.name_b, *(["nodad"] if family == 6 else []), ns=attacker)
        yield Topo(victim, attacker, pair.name_a, dst, blocked, allowed, family)


def rendered(topo: Topo, members: set[str], *, set_name: str | None = None) -> RenderedRaw:
    name = set_name or f"sw{topo.family}-blk"
    chains = {
        "sw-pre": (f'-i {topo.iface} -m comment --comment "sw:d15a7c4e00000001" -g sw-fh-test',),
        "sw-fh-test": (f'-p udp -m set --match-set {name} src -m comment --comment "sw:d15a7c4e00000002" -j DROP',),
    }
    table = TableContent(topo.family, chains, (("PREROUTING", "sw-pre"),))
    return RenderedRaw({topo.family: table}, {name: IpSetContent(name, topo.set_family, frozenset(members))})


def driver_for(topo: Topo, backend: Backend) -> tuple[RawDriver, SubprocessRunner]:
    runner = SubprocessRunner(["ip", "netns", "exec", topo.victim])
    return RawDriver(backend.name.capitalize() if backend is Backend.LEGACY else "NFT", runner=runner), runner


def raw_save(runner: SubprocessRunner, backend: Backend, family: int) -> str:
    return runner([binaries(backend, family)["save"], "-t", "raw"], None)


def assert_no_trace(runner: SubprocessRunner, backend: Backend) -> None:
    for family in (4, 6):
        saved = parse_save(raw_save(runner, backend, family))
        assert saved is None or not [c for c in saved.chains if c.startswith("sw-")]
        if saved is not None:
            assert not any("sw-" in r.args or "sw:" in r.args for rules in saved.chains.values() for r in rules)
    assert not [n for n in runner(["ipset", "list", "-n"], None).split() if n.startswith("sw")]


def received(topo: Topo, count: int = 200) -> dict[str, int]:
    with udp_receiver(topo.victim, topo.dst, PORT, limit_s=30) as rx:
        send_udp(topo.attacker, [topo.blocked, topo.allowed], topo.dst, PORT, count)
        time.sleep(0.2)
        return rx.stop()


def blocklist(count: int, family: int, seed: int) -> set[str]:
    rng = random.Random(seed)
    if family == 4:  # 100.64.0.0/10, never a test address
        return {f"100.{64 + (v >> 16 & 63)}.{v >> 8 & 255}.{v & 255}/32" for v in (rng.getrandbits(22) for _ in range(count * 2))}
    return {f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::/64" for _ in range(count * 2)}


def trim(members: set[str], count: int) -> set[str]:
    return set(sorted(members)[:count])


@pytest.mark.parametrize("backend", BACKENDS)
def test_blocks_allows_and_foreign_rules_survive(backend: Backend) -> None:
    require_backend(backend)
    with topology() as topo:
        driver, runner = driver_for(topo, backend)
        cmd = binaries(backend, 4)["cmd"]
        try:
            run_in(topo.victim, [cmd, "-t", "raw", "-I", "PREROUTING", "1", "-s", "192.0.2.1", "-j", "ACCEPT"])
            run_in(topo.victim, [cmd, "-t", "raw", "-A", "PREROUTING", "-s", "192.0.2.2", "-j", "ACCEPT"])
            assert received(topo)[topo.blocked] == 200  # before: nothing blocks

            report = driver.reconcile(rendered(topo, {f"{topo.blocked}/32", "198.51.100.0/24"}))
            assert report.ok, report
            assert report.backend == backend.value and report.families[4].programmed
            counts = received(topo)
            assert counts.get(topo.blocked, 0) == 0 and counts.get(topo.allowed, 0) == 200

            saved = parse_save(raw_save(runner, backend, 4))
            assert saved is not None
            pre = [r.args for r in saved.chains["PREROUTING"]]
            assert pre[0].endswith("-j sw-pre") and len(pre) == 3
            assert any("192.0.2.1" in a for a in pre) and "192.0.2.2" in pre[-1]
            assert driver.reconcile(rendered(topo, {f"{topo.blocked}/32", "198.51.100.0/24"})).families[4].programmed is False

            counters = driver.counters()[(4, "sw-fh-test")]
            assert counters[0].comment == "sw:d15a7c4e00000002" and counters[0].packets >= 200

            assert driver.cleanup() == []
            assert_no_trace(runner, backend)
            saved = parse_save(raw_save(runner, backend, 4))
            assert saved is not None and len(saved.chains["PREROUTING"]) == 2  # both foreign rules remain
            assert received(topo)[topo.blocked] == 200
        finally:
            driver.cleanup()


@pytest.mark.parametrize("backend", BACKENDS)
def test_drift_repaired(backend: Backend) -> None:
    require_backend(backend)
    with topology() as topo:
        driver, runner = driver_for(topo, backend)
        cmd = binaries(backend, 4)["cmd"]
        want = rendered(topo, {f"{topo.blocked}/32"})
        try:
            assert driver.reconcile(want).ok
            run_in(topo.victim, [cmd, "-t", "raw", "-D", "sw-fh-test", "1"])
            run_in(topo.victim, [cmd, "-t", "raw", "-D", "PREROUTING", "1"])
            assert received(topo).get(topo.blocked, 0) == 200  # the hand edits opened the door

            report = driver.reconcile(want)
            assert report.ok and report.families[4].drift_repaired, report
            assert any("sw-fh-test" in d for d in report.families[4].differences)
            assert any("hook PREROUTING" in d for d in report.families[4].differences)
            assert received(topo).get(topo.blocked, 0) == 0

            run_in(topo.victim, [cmd, "-t", "raw", "-A", "PREROUTING", "-m", "comment", "--comment", "sw:x", "-j", "sw-pre"])
            report = driver.reconcile(want)  # a duplicated hook is removed too
            assert report.families[4].programmed
            saved = parse_save(raw_save(runner, backend, 4))
            assert saved is not None and [r.target for r in saved.chains["PREROUTING"]] == ["sw-pre"]
        finally:
            driver.cleanup()
        assert_no_trace(runner, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ipv6(backend: Backend) -> None:
    require_backend(backend, 6)
    with topology(6) as topo:
        driver, runner = driver_for(topo, backend)
        try:
            report = driver.reconcile(rendered(topo, {f"{topo.blocked}/128", "2001:db8::/32"}))
            assert report.ok and report.families[6].programmed, report
            counts = received(topo)
            assert counts.get(topo.blocked, 0) == 0 and counts.get(topo.allowed, 0) == 200
            assert driver.cleanup() == []
            assert_no_trace(runner, backend)
        finally:
            driver.cleanup()


def test_million_member_set() -> None:
    require_backend(Backend.NFT)
    with topology() as topo:
        driver, runner = driver_for(topo, Backend.NFT)
        members = trim(blocklist(1_000_000, 4, seed=1), 999_999) | {f"{topo.blocked}/32"}
        assert len(members) == 1_000_000
        try:
            start = time.perf_counter()
            report = driver.reconcile(rendered(topo, members))
            load_s = time.perf_counter() - start
            assert report.ok, report
            print(f"1M ipset + rules: {load_s:.2f}s (ipset {report.ipsets_s:.2f}s)")
            header = runner(["ipset", "list", "-t", "sw4-blk"], None)
            assert "Number of entries: 1000000" in header and "maxelem 2097152" in header
            assert load_s < 30
            members.discard(f"{topo.blocked}/32")
            members.add("203.0.113.0/24")
            start = time.perf_counter()
            report = driver.reconcile(rendered(topo, members))
            update_s = time.perf_counter() - start
            print(f"change one CIDR in 1M: {update_s * 1000:.0f} ms")
            assert report.ok and not report.sets_swapped and update_s < 5
            assert received(topo, 50).get(topo.blocked, 0) == 50
        finally:
            driver.cleanup()
        assert_no_trace(runner, Backend.NFT)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bulk_swap_under_flood_lets_no_blocked_packet_through(backend: Backend) -> None:
    require_backend(backend)
    with topology() as topo:
        driver, runner = driver_for(topo, backend)
        pool = blocklist(300_000, 4, seed=2)
        sets = [trim(pool, 100_000), set(sorted(pool)[100_000:200_000]), set(sorted(pool)[200_000:300_000])]
        try:
            assert driver.reconcile(rendered(topo, sets[0] | {f"{topo.blocked}/32"})).ok
            with udp_receiver(topo.victim, topo.dst, PORT, limit_s=60) as rx:
                with start_udp_sender(topo.attacker, [topo.blocked, topo.allowed], topo.dst, PORT, 40_000, rate=10_000) as tx:
                    time.sleep(0.3)
                    for members in (*sets[1:], sets[0]):
                        report = driver.reconcile(rendered(topo, members | {f"{topo.blocked}/32"}))
                        assert report.ok and report.sets_swapped == ["sw4-blk"], report
                    tx.wait(timeout=30)
                time.sleep(0.2)
                counts = rx.stop()
            assert counts.get(topo.blocked, 0) == 0
            assert counts.get(topo.allowed, 0) > 1000
        finally:
            driver.cleanup()
        assert_no_trace(runner, backend)
