"""A chunk parsed by difference from its previous version means what it means parsed
whole: members, bad values and whether its stored values are exactly its members — for
canonical, non-canonical, bad, duplicate and other-bucket values in any order."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from seawall.api.cidr import parse_cidr
from seawall.api.members import CHUNK_API_VERSION, CHUNK_KIND, ChunkDoc, JoinedTexts, compact_chunk, parse_chunk, text_crc
from seawall.calc.members import canonical_or_none, chunk_members, fresh_chunks
from seawall.policy import bucket_ints

BUCKETS = 4  # few buckets: strays (members of another bucket) are common
INDEX = 1

_values = st.one_of(
    st.builds(lambda a, b, n: f"10.{a}.{b}.0/{n}", st.integers(0, 3), st.integers(0, 3), st.sampled_from([24, 32])),
    st.builds(lambda a, b: f"10.{a}.{b}.7/24", st.integers(0, 3), st.integers(0, 3)),  # not canonical
    st.builds(lambda a: f"2001:db8:{a:x}::/48", st.integers(0, 7)),
    st.sampled_from(["bogus", "10.0.0.0/33", ""]),
)
_versions = st.lists(st.lists(_values, max_size=40), min_size=2, max_size=6)


def _own(texts: list[str]) -> list[str]:
    return [t for t in texts if text_crc(t) & (BUCKETS - 1) == INDEX]


def _stored(nets: list[str], compact: bool) -> ChunkDoc:
    value = {"apiVersion": CHUNK_API_VERSION, "kind": CHUNK_KIND, "set": "s", "index": INDEX, "nets": nets}
    return parse_chunk(compact_chunk(value) if compact else value)


@given(_versions, st.booleans(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_a_chunk_by_difference_is_the_chunk_parsed_whole(versions: list[list[str]], own_only: bool,
                                                         compact: bool) -> None:
    """(``compact``: the chunks as the agent's syncer keeps them, nets joined in one text.)"""
    previous = None
    for nets in versions:
        doc = _stored(_own(nets) if own_only else nets, compact)
        whole = chunk_members(_stored(list(doc.nets), False), None, BUCKETS)
        step = chunk_members(doc, previous, BUCKETS)
        assert set(step.canonical) == set(whole.canonical)
        assert step.bad == whole.bad
        assert step.stored == frozenset(doc.nets) == whole.stored
        assert isinstance(step.values, JoinedTexts) == (compact and len(doc.nets) >= 16)
        assert step.exact == whole.exact
        previous = step


_big_own = st.lists(st.builds(lambda a, b, n: f"10.{a}.{b}.0/{n}", st.integers(0, 40), st.integers(0, 40),
                               st.sampled_from([24, 32])), min_size=60, max_size=400)


@given(st.lists(st.tuples(st.one_of(_versions.map(lambda v: v[0]), _big_own), st.booleans(), st.booleans()),
                max_size=6))
@settings(max_examples=150, deadline=None)
def test_chunks_parsed_together_are_the_chunks_parsed_one_by_one(docs: list[tuple[list[str], bool, bool]]) -> None:
    """``fresh_chunks`` (a start's million nets in one pass) means what ``chunk_members``
    does for each chunk: members (and the integers kept with them), bad values, exactness."""
    stored = [_stored(_own(nets) if own_only else nets, compact) for nets, own_only, compact in docs]
    together = fresh_chunks(stored, BUCKETS)
    for doc, got in zip(stored, together, strict=True):
        alone = chunk_members(doc, None, BUCKETS)
        assert set(got.canonical) == set(alone.canonical) and len(got.canonical) == len(alone.canonical)
        assert (got.bad, got.exact, got.stored) == (alone.bad, alone.exact, alone.stored)
        for bucket in got.canonical.buckets():
            packed = bucket_ints.v4_packed(bucket)
            if packed is not None:
                assert sorted(bucket_ints.texts_of(packed)) == sorted(bucket)


def test_a_chunk_of_canonical_own_members_keeps_no_second_copy_of_its_values() -> None:
    nets = _own([f"10.{a}.{b}.0/24" for a in range(60) for b in range(60)])
    assert len(nets) >= 512  # the bulk path
    chunk = chunk_members(ChunkDoc("s", INDEX, tuple(nets)), None, BUCKETS)
    assert chunk.exact and chunk.stored == frozenset(nets)
    changed = chunk_members(ChunkDoc("s", INDEX, tuple(nets[1:]) + ("10.0.0.7/24",)), chunk, BUCKETS)
    assert not changed.exact  # a spelling that is not canonical


def test_joined_texts_are_the_list_they_were_made_from() -> None:
    for texts in ([], [""], ["", "a"], ["a", "", ""], ["10.0.0.0/8"] * 3):
        joined = JoinedTexts(texts)
        assert len(joined) == len(texts) and list(joined) == texts and joined == texts and joined.texts() == texts
    assert compact_chunk({"nets": ["a\nb"] * 20})["nets"] == ["a\nb"] * 20  # a newline: kept as a list
    assert type(compact_chunk({"nets": ["a", 5] * 20})["nets"]) is list


def _parsed_text(value: object) -> str | None:
    try:
        return parse_cidr(value).text  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


@settings(max_examples=500, deadline=None)
@given(st.one_of(
    st.builds(lambda a, n: f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/{n}",
              st.integers(0, 2**32 - 1), st.integers(0, 40)),
    st.builds(lambda parts, n: ".".join(parts) + f"/{n}", st.lists(st.sampled_from(["0", "00", "01", "1", "255", "256", "x"]),
                                                               min_size=3, max_size=5), st.sampled_from(["0", "8", "08", "32", ""])),
    st.text(max_size=12), st.integers(), st.none()))
def test_the_fast_canonical_check_agrees_with_the_full_parse(value: object) -> None:
    assert canonical_or_none(value) == _parsed_text(value)
