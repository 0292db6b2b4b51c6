"""PackedInts behaves as a Python set of ints through any mix of single and bulk changes and folds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from seawall.dataplane.xdp import packed
from seawall.dataplane.xdp.packed import PackedInts, sorted_unique

VALUE = st.integers(0, 300)
STEP = st.one_of(
    st.tuples(st.just("add"), VALUE), st.tuples(st.just("discard"), VALUE),
    st.tuples(st.just("update"), st.lists(VALUE, max_size=12)),
    st.tuples(st.just("difference_update"), st.lists(VALUE, max_size=12)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=40), st.integers(1, 8))
def test_packed_ints_match_a_set(steps: list[tuple[str, object]], fold_min: int) -> None:
    old = packed.FOLD_MIN
    packed.FOLD_MIN = fold_min  # fold often: every path through the overlays and the array
    try:
        ours, model = PackedInts(), set()
        for op, arg in steps:
            if op == "add":
                ours.add(arg)  # type: ignore[arg-type]
                model.add(arg)
            elif op == "discard":
                ours.discard(arg)  # type: ignore[arg-type]
                model.discard(arg)
            elif op == "update":
                ours.update(np.array(arg, dtype=np.int64))
                model.update(arg)  # type: ignore[arg-type]
            else:
                ours.difference_update(np.array(arg, dtype=np.int64))
                model.difference_update(arg)  # type: ignore[arg-type]
            assert len(ours) == len(model) and bool(ours) == bool(model)
            probe = np.arange(0, 302, dtype=np.int64)
            assert all((v in ours) == (v in model) for v in (0, 1, 150, 299, 300, 301))
            assert ours.contains_many(probe).tolist() == [v in model for v in probe.tolist()]
            for low, high in ((0, 301), (10, 20), (150, 151), (290, 400)):
                assert ours.in_range(low, high) == sorted(v for v in model if low <= v < high)
        assert ours.array().tolist() == sorted(model) and list(ours) == sorted(model)
        assert "1" not in ours
    finally:
        packed.FOLD_MIN = old


@given(st.lists(st.integers(0, 2**40), max_size=50))
def test_sorted_unique_is_numpy_unique(values: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    assert sorted_unique(array).tolist() == np.unique(array).tolist()


@given(st.lists(st.integers(0, 500), max_size=200), st.lists(st.integers(0, 520), max_size=30))
def test_merge_and_without_are_set_union_and_difference(base: list[int], values: list[int]) -> None:
    """Both paths of ``merge`` (bisection for a few values into many, a sort otherwise)."""
    array = sorted_unique(np.array(base, dtype=np.int64))
    other = np.array(values, dtype=np.int64)
    assert packed.merge(array, other).tolist() == sorted(set(base) | set(values))
    assert packed.without(array, other).tolist() == sorted(set(base) - set(values))
