"""Replaying datastore states through one long-lived agent calculation.

In the style of Felix's calc_graph_fv_test.go: the named states of
``tests/unit/calc_states.py`` (stored items + hand-written expected output) are
replayed through a single ``ValidatedResources`` + ``CalcMemo`` pair, as the
agent holds them, in many orders: each state from empty and back, all forward,
all reverse, every ordered pair, seeded random permutations and hypothesis-drawn
sequences. Each transition hands over the full list of stored items where an
unchanged document is the very same dict object as before and a changed one is
a new object (what the syncer does; the caches key on identity). After every
transition the output must equal the state's expectation *and* a fresh,
memo-free ``compute(Snapshot.from_stored(items))``: a difference means cached
state leaked across transitions.

The one intended history dependence (a valid resource updated to an invalid
document keeps its last valid version) is replayed in dedicated sequences.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from seawall.calc import CalcMemo, NodeInterfaces, Snapshot, compute
from seawall.calc.validated import ValidatedResources
from seawall.policy import DesiredState
from seawall.selector import parse
from tests.unit.calc_states import (
    BAD_SEED_GNP,
    BAD_SEED_GNS,
    BAD_UPDATES,
    BIG_NETS,
    DENY_LABEL,
    GNP_IGNORED,
    GNP_KEPT,
    GNS_IGNORED,
    GNS_KEPT,
    IFACES,
    NO_SET_EXPECT,
    NODE,
    SEED,
    SEED_EXPECT,
    SEED_GNP,
    SEED_GNP_WITH_LOG,
    SEED_GNS,
    SEED_GNS_V6,
    SEED_HEP,
    STATES,
    Expect,
    Item,
    felix,
    gnp,
    gns,
    hep,
    r,
    with_,
)

NAMES = list(STATES)
PERMUTATION_SEEDS = [1, 2, 3, 5, 8, 13, 21, 34]


# ------------------------------------------------------------------ harness


class Replayer:
    """What the agent holds across reconciles: the stored documents it was
    last given, one ValidatedResources and one CalcMemo."""

    def __init__(self, rng: random.Random | None = None, *, keep_identity: bool = True) -> None:
        self.validated = ValidatedResources()
        self.memo = CalcMemo()
        self.held: dict[tuple[str, str], dict[str, Any]] = {}
        self.rng = rng
        self.keep_identity = keep_identity
        self.snapshot: Snapshot | None = None
        self.interfaces = IFACES  # what netlink reports; may change between reconciles

    def go(self, items: Iterable[Item]) -> tuple[list[Item], DesiredState, list[dict[str, Any]]]:
        stored: list[Item] = []
        held: dict[tuple[str, str], dict[str, Any]] = {}
        for kind, name, doc in items:
            old = self.held.get((kind, name))
            unchanged = self.keep_identity and old is not None and old == doc
            current = old if unchanged else copy.deepcopy(doc)
            assert current is not doc  # the catalogue's templates are never handed out
            held[(kind, name)] = current
            stored.append((kind, name, current))
        if self.rng is not None:
            self.rng.shuffle(stored)  # the syncer promises no order
        self.held = held
        self.snapshot, invalid = self.validated.update(stored)
        desired = compute(self.snapshot, NODE, self.interfaces, self.memo)
        return stored, desired, invalid


def without_invalid(desired: DesiredState) -> DesiredState:
    # The agent's snapshot carries no ``invalid`` (ValidatedResources reports them
    # separately, with the action taken); everything else must be identical.
    return dataclasses.replace(desired, invalid=())


def check_expect(desired: DesiredState, invalid: list[dict[str, Any]], expect: Expect, where: str) -> None:
    xdp = desired.xdp
    assert [b.name for b in xdp.interfaces] == sorted(expect.xdp), where
    for block in xdp.interfaces:
        assert block.cidrs == expect.xdp[block.name], (where, block.name)
        assert block.failsafe == expect.failsafe_in, (where, block.name)
    assert (xdp.xdp_enabled, xdp.generic_enabled) == (expect.xdp_enabled, expect.generic_enabled), where
    assert (desired.config.xdpEnabled, desired.config.genericXDPEnabled) == (
        expect.xdp_enabled, expect.generic_enabled), where

    untracked = desired.untracked
    assert {(f.protocol, f.port) for f in untracked.failsafe_in} == expect.failsafe_in, where
    assert len(untracked.failsafe_in) == len(expect.failsafe_in), where
    assert {(f.protocol, f.port) for f in untracked.failsafe_out} == expect.failsafe_out, where
    assert {i.name: tuple(p.name for p in i.policies) for i in untracked.interfaces} == expect.policies, where
    assert [i.name for i in untracked.interfaces] == sorted(expect.policies), where
    assert {k: s.cidrs for k, s in untracked.sets.items()} == {
        parse(text).unique_id(): members for text, members in expect.sets.items()}, where
    for set_id, cidr_set in untracked.sets.items():
        assert cidr_set.id == set_id, where

    assert {d.name: d.host_endpoint for d in desired.decisions} == expect.owners, where
    assert [d.name for d in desired.decisions] == sorted(expect.owners), where
    for decision in desired.decisions:
        ctx = (where, decision.name)
        assert decision.policies == expect.policies.get(decision.name, ()), ctx
        assert decision.xdp_cidrs == expect.xdp.get(decision.name, frozenset()), ctx
        assert decision.xdp_cidrs == frozenset().union(*(rd.cidrs for rd in decision.rules)), ctx
        wanted = expect.rules.get(decision.name, ())
        got = [(rd.policy, rd.index, rd.action, rd.in_xdp) for rd in decision.rules]
        assert got == [(w.policy, w.index, w.action, w.in_xdp) for w in wanted], ctx
        for rd, w in zip(decision.rules, wanted, strict=True):
            for part in w.reason:
                assert part in rd.reason, (ctx, rd.reason, part)
            assert bool(rd.cidrs) == rd.in_xdp, (ctx, rd)

    assert desired.not_enforced == expect.not_enforced, where
    assert len(desired.warnings) == len(expect.warnings), (where, desired.warnings)
    for got_warning, part in zip(desired.warnings, expect.warnings, strict=True):
        assert part in got_warning, (where, got_warning)
    assert {(i["kind"], i["name"], i["action"]) for i in invalid} == expect.invalid, (where, invalid)
    assert len(invalid) == len(expect.invalid), where
    for entry in invalid:
        assert entry["reason"], where


def check_memo_is_minimal(replayer: Replayer, desired: DesiredState, where: str) -> None:
    """The long-lived memo holds no more entries than a brand-new memo needs for
    the same snapshot (nothing left over from earlier states; it may hold fewer:
    when an outer entry is reused, the inner work it was built from is not asked
    for and is swept), and a brand-new memo computes the same result."""
    assert replayer.snapshot is not None
    fresh_memo = CalcMemo()
    assert compute(replayer.snapshot, NODE, replayer.interfaces, fresh_memo) == desired, where
    assert len(replayer.memo) <= len(fresh_memo), where


def transition(replayer: Replayer, name: str, where: str) -> DesiredState:
    items, expect = STATES[name]
    stored, desired, invalid = replayer.go(items)
    where = f"{where} -> {name}"
    check_expect(desired, invalid, expect, where)
    fresh = compute(Snapshot.from_stored(stored), NODE, IFACES)
    assert without_invalid(desired) == without_invalid(fresh), where
    assert {(k, n) for k, n, _ in fresh.invalid} == {(i["kind"], i["name"]) for i in invalid}, where
    check_memo_is_minimal(replayer, desired, where)
    return desired


def replay(names: Iterable[str], replayer: Replayer | None = None) -> Replayer:
    replayer = replayer if replayer is not None else Replayer()
    history = ["empty"]
    for name in names:
        transition(replayer, name, " -> ".join(history[-3:]))
        history.append(name)
    return replayer


# ------------------------------------------------------------------ the catalogue itself


def test_catalogue_is_well_formed() -> None:
    assert 15 <= len(STATES) <= 40
    assert not set(STATES) & set(BAD_UPDATES)
    for name, (items, _) in STATES.items():
        keys = [(k, n) for k, n, _ in items]
        assert len(keys) == len(set(keys)), name


@pytest.mark.parametrize("name", NAMES)
def test_each_state_alone_matches_its_expectation(name: str) -> None:
    items, expect = STATES[name]
    stored, desired, invalid = Replayer().go(items)
    check_expect(desired, invalid, expect, name)
    assert without_invalid(compute(Snapshot.from_stored(stored), NODE, IFACES)) == without_invalid(desired)


def test_stored_order_does_not_matter() -> None:
    for name in NAMES:
        items, _ = STATES[name]
        orders = [items, items[::-1], *itertools.islice(itertools.permutations(items), 1, 6)]
        outputs = [compute(Snapshot.from_stored(list(p)), NODE, IFACES) for p in orders]
        assert all(o == outputs[0] for o in outputs), name


# ------------------------------------------------------------------ replays


def test_each_state_from_empty_and_back_to_empty() -> None:
    replayer = Replayer()
    for name in NAMES:
        replay([name, "empty"], replayer)
    assert len(replayer.memo) == 0


def test_all_states_forward_then_reverse() -> None:
    replay([*NAMES, *reversed(NAMES), "empty"])


def test_all_states_reverse() -> None:
    replay([*reversed(NAMES), "empty"])


@pytest.mark.parametrize("seed", PERMUTATION_SEEDS)
def test_seeded_random_permutations(seed: int) -> None:
    rng = random.Random(seed)
    names = NAMES[:]
    rng.shuffle(names)
    replay([*names, "empty"], Replayer(rng))


def test_every_ordered_pair_of_states() -> None:
    # Every state reached from every other one (a -> b for all a != b) through
    # one long-lived replayer: a, b, then the next pair starts from b.
    replayer = Replayer()
    for a, b in itertools.permutations(NAMES, 2):
        transition(replayer, a, "pair")
        transition(replayer, b, a)


def test_replay_with_new_objects_every_time() -> None:
    # After a syncer resync every document is a new (equal) object: nothing
    # may depend on identity for correctness, only for speed.
    rng = random.Random(99)
    names = NAMES[:]
    rng.shuffle(names)
    replay([*names, *names[:5], "empty"], Replayer(rng, keep_identity=False))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(NAMES), st.randoms(use_true_random=False))
def test_hypothesis_permutations(names: list[str], rng: random.Random) -> None:
    replay([*names, "empty"], Replayer(rng))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=12))
def test_hypothesis_sequences_with_repeats(names: list[str]) -> None:
    # Repeats include a state followed by itself (a reconcile with no change).
    replay(names)


OTHER_IFACES = [
    NodeInterfaces({"lo": ("127.0.0.1/8",), "ens3": ("10.0.0.1/24",), "eth1": ("192.168.1.5/24",)}),
    NodeInterfaces({"lo": ("127.0.0.1/8",), "eth0": ("192.168.1.5/24",), "eth1": ("10.0.0.1/24", "fe80::1/64")}),
    NodeInterfaces({"lo": ("127.0.0.1/8",), "eth0": ("10.0.0.1/24",)}),
    IFACES,
]


def test_interfaces_changing_between_reconciles() -> None:
    # Links appear, disappear and swap addresses while the stored state stays or
    # changes: the memo must not tie anything to the previous interfaces.
    rng = random.Random(2024)
    replayer = Replayer(rng)
    names = NAMES[:]
    rng.shuffle(names)
    for step, name in enumerate([*names, *names[:8]]):
        for interfaces in (OTHER_IFACES[step % len(OTHER_IFACES)], IFACES):
            replayer.interfaces = interfaces
            stored, desired, _ = replayer.go(STATES[name][0])
            fresh = compute(Snapshot.from_stored(stored), NODE, interfaces)
            assert without_invalid(desired) == without_invalid(fresh), (name, interfaces)
            check_memo_is_minimal(replayer, desired, name)
        check_expect(desired, replayer.validated.update(stored)[1], STATES[name][1], name)


# ------------------------------------------------------------------ keep-last-valid (history-dependent)


def go_bad(replayer: Replayer, name: str) -> tuple[list[Item], DesiredState, list[dict[str, Any]]]:
    return replayer.go(BAD_UPDATES[name])


def assert_kept(desired: DesiredState, stored: list[Item], kept: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Output equals a fresh compute of the stored items with the invalid ones
    replaced by the last valid versions, and differs from a fresh compute of the
    stored items as they are (which treats the invalid ones as absent)."""
    as_kept = [(k, n, kept.get((k, n), d)) for k, n, d in stored]
    assert without_invalid(desired) == without_invalid(compute(Snapshot.from_stored(as_kept), NODE, IFACES))
    assert without_invalid(desired) != without_invalid(compute(Snapshot.from_stored(stored), NODE, IFACES))


def test_bad_set_update_from_empty_is_ignored() -> None:
    replayer = Replayer()
    stored, desired, invalid = go_bad(replayer, "seed-bad-set")
    check_expect(desired, invalid, dataclasses.replace(NO_SET_EXPECT, invalid=GNS_IGNORED), "empty -> bad")
    assert without_invalid(desired) == without_invalid(compute(Snapshot.from_stored(stored), NODE, IFACES))


def test_bad_set_update_keeps_the_last_valid_set() -> None:
    replayer = Replayer()
    transition(replayer, "seed", "start")
    stored, desired, invalid = go_bad(replayer, "seed-bad-set")
    check_expect(desired, invalid, dataclasses.replace(SEED_EXPECT, invalid=GNS_KEPT), "seed -> bad")
    assert_kept(desired, stored, {("GlobalNetworkSet", "dos-mitigation"): SEED_GNS[2]})
    check_memo_is_minimal(replayer, desired, "seed -> bad")

    # A second invalid version still keeps the last *valid* one.
    stored, desired, invalid = go_bad(replayer, "seed-worse-set")
    check_expect(desired, invalid, dataclasses.replace(SEED_EXPECT, invalid=GNS_KEPT), "bad -> worse")
    assert_kept(desired, stored, {("GlobalNetworkSet", "dos-mitigation"): SEED_GNS[2]})

    # The same invalid document again (no change): still kept, still reported.
    stored, desired, invalid = go_bad(replayer, "seed-worse-set")
    check_expect(desired, invalid, dataclasses.replace(SEED_EXPECT, invalid=GNS_KEPT), "worse -> worse")

    # Fixed: history gone, the new valid version rules.
    transition(replayer, "seed-second-set", "worse")
    stored, desired, invalid = go_bad(replayer, "seed-bad-set")
    check_expect(desired, invalid, dataclasses.replace(SEED_EXPECT, invalid=GNS_KEPT), "second-set -> bad")

    # Deleted, then the invalid version appears: nothing to keep any more.
    transition(replayer, "empty", "bad")
    stored, desired, invalid = go_bad(replayer, "seed-bad-set")
    check_expect(desired, invalid, dataclasses.replace(NO_SET_EXPECT, invalid=GNS_IGNORED), "empty -> bad")
    transition(replayer, "seed", "bad")
    transition(replayer, "empty", "seed")
    assert len(replayer.memo) == 0


def test_bad_set_update_keeps_whichever_version_was_last_valid() -> None:
    v6_expect = STATES["seed-ipv6"][1]
    replayer = Replayer()
    transition(replayer, "seed-ipv6", "start")
    stored, desired, invalid = go_bad(replayer, "seed-bad-set")
    check_expect(desired, invalid, dataclasses.replace(v6_expect, invalid=GNS_KEPT), "ipv6 -> bad")
    assert_kept(desired, stored, {("GlobalNetworkSet", "dos-mitigation"): SEED_GNS_V6[2]})

    # A kept set that no longer carries the label stays unselected.
    transition(replayer, "seed-set-unlabelled", "bad")
    stored, desired, invalid = go_bad(replayer, "seed-bad-set")
    check_expect(desired, invalid, dataclasses.replace(NO_SET_EXPECT, invalid=GNS_KEPT), "unlabelled -> bad")

    # ... and going back to a valid state after that is exactly that state.
    for name in ("seed", "seed-big-set", "seed-ipv6", "empty"):
        transition(replayer, name, "after bad")


def test_bad_policy_update_keeps_the_last_valid_policy() -> None:
    replayer = Replayer()
    transition(replayer, "seed", "start")
    stored, desired, invalid = go_bad(replayer, "seed-bad-policy")
    check_expect(desired, invalid, dataclasses.replace(SEED_EXPECT, invalid=GNP_KEPT), "seed -> bad policy")
    assert_kept(desired, stored, {("GlobalNetworkPolicy", "dos-mitigation"): SEED_GNP[2]})

    # From the Pass/Log state the kept policy is the one with the Log rule (the
    # "triage" policy is gone in the bad state): 5.6.0.0/16 stays out of XDP.
    transition(replayer, "seed-pass-log", "bad policy")
    stored, desired, invalid = go_bad(replayer, "seed-bad-policy")
    expect = dataclasses.replace(
        SEED_EXPECT,
        xdp={"eth0": frozenset({"1.2.3.4/32"})},
        rules={"eth0": (
            r("dos-mitigation", 0, "Log", False, "not in XDP: Log rules"),
            r("dos-mitigation", 1, "Deny", True, "in XDP: 1 of 2 CIDRs",
              "1 CIDR (5.6.0.0/16): an earlier Log rule (policy dos-mitigation, rule 0) may match these sources"),
        )},
        invalid=GNP_KEPT,
    )
    check_expect(desired, invalid, expect, "pass-log -> bad policy")
    assert_kept(desired, stored, {("GlobalNetworkPolicy", "dos-mitigation"): SEED_GNP_WITH_LOG[2]})

    transition(replayer, "empty", "bad policy")
    stored, desired, invalid = go_bad(replayer, "seed-bad-policy")
    check_expect(desired, invalid, dataclasses.replace(SEED_EXPECT, xdp={}, policies={}, rules={}, sets={},
                                                       invalid=GNP_IGNORED), "empty -> bad policy")


def test_bad_updates_interleaved_with_random_states() -> None:
    """Random walks through the catalogue with a bad set update after each
    state: the kept set is the one of the state just left (or none)."""
    rng = random.Random(7)
    replayer = Replayer(rng)
    for _ in range(3):
        names = NAMES[:]
        rng.shuffle(names)
        for name in names:
            transition(replayer, name, "walk")
            items = STATES[name][0]
            last_valid = next((d for k, n, d in items if (k, n) == ("GlobalNetworkSet", "dos-mitigation")), None)
            stored, desired, invalid = replayer.go(with_(items, BAD_SEED_GNS))
            as_kept = with_(items, ("GlobalNetworkSet", "dos-mitigation", last_valid)) if last_valid else [
                i for i in stored if (i[0], i[1]) != ("GlobalNetworkSet", "dos-mitigation")]
            assert without_invalid(desired) == without_invalid(
                compute(Snapshot.from_stored(as_kept), NODE, IFACES)), name
            reported = {(i["kind"], i["name"]): i["action"] for i in invalid}
            assert reported[("GlobalNetworkSet", "dos-mitigation")] == (
                "kept the last valid version" if last_valid else "ignored"), name
            check_memo_is_minimal(replayer, desired, f"{name} -> bad")


# ------------------------------------------------------------------ memo hygiene and identity


def _mentions_big(obj: Any, depth: int = 0) -> bool:
    """Whether ``obj`` (a memo input or value) holds any CIDR of BIG_NETS."""
    marker = BIG_NETS[0]
    if depth > 6:
        return False
    if isinstance(obj, str):
        return obj == marker
    if isinstance(obj, (frozenset, set)):
        return marker in obj or any(_mentions_big(o, depth + 1) for o in itertools.islice(obj, 50)
                                    if not isinstance(o, str))
    if isinstance(obj, (tuple, list)):
        return any(_mentions_big(o, depth + 1) for o in obj)
    if isinstance(obj, dict):
        return any(_mentions_big(o, depth + 1) for o in obj.values())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return any(_mentions_big(getattr(obj, f.name), depth + 1) for f in dataclasses.fields(obj))
    if hasattr(obj, "_starts"):  # eligibility's interval sets: the big nets start at 10.200.0.0
        return any(10 << 24 | 200 << 16 in starts for starts in obj._starts.values())
    if hasattr(obj, "spec") and hasattr(obj, "metadata"):  # a resource
        nets = getattr(obj.spec, "nets", None) or ()
        return marker in nets
    return False


BIG_EXTRA = [
    gns("big", BIG_NETS, {"big": "true"}),
    gnp("big-policy", [{"action": "Deny", "source": {"selector": "big == 'true'"}}], order=5),
]


def test_memo_forgets_a_big_set_after_it_is_gone() -> None:
    replayer = Replayer()
    _, seed_desired, _ = replayer.go(SEED)
    seed_entries = len(replayer.memo)
    assert seed_entries > 0

    _, desired, _ = replayer.go([*SEED, *BIG_EXTRA])
    assert desired.xdp.interfaces[0].cidrs == frozenset({*BIG_NETS, "1.2.3.4/32", "5.6.0.0/16"})
    with_big = len(replayer.memo)
    assert with_big > seed_entries
    assert any(_mentions_big(inputs) or _mentions_big(value) for inputs, value in replayer.memo.entries())

    _, desired, _ = replayer.go(SEED)
    assert without_invalid(desired) == without_invalid(seed_desired)
    assert len(replayer.memo) == seed_entries < with_big
    for inputs, value in replayer.memo.entries():
        assert not _mentions_big(inputs) and not _mentions_big(value), (inputs, value)

    # Same through the seed set itself growing to 1,000 nets and shrinking back.
    transition(replayer, "seed-big-set", "seed")
    transition(replayer, "seed", "big")
    assert len(replayer.memo) == seed_entries
    assert not any(_mentions_big(i) or _mentions_big(v) for i, v in replayer.memo.entries())
    transition(replayer, "empty", "seed")
    assert len(replayer.memo) == 0


def test_sweep_drops_what_the_last_round_did_not_use() -> None:
    memo = CalcMemo()
    a, b = object(), object()
    made: list[str] = []
    assert memo.get("k", (a,), lambda: made.append("a") or "A") == "A"
    assert memo.get("k", (b,), lambda: made.append("b") or "B") == "B"
    memo.sweep()
    assert len(memo) == 2
    assert memo.get("k", (a,), lambda: made.append("a2") or "A2") == "A"  # reused: same object
    memo.sweep()
    assert len(memo) == 1 and made == ["a", "b"]
    assert memo.get("k", (b,), lambda: made.append("b2") or "B2") == "B2"  # was dropped: made again
    memo.sweep()
    assert len(memo) == 1
    memo.sweep()  # a round that asked for nothing
    assert len(memo) == 0


def test_unchanged_100k_set_keeps_the_same_frozenset_object() -> None:
    nets = [f"{20 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24" for i in range(100_000)]
    items = [SEED_HEP, gns("huge", nets, DENY_LABEL), SEED_GNP]
    replayer = Replayer()
    _, first, _ = replayer.go(items)
    (block,) = first.xdp.interfaces
    assert len(block.cidrs) == 100_000 and "20.0.0.0/24" in block.cidrs
    (cidr_set,) = first.untracked.sets.values()

    _, second, _ = replayer.go(items)  # a reconcile with nothing changed
    assert second.xdp.interfaces[0].cidrs is block.cidrs
    assert next(iter(second.untracked.sets.values())).cidrs is cidr_set.cidrs

    # Unrelated changes elsewhere leave the set's frozenset untouched too.
    _, third, _ = replayer.go([*items, gnp("tracked", [], dnt=False), felix("default", genericXDPEnabled=True),
                               hep("peer", node="other", ips=["192.0.2.1"], labels={"x": "y"})])
    assert third.xdp.interfaces[0].cidrs is block.cidrs
    assert third.not_enforced == ("tracked",) and third.xdp.generic_enabled is True

    # A changed set is a new object with the new content.
    _, fourth, _ = replayer.go([SEED_HEP, gns("huge", [*nets[:-1], "9.9.9.9/32"], DENY_LABEL), SEED_GNP])
    assert fourth.xdp.interfaces[0].cidrs is not block.cidrs
    assert fourth.xdp.interfaces[0].cidrs == (block.cidrs - {nets[-1]}) | {"9.9.9.9/32"}


def test_replayer_hands_over_identity_like_the_syncer() -> None:
    replayer = Replayer()
    first, _, _ = replayer.go(SEED)
    second, _, _ = replayer.go(with_(SEED, BAD_SEED_GNP))
    by_key = {(k, n): d for k, n, d in first}
    for kind, name, doc in second:
        if (kind, name) == ("GlobalNetworkPolicy", "dos-mitigation"):
            assert doc is not by_key[(kind, name)] and doc == BAD_SEED_GNP[2]
        else:
            assert doc is by_key[(kind, name)]
    assert SEED_GNS[2]["metadata"]["labels"] == DENY_LABEL  # the templates are untouched
    assert SEED_GNS[2]["spec"]["nets"] == ["1.2.3.4/32", "5.6.0.0/16"]


def test_rule_indexes_match_the_stored_policy_when_a_named_port_rule_is_dropped() -> None:
    named = gnp("named", [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}},
                          {"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}], order=1)
    _, desired, _ = Replayer().go([*SEED, named])
    assert desired.warnings == (
        "GlobalNetworkPolicy named: ingress[0]: named ports are not supported; the rule is ignored",)
    rules = desired.decisions_for("eth0").rules
    # The Allow that remains is ingress[1] of the stored policy.
    assert [(rd.policy, rd.index, rd.action) for rd in rules] == [("named", 1, "Allow"), ("dos-mitigation", 0, "Deny")]
    assert "an earlier Allow rule (policy named, rule 1) may match these sources" in rules[1].reason


def test_raw_rule_origins_name_the_stored_rule_index_after_a_dropped_rule() -> None:
    from seawall.dataplane.iptables.render import render

    named = gnp("named", [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}},
                          {"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}], order=1)
    _, desired, _ = Replayer().go([*SEED, named])
    origins = {(o.policy, o.rule_index) for o in render(desired.untracked).origins.values() if o.policy == "named"}
    assert (("named", 1) in origins) and (("named", 0) not in origins)
