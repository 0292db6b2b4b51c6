"""NetSet behaves exactly as a frozenset of its members, and shares what did not change."""

from __future__ import annotations

import contextlib
import ipaddress
import pickle
from collections.abc import Iterator

import numpy as np
from hypothesis import given, settings, strategies as st

from seawall.api.members import text_crcs
from seawall.policy import bucket_ints, netset as N
from seawall.policy.bucket_ints import PackedV4
from seawall.policy.netset import BUCKETS, NetSet, as_netset

V4 = st.builds(lambda a, b, n: f"10.{a}.{b}.0/{n}", st.integers(0, 40), st.integers(0, 40), st.integers(16, 32))
V6 = st.builds(lambda a, n: f"2001:db8:{a:x}::/{n}", st.integers(0, 400), st.integers(48, 128))
NET = st.one_of(V4, V6)
NETS = st.frozensets(NET, max_size=60)


@settings(max_examples=300, deadline=None)
@given(NETS, NETS, NETS)
def test_set_algebra_matches_frozenset(a: frozenset[str], b: frozenset[str], c: frozenset[str]) -> None:
    na, nb = NetSet(a), NetSet(b)
    assert na == a and a == na and len(na) == len(a) and set(na) == set(a)
    assert na - nb == a - b and na | nb == a | b and na & nb == a & b
    assert na - c == a - c and na | c == a | c and c | na == c | a and na & c == a & c
    assert (na == nb) == (a == b)
    assert hash(na) == hash(NetSet(a)) and (hash(na) == hash(nb) or na != nb)
    assert all(x in na for x in a) and not any(x in na for x in b - a)
    assert 5 not in na
    assert na.family(4) == {x for x in a if ":" not in x}
    assert na.family(6) == {x for x in a if ":" in x}
    assert na.has_family(6) == any(":" in x for x in a)
    assert pickle.loads(pickle.dumps(na)) == a


@settings(max_examples=300, deadline=None)
@given(NETS, NETS, NETS)
def test_changes_and_diffs(a: frozenset[str], added: frozenset[str], removed: frozenset[str]) -> None:
    before = NetSet(a)
    after = before.with_changes(added, removed)
    assert after == (a - removed) | added
    plus, minus = after.changes_from(before)
    assert plus == frozenset(after) - a and minus == a - frozenset(after)
    if after == before:
        assert after is before or not (added or removed)
    assert before == a  # never changed in place


@settings(max_examples=200, deadline=None)
@given(st.lists(NETS, min_size=1, max_size=4), st.integers(0, 3), NETS)
def test_incremental_union_equals_fresh_union(parts: list[frozenset[str]], which: int, change: frozenset[str]) -> None:
    sets = [NetSet(p) for p in parts]
    first = NetSet.union(sets)
    assert first == frozenset().union(*parts)
    i = which % len(sets)
    changed = list(sets)
    changed[i] = sets[i].with_changes(added=change)
    again = NetSet.union(changed, previous=(sets, first))
    assert again == NetSet.union(changed) == frozenset().union(*(frozenset(s) for s in changed))


def test_a_small_change_to_a_big_set_shares_the_other_buckets() -> None:
    big = NetSet(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32" for i in range(200_000))
    one = big.with_changes(added=["192.0.2.1/32"])
    assert len(one) == len(big) + 1
    assert one.shared_buckets(big) >= len(big._buckets) - 1
    assert one.changes_from(big) == (frozenset({"192.0.2.1/32"}), frozenset())
    small = NetSet(["198.51.100.0/24", "2001:db8::/64"])
    union = big | small
    assert union.shared_buckets(big) >= len(big._buckets) - 2
    assert len(big._buckets) <= BUCKETS
    assert as_netset(big) is big and big.with_changes() is big and big.with_changes(removed=["1.1.1.1/32"]) is big


@settings(max_examples=300, deadline=None)
@given(st.lists(NETS, min_size=2, max_size=4), st.lists(st.tuples(st.integers(0, 3), NETS, NETS), min_size=1, max_size=4))
def test_a_remembered_change_is_the_exact_difference_through_unions(
        parts: list[frozenset[str]], steps: list[tuple[int, frozenset[str], frozenset[str]]]) -> None:
    """``with_changes`` and a union of changed parts remember what changed; that must be
    exactly what a diff of the members finds (a net in two parts stays until both drop it)."""
    sets = [NetSet(p) for p in parts]
    union = NetSet.union(sets)
    for which, added, removed in steps:
        which %= len(sets)
        old_sets, old_union = list(sets), union
        changed = sets[which].with_changes(added, removed)
        delta = changed.delta_from(sets[which])
        if delta is not None:
            assert delta == (frozenset(changed) - frozenset(sets[which]), frozenset(sets[which]) - frozenset(changed))
        sets[which] = changed
        union = NetSet.union(sets, (old_sets, old_union))
        assert union == frozenset().union(*map(frozenset, sets))
        known = union.delta_from(old_union)
        if known is not None:
            assert known == (frozenset(union) - frozenset(old_union), frozenset(old_union) - frozenset(union))
        assert union.changes_from(old_union) == (frozenset(union) - frozenset(old_union), frozenset(old_union) - frozenset(union))


def test_a_change_to_a_big_set_is_known_without_a_diff() -> None:
    big = NetSet(f"10.{i >> 8}.{i & 255}.0/24" for i in range(50_000))
    small = NetSet(["1.2.3.4/32"])
    union = NetSet.union([small, big])
    bigger = big.with_changes(["192.0.2.0/24", "1.2.3.4/32"], ["10.0.0.0/24"])
    newer = NetSet.union([small, bigger], ([small, big], union))
    assert newer.delta_from(union) == (frozenset({"192.0.2.0/24"}), frozenset({"10.0.0.0/24"}))
    assert bigger.delta_from(big) == (frozenset({"192.0.2.0/24", "1.2.3.4/32"}), frozenset({"10.0.0.0/24"}))
    assert newer.delta_from(big) is None  # only from the version it was made from


@settings(max_examples=200, deadline=None)
@given(st.lists(NET, max_size=40), st.integers(1, 4))
def test_split_by_crc_keeps_what_the_test_accepts_and_buckets_like_any_netset(texts: list[str], low_bits: int) -> None:
    from seawall.policy.netset import split_by_crc, text_crc

    mask = (1 << low_bits) - 1
    kept, others = split_by_crc(texts, lambda crcs: (crcs & mask) == 0)
    assert kept == {t for t in texts if text_crc(t) & mask == 0}
    assert sorted(others) == sorted(t for t in texts if text_crc(t) & mask != 0)
    assert kept == NetSet(t for t in texts if text_crc(t) & mask == 0)  # same buckets as built any other way
    assert kept.changes_from(NetSet(kept)) == (frozenset(), frozenset())


@settings(max_examples=200, deadline=None)
@given(st.lists(NET, max_size=80), st.lists(st.tuples(st.integers(0, 7), NETS, NETS), min_size=1, max_size=4))
def test_a_union_of_disjoint_parts_swaps_only_the_changed_parts(
        texts: list[str], steps: list[tuple[int, frozenset[str], frozenset[str]]]) -> None:
    """Parts that own their buckets (a chunked set: CRC-32 bucket mod 8 = the part) unite
    by swapping the changed parts' buckets, and know the change."""
    from seawall.policy.netset import text_crc

    def part_of(t: str) -> int:
        return text_crc(t) & 7

    parts = [NetSet(t for t in texts if part_of(t) == i) for i in range(8)]
    union = NetSet.union_of_disjoint(parts)
    assert union == frozenset(texts)
    for which, added, removed in steps:
        old_parts, old_union = list(parts), union
        parts[which] = parts[which].with_changes({t for t in added if part_of(t) == which}, removed)
        union = NetSet.union_of_disjoint(parts, (old_parts, old_union))
        assert union == frozenset().union(*map(frozenset, parts))
        known = union.delta_from(old_union)
        if known is not None:
            assert known == (frozenset(union) - frozenset(old_union), frozenset(old_union) - frozenset(union))


@contextlib.contextmanager
def _few_buckets(one_search: bool = False) -> Iterator[None]:
    """Two buckets per family and layers from 4 members on: small sets then take the
    layered-bucket paths a million-net set takes (hundreds of members per bucket);
    ``one_search``: packed bases answer membership in one search however few ask."""
    saved = (N.PER_FAMILY, N._MASK, N.BUCKETS, N._LAYER_MIN, N._SEARCH_BULK)
    N.PER_FAMILY, N._MASK, N.BUCKETS, N._LAYER_MIN = 2, 1, 4, 4
    N._SEARCH_BULK = 0 if one_search else N._SEARCH_BULK
    try:
        yield
    finally:
        N.PER_FAMILY, N._MASK, N.BUCKETS, N._LAYER_MIN, N._SEARCH_BULK = saved


def _canonical(texts: frozenset[str]) -> frozenset[str]:
    return frozenset(str(ipaddress.ip_network(t, strict=False)) for t in texts)


def _with_packed(texts: frozenset[str]) -> NetSet:
    """``texts`` as a bulk parse makes them: IPv4 buckets of ``_LAYER_MIN`` members on are
    ``PackedV4`` (integers only), the others frozensets."""
    v4 = [t for t in texts if ":" not in t]
    buckets = dict(NetSet([t for t in texts if ":" in t])._buckets)
    if v4:
        ints = np.array([bucket_ints.key_of(t) for t in v4], np.int64)
        buckets.update(N._bucketed_by_crc(v4, text_crcs(v4), ints))
    return NetSet._of_buckets(buckets)


BIG = st.builds(frozenset.union, st.frozensets(V4, min_size=8, max_size=60), st.frozensets(V6, max_size=10))


@settings(max_examples=300, deadline=None)
@given(BIG, BIG, NETS)
def test_packed_buckets_behave_as_the_frozenset_of_their_members(a: frozenset[str], b: frozenset[str],
                                                                  c: frozenset[str]) -> None:
    a, b, c = _canonical(a), _canonical(b), _canonical(c)
    with _few_buckets():
        na, nb = _with_packed(a), _with_packed(b)
        assert all(isinstance(x, PackedV4) for x in na.buckets() if len(x) >= N._LAYER_MIN and ":" not in next(iter(x)))
        assert na == a and a == na and NetSet(a) == na and na == NetSet(a) and hash(na) == hash(NetSet(a))
        assert sorted(na) == sorted(a) and all(x in na for x in a) and not any(x in na for x in b - a)
        assert "010.0.0.0/8" not in na and 5 not in na
        assert na - nb == a - b and na | nb == a | b and na & nb == a & b and nb - na == b - a
        assert NetSet.union([na, nb]) == a | b and (na == nb) == (a == b)
        assert na.changes_from(nb) == (a - b, b - a) and NetSet(b).changes_from(na) == (b - a, a - b)
        assert na.with_changes(c, b) == (a - b) | c and na.with_changes(b, c) == (a - c) | b
        assert pickle.loads(pickle.dumps(na)) == a


@settings(max_examples=300, deadline=None)
@given(NETS, st.lists(st.tuples(NETS, NETS), min_size=1, max_size=8), NETS, st.booleans(), st.booleans())
def test_layered_buckets_behave_as_the_frozenset_of_their_members(
        start: frozenset[str], steps: list[tuple[frozenset[str], frozenset[str]]], other: frozenset[str],
        packed: bool, one_search: bool) -> None:
    if packed:  # layers over packed bases (a bulk-parsed set churned): members canonical
        start, other = _canonical(start), _canonical(other)
        steps = [(_canonical(a), _canonical(r)) for a, r in steps]
    with _few_buckets(one_search):
        current, model = (_with_packed(start) if packed else NetSet(start)), frozenset(start)
        origin = current
        for added, removed in steps:
            before, old_model = current, model
            current = current.with_changes(added, removed)
            model = (model - removed) | added
            assert current == model and model == current and len(current) == len(model)
            assert sorted(current) == sorted(model) and all(t in current for t in model)
            assert not any(t in current for t in (removed - added))
            assert current.changes_from(before) == (model - old_model, old_model - model)
            fresh = NetSet(model)  # plain buckets: equal, same hash, diffs empty both ways
            assert fresh == current and current == fresh and hash(fresh) == hash(current)
            assert fresh.changes_from(current) == (frozenset(), frozenset()) == current.changes_from(fresh)
            assert before == old_model  # never changed in place
        first = origin  # not its parent: the diff goes by bucket, layer against layer
        assert current.changes_from(first) == (model - start, start - model)
        assert first.changes_from(current) == (start - model, model - start)
        no = NetSet(other)
        assert current - no == model - other and no - current == other - model
        assert current | no == model | other and current & no == model & other and no & current == other & model
        assert NetSet.union([current, no]) == model | other
        assert current.family(4) == {t for t in model if ":" not in t}
        assert frozenset().union(*current.buckets()) == model
        assert pickle.loads(pickle.dumps(current)) == model


def test_a_layered_bucket_is_compacted_once_its_edits_reach_a_share_of_its_base() -> None:
    with _few_buckets():
        nets = [f"10.0.{i >> 8}.{i & 255}/32" for i in range(400)]
        current = NetSet(nets)
        layered = current.with_changes(["192.0.2.1/32"], [nets[0]])
        assert any(isinstance(b, N._Layered) for b in layered._buckets.values())
        churned = layered
        for i in range(1, 200):  # drop half the set a net at a time
            churned = churned.with_changes(removed=[nets[i]])
        assert churned == frozenset(nets[200:]) | {"192.0.2.1/32"}
        for b, bucket in churned._buckets.items():
            if isinstance(bucket, N._Layered):
                assert len(bucket.plus) + len(bucket.minus) <= N._edit_limit(len(bucket.base), b)
