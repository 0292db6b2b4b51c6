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


def overlaid_chunked(name: str, base: list[str], added: list[str], removed: list[str],
                     labels: dict[str, str] | None = None, width: int = 4) -> list[tuple[str, str, dict[str, Any]]]:
    """A chunked set with an overlay on top: members ``(base - removed) | added``; the
    overlay bucket of a net is the low bits of the same CRC-32 (``width`` of them)."""
    head, *chunks = chunked(name, base, labels)
    by_bucket: dict[int, tuple[list[str], list[str]]] = {}
    for side, nets in enumerate((added, removed)):
        for net in nets:
            by_bucket.setdefault(zlib.crc32(net.encode()) & (width - 1), ([], []))[side].append(net)
    digests = [""] * width
    overlays = []
    for index, (plus, minus) in sorted(by_bucket.items()):
        digests[index] = _digest(name + "/overlay", index, [*sorted(plus), "-", *sorted(minus)])
        doc = {"apiVersion": CHUNK_API_VERSION, "kind": CHUNK_KIND, "metadata": {"name": chunk_name(name, digests[index])},
               "set": name, "index": index, "overlay": True, "nets": sorted(plus), "removed": sorted(minus)}
        overlays.append((CHUNK_KIND, chunk_name(name, digests[index]), doc))
    if overlays:
        head[2][MEMBERS_KEY].update(overlay=digests, overlayCount=len(added) + len(removed))
    return [head, *chunks, *overlays]


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


def _members_of(snapshot: Any, name: str) -> frozenset[str]:
    from seawall.calc.members import assemble

    return frozenset(assemble(snapshot.members[name], None)[1])


def test_an_overlay_means_base_minus_removed_plus_added() -> None:
    base, added, removed = NETS[:2000], [*NETS[2000:2300], NETS[5]], [*NETS[:200], "99.0.0.0/24"]
    expected = (set(base) - set(removed)) | set(added)
    plain = compute(ValidatedResources().update([SEED[0], gns("dos-mitigation", sorted(expected)), SEED[2]])[0],
                    "jasper", ETH0)
    snapshot, invalid = ValidatedResources().update(
        [SEED[0], *overlaid_chunked("dos-mitigation", base, added, removed), SEED[2]])
    assert not invalid and _members_of(snapshot, "dos-mitigation") == expected
    assert compute(snapshot, "jasper", ETH0).xdp == plain.xdp


def test_an_overlay_changed_is_applied_by_difference_and_the_change_is_known(monkeypatch) -> None:
    """The next overlay version is parsed by difference and moves each bucket by what changed:
    the set's NetSet knows its change from the last one (no diff downstream)."""
    from seawall.calc import members as calc_members
    from seawall.calc.members import assemble

    base = NETS[:2000]
    validated = ValidatedResources()
    docs = overlaid_chunked("s", base, NETS[2000:2100], NETS[:100])
    first, _ = validated.update([SEED[0], *docs, SEED[2]])
    parts = assemble(first.members["s"], None)
    parsed: list[int] = []
    real = calc_members.canonical_texts
    monkeypatch.setattr(calc_members, "canonical_texts", lambda values, **kw: parsed.append(len(values)) or real(values, **kw))
    later = overlaid_chunked("s", base, NETS[2000:2110], [*NETS[:100], NETS[150]])
    kept = {name: doc for kind, name, doc in docs if kind == CHUNK_KIND}  # the syncer: unchanged chunks, same objects
    second, invalid = validated.update(
        [SEED[0], *((kind, name, kept.get(name, doc)) for kind, name, doc in later), SEED[2]])
    assert not invalid and sum(parsed) == 11  # the 10 added and 1 removed values, not the 211 listed
    assert all(second.members["s"].base[i] is first.members["s"].base[i] for i in range(BUCKETS))  # type: ignore[index]
    now = assemble(second.members["s"], parts)[1]
    assert now == (set(base) - set(NETS[:100]) - {NETS[150]}) | set(NETS[2000:2110])
    assert now.delta_from(parts[1]) == (frozenset(NETS[2100:2110]), frozenset({NETS[150]}))


def test_overlay_bad_values_strays_and_a_missing_overlay_chunk_are_reported() -> None:
    docs = overlaid_chunked("s", NETS[:100], ["not-a-net", NETS[200]], [])
    validated = ValidatedResources()
    snapshot, _ = validated.update([SEED[0], *docs, SEED[2]])
    desired = compute(snapshot, "jasper", ETH0)
    assert any("not-a-net" in w for w in desired.warnings), desired.warnings
    assert NETS[200] in _members_of(snapshot, "s")
    overlay = next(d for d in docs if NETS[200] in d[2].get("nets", ()) and d[2].get("overlay"))
    stray = {**overlay[2], "index": (overlay[2]["index"] + 1) % 4}  # its nets belong to another overlay bucket
    head = docs[0][2]
    digests = list(head[MEMBERS_KEY]["overlay"])
    digests[stray["index"]], digests[overlay[2]["index"]] = digests[overlay[2]["index"]], ""
    moved = {**head, MEMBERS_KEY: {**head[MEMBERS_KEY], "overlay": digests}}
    snapshot, _ = ValidatedResources().update([SEED[0], ("GlobalNetworkSet", "s", moved),
                                               *[d for d in docs[1:] if d is not overlay],
                                               (CHUNK_KIND, overlay[1], stray), SEED[2]])
    assert NETS[200] not in _members_of(snapshot, "s")
    assert any(NETS[200] in w for w in compute(snapshot, "jasper", ETH0).warnings)  # a stray: reported, not a member
    gone = [d for d in docs if d is not overlay]
    snapshot, _ = ValidatedResources().update([SEED[0], *gone, SEED[2]])
    desired = compute(snapshot, "jasper", ETH0)
    assert any("member chunks are missing" in w for w in desired.warnings), desired.warnings


def test_overlay_chunks_written_before_their_head_are_applied_ahead_so_the_head_costs_the_swap(monkeypatch) -> None:
    """A writer puts overlay chunks in before the head that names them: the agent applies
    them to the buckets they will cover on arrival; the head then only picks the results."""
    from seawall.calc import validated as validated_module

    base = NETS[:2000]
    validated = ValidatedResources()
    plain = chunked("s", base)
    first, _ = validated.update([SEED[0], *plain, SEED[2]])
    from seawall.calc.members import assemble

    assemble_parts = assemble(first.members["s"], None)
    kept = {name: doc for kind, name, doc in plain if kind == CHUNK_KIND}
    later = overlaid_chunked("s", base, NETS[2000:2100], NETS[:50], width=BUCKETS)  # as a writer would: one per bucket
    chunks = [(k, n, kept.get(n, d)) for k, n, d in later[1:]]
    validated.update([SEED[0], plain[0], *chunks, SEED[2]])  # the overlay chunks, still the old head
    calls: list[int] = []
    real = validated_module.overlaid
    monkeypatch.setattr(validated_module, "overlaid", lambda *a: calls.append(1) or real(*a))
    second, invalid = validated.update([SEED[0], later[0], *chunks, SEED[2]])
    assert not invalid and not calls  # every bucket was worked out ahead
    now = assemble(second.members["s"], assemble_parts)[1]
    assert now == (set(base) - set(NETS[:50])) | set(NETS[2000:2100])
    assert now.delta_from(assemble_parts[1]) == (frozenset(NETS[2000:2100]), frozenset(NETS[:50]))
