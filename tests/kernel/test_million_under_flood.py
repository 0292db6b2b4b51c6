"""A million-net set, then a stream of small changes and a feed's churn, under a flood.

The delta issue's promise end to end, with real parts: ``seawall apply`` of a
1,000,000-net GlobalNetworkSet (stored as head + chunks) into SQLite, the agent
enforcing it on a veth (native XDP, or the raw tier alone with
``xdpEnabled: false``), then changes through ``seawall patch gns --add-nets /
--remove-nets`` while a flood runs the whole time:

- a source in the big set from the start is never let through, not while a
  change rewrites its chunk, not during the churn (15,000 nets out, 15,000 in,
  one write), so nothing blocked passes at any point;
- every change is then checked with real datagrams: a net added is dropped, a
  net removed passes again (no removed net stays blocked once enforced), an
  address never blocked always passes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from seawall.testing.traffic import start_udp_sender, udp_receiver, wait_until
from tests.kernel.agent_world import AgentWorld, agent_world, deny_from_set, felix_config, host_endpoint

HOST = "10.88.0.1/16"
ALWAYS_BLOCKED, NEVER_BLOCKED = "10.88.1.1", "10.88.1.2"
CHANGED = ["10.88.1.3", "10.88.1.4", "10.88.1.5"]
SOURCES = [ALWAYS_BLOCKED, NEVER_BLOCKED, *CHANGED]
FLOOD_PORT, CHECK_PORT = 8201, 8202
BIG = 1_000_000
CHURN = 15_000


def big_net(i: int) -> str:
    return f"{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24"


def big_set_yaml(path: Path) -> Path:
    nets = "".join(f"  - {big_net(i)}\n" for i in range(BIG))
    path.write_text("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: big\n"
                    f"  labels:\n    dos-blacklist: 'true'\nspec:\n  nets:\n  - {ALWAYS_BLOCKED}/32\n{nets}")
    return path


def patch(world: AgentWorld, add: list[str] = (), remove: list[str] = ()) -> None:  # type: ignore[assignment]
    args = ["patch", "globalnetworkset", "big"]
    for flag, nets in (("--add-nets", add), ("--remove-nets", remove)):
        for first in range(0, len(nets), 2000):  # one argv string stays under the kernel's 128 KiB
            args += [flag, ",".join(nets[first : first + 2000])]
    result = world.cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def received(world: AgentWorld, sources: list[str]) -> dict[str, int]:
    return world.traffic(sources, CHECK_PORT, count=25, rate=2000)


def enforced(world: AgentWorld, blocked: set[str]) -> None:
    """Wait until real datagrams show exactly ``blocked`` (of the changed sources) dropped."""
    last: dict[str, int] = {}

    def check() -> bool:
        nonlocal last
        last = received(world, [*CHANGED, NEVER_BLOCKED])
        return all((last.get(s, 0) == 0) == (s in blocked) for s in CHANGED) and last.get(NEVER_BLOCKED, 0) > 0

    assert wait_until(check, timeout=30, interval=0.1), f"want {sorted(blocked)} blocked, received {last}\n{world.agent_log()}"
    again = received(world, [*CHANGED, NEVER_BLOCKED])  # and it stays so
    assert all((again.get(s, 0) == 0) == (s in blocked) for s in CHANGED), again


@pytest.mark.parametrize("tier", ["xdp", "raw"])
def test_a_million_net_set_then_a_stream_of_changes_under_a_flood(tmp_path: Path, tier: str) -> None:
    with agent_world(tmp_path, host_cidr=HOST, sources=SOURCES) as world:
        seed = [host_endpoint(world.iface, world.host_ip), deny_from_set()]
        world.apply(*seed, *([felix_config(xdpEnabled=False)] if tier == "raw" else []))
        result = world.cli("apply", "-f", str(big_set_yaml(tmp_path / "big.yaml")))
        assert result.returncode == 0, result.stdout + result.stderr
        world.start_agent()
        want = (lambda i: i.get("mode") == "xdp-native" and i.get("xdpEntries", {}).get("ipv4", 0) > BIG) if tier == "xdp" \
            else (lambda i: sum((i.get("raw") or {}).get("ipsetMembers", {}).values()) > BIG)
        world.wait_for(want, f"the 1M set enforced ({tier})", timeout=120)
        assert received(world, [ALWAYS_BLOCKED, NEVER_BLOCKED]).get(ALWAYS_BLOCKED, 0) == 0

        with udp_receiver(world.victim, world.host_ip, FLOOD_PORT) as flood_rx, \
                start_udp_sender(world.outside, [ALWAYS_BLOCKED, NEVER_BLOCKED], world.host_ip, FLOOD_PORT, 100_000, rate=2000):
            started = time.monotonic()
            enforced(world, set())
            patch(world, add=[f"{CHANGED[0]}/32", f"{CHANGED[1]}/32"])
            enforced(world, {CHANGED[0], CHANGED[1]})
            patch(world, add=[f"{CHANGED[2]}/32"], remove=[f"{CHANGED[0]}/32"])
            enforced(world, {CHANGED[1], CHANGED[2]})
            # a feed's churn in one write, beside a change of ours: every chunk of the big set is rewritten
            patch(world, add=[f"{120 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24" for i in range(CHURN)] + [f"{CHANGED[0]}/32"],
                  remove=[big_net(i) for i in range(0, 2 * CHURN, 2)] + [f"{CHANGED[1]}/32"])
            enforced(world, {CHANGED[0], CHANGED[2]})
            patch(world, remove=[f"{CHANGED[0]}/32", f"{CHANGED[2]}/32"])
            enforced(world, set())
            assert time.monotonic() - started < 45, "the stream outlasted the flood"  # the sender stops after 60 s
            time.sleep(0.3)
            counts = flood_rx.stop()
        assert counts.get(ALWAYS_BLOCKED, 0) == 0, f"a blocked source got through during the changes: {counts}"
        assert counts.get(NEVER_BLOCKED, 0) > 5000, counts  # the flood really ran the whole time
        status = world.wait_for(lambda i: True, "in sync")
        assert not status.get("invalid") and not status.get("lastError"), status
