"""CalcMemo: identity-keyed reuse, dependency keeping, pruning."""

from __future__ import annotations

import weakref

from hypothesis import given, settings, strategies as st

from seawall.calc import CalcMemo, Snapshot, compute
from seawall.calc.memo import NoMemo

from .test_calc import ETH0, SEED, gnp, gns


def test_same_objects_hit_and_a_new_object_misses() -> None:
    memo, a, b = CalcMemo(), [1], [1]
    calls = []
    make = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert memo.get("k", (a,), make) == 1
    assert memo.get("k", (a,), make) == 1
    assert memo.get("k", (b,), make) == 2  # equal but not the same object
    assert (memo.hits, memo.misses) == (1, 2)


def test_sweep_drops_what_the_round_did_not_use() -> None:
    memo, a, b = CalcMemo(), object(), object()
    memo.get("k", (a,), lambda: 1)
    memo.sweep()
    memo.get("k", (b,), lambda: 2)
    memo.sweep()
    assert [value for _, value in memo.entries()] == [2]


def test_what_a_sweep_drops_is_freed_by_release_not_by_the_sweep() -> None:
    class Value:
        pass

    memo, a = CalcMemo(), object()
    value = memo.get("k", (a,), Value)
    gone = weakref.ref(value)
    del value
    memo.sweep()  # used this round: kept
    memo.sweep()  # not used: forgotten, but still held
    assert list(memo.entries()) == [] and gone() is not None
    memo.release()
    assert gone() is None


def test_reusing_an_outer_entry_keeps_its_inner_entries_alive() -> None:
    memo, big, policy_v1, policy_v2 = CalcMemo(), object(), object(), object()
    parses = []

    def outer(policy: object) -> int:
        inner = memo.get("parse", (big,), lambda: parses.append(1) or "parsed")
        return memo.get("outer", (policy,), lambda: hash((inner, id(policy))))

    def round_(policy: object) -> None:
        memo.get("result", (policy, big), lambda: outer(policy))
        memo.sweep()

    round_(policy_v1)
    round_(policy_v1)  # unchanged: only the outermost entry is asked for
    round_(policy_v2)  # the policy changed: the big set must not be parsed again
    assert len(parses) == 1


def test_an_unchanged_big_set_is_not_parsed_again_after_an_idle_round(monkeypatch) -> None:
    from seawall.calc import eligibility

    parsed = []
    real = eligibility._net
    monkeypatch.setattr(eligibility, "_net", lambda text: parsed.append(text) or real(text))
    nets = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(20_000)]
    early = gnp("early", [{"action": "Allow", "source": {"nets": ["10.0.0.0/24"]}}], order=1)
    later = gnp("later", [{"action": "Allow", "source": {"nets": ["10.0.1.0/24"]}}], order=2)
    snapshot = Snapshot.from_stored([*SEED, gns("big", nets), early])
    memo = CalcMemo()
    compute(snapshot, "jasper", ETH0, memo)  # parses the big set (earlier Allow: per-CIDR checks)
    compute(snapshot, "jasper", ETH0, memo)  # idle round (periodic refresh): only the outer entry is used
    changed = Snapshot.of([*snapshot.hep.values(), *snapshot.gns.values(), *snapshot.gnp.values(),
                           *Snapshot.from_stored([later]).gnp.values()])
    parsed.clear()
    with_memo = compute(changed, "jasper", ETH0, memo)  # eligibility re-made, the set is not re-parsed
    assert len(parsed) < 100
    assert with_memo == compute(changed, "jasper", ETH0, NoMemo())
    assert not {"10.0.0.0/24", "10.0.1.0/24"} & with_memo.xdp.interfaces[0].cidrs


POOL = ["10.0.0.0/24", "10.0.0.1/24", "10.0.0.7/32", "10.0.0.7", "192.0.2.0/24", "192.0.2.128/25",
        "2001:db8::/32", "2001:DB8::/32", "2001:db8::1/128", "0.0.0.0/0", "10.1.0.0/16"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(POOL), max_size=8), min_size=1, max_size=6))
def test_versions_of_one_set_compute_as_from_scratch(versions: list[list[str]]) -> None:
    """The incremental canonicalisation of a network set's new version (only the
    difference to the previous version is parsed) gives what a fresh compute gives,
    whatever the non-canonical spellings and duplicates."""
    memo = CalcMemo()
    for nets in versions:
        snapshot = Snapshot.from_stored([*SEED[:1], gns("dos-mitigation", nets), SEED[2]])
        assert compute(snapshot, "jasper", ETH0, memo) == compute(snapshot, "jasper", ETH0, NoMemo())


def test_adding_a_net_to_a_big_set_parses_only_the_new_net(monkeypatch) -> None:
    from seawall.calc import members as members_module  # where stored nets are parsed

    nets = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(20_000)]
    memo = CalcMemo()
    compute(Snapshot.from_stored([*SEED[:1], gns("dos-mitigation", nets), SEED[2]]), "jasper", ETH0, memo)
    parsed = []
    real = members_module.canonical_or_none
    monkeypatch.setattr(members_module, "canonical_or_none", lambda text: parsed.append(text) or real(text))
    bigger = Snapshot.from_stored([*SEED[:1], gns("dos-mitigation", [*nets, "203.0.113.9/32"]), SEED[2]])
    desired = compute(bigger, "jasper", ETH0, memo)
    assert parsed == ["203.0.113.9/32"]
    assert "203.0.113.9/32" in desired.xdp.interfaces[0].cidrs and len(desired.xdp.interfaces[0].cidrs) == 20_001
