"""Seawall's own XDP programs are never "foreign": an orphan (two loaders on one
pin directory, or a Seawall program attached from another bpffs) is adopted
by a fresh driver/agent, deleting the policy then stops the drops, and
teardown removes whatever Seawall program is attached and says so. A genuinely
foreign program is still left alone, and teardown names it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.driver import InterfaceBlocklist, XdpDesiredState, XdpDriver
from seawall.dataplane.xdp.loader import interface_dir, load_new
from seawall.dataplane.xdp.tables import BlocklistTables
from seawall.testing.netns import bpffs, in_netns, unique_name
from tests.kernel.agent_world import NODE, AgentWorld, agent_world, deny_from_set, host_endpoint, network_set
from tests.kernel.conftest import compile_bpf

HOST, BLOCKED, ALLOWED = "10.94.0.1", "10.94.0.2", "10.94.0.3"
PORT = 8126


def _desired(world: AgentWorld, cidrs: set[str]) -> XdpDesiredState:
    return XdpDesiredState((InterfaceBlocklist(world.iface, frozenset(cidrs), frozenset()),))


def _attached_id(world: AgentWorld) -> int | None:
    attachment = world.xdp_attachment()
    return int(attachment["prog"]["id"]) if attachment else None


def _teardown(world: AgentWorld) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", world.victim, sys.executable, "-m", "seawall", "teardown", "--node", NODE,
                           "--bpffs", str(world.fs), "--run-dir", str(world.run_dir)],
                          capture_output=True, text=True, timeout=60)


def _blocked(world: AgentWorld) -> bool:
    received = world.traffic([BLOCKED, ALLOWED], PORT, count=20)
    assert received.get(ALLOWED) == 20, received
    return received.get(BLOCKED, 0) == 0


def test_two_loaders_on_one_pin_dir_leave_an_orphan_a_fresh_driver_adopts(tmp_path: Path) -> None:
    with agent_world(tmp_path, host_cidr=f"{HOST}/24", sources=[BLOCKED, ALLOWED]) as world, in_netns(world.victim):
        import socket

        ifindex = socket.if_nametoindex(world.iface)
        directory = interface_dir(world.fs, world.iface)
        tables = BlocklistTables.from_cidrs({f"{BLOCKED}/32"})
        first = load_new(directory)  # two agents racing: both load, the first attach wins...
        first.maps.replace(tables.compile(), inactive_known_empty=True, old_keys=BlocklistTables().hash_keys())
        libbpf.xdp_attach(ifindex, first.prog_fd, libbpf.XDP_FLAGS_DRV_MODE)
        second = load_new(directory)  # ...and the last pin wins
        orphan = first.prog_id
        first.close()
        second.close()
        assert _blocked(world)
        driver = XdpDriver(world.fs)
        report = driver.reconcile(_desired(world, {f"{BLOCKED}/32"}))[world.iface]
        assert report.mode == "xdp-native" and report.conflict is None, report
        assert report.adopted and "adopted Seawall program" in report.reason and "foreign" not in report.reason
        assert _attached_id(world) == orphan  # adopted in place: no detach, no gap
        assert _blocked(world)
        driver.reconcile(_desired(world, {f"{ALLOWED}/32"}))  # the maps it writes are the ones the program reads
        received = world.traffic([BLOCKED, ALLOWED], PORT, count=20)
        assert received.get(BLOCKED) == 20 and received.get(ALLOWED, 0) == 0, received
        driver.reconcile(XdpDesiredState(()))  # the policy deleted
        assert _attached_id(world) is None
        assert not _blocked(world)
        driver.close()


def test_an_orphan_from_another_bpffs_is_adopted_by_the_agent_and_torn_down(tmp_path: Path) -> None:
    with agent_world(tmp_path, host_cidr=f"{HOST}/24", sources=[BLOCKED, ALLOWED]) as world, \
            bpffs(f"/run/seawall-test-{unique_name('fs')}") as other_fs:
        with in_netns(world.victim):  # another "agent" with its own pins, bypassing the lock
            other = XdpDriver(other_fs)
            assert other.reconcile(_desired(world, {f"{BLOCKED}/32", "10.94.0.99/32"}))[world.iface].mode == "xdp-native"
            other.close()
        orphan = _attached_id(world)
        assert orphan is not None and _blocked(world)
        world.apply(host_endpoint(world.iface, world.host_ip), network_set([f"{BLOCKED}/32"]), deny_from_set())
        world.start_agent()
        status = world.wait_for(lambda i: i.get("mode") == "xdp-native", "the agent adopting the orphan")
        entry = world.interface(status)
        assert "adopted Seawall program" in entry["reason"] and "foreign" not in entry["reason"], entry
        assert entry["xdpEntries"].get("ipv4") == 1, entry  # the orphan's stale entry is gone
        assert _attached_id(world) == orphan
        assert _blocked(world)
        world.delete("GlobalNetworkPolicy", "dos-mitigation")
        world.wait_for(lambda i: not i.get("mode", "").startswith("xdp-"), "the policy's XDP program removed", timeout=20)
        assert _attached_id(world) is None
        assert not _blocked(world)  # no program left dropping
        world.stop_agent()

        with in_netns(world.victim):  # a second orphan, then teardown
            other = XdpDriver(other_fs)
            other.reconcile(_desired(world, {f"{BLOCKED}/32"}))
            other.close()
        orphan = _attached_id(world)
        assert orphan is not None and _blocked(world)
        result = _teardown(world)
        assert result.returncode == 0, result
        assert f"removed: XDP program seawall_xdp (id {orphan}, xdp-native) detached from {world.iface}" in result.stdout, result
        assert "left:" not in result.stdout, result.stdout
        assert _attached_id(world) is None
        assert not _blocked(world)


def test_a_foreign_program_is_left_alone_and_named_by_teardown(tmp_path: Path) -> None:
    obj_path = compile_bpf("#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
                           'SEC("xdp") int foreign_prog(struct xdp_md *c) { return XDP_PASS; }\n'
                           'char _license[] SEC("license") = "GPL";\n', tmp_path, "foreign")
    with agent_world(tmp_path, host_cidr=f"{HOST}/24", sources=[BLOCKED, ALLOWED]) as world, \
            libbpf.BpfObject.open_file(obj_path) as obj:
        obj.load()
        fd = obj.program_fd("foreign_prog")
        foreign_id = libbpf.prog_info(fd).id
        with in_netns(world.victim):
            import socket

            ifindex = socket.if_nametoindex(world.iface)
            libbpf.xdp_attach(ifindex, fd, libbpf.XDP_FLAGS_DRV_MODE)
        try:
            world.apply(host_endpoint(world.iface, world.host_ip), network_set([f"{BLOCKED}/32"]), deny_from_set())
            world.start_agent()
            status = world.wait_for(lambda i: i.get("mode") == "iptables-raw" and bool((i.get("raw") or {}).get("programmed")),
                                    "the raw tier enforcing beside the foreign program")
            assert "foreign_prog" in world.interface(status)["reason"]
            assert _attached_id(world) == foreign_id
            world.stop_agent()
            result = _teardown(world)
            assert result.returncode == 0, result
            assert (f"left: foreign XDP program foreign_prog (id {foreign_id}, xdp-native) on {world.iface}: "
                    "not Seawall's, left attached") in result.stdout, result.stdout
            assert _attached_id(world) == foreign_id
        finally:
            with in_netns(world.victim):
                libbpf.xdp_detach(ifindex, libbpf.XDP_FLAGS_DRV_MODE)


OLD_SEAWALL_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } sw_cfg SEC(".maps");
SEC("xdp")
int seawall_xdp(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&sw_cfg, &k);
	return v && *v ? XDP_DROP : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_a_seawall_program_of_an_older_build_is_replaced_atomically(tmp_path: Path) -> None:
    """An old build's program (named seawall_xdp, an sw_cfg map, not today's maps) left
    dropping everything: its maps cannot be reused, so it is replaced with XDP_FLAGS_REPLACE."""
    obj_path = compile_bpf(OLD_SEAWALL_C, tmp_path, "old_seawall")
    with agent_world(tmp_path, host_cidr=f"{HOST}/24", sources=[BLOCKED, ALLOWED]) as world, \
            libbpf.BpfObject.open_file(obj_path) as obj, in_netns(world.victim):
        import socket

        obj.load()
        libbpf.map_update(obj.map_fd("sw_cfg"), bytes(4), (1).to_bytes(8, "little"))  # drops everything
        fd = obj.program_fd("seawall_xdp")
        old_id = libbpf.prog_info(fd).id
        libbpf.xdp_attach(socket.if_nametoindex(world.iface), fd, libbpf.XDP_FLAGS_DRV_MODE)
        assert libbpf.prog_test_run(fd, bytes(64)).retval == 1  # XDP_DROP (traffic now would poison ARP)
        driver = XdpDriver(world.fs)
        report = driver.reconcile(_desired(world, {f"{BLOCKED}/32"}))[world.iface]
        assert report.mode == "xdp-native" and report.conflict is None, report
        assert f"replaced Seawall program id {old_id}" in report.reason and "foreign" not in report.reason
        new_id = _attached_id(world)
        assert new_id not in (None, old_id)
        assert _blocked(world)
        assert driver.cleanup() == [world.iface]
        assert _attached_id(world) is None
        driver.close()
