"""Short prefixes cost what long ones cost, through the real agent.

Before: adding 0.0.0.0/0 took 26-37 s to enforce and removing it more than
300 s (every /24 slot recomputed in Python), and the loop waited meanwhile, so
a /32 written right after was enforced only when that was done. Now /0../16
(IPv4) and /0../8 (IPv6) are bits in one short-prefix array: at most 4 word
writes. The figures of record are in ``bench/short_prefixes.py``; this test
holds the line the issue draws (a /32 written right after a /0 removal is
enforced within 100 ms, median of 5) and checks both tiers end up exact.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seawall.api import load_text
from seawall.cli import operations
from seawall.dataplane.xdp import libbpf
from seawall.datastore import SqliteDatastore
from seawall.testing import frames as F
from tests.kernel.agent_world import (
    AgentWorld,
    agent_world,
    deny_from_set,
    documents,
    host_endpoint,
    network_set,
)

DROP, PASS = 1, 2
SOURCES = ["10.77.0.2"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AgentWorld]:
    with agent_world(tmp_path, host_cidr="10.77.0.1/24", sources=SOURCES) as w:
        yield w


def _write(store: SqliteDatastore, world: AgentWorld, nets: list[str]) -> None:
    """What ``seawall apply`` does after parsing (no CLI start-up in the timing)."""
    items = load_text(documents(network_set(nets)), "test")
    current = operations.read_current(store, [i.key for i in items])
    store.commit(operations.plan(operations.Mode.APPLY, items, current).ops)


def _wait(prog: int, frames: list[tuple[bytes, int]], limit: float = 20.0) -> float:
    start = time.perf_counter()
    while not all(libbpf.prog_test_run(prog, frame).retval == want for frame, want in frames):
        assert time.perf_counter() - start < limit, "not enforced in time"
        time.sleep(0.0002)
    return (time.perf_counter() - start) * 1000


def test_slash_zero_added_and_removed_does_not_stall_a_slash_32(world: AgentWorld) -> None:
    world.apply(host_endpoint(world.iface, world.host_ip), network_set(["1.2.3.4/32"]), deny_from_set())
    world.start_agent()
    pin = world.fs / "seawall" / "xdp" / world.iface / "prog"
    world.wait_for(lambda s: pin.exists(), "the XDP program pinned")
    prog = libbpf.obj_get(str(pin))
    store = SqliteDatastore(world.db.removeprefix("sqlite://"), create=False)
    try:
        _wait(prog, [(F.udp4("1.2.3.4"), DROP)])
        delays = []
        for i in range(5):
            outside, single = F.udp4(f"198.51.100.{i + 1}"), f"192.0.2.{i + 1}"
            _write(store, world, ["1.2.3.4/32", "0.0.0.0/0", "::/0"])
            _wait(prog, [(outside, DROP), (F.udp6("2001:db8::9"), DROP)])
            _write(store, world, ["1.2.3.4/32"])  # the /0s go, and right after ...
            start = time.perf_counter()
            _write(store, world, ["1.2.3.4/32", f"{single}/32"])  # ... a /32 comes
            _wait(prog, [(F.udp4(single), DROP), (outside, PASS), (F.udp6("2001:db8::9"), PASS)])
            delays.append((time.perf_counter() - start) * 1000)
        assert statistics.median(delays) <= 100, delays
    finally:
        store.close()
    # The raw tier holds the last set exactly (a /0 was two /1s there), and nothing was skipped.
    status = world.wait_for(lambda i: not (i.get("raw") or {}).get("errors"), "raw tier settled")
    assert not world.interface(status).get("skipped")
