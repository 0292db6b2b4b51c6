"""One agent per node: a second ``seawall agent`` with the same run directory or
the same bpffs is refused (a clear message naming the first's pid, exit code 1)
before it touches the kernel, while the first keeps enforcing; a lock left by a
killed agent does not block the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from seawall.testing.netns import bpffs, unique_name
from seawall.testing.traffic import wait_until
from tests.kernel.agent_world import NODE, AgentWorld, agent_world, deny_from_set, host_endpoint, network_set

HOST, BLOCKED, ALLOWED = "10.93.0.1", "10.93.0.2", "10.93.0.3"
PORT = 8125


def _enforcing(world: AgentWorld) -> int:
    world.apply(host_endpoint(world.iface, world.host_ip), network_set([f"{BLOCKED}/32"]), deny_from_set())
    world.start_agent()
    world.wait_for(lambda i: i.get("mode") == "xdp-native", "the first agent in native XDP")
    attachment = world.xdp_attachment()
    assert attachment is not None
    return int(attachment["prog"]["id"])


def _second_agent(world: AgentWorld, fs: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", world.victim, sys.executable, "-m", "seawall", "--datastore", world.db, "agent",
         "--node", NODE, "--bpffs", str(fs), "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=60,
    )


def _still_enforcing(world: AgentWorld, prog_id: int) -> None:
    attachment = world.xdp_attachment()
    assert attachment is not None and int(attachment["prog"]["id"]) == prog_id  # the first agent's program, untouched
    received = world.traffic([BLOCKED, ALLOWED], PORT, count=20)
    assert received.get(BLOCKED, 0) == 0 and received.get(ALLOWED) == 20, received
    assert world.agent is not None and world.agent.poll() is None, world.agent_log()


def test_a_second_agent_with_the_same_run_dir_is_refused(tmp_path: Path) -> None:
    with agent_world(tmp_path, host_cidr=f"{HOST}/24", sources=[BLOCKED, ALLOWED]) as world:
        prog_id = _enforcing(world)
        assert world.agent is not None
        with bpffs(f"/run/seawall-test-{unique_name('fs')}") as other_fs:
            result = _second_agent(world, other_fs, world.run_dir)
            assert result.returncode == 1, result
            assert f"another seawall agent (pid {world.agent.pid}) holds {world.run_dir / 'agent.lock'}" in result.stderr
            assert not (other_fs / "seawall").exists()  # nothing loaded or pinned by the second
        _still_enforcing(world, prog_id)
        assert world.status().get("node") == NODE


def test_a_second_agent_with_the_same_bpffs_is_refused(tmp_path: Path) -> None:
    with agent_world(tmp_path, host_cidr=f"{HOST}/24", sources=[BLOCKED, ALLOWED]) as world:
        prog_id = _enforcing(world)
        assert world.agent is not None
        other_run = tmp_path / "run2"
        result = _second_agent(world, world.fs, other_run)
        assert result.returncode == 1, result
        assert f"another seawall agent (pid {world.agent.pid}) holds {world.fs / 'seawall'}" in result.stderr
        assert not (other_run / "status.json").exists()
        assert sorted(p.name for p in (world.fs / "seawall" / "xdp").iterdir()) == [world.iface]  # no second pin set
        _still_enforcing(world, prog_id)


def test_a_lock_left_by_a_killed_agent_does_not_block(tmp_path: Path) -> None:
    with agent_world(tmp_path, host_cidr=f"{HOST}/24", sources=[BLOCKED, ALLOWED]) as world:
        prog_id = _enforcing(world)
        assert world.agent is not None
        dead = world.agent.pid
        os.kill(dead, signal.SIGKILL)
        world.agent.wait(timeout=10)
        world.stop_agent()
        assert (world.run_dir / "agent.lock").read_text().strip() == str(dead)  # stale file stays
        (world.run_dir / "status.json").unlink()
        world.start_agent()
        world.wait_for(lambda i: i.get("mode") == "xdp-native", "the new agent running")
        assert world.agent.pid != dead
        assert wait_until(lambda: (world.run_dir / "agent.lock").read_text().strip() == str(world.agent.pid), timeout=5)
        _still_enforcing(world, prog_id)  # adopted: the same program, no reload
