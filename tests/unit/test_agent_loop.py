"""The agent loop with its tiers and link reader given as in-memory fakes (no
root): a datastore change reaches both tiers as one DesiredState, the status
file describes what the tiers reported, a link re-created under an equal state
makes both tiers apply, a change that leaves a tier's part alone is only a check
for it, and nothing is enforced before the datastore is in sync."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seawall.agent.links import LinkTable
from seawall.agent.loop import Agent, AgentOptions
from seawall.calc.snapshot import NodeInterfaces
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.iptables.tier import RawCounters
from seawall.dataplane.mode import Mode
from seawall.dataplane.tier import PassKind
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.datastore import SqliteDatastore
from seawall.policy import DesiredState
from seawall.testing.fake_tiers import FakeLinks, FakeTier
from seawall.testing.traffic import wait_until

from .test_calc import SEED, gns

LINKS = LinkTable(NodeInterfaces({"lo": ("127.0.0.1/8",), "eth0": ("10.0.0.1/24",)}), {"lo": 1, "eth0": 2})


def xdp_reports(desired: DesiredState) -> dict[str, Any]:
    return {b.name: InterfaceReport(b.name, Mode.XDP_NATIVE, "xdp-native (the fastest mode)",
                                    {"ipv4": len(b.cidrs), "ipv6": 0}) for b in desired.xdp.interfaces}


def raw_reports(desired: DesiredState) -> dict[str, Any]:
    return {i.name: RawInterfaceReport(i.name, Mode.RAW, "nft", "fake", programmed=True) for i in desired.untracked.interfaces}


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.run_dir = tmp_path / "run"
        self.store = SqliteDatastore(tmp_path / "db.sqlite")
        self.xdp = FakeTier("xdp", reports=xdp_reports)
        self.raw = FakeTier("raw", part=lambda d: d.untracked, reports=raw_reports, counts=RawCounters)
        self.links = FakeLinks(LINKS)
        self.agent = Agent(self.store, AgentOptions("jasper", tmp_path / "bpffs", self.run_dir),
                           xdp=self.xdp, raw=self.raw, links=self.links)
        self.thread = threading.Thread(target=self.agent.run, daemon=True)

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.run_dir / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def xdp_cidrs(self) -> frozenset[str]:
        passes = [d for k, d in list(self.xdp.passes) if k is not PassKind.CHECK]
        return passes[-1].xdp.interfaces[0].cidrs if passes and passes[-1].xdp.interfaces else frozenset()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    for kind, name, doc in SEED:
        w.store.create(kind, name, doc)
    w.thread.start()
    try:
        yield w
    finally:
        w.agent.stop.set()
        w.thread.join(timeout=10)
        w.store.close()
    assert not w.thread.is_alive()


def test_a_change_reaches_both_tiers_and_the_status_says_what_they_reported(world: World) -> None:
    assert wait_until(lambda: world.xdp_cidrs() == {"1.2.3.4/32", "5.6.0.0/16"}, timeout=10)
    assert wait_until(lambda: any(k is PassKind.APPLY for k in world.raw.kinds()), timeout=5)
    _, desired_xdp = world.xdp.passes[0]
    _, desired_raw = world.raw.passes[0]
    assert desired_xdp is desired_raw  # one DesiredState, passed on untouched
    assert wait_until(lambda: [i.get("mode") for i in world.status().get("interfaces", [])] == ["xdp-native"], timeout=5)
    eth0 = world.status()["interfaces"][0]
    assert eth0["xdpEntries"] == {"ipv4": 2, "ipv6": 0} and eth0["raw"]["programmed"] is True
    assert world.status()["inSync"] is True and world.status()["lastError"] is None

    kv = world.store.get("GlobalNetworkSet", "dos-mitigation")
    _, _, doc = gns("dos-mitigation", ["1.2.3.4/32", "5.6.0.0/16", "9.9.9.9/32"])
    world.store.update("GlobalNetworkSet", "dos-mitigation", doc, kv.mod_revision)
    assert wait_until(lambda: "9.9.9.9/32" in world.xdp_cidrs(), timeout=5)
    assert wait_until(lambda: world.status()["interfaces"][0]["xdpEntries"] == {"ipv4": 3, "ipv6": 0}, timeout=5)


def test_a_change_that_leaves_a_tiers_part_alone_is_only_a_check_for_it(world: World) -> None:
    assert wait_until(lambda: bool(world.xdp_cidrs()) and world.agent.raw.idle() and world.agent.xdp.idle(), timeout=10)
    xdp_applies = [k for k in world.xdp.kinds() if k is PassKind.APPLY]
    raw_applies = [k for k in world.raw.kinds() if k is PassKind.APPLY]
    world.store.create("GlobalNetworkSet", "unused", gns("unused", ["7.7.7.7/32"], labels={"other": "x"})[2])
    assert wait_until(lambda: world.status().get("revision") == world.store.current_revision(), timeout=5)
    assert world.agent.xdp.wait_idle(5) and world.agent.raw.wait_idle(5)
    assert [k for k in world.xdp.kinds() if k is PassKind.APPLY] == xdp_applies
    assert [k for k in world.raw.kinds() if k is PassKind.APPLY] == raw_applies


def test_raw_checks_are_timed_apart_from_raw_reconciles(world: World) -> None:
    assert wait_until(lambda: PassKind.CHECK in world.raw.kinds(), timeout=10)  # the 2 s drift check
    world.raw.drift = True  # the next check finds drift: a result, timed as a check
    assert wait_until(lambda: not world.raw.drift, timeout=10)
    assert world.agent.raw.wait_idle(5)
    before = world.agent.raw.checks
    text = world.agent.metrics.exposition(None)[0].decode()
    after = world.agent.raw.checks  # a check may run meanwhile (every 2 s)
    applies = world.raw.kinds().count(PassKind.APPLY)
    assert f"seawall_raw_apply_seconds_count {float(applies)}" in text
    assert any(f"seawall_raw_check_seconds_count {float(n)}" in text for n in range(before - 1, after + 1)), (before, text)
    assert before >= 2  # every check is timed, drift or not


def test_a_link_recreated_under_an_equal_state_makes_both_tiers_apply(world: World) -> None:
    assert wait_until(lambda: bool(world.xdp_cidrs()) and world.agent.raw.idle() and world.agent.xdp.idle(), timeout=10)
    before_xdp, before_raw = world.xdp.kinds().count(PassKind.APPLY), world.raw.kinds().count(PassKind.APPLY)
    world.links.set_links(LinkTable(LINKS.interfaces, {"lo": 1, "eth0": 7}))  # same name and address, new ifindex
    assert wait_until(lambda: world.xdp.kinds().count(PassKind.APPLY) == before_xdp + 1, timeout=5)
    assert wait_until(lambda: world.raw.kinds().count(PassKind.APPLY) == before_raw + 1, timeout=5)


def test_a_tier_failure_is_shown_retried_and_cleared(world: World) -> None:
    assert wait_until(lambda: bool(world.xdp_cidrs()), timeout=10)
    world.xdp.fail, world.xdp.message = "raise", "map write failed"
    world.store.create("GlobalNetworkSet", "more", gns("more", ["8.8.8.8/32"])[2])
    assert wait_until(lambda: world.status().get("lastError") == "RuntimeError: map write failed", timeout=5)
    world.xdp.fail = None
    assert wait_until(lambda: world.status().get("lastError", "x") is None, timeout=15)  # the worker's retry
    assert "8.8.8.8/32" in world.xdp_cidrs()


def test_nothing_is_enforced_before_the_datastore_is_in_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = World(tmp_path)
    monkeypatch.setattr(type(w.agent.syncer), "in_sync", property(lambda self: False))
    w.thread.start()
    try:
        assert wait_until(lambda: bool(w.status()), timeout=5)
        threading.Event().wait(0.5)
        assert w.xdp.passes == [] and w.raw.passes == []
        assert w.status()["inSync"] is False
    finally:
        w.agent.stop.set()
        w.thread.join(timeout=10)
        w.store.close()
