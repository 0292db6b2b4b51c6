"""``seawall status``'s table: pure rendering of status objects, old, new and odd."""

from __future__ import annotations

import json

import pytest

from seawall.agent.status import AgentStatus, interfaces_status, not_enforced
from seawall.calc import Snapshot, compute
from seawall.cli.status_view import MalformedStatus, build, check_shape, fmt_value, render_status, to_text
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp.report import InterfaceReport
from tests.unit.test_calc import DENY_SET, ETH0, SEED, gnp

STATUS = {
    "node": "jasper",
    "xdpRefreshInterval": 90.0,
    "inSync": True,
    "revision": 42,
    "lastApplyTime": "2025-01-02T03:04:05.678+00:00",
    "lastReconcileMs": 12.5,
    "refreshInterval": 90.0,
    "interfaces": [
        {
            "name": "eth0", "hostEndpoint": "production-host", "mode": "xdp-native",
            "reason": "xdp-native (faster modes not used: offload: not supported by the driver)",
            "policies": ["dos-mitigation"], "xdpEntries": {"ipv4": 2, "ipv6": 1},
            "rules": [{"policy": "dos-mitigation", "index": 0, "action": "Deny", "inXdp": True, "xdpCidrs": 3,
                       "reason": "in XDP: 3 CIDRs"}],
            "raw": {"backend": "nft", "programmed": True, "chains": ["sw-fh-eth0"],
                    "ipsetMembers": {"sw4-abc": 2, "sw6-abc": 1}},
            "errors": [], "counters": {"dropped": 20000, "passed": 20004, "failsafe": 10},
        },
        {
            "name": "eth1", "hostEndpoint": "backup", "mode": "iptables-raw",
            "reason": "no XDP mode available: native: attach failed (Operation not supported); the iptables raw tier enforces",
            "policies": ["dos-mitigation"], "xdpEntries": {}, "rules": [
                {"policy": "dos-mitigation", "index": 0, "action": "Deny", "inXdp": True, "xdpCidrs": 3, "reason": "in XDP: 3 CIDRs"}],
            "raw": {"backend": "nft", "programmed": False, "chains": [], "ipsetMembers": {}},
            "errors": ["ipset restore failed: boom"], "counters": {"dropped": 0, "passed": 0, "failsafe": 0},
        },
    ],
    "notEnforced": [{"policy": "tracked", "reason": "doNotTrack is false: only untracked policies are enforced"}],
    "warnings": ["HostEndpoint ghost: interface 'eth9' does not exist on node jasper"],
    "invalid": [{"kind": "GlobalNetworkSet", "name": "bad", "reason": "invalid CIDR", "action": "kept the last valid version"}],
}


def test_full_status_table() -> None:
    text = render_status(STATUS, age_s=3)
    head = " ".join(text.splitlines()[:2])
    for part in ("node jasper", "in sync yes", "revision 42", "last apply 2025-01-02T03:04:05.678+00:00",
                 "(took 12.5 ms)", "status written 3 s ago", "refresh XDP every 90 s"):
        assert part in head
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(("eth0 ", "eth1 ")):
            rows.setdefault(line.split()[0], line)  # the table row comes before the details
    assert rows["eth0"].split() == ["eth0", "production-host", "xdp-native", "dos-mitigation", "2/1", "nft,", "3",
                                    "ipset", "members", "20000", "20004", "10"]
    assert "NOT programmed" in rows["eth1"] and "-" in rows["eth1"].split()
    assert "INTERFACE" in text and "DROPPED" in text and "FAILSAFE" in text and "XDP v4/v6" in text
    assert "offload: not supported by the driver" in text
    assert "rule dos-mitigation[0] Deny: XDP + raw, 3 CIDRs in XDP — in XDP: 3 CIDRs" in text
    assert "ipsets: sw4-abc 2, sw6-abc 1" in text
    assert "rule dos-mitigation[0] Deny: raw only (XDP-eligible, but the interface is in iptables-raw mode)" in text
    assert "error: ipset restore failed: boom" in text
    assert "tracked: doNotTrack is false" in text
    assert "HostEndpoint ghost" in text
    assert "GlobalNetworkSet(bad): invalid CIDR -> kept the last valid version" in text


def test_agent_errors_and_refresh_intervals() -> None:
    data = {**STATUS, "lastError": "iptables raw tier: boom", "lastErrorTime": "2025-01-02T03:04:06+00:00",
            "metricsError": "cannot listen on 0.0.0.0:9091: Address in use", "healthError": None,
            "xdpRefreshInterval": 90.0, "iptablesRefreshInterval": 0}
    text = render_status(data)
    assert "refresh XDP every 90 s, iptables never" in text
    assert "last reconcile failed (at 2025-01-02T03:04:06+00:00): iptables raw tier: boom" in text
    assert "metrics endpoint: cannot listen on 0.0.0.0:9091: Address in use" in text
    assert "health endpoint" not in text and "other" not in text
    clean = render_status({**STATUS, "lastError": None, "metricsError": None, "healthError": None})
    assert "agent errors" not in clean and "other" not in clean


def test_old_status_is_called_stale() -> None:
    assert "stale" not in render_status(STATUS, age_s=2)
    assert "status written 2 min ago (stale: a running agent rewrites it every second)" in render_status(STATUS, age_s=120)


def test_minimal_and_empty_status() -> None:
    text = render_status({"node": "n1", "inSync": False, "interfaces": []})
    assert "node n1" in text and "in sync no" in text and "last apply never" in text
    assert "nothing to enforce" in text
    # the bare minimum of the DESIGN contract, nothing else
    text = render_status({"node": "n", "inSync": True, "interfaces": [
        {"name": "eth0", "mode": "none", "reason": "no doNotTrack ingress policy applies", "counters": {}}]})
    assert "eth0" in text and "no doNotTrack ingress policy applies" in text


def test_unknown_fields_are_shown_not_dropped() -> None:
    data = json.loads(json.dumps(STATUS))
    data["metrics"] = {"reconciles": 17, "lastErrorTime": None}
    data["histogram"] = {"buckets": [1, 2, 3], "sum": 4.5}
    data["interfaces"][0]["dropRate"] = 1234.5
    data["interfaces"][0]["hits"] = {"1.2.3.4/32": 10, "5.6.0.0/16": 5}
    data["interfaces"][0]["raw"]["drops"] = 3
    data["interfaces"][0]["rules"][0]["packets"] = 99
    data["interfaces"][0]["counters"]["bytesDropped"] = 1_000_000
    text = render_status(data)
    assert "metrics: reconciles=17, lastErrorTime=-" in text
    assert 'histogram: {"buckets": [1, 2, 3], "sum": 4.5}' in text
    assert "dropRate: 1234.5" in text
    assert "hits: 1.2.3.4/32=10, 5.6.0.0/16=5" in text
    assert "raw drops: 3" in text
    assert "; packets 99" in text


def test_odd_values_do_not_crash() -> None:
    data = {"node": None, "inSync": None, "interfaces": [
        {"name": "x", "counters": None, "raw": "weird", "rules": ["odd"], "xdpEntries": [1], "errors": None},
        "not a dict"], "notEnforced": ["p"], "invalid": ["q"], "warnings": None}
    text = render_status(data)
    assert "x" in text and "rule odd" in text


def test_long_values_are_truncated() -> None:
    assert fmt_value({"a": ["x" * 500]}).endswith("…")
    assert len(fmt_value({"a": ["x" * 500]})) == 160
    assert fmt_value(True) == "yes" and fmt_value(None) == "-" and fmt_value(1.50) == "1.5"


def test_live_counters_are_marked() -> None:
    data = json.loads(json.dumps(STATUS))
    data["interfaces"][0]["countersLive"] = True
    text = render_status(data)
    assert "20000*" in text and "counters read live from the pinned XDP maps" in text


def test_renders_what_the_agent_builds() -> None:
    items = [*SEED, gnp("tracked", [DENY_SET], dnt=False)]
    desired = compute(Snapshot.from_stored(items), "jasper", ETH0)
    xdp = {"eth0": InterfaceReport("eth0", Mode.XDP_GENERIC, "xdp-generic (faster modes not used: native: no)", {"ipv4": 2, "ipv6": 0})}
    raw = {"eth0": RawInterfaceReport("eth0", Mode.RAW, "legacy", "in use", chains=["sw-fh-eth0"],
                                      programmed=True, ipset_members={"sw4-x": 2})}
    status = AgentStatus(node="jasper", in_sync=True, interfaces=interfaces_status(desired, xdp, raw),
                         not_enforced=not_enforced(desired), warnings=desired.warnings)
    data = json.loads(json.dumps(status.to_json()))
    text = to_text(build(data), width=200)
    assert to_text(build(status), width=200) == text  # the type itself, or its JSON: the same view
    assert "rule dos-mitigation[0] Deny: XDP + raw, 2 CIDRs in XDP — in XDP: 2 CIDRs" in text
    assert "eligibleCidrs" not in text
    assert "xdp-generic" in text and "legacy, 2 ipset members" in text and "2/0" in text
    assert "tracked: doNotTrack is false" in text


def test_the_type_and_its_json_render_the_same() -> None:
    data = json.loads(json.dumps(STATUS))
    data["interfaces"][0]["countersLive"] = True
    data["interfaces"][0]["dropRate"] = 1.5
    data["metrics"] = {"reconciles": 17}
    status = AgentStatus.from_json(data)
    assert render_status(status, age_s=3) == render_status(data, age_s=3)
    assert "dropRate: 1.5" in render_status(status) and "metrics: reconciles=17" in render_status(status)


def test_check_shape_names_the_first_bad_field() -> None:
    check_shape(STATUS)
    check_shape(AgentStatus.from_json(STATUS))
    with pytest.raises(MalformedStatus, match=r"interfaces\[0\]\.xdpEntries must be an object, not list"):
        check_shape({"node": "n", "interfaces": [{"name": "x", "xdpEntries": [1]}]})
    with pytest.raises(MalformedStatus, match="not a JSON object"):
        check_shape([STATUS])
