"""The raw tier's own counters in status, metrics and ``seawall status``, and the
raw worker's pass kinds (apply / check / verify) that find drift in seconds."""

from __future__ import annotations

import dataclasses
from typing import Any

from seawall.agent.metrics import families, snapshot_from_status
from seawall.agent.status import AgentStatus, Verdicts, raw_repairs, with_counters
from seawall.cli.status_view import render_status


def status() -> AgentStatus:
    return AgentStatus.from_json({"interfaces": [
        {"name": "eth0", "mode": "xdp-native", "raw": {"backend": "nft"}, "counters": {"dropped": 7, "passed": 1, "failsafe": 0}},
        {"name": "eth1", "mode": "iptables-raw", "raw": {"backend": "nft"}, "counters": {"dropped": 0, "passed": 0, "failsafe": 0}},
        {"name": "eth2", "mode": "none", "raw": None, "counters": {"dropped": 0, "passed": 0, "failsafe": 0}},
    ]})


def apply_raw_counters(s: AgentStatus, drops: Any, repairs: Any = None) -> AgentStatus:
    """What the agent does with the raw tier's counters (XDP's stay as they are)."""
    s = dataclasses.replace(s, interfaces=with_counters(s.interfaces, {}, drops))
    return s if repairs is None else dataclasses.replace(s, raw_repairs=raw_repairs(repairs))


DROPS = {"eth0": {"ipv4": (3, 90), "ipv6": (0, 0)}, "eth1": {"ipv4": (1000, 42000), "ipv6": (5, 300)}}


def test_raw_drops_per_interface_and_family_in_status() -> None:
    s = apply_raw_counters(status(), DROPS, {"rules": 2, "setHeaders": 1}).to_json()
    eth0, eth1, eth2 = s["interfaces"]
    assert eth0["counters"]["dropped"] == 7  # XDP's own counter stays
    assert eth0["rawCounters"] == {"dropped": 3, "droppedBytes": 90, "families": {
        "ipv4": {"dropped": 3, "droppedBytes": 90}, "ipv6": {"dropped": 0, "droppedBytes": 0}}}
    assert eth1["counters"]["dropped"] == 1005  # a raw interface shows raw's drops
    assert eth1["rawCounters"]["families"]["ipv6"] == {"dropped": 5, "droppedBytes": 300}
    assert "rawCounters" not in eth2
    assert s["rawRepairs"] == {"rules": 2, "setHeaders": 1, "setContents": 0}
    s = apply_raw_counters(AgentStatus.from_json(s), None).to_json()  # unreadable: the last values stay
    assert s["interfaces"][1]["counters"]["dropped"] == 1005
    assert s["interfaces"][0]["rawCounters"]["dropped"] == 3


def test_raw_drops_and_repairs_as_metrics() -> None:
    s = apply_raw_counters(status(), DROPS, {"rules": 2, "setHeaders": 1, "setContents": 4})
    snap = snapshot_from_status(s, {"eth0": (Verdicts(7, 1, 0), {"dropped": 700})}, {})
    got = {(x.name, tuple(sorted(x.labels.items()))): x.value for m in families(snap) for x in m.samples}
    eth1 = (("interface", "eth1"), ("mode", "iptables-raw"), ("tier", "raw"))
    assert got[("seawall_dropped_packets_total", (("family", "all"), ("interface", "eth0"), ("mode", "xdp-native"), ("tier", "xdp")))] == 7
    assert got[("seawall_dropped_packets_total", (("family", "ipv4"), ("interface", "eth0"), ("mode", "xdp-native"), ("tier", "raw")))] == 3
    assert got[("seawall_dropped_packets_total", (("family", "ipv4"), *eth1))] == 1000
    assert got[("seawall_dropped_bytes_total", (("family", "ipv6"), *eth1))] == 300
    assert got[("seawall_raw_repairs_total", (("kind", "rules"),))] == 2
    assert got[("seawall_raw_repairs_total", (("kind", "setContents"),))] == 4


def test_seawall_status_shows_raw_drops_and_repairs() -> None:
    s = apply_raw_counters(status(), DROPS, {"rules": 2, "setHeaders": 0, "setContents": 1})
    text = render_status(s)
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in ("eth0", "eth1") and "nft" in line}
    assert "7 +3 raw" in rows["eth0"]
    assert "1005" in rows["eth1"]
    assert "raw dropped: 1005 packets, 42300 bytes (ipv4 1000, ipv6 5)" in text
    assert "raw drift repaired rules 2, set headers 0, set contents 1" in text


# When the raw tier checks and verifies (every few seconds; on refresh; never with a 0 interval)
# is the worker's, tested in tests/unit/test_tier_worker.py; the check and apply timings
# going to two histograms in tests/unit/test_agent_loop.py.
