"""The XDP driver on real interfaces in network namespaces, with real UDP traffic.

Topology per test: an attacker namespace with two source addresses (one to be
blocked, one allowed) and a victim namespace, joined by a veth pair (native
XDP) or through a bridge (no native XDP: the fallback cases). The driver runs
in the victim namespace; its pins live on a bpffs mounted under /run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.driver import InterfaceBlocklist, XdpDesiredState, XdpDriver
from seawall.dataplane.xdp.loader import interface_dir
from seawall.dataplane.xdp.maps import MAP_NAMES
from seawall.dataplane.xdp.reference import Outcome
from seawall.dataplane.xdp.tables import MapKind
from seawall.testing.netns import bpffs, bridge, in_netns, ip, netns, unique_name, veth_pair
from seawall.testing.traffic import send_udp, start_udp_sender, udp_receiver
from tests.kernel.conftest import compile_bpf
from tests.kernel.test_raw_real_world import failsafe_ssh_over_ipv6

VICTIM, BLOCKED, ALLOWED = "10.77.0.1", "10.77.0.2", "10.77.0.3"
VICTIM6, BLOCKED6, ALLOWED6 = "fd77::1", "fd77::2", "fd77::3"
PORT = 9999


@dataclass
class Lab:
    victim: str
    attacker: str
    iface: str  # the victim-side interface the driver protects
    attacker_iface: str
    fs: Path

    def driver(self, **kw: object) -> XdpDriver:
        return XdpDriver(self.fs, **kw)  # type: ignore[arg-type]

    def desired(self, cidrs: set[str], *, generic: bool = False, failsafe: frozenset = frozenset({(6, 22)})) -> XdpDesiredState:
        return XdpDesiredState((InterfaceBlocklist(self.iface, frozenset(cidrs), failsafe),), generic_enabled=generic)

    def reconcile(self, driver: XdpDriver, cidrs: set[str], **kw: object):
        with in_netns(self.victim):
            return driver.reconcile(self.desired(cidrs, **kw))[self.iface]  # type: ignore[arg-type]

    def in_victim(self):  # type: ignore[no-untyped-def]
        return in_netns(self.victim)

    def traffic(self, count: int = 50, sources: tuple[str, ...] = (BLOCKED, ALLOWED), dst: str = VICTIM) -> dict[str, int]:
        with udp_receiver(self.victim, dst, PORT) as rx:
            send_udp(self.attacker, list(sources), dst, PORT, count, rate=5000)
            time.sleep(0.3)
            return rx.stop()

    def attached_prog_id(self) -> int:
        with in_netns(self.victim):
            q = libbpf.xdp_query(_ifindex(self.iface))
        return q.drv_prog_id or q.skb_prog_id or q.hw_prog_id


def _ifindex(name: str) -> int:
    import socket

    return socket.if_nametoindex(name)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with netns() as victim, netns() as attacker, bpffs(f"/run/seawall-test-{unique_name('fs')}") as fs:
        with veth_pair(victim, attacker, addr_a=f"{VICTIM}/24", addr_b=f"{BLOCKED}/24") as pair:
            ip("addr", "add", f"{ALLOWED}/24", "dev", pair.name_b, ns=attacker)
            ip("addr", "add", f"{VICTIM6}/64", "dev", pair.name_a, "nodad", ns=victim)
            ip("addr", "add", f"{BLOCKED6}/64", "dev", pair.name_b, "nodad", ns=attacker)
            ip("addr", "add", f"{ALLOWED6}/64", "dev", pair.name_b, "nodad", ns=attacker)
            lab = Lab(victim, attacker, pair.name_a, pair.name_b, fs)
            try:
                yield lab
            finally:
                with in_netns(victim):
                    XdpDriver(fs).cleanup()


@pytest.fixture
def bridged() -> Iterator[Lab]:
    """The victim's address is on a bridge (no native XDP); the veth is a bridge port."""
    with netns() as victim, netns() as attacker, bpffs(f"/run/seawall-test-{unique_name('fs')}") as fs:
        with veth_pair(victim, attacker, addr_b=f"{BLOCKED}/24") as pair, bridge(victim, addr=f"{VICTIM}/24") as br:
            ip("addr", "add", f"{ALLOWED}/24", "dev", pair.name_b, ns=attacker)
            ip("link", "set", pair.name_a, "master", br, ns=victim)
            lab = Lab(victim, attacker, br, pair.name_b, fs)
            try:
                yield lab
            finally:
                with in_netns(victim):
                    XdpDriver(fs).cleanup()


def test_native_mode_drops_blocked_source_and_counts(lab: Lab) -> None:
    driver = lab.driver(hit_shift=0)
    report = lab.reconcile(driver, {f"{BLOCKED}/32", "2001:db8::/32"})
    assert report.mode == "xdp-native"
    assert "offload: the device does not offer it" in report.reason
    assert report.entries == {"ipv4": 1, "ipv6": 1}
    received = lab.traffic(50)
    assert received.get(BLOCKED, 0) == 0
    assert received[ALLOWED] == 50
    with lab.in_victim():
        counters = driver.counters(lab.iface)
        hits = driver.hit_counts(lab.iface)
    assert counters.dropped == 50
    assert counters.bytes[Outcome.DROP] == 50 * (14 + 20 + 8 + len(b"seawall-test-0")) + 40 * 1  # 10..49: one digit more
    assert hits.per_cidr == {f"{BLOCKED}/32": 50} and hits.unattributed == 0


def test_ipv6_sources_are_dropped(lab: Lab) -> None:
    # Static neighbours: the counts below are then the datagrams alone (ND passes
    # the program, see test_neighbour_discovery_from_a_blocked_source_passes).
    link = json.loads(ip("-j", "link", "show", lab.iface, ns=lab.victim).stdout)[0]
    ip("-6", "neigh", "replace", VICTIM6, "lladdr", link["address"], "dev", lab.attacker_iface, "nud", "permanent", ns=lab.attacker)
    driver = lab.driver(hit_shift=0)
    lab.reconcile(driver, {"fd77::2/128", "2001:db8::/48"})
    received = lab.traffic(20, sources=(BLOCKED6, ALLOWED6), dst=VICTIM6)
    assert received.get(BLOCKED6, 0) == 0
    assert received[ALLOWED6] == 20
    with lab.in_victim():
        hits = driver.hit_counts(lab.iface)
    assert hits.per_cidr["fd77::2/128"] == 20


@pytest.mark.parametrize("blocked", [f"{BLOCKED6}/128", "::/0"])
def test_neighbour_discovery_from_a_blocked_source_passes(lab: Lab, blocked: str) -> None:
    """A blocked IPv6 source can still resolve the host (ICMPv6 133-137, hop limit
    255, as ARP), so failsafe tcp/22 works for it after both sides forgot their
    neighbours; everything else from it is dropped."""
    driver = lab.driver(hit_shift=0)
    assert lab.reconcile(driver, {blocked}).mode == "xdp-native"
    assert failsafe_ssh_over_ipv6(lab.victim, lab.attacker, BLOCKED6, VICTIM6)
    with lab.in_victim():
        counters = driver.counters(lab.iface)
    assert counters.packets[Outcome.NEIGHBOUR] > 0 and counters.packets[Outcome.FAILSAFE] > 0
    assert lab.traffic(10, sources=(BLOCKED6,), dst=VICTIM6).get(BLOCKED6, 0) == 0


def test_adding_and_removing_one_cidr_takes_effect_without_reload(lab: Lab) -> None:
    driver = lab.driver()
    lab.reconcile(driver, {"192.0.2.0/24"})
    prog_id = lab.attached_prog_id()
    assert lab.traffic(20)[BLOCKED] == 20
    lab.reconcile(driver, {"192.0.2.0/24", f"{BLOCKED}/32"})
    assert lab.traffic(20).get(BLOCKED, 0) == 0
    lab.reconcile(driver, {"192.0.2.0/24"})
    assert lab.traffic(20)[BLOCKED] == 20
    assert lab.attached_prog_id() == prog_id  # same program throughout: nothing reloaded


def test_failsafe_port_passes_even_from_a_blocked_source(lab: Lab) -> None:
    driver = lab.driver()
    lab.reconcile(driver, {f"{BLOCKED}/32"}, failsafe=frozenset({(17, PORT)}))
    assert lab.traffic(20)[BLOCKED] == 20
    with lab.in_victim():
        assert driver.counters(lab.iface).failsafe >= 20


def test_bridge_without_native_xdp_falls_back_or_uses_generic(bridged: Lab) -> None:
    driver = bridged.driver()
    report = bridged.reconcile(driver, {f"{BLOCKED}/32"})
    assert report.mode == "iptables-raw"
    assert "native: the driver has no XDP support" in report.reason
    assert "generic: disabled (FelixConfiguration genericXDPEnabled: false)" in report.reason
    assert bridged.attached_prog_id() == 0
    report = bridged.reconcile(driver, {f"{BLOCKED}/32"}, generic=True)
    assert report.mode == "xdp-generic"
    received = bridged.traffic(20)
    assert received.get(BLOCKED, 0) == 0 and received[ALLOWED] == 20


def test_a_foreign_xdp_program_is_left_alone_and_reported(lab: Lab, tmp_path: Path) -> None:
    obj_path = compile_bpf("#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
                           'SEC("xdp") int foreign_prog(struct xdp_md *c) { return XDP_PASS; }\n'
                           'char _license[] SEC("license") = "GPL";\n', tmp_path, "foreign")
    with libbpf.BpfObject.open_file(obj_path) as obj:
        obj.load()
        fd = obj.program_fd("foreign_prog")
        with lab.in_victim():
            libbpf.xdp_attach(_ifindex(lab.iface), fd, libbpf.XDP_FLAGS_DRV_MODE)
        foreign_id = libbpf.prog_info(fd).id
        report = lab.reconcile(lab.driver(), {f"{BLOCKED}/32"})
        assert report.mode == "iptables-raw"
        assert report.conflict and "foreign_prog" in report.conflict
        assert lab.attached_prog_id() == foreign_id
        with lab.in_victim():
            lab.driver().cleanup()
        assert lab.attached_prog_id() == foreign_id  # clean-up never touches it either
        with lab.in_victim():
            libbpf.xdp_detach(_ifindex(lab.iface), libbpf.XDP_FLAGS_DRV_MODE)


def test_drift_is_repaired_detached_program_and_edited_map(lab: Lab) -> None:
    driver = lab.driver()
    lab.reconcile(driver, {f"{BLOCKED}/32"})
    ip("link", "set", "dev", lab.iface, "xdp", "off", ns=lab.victim)  # someone detaches us
    assert lab.traffic(10)[BLOCKED] == 10
    report = lab.reconcile(driver, {f"{BLOCKED}/32"})
    assert report.mode == "xdp-native" and any("attached again" in r for r in report.repaired)
    assert lab.traffic(10).get(BLOCKED, 0) == 0
    with lab.in_victim():  # someone zeroes our IPv4 table
        maps = driver._interfaces[lab.iface].program.maps  # noqa: SLF001 - reaching in on purpose
        slot = "ab"[maps.active_slot()]
        fd = maps.fds[f"sw_v4l1_{slot}"]
        index = (int.from_bytes(bytes(map(int, BLOCKED.split("."))), "big") >> 8) >> 5
        libbpf.map_update(fd, index.to_bytes(4, "little"), bytes(8))
    assert lab.traffic(10)[BLOCKED] == 10
    with lab.in_victim():
        report = driver.reconcile(lab.desired({f"{BLOCKED}/32"}), verify=True)[lab.iface]
    assert any("edited by someone else" in r for r in report.repaired)
    assert lab.traffic(10).get(BLOCKED, 0) == 0
    with lab.in_victim():  # someone clears the failsafe ports
        libbpf.map_update(maps.fds["sw_failsafe"], (0).to_bytes(4, "little"), bytes(8192))
        report = driver.reconcile(lab.desired({f"{BLOCKED}/32"}), verify=True)[lab.iface]
        assert "failsafe ports rewritten" in report.repaired
        assert (6, 22) in driver._interfaces[lab.iface].program.maps.failsafe()  # noqa: SLF001


AGENT_SCRIPT = textwrap.dedent("""
    import sys, time
    from seawall.testing.netns import in_netns
    from seawall.dataplane.xdp.driver import XdpDriver, XdpDesiredState, InterfaceBlocklist
    victim, iface, fs, cidr = sys.argv[1:5]
    with in_netns(victim):
        report = XdpDriver(fs).reconcile(XdpDesiredState((InterfaceBlocklist(iface, frozenset({cidr}), frozenset()),)))
    print(report[iface].mode, flush=True)
    time.sleep(120)
""")


def test_kill_9_keeps_dropping_and_a_new_process_adopts_without_a_gap(lab: Lab) -> None:
    agent = subprocess.Popen([sys.executable, "-c", AGENT_SCRIPT, lab.victim, lab.iface, str(lab.fs), f"{BLOCKED}/32"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "xdp-native"
        prog_id = lab.attached_prog_id()
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)
        assert lab.traffic(20).get(BLOCKED, 0) == 0  # still dropping with no process
        assert (interface_dir(lab.fs, lab.iface) / "prog").exists()
        with udp_receiver(lab.victim, VICTIM, PORT) as rx, start_udp_sender(lab.attacker, [BLOCKED], VICTIM, PORT, 3000, rate=3000):
            report = lab.reconcile(lab.driver(), {f"{BLOCKED}/32"})  # adoption while the flood runs
            time.sleep(1.2)
            counts = rx.stop()
        assert report.adopted and report.mode == "xdp-native"
        assert not any("rewritten" in r for r in report.repaired), report.repaired  # its maps held the set: kept
        assert lab.attached_prog_id() == prog_id  # never detached
        assert counts.get(BLOCKED, 0) == 0  # no packet slipped through during adoption
    finally:
        if agent.poll() is None:
            agent.kill()


def test_bulk_replace_of_100k_entries_under_flood_is_atomic(lab: Lab) -> None:
    driver = lab.driver(hit_shift=0)
    first = {f"11.{i >> 16}.{i >> 8 & 255}.{i & 255}/32" for i in range(100_000)} | {f"{BLOCKED}/32"}
    second = {f"12.{i >> 16}.{i >> 8 & 255}.{i & 255}/32" for i in range(100_000)} | {f"{BLOCKED}/32"}
    lab.reconcile(driver, first)
    with lab.in_victim():
        before = driver.counters(lab.iface)
    count = 8000
    with udp_receiver(lab.victim, VICTIM, PORT) as rx:
        with start_udp_sender(lab.attacker, [BLOCKED, ALLOWED], VICTIM, PORT, count, rate=4000) as sender:
            time.sleep(0.2)
            for target in (second, first):
                report = lab.reconcile(driver, target)  # 200k changes: bulk replace
                assert report.mode == "xdp-native"
            assert sender.poll() is None, "the flood ended before the replaces did: lengthen it"
            out, _ = sender.communicate(timeout=60)
        time.sleep(0.3)
        counts = rx.stop()
    with lab.in_victim():
        after = driver.counters(lab.iface)
    assert int(out) == 2 * count
    assert counts.get(BLOCKED, 0) == 0
    assert counts[ALLOWED] == count
    assert after.dropped - before.dropped == count


def test_cleanup_removes_everything(lab: Lab) -> None:
    driver = lab.driver()
    lab.reconcile(driver, {f"{BLOCKED}/32"})
    assert all((interface_dir(lab.fs, lab.iface) / "maps" / name).exists() for name in MAP_NAMES)
    with lab.in_victim():
        assert driver.cleanup() == [lab.iface]
    assert lab.attached_prog_id() == 0
    assert not (lab.fs / "seawall").exists()
    assert lab.traffic(10)[BLOCKED] == 10


def test_maps_are_sized_to_the_set_and_grow_without_a_gap(lab: Lab) -> None:
    driver = lab.driver()
    lab.reconcile(driver, {f"{BLOCKED}/32"})
    with lab.in_victim():
        small = driver._interfaces[lab.iface].program.maps.capacities()  # noqa: SLF001
    assert max(small.values()) == 1 << 14  # a one-entry set gets small maps
    big = {f"13.{i >> 8}.{i & 255}.1/32" for i in range(40_000)} | {f"{BLOCKED}/32"}  # 40,000 /24s
    with udp_receiver(lab.victim, VICTIM, PORT) as rx, start_udp_sender(lab.attacker, [BLOCKED], VICTIM, PORT, 3000, rate=3000):
        time.sleep(0.2)
        report = lab.reconcile(driver, big)
        time.sleep(0.9)
        counts = rx.stop()
    assert report.mode == "xdp-native" and "maps grown for a larger set" in report.repaired
    assert counts.get(BLOCKED, 0) == 0
    with lab.in_victim():
        grown = driver._interfaces[lab.iface].program.maps.capacities()  # noqa: SLF001
    assert grown[MapKind.V4L2] >= 40_000
    assert sorted(p.name for p in (lab.fs / "seawall" / "xdp").iterdir()) == [lab.iface]
