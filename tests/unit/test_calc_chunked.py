"""Chunked GlobalNetworkSets in the calculation: assembled from head + chunks,
patched by difference, and equal to the same set stored plain."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

from seawall.api.members import CHUNK_API_VERSION, CHUNK_KIND, MEMBERS_KEY, chunk_name
from seawall.calc import CalcMemo, compute
from seawall.calc.validated import IGNORED, ValidatedResources

from .test_calc import ETH0, SEED, gns

BUCKETS = 8


def _digest(set_name: str, index: int, nets: list[str]) -> str:
    return hashlib.blake2b(repr((set_name, index, nets)).encode(), digest_size=8).hexdigest()


def chunked(name: str, nets: list[str], labels: dict[str, str] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """A set as head + chunks (the calc does not care how nets are bucketed; the writer does)."""
    by_bucket: dict[int, list[str]] = {}
    for net in nets:
        by_bucket.setdefault(zlib.crc32(net.encode()) & (BUCKETS - 1), []).append(net)
    digests = [""] * BUCKETS
    out = []
    for index, members in sorted(by_bucket.items()):
        members.sort()
        digests[index] = _digest(name, index, members)
        doc = {"apiVersion": CHUNK_API_VERSION, "kind": CHUNK_KIND, "metadata": {"name": chunk_name(name, digests[index])},
               "set": name, "index": index, "nets": members}
        out.append((CHUNK_KIND, chunk_name(name, digests[index]), doc))
    _, _, head = gns(name, [], labels)
    del head["spec"]["nets"]
    head[MEMBERS_KEY] = {"version": 1, "count": len(nets), "buckets": BUCKETS, "chunks": digests}
    return [("GlobalNetworkSet", name, head), *out]


NETS = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(3000)]


def _xdp(desired: Any) -> frozenset[str]:
    return frozenset(desired.xdp.interfaces[0].cidrs)


def test_a_chunked_set_means_what_the_same_set_stored_plain_means() -> None:
    plain = compute(ValidatedResources().update([SEED[0], gns("dos-mitigation", NETS), SEED[2]])[0], "jasper", ETH0)
    snapshot, invalid = ValidatedResources().update([SEED[0], *chunked("dos-mitigation", NETS), SEED[2]])
    assert not invalid
    desired = compute(snapshot, "jasper", ETH0)
    assert _xdp(desired) == _xdp(plain) == frozenset(NETS)
    assert desired.untracked == plain.untracked and desired.decisions == plain.decisions


def test_a_changed_chunk_is_parsed_by_difference_and_the_set_patched(monkeypatch) -> None:
    from seawall.calc import members as members_module

    validated, memo = ValidatedResources(), CalcMemo()
    first = compute(validated.update([SEED[0], *chunked("dos-mitigation", NETS), SEED[2]])[0], "jasper", ETH0, memo)
    parsed: list[object] = []
    real = members_module.canonical_or_none
    monkeypatch.setattr(members_module, "canonical_or_none", lambda v: parsed.append(v) or real(v))
    more = [*NETS[1:], "203.0.113.9/32"]
    second = compute(validated.update([SEED[0], *chunked("dos-mitigation", more), SEED[2]])[0], "jasper", ETH0, memo)
    assert sorted(map(str, parsed)) == sorted(["203.0.113.9/32", NETS[0]])  # the added net, and the removed one
    assert _xdp(second) == frozenset(more)
    before, after = first.xdp.interfaces[0].cidrs, second.xdp.interfaces[0].cidrs
    assert after.shared_buckets(before) >= len(list(before.buckets())) - 2


def test_missing_and_unreferenced_chunks_and_bad_members() -> None:
    items = chunked("dos-mitigation", NETS)
    head, chunks = items[0], items[1:]
    lost = chunks[0]
    garbage = (CHUNK_KIND, "dos-mitigation.00000000000000ff",
               {**lost[2], "nets": ["9.9.9.9/32"], "metadata": {"name": "dos-mitigation.00000000000000ff"}})
    bad_doc = chunks[1][2]
    bad = (CHUNK_KIND, chunks[1][1], {**bad_doc, "nets": [*bad_doc["nets"], "not-a-net"]})
    snapshot, invalid = ValidatedResources().update([SEED[0], head, *chunks[2:], bad, garbage, SEED[2]])
    desired = compute(snapshot, "jasper", ETH0)
    want = frozenset(NETS) - frozenset(lost[2]["nets"])
    assert _xdp(desired) == want  # the present chunks are enforced, the garbage chunk is not
    assert any("member chunks are missing" in w for w in desired.warnings)
    assert any("not-a-net" in w for w in desired.warnings)
    broken = (CHUNK_KIND, chunks[2][1], {"kind": CHUNK_KIND})
    _, invalid = ValidatedResources().update([SEED[0], head, *chunks[:2], broken, *chunks[3:], SEED[2]])
    assert [(i["kind"], i["name"], i["action"]) for i in invalid] == [(CHUNK_KIND, chunks[2][1], IGNORED)]


def test_a_head_that_turns_bad_keeps_the_last_valid_version() -> None:
    validated = ValidatedResources()
    items = chunked("dos-mitigation", NETS)
    validated.update([SEED[0], *items, SEED[2]])
    head = dict(items[0][2])
    head[MEMBERS_KEY] = {"version": 1, "count": 1, "buckets": 3, "chunks": []}
    snapshot, invalid = validated.update([SEED[0], ("GlobalNetworkSet", "dos-mitigation", head), *items[1:], SEED[2]])
    assert [(i["name"], i["action"]) for i in invalid] == [("dos-mitigation", "kept the last valid version")]
    assert _xdp(compute(snapshot, "jasper", ETH0)) == frozenset(NETS)


def test_chunks_written_before_their_head_are_parsed_on_arrival_so_the_head_costs_only_the_swap(monkeypatch) -> None:
    from seawall.calc import members as members_module

    validated, memo = ValidatedResources(), CalcMemo()
    old = chunked("dos-mitigation", NETS)
    compute(validated.update([SEED[0], *old, SEED[2]])[0], "jasper", ETH0, memo)
    more = [*NETS[1:], "203.0.113.9/32"]
    new = chunked("dos-mitigation", more)
    new_chunks = [c for c in new[1:] if c[1] not in {o[1] for o in old}]
    parsed: list[object] = []
    real = members_module.canonical_or_none
    monkeypatch.setattr(members_module, "canonical_or_none", lambda v: parsed.append(v) or real(v))
    # the writer's first step: new chunks beside the old head (which does not name them)
    early = compute(validated.update([SEED[0], *old, *new_chunks, SEED[2]])[0], "jasper", ETH0, memo)
    assert _xdp(early) == frozenset(NETS)  # still the old head's set
    assert sorted(map(str, parsed)) == sorted(["203.0.113.9/32", NETS[0]])
    parsed.clear()
    swapped = compute(validated.update([SEED[0], *new, SEED[2]])[0], "jasper", ETH0, memo)
    assert parsed == [] and _xdp(swapped) == frozenset(more)


def test_an_early_chunk_of_another_bucket_count_or_a_foreign_index_waits_for_its_head() -> None:
    validated = ValidatedResources()
    old = chunked("dos-mitigation", NETS)
    validated.update([SEED[0], *old, SEED[2]])
    stray = (CHUNK_KIND, "dos-mitigation.00000000000000aa",
             {**old[1][2], "index": BUCKETS + 3, "metadata": {"name": "dos-mitigation.00000000000000aa"}})
    snapshot, invalid = validated.update([SEED[0], *old, stray, SEED[2]])
    assert not invalid and "dos-mitigation.00000000000000aa" not in validated._chunks
    assert compute(snapshot, "jasper", ETH0).xdp.interfaces[0].cidrs == frozenset(NETS)


def test_a_head_with_a_malformed_digest_is_refused() -> None:
    import pytest

    from seawall.api.members import MembersFormatError, parse_head

    good = ["0123456789abcdef", "", "fedcba9876543210", ""]
    assert parse_head({MEMBERS_KEY: {"version": 1, "count": 2, "buckets": 4, "chunks": good}}).chunks == tuple(good)
    for chunks in (["0123456789abcdef,fedcba9876543210", "", "", ""], ["0123456789ABCDEF", "", "", ""],
                   ["0123456789abcde", "", "", ""], [None, "", "", ""], [16, "", "", ""], ["", "", "", ",,,"]):
        with pytest.raises(MembersFormatError):
            parse_head({MEMBERS_KEY: {"version": 1, "count": 2, "buckets": 4, "chunks": chunks}})


def test_an_update_that_touches_none_of_a_sets_chunks_hands_out_the_same_members() -> None:
    """So the calculation's memo holds for the big set while another resource changes;
    a changed chunk (or a deleted one) gives the set new members."""
    validated = ValidatedResources()
    items = chunked("dos-mitigation", NETS)
    first, _ = validated.update([SEED[0], *items, SEED[2]])
    other = gns("small", ["198.51.100.0/24"])
    second, _ = validated.update([SEED[0], *items, other, SEED[2]])
    assert second.members["dos-mitigation"] is first.members["dos-mitigation"]
    changed = chunked("dos-mitigation", [*NETS, "203.0.113.9/32"])
    third, _ = validated.update([SEED[0], *changed, other, SEED[2]])
    assert third.members["dos-mitigation"] is not first.members["dos-mitigation"]
    fourth, _ = validated.update([SEED[0], *changed[:-1], other, SEED[2]])  # a chunk the head names is gone
    assert fourth.members["dos-mitigation"] is not third.members["dos-mitigation"]
    assert fourth.members["dos-mitigation"].missing
