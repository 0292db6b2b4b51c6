"""The status object: where rules run, sizes not member lists."""

from __future__ import annotations

import json

from seawall.agent.status import reconcile_status
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp.report import InterfaceReport

from .test_calc import SEED, gnp, gns, run


def _reports(mode: str):
    xdp = {"eth0": InterfaceReport("eth0", Mode(mode), f"{mode} because", {"ipv4": 2, "ipv6": 0})}
    raw = {"eth0": RawInterfaceReport("eth0", Mode.RAW, "nft", "busier", programmed=True)}
    return xdp, raw


def test_rules_in_xdp_on_an_xdp_interface() -> None:
    status = reconcile_status(run(SEED), *_reports("xdp-native"))
    (iface,) = status["interfaces"]
    assert iface["mode"] == "xdp-native" and iface["xdpEntries"] == {"ipv4": 2, "ipv6": 0}
    assert iface["rules"] == [{"policy": "dos-mitigation", "index": 0, "action": "Deny", "inXdp": True,
                               "xdpCidrs": 2, "eligibleCidrs": 2, "reason": "in XDP: 2 CIDRs"}]


def test_an_eligible_rule_on_a_raw_interface_says_it_runs_in_raw() -> None:
    status = reconcile_status(run(SEED), *_reports("iptables-raw"))
    (iface,) = status["interfaces"]
    assert iface["xdpEntries"] == {}
    (rule,) = iface["rules"]
    assert rule["inXdp"] is False and rule["xdpCidrs"] == 0 and rule["eligibleCidrs"] == 2
    assert rule["reason"].startswith("raw only: this interface has no XDP program")


def test_status_stays_small_with_a_big_set_and_lists_tracked_policies() -> None:
    big = gns("dos-mitigation", [f"10.{i >> 8 & 255}.{i & 255}.0/24" for i in range(50_000)])
    tracked = gnp("tracked", [{"action": "Allow"}], dnt=False)
    status = reconcile_status(run([*SEED[:1], big, SEED[2], tracked]), *_reports("xdp-native"))
    assert len(json.dumps(status)) < 5_000
    assert status["interfaces"][0]["rules"][0]["xdpCidrs"] == 50_000
    assert [e["policy"] for e in status["notEnforced"]] == ["tracked"]
