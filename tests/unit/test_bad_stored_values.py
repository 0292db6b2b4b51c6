"""Look-alike CIDRs that slip past validation (or that another tool wrote into
the datastore) are dropped one entry at a time and reported; everything else
keeps being enforced, and neither ``compute`` nor ``seawall explain`` raises.

The snapshots here bypass validation on purpose (``model_copy`` does not
validate), so these tests hold whatever the API layer accepts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from seawall.api.cidr import parse_cidr
from seawall.calc import CalcMemo, Snapshot, compute
from seawall.datastore import Create, SqliteDatastore

from .test_calc import ETH0, SEED, gnp, gns

BAD = ["1.2.3.4/٣", "١0.0.0.0/8", "0.0.0.0/٣", "fe80::1%eth0", "fe80::1%eth0/128", "1.2.3.4/33", "banana", 7, None]
GOOD = ["1.2.3.4/32", "5.6.0.0/16"]


def _with_nets(snapshot: Snapshot, name: str, nets: list[Any]) -> Snapshot:
    old = snapshot.gns[name]
    new = old.model_copy(update={"spec": old.spec.model_copy(update={"nets": nets})})
    return dataclasses.replace(snapshot, gns={**snapshot.gns, name: new})


def _with_rule_nets(snapshot: Snapshot, name: str, nets: list[Any], not_nets: list[Any] | None = None) -> Snapshot:
    old = snapshot.gnp[name]
    rule = old.spec.ingress[0]
    source = rule.source.model_copy(update={"nets": nets, "notNets": not_nets})
    ingress = [rule.model_copy(update={"source": source})]
    new = old.model_copy(update={"spec": old.spec.model_copy(update={"ingress": ingress})})
    return dataclasses.replace(snapshot, gnp={**snapshot.gnp, name: new})


@pytest.mark.parametrize("value", BAD)
def test_parse_cidr_rejects_look_alikes(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_cidr(value)


@pytest.mark.parametrize("value", BAD)
def test_one_bad_set_member_is_dropped_and_reported(value: Any) -> None:
    snapshot = _with_nets(Snapshot.from_stored(SEED), "dos-mitigation", [*GOOD, value])
    desired = compute(snapshot, "jasper", ETH0)
    assert desired.xdp.interfaces[0].cidrs == set(GOOD)
    (warning,) = [w for w in desired.warnings if "invalid CIDR" in w]
    assert warning.startswith("GlobalNetworkSet dos-mitigation: nets: ")
    assert repr(value) in warning and "dropped" in warning


def test_other_sets_are_unaffected_and_warnings_stay_short() -> None:
    items = [*SEED, gns("other", ["9.9.9.9/32"])]
    long_value = "1.2.3.4/" + "٣" * 500
    snapshot = _with_nets(Snapshot.from_stored(items), "dos-mitigation", ["1.2.3.4/32", long_value, *BAD])
    desired = compute(snapshot, "jasper", ETH0)
    assert desired.xdp.interfaces[0].cidrs == {"1.2.3.4/32", "9.9.9.9/32"}
    (warning,) = [w for w in desired.warnings if "invalid CIDR" in w]
    assert len(warning) < 400 and "more" in warning


def test_incremental_path_with_bad_members_matches_a_fresh_compute() -> None:
    memo = CalcMemo()
    base = Snapshot.from_stored(SEED)
    first = _with_nets(base, "dos-mitigation", [*GOOD, "banana"])
    compute(first, "jasper", ETH0, memo)
    second = _with_nets(base, "dos-mitigation", ["1.2.3.4/32", "banana", "fe80::1%eth0", "7.7.7.7/32"])
    incremental = compute(second, "jasper", ETH0, memo)
    assert incremental == compute(second, "jasper", ETH0)
    assert incremental.xdp.interfaces[0].cidrs == {"1.2.3.4/32", "7.7.7.7/32"}
    third = _with_nets(base, "dos-mitigation", ["1.2.3.4/32"])
    assert compute(third, "jasper", ETH0, memo).warnings == compute(third, "jasper", ETH0).warnings
    assert not [w for w in compute(third, "jasper", ETH0, memo).warnings if "invalid CIDR" in w]


def test_unhashable_member_is_dropped() -> None:
    snapshot = _with_nets(Snapshot.from_stored(SEED), "dos-mitigation", [*GOOD, ["1.2.3.4/32"], {"a": 1}])
    desired = compute(snapshot, "jasper", ETH0)
    assert desired.xdp.interfaces[0].cidrs == set(GOOD)
    assert any("GlobalNetworkSet dos-mitigation: nets:" in w for w in desired.warnings)


def _literal_seed() -> Snapshot:
    return Snapshot.from_stored([SEED[0], gnp("dos-mitigation", [{"action": "Deny", "source": {"nets": ["8.8.8.8/32"]}}])])


def test_bad_literal_rule_net_is_dropped_and_the_rest_kept() -> None:
    snapshot = _with_rule_nets(_literal_seed(), "dos-mitigation", ["8.8.8.8/32", "8.8.4.4/٣"])
    desired = compute(snapshot, "jasper", ETH0)
    assert desired.xdp.interfaces[0].cidrs == {"8.8.8.8/32"}
    assert any(w.startswith("GlobalNetworkPolicy dos-mitigation: ingress[0].source.nets: ") for w in desired.warnings)


def test_rule_whose_nets_are_all_bad_matches_nothing_not_everything() -> None:
    snapshot = _with_rule_nets(_literal_seed(), "dos-mitigation", ["fe80::1%eth0"])
    desired = compute(snapshot, "jasper", ETH0)
    assert all(not block.cidrs for block in desired.xdp.interfaces)  # not 0.0.0.0/0
    assert any("matches nothing" in w for w in desired.warnings)


def test_bad_not_nets_entry_is_dropped() -> None:
    snapshot = _with_rule_nets(_literal_seed(), "dos-mitigation", ["8.8.8.0/24"], ["banana", "8.8.8.8/32"])
    desired = compute(snapshot, "jasper", ETH0)
    policy = desired.untracked.interfaces[0].policies[0]
    assert [c.text for c in policy.ingress[0].source.not_nets] == ["8.8.8.8/32"]
    assert any("ingress[0].source.notNets" in w for w in desired.warnings)


# ------------------------------------------------------------------ explain on a datastore


def _stored(nets: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [SEED[0], gns("dos-mitigation", nets), SEED[2]]


@pytest.mark.parametrize("bad", ["1.2.3.4/٣", "fe80::1%eth0", "1.2.3.4/33", "banana", 7])
def test_explain_on_a_datastore_with_a_bad_net_does_not_crash(tmp_path: Path, bad: Any) -> None:
    db = tmp_path / "seawall.db"
    store = SqliteDatastore(db)
    try:
        store.commit([Create(kind, name, doc) for kind, name, doc in _stored(["9.9.9.9/32", bad])])
    finally:
        store.close()
    result = subprocess.run(
        [sys.executable, "-m", "seawall", "explain", "--node", "jasper", "--interface", "eth0=10.0.0.1",
         "--datastore", f"sqlite://{db}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# ------------------------------------------------------------------ the dataplanes never raise on such values

BAD_STRINGS = [v for v in BAD if isinstance(v, str)]


def test_raw_renderer_skips_bad_set_members_and_rule_nets() -> None:
    from seawall.dataplane.iptables.render import render
    from seawall.policy.model import CidrSet

    state = compute(Snapshot.from_stored(SEED), "jasper", ETH0).untracked
    (set_id,) = state.sets
    sets = {set_id: CidrSet(set_id, frozenset({*GOOD, *BAD_STRINGS}))}
    bad_state = dataclasses.replace(state, sets=sets)
    rendered = render(bad_state)
    members = set().union(*(content.members for content in rendered.ipsets.values()))
    assert members == set(GOOD)
    assert set(rendered.skipped[("set", set_id)]) == set(BAD_STRINGS)  # reported, not only logged
    policy = state.interfaces[0].policies[0]
    rule = policy.ingress[0]
    # A rule's nets are Cidr values: a bad one cannot even be built, so it can never reach a renderer.
    for bad in BAD_STRINGS:
        with pytest.raises(ValueError):
            dataclasses.replace(rule.source, nets=("8.8.8.8/32", bad))
        with pytest.raises(ValueError):
            dataclasses.replace(rule.source, not_nets=(bad,))
    source = dataclasses.replace(rule.source, nets=("8.8.8.8/32",))
    iface = dataclasses.replace(state.interfaces[0], policies=(
        dataclasses.replace(policy, ingress=(dataclasses.replace(rule, source=source),)),))
    text = "\n".join(line for table in render(dataclasses.replace(bad_state, interfaces=(iface,))).tables.values()
                     for rules in table.chains.values() for line in rules)
    assert "8.8.8.8/32" in text and "%" not in text and "banana" not in text and "\u0663" not in text


def test_ipset_normalisation_skips_bad_members() -> None:
    from seawall.dataplane.iptables.ipsets import normalize_members

    assert normalize_members([*GOOD, *BAD_STRINGS], "inet") == set(GOOD)
    assert normalize_members(["2001:db8::1/64", "fe80::1%eth0", "fe80::\u0663/64"], "inet6") == {"2001:db8::/64"}


def test_xdp_tables_skip_bad_cidrs() -> None:
    from seawall.dataplane.xdp.tables import BlocklistTables

    tables = BlocklistTables.from_cidrs([*GOOD, *BAD_STRINGS, "2001:db8::/32"])
    assert len(tables) == 3 and all(c in tables for c in GOOD)
    assert tables.add("0.0.0.0/\u0663") == [] and tables.remove("banana") == []
    assert "0.0.0.0/\u0663" not in tables and len(tables) == 3
    # ... and reported (tests/unit/test_dataplane_skipped.py follows them into status and metrics)
    assert tables.skipped().count == len(BAD_STRINGS) - 1  # all but "banana", removed above
