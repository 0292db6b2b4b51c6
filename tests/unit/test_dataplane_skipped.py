"""Values a dataplane tier skips (not CIDRs that slipped past validation and the
calculation) are carried out of the tier in its report, into status.json,
``seawall status`` (table and json) and the ``seawall_dataplane_skipped_values``
gauge: a count, the first few values (each cut to ~80 characters) and why."""

from __future__ import annotations

import dataclasses
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seawall.agent.metrics import AgentMetrics, snapshot_from_status
from seawall.agent.status import AgentStatus, interfaces_status, not_enforced
from seawall.calc import Snapshot, compute
from seawall.cli.status_view import check_shape, render_status
from seawall.dataplane.iptables.dataplane import RawDataplane
from seawall.dataplane.iptables.ipsets import IpSets, normalize_members
from seawall.dataplane.iptables.render import render
from seawall.dataplane.iptables.rendered import IpSetContent
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.mode import Mode
from seawall.dataplane.skipped import MAX_CHARS, MAX_SHOWN, Skipped, SkippedValue, summarize
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.dataplane.xdp.tables import BlocklistTables
from seawall.policy.model import CidrSet, FailsafePort

from .test_calc import ETH0, SEED, run

GOOD = ["1.2.3.4/32", "5.6.0.0/16"]
LOOKALIKE = "1.2.3.4/\u0663"  # ARABIC-INDIC DIGIT THREE


def _state_with_set(members: set[str]):
    state = compute(Snapshot.from_stored(SEED), "jasper", ETH0).untracked
    (set_id,) = state.sets
    return dataclasses.replace(state, sets={set_id: CidrSet(set_id, frozenset(members))}), set_id


# ------------------------------------------------------------------ the tiers' pure parts


def test_xdp_tables_report_what_they_skip() -> None:
    tables = BlocklistTables.from_cidrs([*GOOD, LOOKALIKE, "fe80::1%eth0"])
    skipped = tables.skipped()
    assert skipped.count == 2
    assert {v.value for v in skipped.values} == {repr(LOOKALIKE), repr("fe80::1%eth0")}
    assert all(v.reason for v in skipped.values)
    assert tables.add("banana") == [] and tables.skipped().count == 3
    assert tables.remove("banana") == [] and tables.skipped().count == 2  # no longer wanted: no longer reported
    assert BlocklistTables.from_cidrs(GOOD).skipped() == Skipped()


def test_xdp_tables_skip_report_is_bounded() -> None:
    bad = [f"10.0.0.{i}/" + "\u0663" * 200 for i in range(50)]
    skipped = BlocklistTables.from_cidrs([*GOOD, *bad]).skipped()
    assert skipped.count == 50 and len(skipped.values) == MAX_SHOWN
    assert all(len(v.value) <= MAX_CHARS for v in skipped.values)


def test_raw_renderer_reports_a_bad_set_member_and_refuses_a_bad_rule_net() -> None:
    state, set_id = _state_with_set({*GOOD, LOOKALIKE})
    rendered = render(state)
    assert set().union(*(c.members for c in rendered.ipsets.values())) == set(GOOD)
    assert list(rendered.skipped[("set", set_id)]) == [LOOKALIKE]
    assert "set " + set_id in rendered.skipped[("set", set_id)][LOOKALIKE]

    # A rule's nets are Cidr values, parsed once when the rule is built: a bad
    # one is refused there (the calculation drops and reports it), so no tier
    # ever has one to skip.
    rule = state.interfaces[0].policies[0].ingress[0]
    with pytest.raises(ValueError, match="banana"):
        dataclasses.replace(rule.source, nets=("8.8.8.8/32", "banana"))
    with pytest.raises(ValueError):
        dataclasses.replace(rule.source, not_nets=("fe80::1%eth0",))
    with pytest.raises(ValueError):
        FailsafePort(6, 22, "10.0.0.0/33")
    assert render(compute(Snapshot.from_stored(SEED), "jasper", ETH0).untracked).skipped == {}


def test_raw_renderer_reports_skips_on_the_cached_path_too() -> None:
    state, set_id = _state_with_set({*GOOD, LOOKALIKE})
    assert render(state).skipped == render(state).skipped  # the member cache must not hide them


def test_ipset_normalisation_records_what_it_skips() -> None:
    sink: dict = {}
    assert normalize_members([*GOOD, "1.2.3.4/33", "banana"], "inet", sink) == set(GOOD)
    assert set(sink) == {"1.2.3.4/33", "banana"} and all(r.startswith("ipset member") for r in sink.values())


def test_raw_dataplane_reports_skips_per_interface() -> None:
    """The whole raw tier with a runner that accepts everything: an ASCII bad member
    that the renderer's fast path lets through is caught (and reported) by the ipset layer."""
    state, set_id = _state_with_set({*GOOD, "banana", "1.2.3.4/33"})

    def runner(args: list[str], stdin: str | None) -> str:
        return ""

    dataplane = RawDataplane("Legacy", runner=runner)
    reports = dataplane.reconcile(state)
    report = reports["eth0"]
    assert report.skipped.count == 2, report
    assert {v.value for v in report.skipped.values} == {"'banana'", "'1.2.3.4/33'"}
    again = dataplane.reconcile(state)["eth0"]  # the ipset cache path keeps reporting them
    assert again.skipped == report.skipped


def test_ipsets_sync_keeps_reporting_cached_skips() -> None:
    calls: list[list[str]] = []

    def runner(args: list[str], stdin: str | None) -> str:
        calls.append(args)
        return ""

    sets = IpSets(runner)
    content = IpSetContent("sw4-test", "inet", frozenset({*GOOD, "banana"}))
    assert set(sets.sync({"sw4-test": content}).skipped["sw4-test"]) == {"banana"}
    assert set(sets.sync({"sw4-test": content}).skipped["sw4-test"]) == {"banana"}
    fixed = IpSetContent("sw4-test", "inet", frozenset(GOOD))
    assert sets.sync({"sw4-test": fixed}).skipped == {}


# ------------------------------------------------------------------ status, seawall status, metrics


def _reports_with_skips():
    xdp_skips = summarize({LOOKALIKE: "invalid prefix length in '1.2.3.4/\u0663'"})
    raw_skips = Skipped(7, tuple(SkippedValue(repr(f"bad{i}"), "ipset member: not a CIDR") for i in range(MAX_SHOWN)))
    xdp = {"eth0": InterfaceReport("eth0", Mode.XDP_NATIVE, "xdp-native because", {"ipv4": 2, "ipv6": 0}, skipped=xdp_skips)}
    raw = {"eth0": RawInterfaceReport("eth0", Mode.RAW, "nft", "busier", programmed=True, skipped=raw_skips)}
    return xdp, raw


def scrape(metrics: AgentMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition(None)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def lbl(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def reconcile_status(desired, xdp, raw, **top) -> AgentStatus:
    """The status the agent publishes after a reconcile with these reports."""
    return AgentStatus(interfaces=interfaces_status(desired, xdp, raw), not_enforced=not_enforced(desired),
                       warnings=desired.warnings, **top)


def test_status_carries_the_skipped_values_per_tier() -> None:
    status = reconcile_status(run(SEED), *_reports_with_skips()).to_json()
    (iface,) = status["interfaces"]
    assert iface["skipped"]["xdp"] == {"count": 1, "values": [
        {"value": repr(LOOKALIKE), "reason": "invalid prefix length in '1.2.3.4/\u0663'"}]}
    assert iface["skipped"]["raw"]["count"] == 7 and len(iface["skipped"]["raw"]["values"]) == MAX_SHOWN
    clean = reconcile_status(run(SEED), {"eth0": InterfaceReport("eth0", Mode.XDP_NATIVE, "r")}, {}).to_json()
    assert clean["interfaces"][0]["skipped"] == {}


def test_seawall_status_shows_the_skipped_values() -> None:
    status = json.loads(json.dumps(reconcile_status(run(SEED), *_reports_with_skips()).to_json()))  # as status.json holds it
    check_shape(status)
    text = render_status(status)
    assert "xdp skipped 1 value (not CIDRs, not programmed):" in text
    assert repr(LOOKALIKE) in text and "invalid prefix length" in text
    assert "raw skipped 7 values" in text and "'bad0': ipset member: not a CIDR" in text
    assert "... and 2 more" in text
    assert "skipped:" not in text.replace("programmed):", "")  # not dumped a second time as an unknown field
    # `seawall status -o json` prints status.json as it is
    assert json.loads(json.dumps(status))["interfaces"][0]["skipped"]["raw"]["count"] == 7


def test_seawall_status_cli_json_and_table(tmp_path) -> None:
    from click.testing import CliRunner

    from seawall.cli.main import cli

    status = reconcile_status(run(SEED), *_reports_with_skips(), node="jasper", in_sync=True).to_json()
    (tmp_path / "status.json").write_text(json.dumps(status))
    runner = CliRunner()
    table = runner.invoke(cli, ["status", "--run-dir", str(tmp_path)])
    assert table.exit_code == 0, table.output
    assert "xdp skipped 1 value" in table.output and repr(LOOKALIKE) in table.output
    out = runner.invoke(cli, ["status", "--run-dir", str(tmp_path), "-o", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["interfaces"][0]["skipped"]["xdp"]["count"] == 1


def test_skipped_values_gauge() -> None:
    status = json.loads(json.dumps(reconcile_status(run(SEED), *_reports_with_skips()).to_json()))
    metrics = AgentMetrics()
    metrics.publish(snapshot_from_status(AgentStatus.from_json(status), {}, {}))
    got = scrape(metrics)
    assert got[("seawall_dataplane_skipped_values", lbl(interface="eth0", tier="xdp"))] == 1
    assert got[("seawall_dataplane_skipped_values", lbl(interface="eth0", tier="raw"))] == 7
    clean = reconcile_status(run(SEED), {"eth0": InterfaceReport("eth0", Mode.XDP_NATIVE, "r")}, {})
    metrics.publish(snapshot_from_status(clean, {}, {}))
    assert scrape(metrics)[("seawall_dataplane_skipped_values", lbl(interface="eth0", tier="raw"))] == 0
