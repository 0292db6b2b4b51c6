"""The status object: where rules run, sizes not member lists; its JSON form,
written and read in one place."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from seawall.agent.status import (
    AgentStatus,
    Drops,
    InterfaceStatus,
    InvalidResource,
    MalformedStatus,
    NotEnforced,
    RawCounters,
    RawStatus,
    RuleStatus,
    Unparsed,
    Verdicts,
    interfaces_status,
    not_enforced,
    raw_repairs,
    verdict_totals,
    with_counters,
)
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.mode import Mode
from seawall.dataplane.skipped import Skipped, SkippedValue
from seawall.dataplane.xdp.reference import Outcome
from seawall.dataplane.xdp.report import InterfaceReport

from .test_calc import SEED, gnp, gns, run


def _reports(mode: str):
    xdp = {"eth0": InterfaceReport("eth0", Mode(mode), f"{mode} because", {"ipv4": 2, "ipv6": 0})}
    raw = {"eth0": RawInterfaceReport("eth0", Mode.RAW, "nft", "busier", programmed=True)}
    return xdp, raw


def test_rules_in_xdp_on_an_xdp_interface() -> None:
    (iface,) = interfaces_status(run(SEED), *_reports("xdp-native"))
    assert iface.mode == Mode.XDP_NATIVE and iface.xdp_entries == {"ipv4": 2, "ipv6": 0}
    assert iface.rules == (RuleStatus(policy="dos-mitigation", index=0, action="Deny", in_xdp=True,
                                      xdp_cidrs=2, eligible_cidrs=2, reason="in XDP: 2 CIDRs"),)
    assert iface.to_json()["rules"] == [{"policy": "dos-mitigation", "index": 0, "action": "Deny", "inXdp": True,
                                         "xdpCidrs": 2, "eligibleCidrs": 2, "reason": "in XDP: 2 CIDRs"}]


def test_an_eligible_rule_on_a_raw_interface_says_it_runs_in_raw() -> None:
    (iface,) = interfaces_status(run(SEED), *_reports("iptables-raw"))
    assert iface.xdp_entries == {}
    (rule,) = iface.rules
    assert isinstance(rule, RuleStatus)
    assert rule.in_xdp is False and rule.xdp_cidrs == 0 and rule.eligible_cidrs == 2
    assert rule.reason is not None and rule.reason.startswith("raw only: this interface has no XDP program")


def test_status_stays_small_with_a_big_set_and_lists_tracked_policies() -> None:
    big = gns("dos-mitigation", [f"10.{i >> 8 & 255}.{i & 255}.0/24" for i in range(50_000)])
    tracked = gnp("tracked", [{"action": "Allow"}], dnt=False)
    desired = run([*SEED[:1], big, SEED[2], tracked])
    status = AgentStatus(node="jasper", interfaces=interfaces_status(desired, *_reports("xdp-native")),
                         not_enforced=not_enforced(desired), warnings=desired.warnings)
    assert len(json.dumps(status.to_json())) < 5_000
    rule = status.interfaces[0].rules[0]
    assert isinstance(rule, RuleStatus) and rule.xdp_cidrs == 50_000
    assert [e["policy"] for e in status.to_json()["notEnforced"]] == ["tracked"]


def test_an_interface_without_reports_has_no_policy_and_one_without_xdp_is_raw() -> None:
    desired = run(SEED)
    (none,) = interfaces_status(desired, {}, {})
    assert (none.mode, none.reason, none.raw) == (Mode.NONE, "no doNotTrack ingress policy applies", None)
    (raw,) = interfaces_status(desired, {}, _reports("xdp-native")[1])
    assert raw.mode == Mode.RAW and raw.raw == RawStatus(backend="nft", programmed=True)


def test_verdict_totals_fold_xdp_outcomes_like_seawall_status() -> None:
    values = {Outcome.DROP: 10, Outcome.FAILSAFE: 2, Outcome.PASS: 5, Outcome.NOT_IP: 1, Outcome.MALFORMED: 1}
    assert verdict_totals(values) == Verdicts(dropped=10, passed=7, failsafe=2)


# ---------------------------------------------------------------- counters


def _counted() -> tuple[InterfaceStatus, ...]:
    return (
        InterfaceStatus("eth0", mode=Mode.XDP_NATIVE, raw=RawStatus(backend="nft")),
        InterfaceStatus("eth1", mode=Mode.RAW, raw=RawStatus(backend="nft")),
        InterfaceStatus("eth2", mode=Mode.NONE),
    )


DROPS = {"eth0": {"ipv4": (3, 90), "ipv6": (0, 0)}, "eth1": {"ipv4": (1000, 42000), "ipv6": (5, 300)}}


def test_with_counters_xdp_and_raw() -> None:
    eth0, eth1, eth2 = with_counters(_counted(), {"eth0": Verdicts(7, 1, 0)}, DROPS)
    assert eth0.counters == Verdicts(7, 1, 0)  # XDP's own counter stays
    assert eth0.raw_counters == RawCounters(3, 90, {"ipv4": Drops(3, 90), "ipv6": Drops(0, 0)})
    assert eth1.counters == Verdicts(1005, 0, 0)  # a raw interface shows raw's drops
    assert eth1.raw_counters is not None and eth1.raw_counters.families["ipv6"] == Drops(5, 300)
    assert eth2.raw_counters is None and eth2.counters == Verdicts()
    kept = with_counters((eth0, eth1, eth2), {}, None)  # unreadable: the last values stay
    assert kept == (eth0, eth1, eth2)
    gone = with_counters((eth0, eth1, eth2), {}, {})  # read, and nothing for eth0/eth1: zero, eth2 none
    assert gone[0].raw_counters == RawCounters() and gone[0].counters == Verdicts(7, 1, 0)
    assert gone[1].counters.dropped == 0 and gone[2].raw_counters is None


def test_raw_repairs_has_every_kind() -> None:
    assert raw_repairs({"rules": 2, "setHeaders": 1}) == {"rules": 2, "setHeaders": 1, "setContents": 0}


# ---------------------------------------------------------------- JSON


#: What the agent wrote before the status was a type (built with the dict
#: builders of then: reconcile_status, apply_raw_counters, verdict_totals).
TODAY: dict[str, Any] = {
    "node": "jasper", "inSync": True,
    "interfaces": [
        {"name": "eth0", "hostEndpoint": "production-host", "mode": "xdp-native",
         "reason": "xdp-native (faster modes not used: offload: not supported)", "policies": ["dos-mitigation"],
         "xdpEntries": {"ipv4": 2, "ipv6": 0},
         "rules": [{"policy": "dos-mitigation", "index": 0, "action": "Deny", "inXdp": True, "xdpCidrs": 2,
                    "eligibleCidrs": 2, "reason": "in XDP: 2 CIDRs"}],
         "raw": {"backend": "nft", "programmed": True, "chains": ["sw-fh-eth0"], "ipsetMembers": {"sw4-abc": 2, "sw6-abc": 0}},
         "errors": [], "skipped": {"xdp": {"count": 1, "values": [{"value": "'banana'", "reason": "not a CIDR"}]}},
         "counters": {"dropped": 20000, "passed": 20004, "failsafe": 10},
         "rawCounters": {"dropped": 3, "droppedBytes": 90, "families": {
             "ipv4": {"dropped": 3, "droppedBytes": 90}, "ipv6": {"dropped": 0, "droppedBytes": 0}}}},
        {"name": "eth1", "hostEndpoint": "backup", "mode": "iptables-raw",
         "reason": "only egress rules apply here: the iptables raw tier enforces", "policies": ["dos-mitigation"],
         "xdpEntries": {},
         "rules": [{"policy": "dos-mitigation", "index": 0, "action": "Deny", "inXdp": False, "xdpCidrs": 0,
                    "eligibleCidrs": 2, "reason": "raw only: this interface has no XDP program (eligible: in XDP: 2 CIDRs)"}],
         "raw": {"backend": "nft", "programmed": False, "chains": ["sw-fh-eth1"], "ipsetMembers": {"sw4-abc": 2}},
         "errors": ["ipset restore failed: boom"], "skipped": {},
         "counters": {"dropped": 1005, "passed": 0, "failsafe": 0},
         "rawCounters": {"dropped": 1005, "droppedBytes": 42300, "families": {
             "ipv4": {"dropped": 1000, "droppedBytes": 42000}, "ipv6": {"dropped": 5, "droppedBytes": 300}}}},
    ],
    "lastError": "iptables raw tier: boom", "metricsError": None,
    "healthError": "cannot listen on 0.0.0.0:9099: Address in use",
    "notEnforced": [{"policy": "tracked",
                     "reason": "doNotTrack is false: only untracked (doNotTrack) policies are enforced by this version"}],
    "warnings": ["HostEndpoint ghost: interface 'eth9' does not exist on node jasper"],
    "revision": 42,
    "invalid": [{"kind": "GlobalNetworkSet", "name": "bad", "reason": "invalid CIDR", "action": "ignored"}],
    "lastApplyTime": "2025-01-02T03:04:05.678+00:00", "xdpRefreshInterval": 90.0, "iptablesRefreshInterval": 0.0,
    "lastReconcileMs": 12.5, "lastErrorTime": "2025-01-02T03:04:06.000+00:00",
    "rawRepairs": {"rules": 2, "setHeaders": 1, "setContents": 0},
}

TOP_KEYS = {"node", "inSync", "revision", "interfaces", "notEnforced", "warnings", "invalid", "lastApplyTime",
            "lastReconcileMs", "lastError", "lastErrorTime", "xdpRefreshInterval", "iptablesRefreshInterval",
            "rawRepairs", "metricsError", "healthError"}
INTERFACE_KEYS = {"name", "hostEndpoint", "mode", "reason", "policies", "xdpEntries", "rules", "raw", "errors",
                  "skipped", "counters", "rawCounters"}
RULE_KEYS = {"policy", "index", "action", "inXdp", "xdpCidrs", "eligibleCidrs", "reason"}


def test_a_status_written_before_the_type_reads_back_to_the_same_json() -> None:
    status = AgentStatus.from_json(TODAY)
    assert status.to_json() == TODAY
    assert json.loads(json.dumps(status.to_json())) == TODAY
    assert status.interfaces[1].mode is Mode.RAW and status.interfaces[0].counters == Verdicts(20000, 20004, 10)
    assert status.interfaces[0].skipped == {"xdp": Skipped(1, (SkippedValue("'banana'", "not a CIDR"),))}


def test_today_s_json_is_what_the_builders_make() -> None:
    from .test_calc import DENY_SET, hep

    items = [*SEED, hep("backup", iface="eth1", labels={"apply-dos-mitigation": "true"}),
             hep("ghost", iface="eth9", labels={}), gnp("tracked", [DENY_SET], dnt=False)]
    desired = run(items)
    xdp = {"eth0": InterfaceReport("eth0", Mode.XDP_NATIVE, "xdp-native (faster modes not used: offload: not supported)",
                                   {"ipv4": 2, "ipv6": 0}, skipped=Skipped(1, (SkippedValue("'banana'", "not a CIDR"),)))}
    raw = {"eth0": RawInterfaceReport("eth0", Mode.RAW, "nft", "busier", chains=["sw-fh-eth0"], programmed=True,
                                      ipset_members={"sw4-abc": 2, "sw6-abc": 0}),
           "eth1": RawInterfaceReport("eth1", Mode.RAW, "nft", "only egress", chains=["sw-fh-eth1"], programmed=False,
                                      ipset_members={"sw4-abc": 2}, errors=["ipset restore failed: boom"])}
    interfaces = with_counters(interfaces_status(desired, xdp, raw),
                               {"eth0": verdict_totals({Outcome.DROP: 20000, Outcome.PASS: 20004, Outcome.FAILSAFE: 10})},
                               {"eth0": {"ipv4": (3, 90), "ipv6": (0, 0)}, "eth1": {"ipv4": (1000, 42000), "ipv6": (5, 300)}})
    status = AgentStatus(
        node="jasper", in_sync=True, revision=42, interfaces=interfaces, not_enforced=not_enforced(desired),
        warnings=desired.warnings,
        invalid=(InvalidResource.of({"kind": "GlobalNetworkSet", "name": "bad", "reason": "invalid CIDR", "action": "ignored"}),),
        last_apply_time="2025-01-02T03:04:05.678+00:00", last_reconcile_ms=12.5, last_error="iptables raw tier: boom",
        last_error_time="2025-01-02T03:04:06.000+00:00", xdp_refresh_interval=90.0, iptables_refresh_interval=0.0,
        raw_repairs=raw_repairs({"rules": 2, "setHeaders": 1}), health_error="cannot listen on 0.0.0.0:9099: Address in use",
    )
    assert status.to_json() == TODAY
    assert AgentStatus.from_json(TODAY) == status


def _everything() -> AgentStatus:
    rule = RuleStatus(policy="p", index=3, action="Deny", in_xdp=True, xdp_cidrs=2, eligible_cidrs=4, reason="r",
                      extra={"packets": 99})
    iface = InterfaceStatus(
        name="eth0", host_endpoint="h", mode=Mode.XDP_GENERIC, reason="why", policies=("p", "q"),
        xdp_entries={"ipv4": 2, "ipv6": 1}, rules=(rule, Unparsed("odd")),
        raw=RawStatus(backend="legacy", programmed=False, chains=("sw-fh-eth0",), ipset_members={"sw4-x": 2},
                      extra={"drops": 3}),
        errors=("e1", "e2"), skipped={"xdp": Skipped(3, (SkippedValue("'x'", "bad"),)), "raw": Unparsed("weird")},
        counters=Verdicts(1, 2, 3, extra={"bytesDropped": 10}), counters_live=True,
        raw_counters=RawCounters(5, 50, {"ipv4": Drops(5, 50)}, extra={"since": "boot"}),
        extra={"dropRate": 1.5},
    )
    return AgentStatus(
        node="n", in_sync=True, revision=7, interfaces=(iface, InterfaceStatus("eth1", mode="tc-bpf")),
        not_enforced=(NotEnforced("t", "tracked", extra={"since": 1}), Unparsed("p")), warnings=("w",),
        invalid=(InvalidResource("GlobalNetworkSet", "bad", "invalid CIDR", "ignored", extra={"x": 1}), Unparsed("q")),
        last_apply_time="2025-01-02T03:04:05.678+00:00", last_reconcile_ms=1.25, last_error="boom",
        last_error_time="2025-01-02T03:04:06.000+00:00", xdp_refresh_interval=90.0, iptables_refresh_interval=10.0,
        raw_repairs={"rules": 1, "setHeaders": 2, "setContents": 3}, metrics_error="m", health_error="h",
        extra={"newField": {"a": [1, 2]}},
    )


def test_round_trip_of_a_status_with_every_field_set() -> None:
    status = _everything()
    data = json.loads(json.dumps(status.to_json()))
    assert AgentStatus.from_json(data) == status
    assert set(data) == TOP_KEYS | {"newField"}
    eth0 = data["interfaces"][0]
    assert set(eth0) == INTERFACE_KEYS | {"countersLive", "dropRate"}
    assert set(eth0["rules"][0]) == RULE_KEYS | {"packets"} and eth0["rules"][1] == "odd"
    assert set(eth0["raw"]) == {"backend", "programmed", "chains", "ipsetMembers", "drops"}
    assert set(eth0["counters"]) == {"dropped", "passed", "failsafe", "bytesDropped"}
    assert set(eth0["rawCounters"]) == {"dropped", "droppedBytes", "families", "since"}
    assert eth0["rawCounters"]["families"] == {"ipv4": {"dropped": 5, "droppedBytes": 50}}
    assert eth0["skipped"] == {"xdp": {"count": 3, "values": [{"value": "'x'", "reason": "bad"}]}, "raw": "weird"}
    assert data["interfaces"][1]["mode"] == "tc-bpf"  # a newer agent's mode is kept as text


def test_the_agent_s_first_status_has_only_what_it_knows() -> None:
    first = AgentStatus(node="n")
    assert first.to_json() == {"node": "n", "inSync": False, "interfaces": [], "lastError": None,
                               "metricsError": None, "healthError": None}
    assert AgentStatus.from_json(first.to_json()) == first
    assert replace(first, in_sync=True).to_json()["inSync"] is True


def test_reading_is_tolerant_of_older_and_newer_agents() -> None:
    status = AgentStatus.from_json({"node": "n", "interfaces": [{"name": "eth0", "rules": [{"policy": "p"}]}],
                                    "refreshInterval": 5})
    (iface,) = status.interfaces
    assert iface.mode is None and iface.counters == Verdicts() and iface.raw is None
    assert iface.rules == (RuleStatus(policy="p"),)
    assert status.revision is None and status.warnings is None and status.extra == {"refreshInterval": 5}


@pytest.mark.parametrize(("data", "message"), [
    ([], "not a JSON object"),
    ({"interfaces": {}}, "interfaces must be a list, not dict"),
    ({"warnings": "w"}, "warnings must be a list, not str"),
    ({"interfaces": ["x"]}, "interfaces[0] must be an object, not str"),
    ({"interfaces": [{"name": "a"}, {"rules": {}}]}, "interfaces[1].rules must be a list, not dict"),
    ({"interfaces": [{"raw": "weird"}]}, "interfaces[0].raw must be an object, not str"),
    ({"interfaces": [{"counters": [1]}], "invalid": 3}, "invalid must be a list, not int"),
])
def test_a_malformed_status_names_the_first_bad_field(data: Any, message: str) -> None:
    with pytest.raises(MalformedStatus) as caught:
        AgentStatus.from_json(data)
    assert str(caught.value) == message
    AgentStatus.from_json(data, strict=False)  # the view's reading: empty where it is malformed
