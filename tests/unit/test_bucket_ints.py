"""Integers kept with the buckets that a bulk parse made (``bucket_ints``): each layer
that reads them (XDP tables, the raw tier's canonical check, the netlink writer)
gets what parsing the texts again would give, and a bucket made any other way is
parsed as before."""

from __future__ import annotations

import random

import numpy as np
import pytest

from seawall.api.members import ChunkDoc, bucket_of
from seawall.calc.members import chunk_members
from seawall.dataplane.iptables import render
from seawall.dataplane.iptables.ipset_netlink import parse_members
from seawall.dataplane.iptables.ipsets import members_digest
from seawall.dataplane.xdp.tables import BlocklistTables
from seawall.policy import bucket_ints
from seawall.policy.bucket_ints import PackedV4
from seawall.policy.netset import NetSet, as_netset, v4_keys_and_rest

BUCKETS = 4


def _chunk_nets(index: int, count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    nets: set[str] = set()
    while len(nets) < count:
        length = rng.choice([8, 16, 24, 27, 32])
        address = rng.getrandbits(32) & ~((1 << (32 - length)) - 1)
        text = f"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}/{length}"
        if bucket_of(text, BUCKETS) == index:
            nets.add(text)
    return sorted(nets)


def _parsed_chunk(nets: list[str]) -> NetSet:
    return chunk_members(ChunkDoc("big", 1, tuple(nets)), None, BUCKETS).canonical


def test_a_bulk_parsed_chunk_keeps_its_integers_and_every_reader_agrees_with_a_fresh_parse(monkeypatch) -> None:
    nets = _chunk_nets(1, 3000)
    parsed = _parsed_chunk(nets)
    known, rest = v4_keys_and_rest(parsed)
    assert not rest and len(known) == len(nets)
    from_texts = BlocklistTables.from_cidrs(list(nets))  # a list: parsed from its texts
    parses: list[int] = []
    real = BlocklistTables._parse_v4_many
    monkeypatch.setattr(BlocklistTables, "_parse_v4_many",
                        lambda self, cidrs, sink=None: parses.append(len(cidrs)) or real(self, cidrs, sink))
    from_registry = BlocklistTables.from_cidrs(parsed)
    assert parses == []  # nothing parsed again
    assert from_registry.compile() == from_texts.compile() and from_registry.cidrs() == from_texts.cidrs()
    by_registry, by_text = parse_members(4, parsed), parse_members(4, list(nets))
    assert sorted(zip(*(a.tolist() for a in by_registry), strict=True)) == sorted(zip(*(a.tolist() for a in by_text), strict=True))


def test_a_changed_bucket_is_parsed_again_and_the_rest_still_come_from_the_registry() -> None:
    nets = _chunk_nets(1, 3000)
    parsed = _parsed_chunk(nets)
    extra = _chunk_nets(1, 3001, seed=2)[0]
    changed = parsed.with_changes(added=[extra], removed=[nets[0]])
    expected = sorted(set(nets) - {nets[0]} | {extra})
    known, rest = v4_keys_and_rest(changed)  # the touched buckets' integers: their base's, and the added text parsed
    assert rest == [] and sorted(known.tolist()) == sorted(bucket_ints.keys_of(expected).tolist())
    assert BlocklistTables.from_cidrs(changed).cidrs() == BlocklistTables.from_cidrs(expected).cidrs()
    assert len(parse_members(4, changed)[0]) == len(expected)


def test_a_chunk_with_anything_but_canonical_ipv4_is_not_registered() -> None:
    nets = _chunk_nets(1, 3000, seed=5)  # (buckets equal to live registered ones would be known: same integers)
    odd = [*nets[:-1], "10.0.0.1/8"]  # host bits set: canonicalised, so its text is another object
    assert all(bucket_ints.v4_packed(b) is None for b in _parsed_chunk(odd).buckets())


def test_the_ipset_digest_is_the_same_whatever_holds_the_members() -> None:
    nets = [f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}/32" for i in range(300_000)]  # ~73 a bucket: packed
    parsed = chunk_members(ChunkDoc("big", 0, nets), None, 1).canonical
    extra = "11.0.0.0/24"
    changed = parsed.with_changes(added=[extra, "fe80::/64"], removed=[nets[0]])
    expected = sorted(set(nets) - {nets[0]} | {extra, "fe80::/64"})
    assert any(isinstance(b, PackedV4) for b in parsed.buckets())
    assert any(type(b).__name__ == "_Layered" for b in changed.buckets())
    digest = members_digest(changed)
    assert digest == members_digest(expected) == members_digest(frozenset(expected)) == members_digest(as_netset(expected))
    assert digest != members_digest(expected[1:])
    assert members_digest(["10.0.0.1/24"]) != members_digest(["10.0.0.0/24"])  # not canonical: summed as text


def test_the_raw_check_trusts_registered_buckets_only() -> None:
    parsed = _parsed_chunk(_chunk_nets(1, 3000))
    render._CLEAN_BUCKETS.clear()
    assert not render._suspect(parsed, 4)
    assert render._CLEAN_BUCKETS == {}  # the registry answered: no bucket needed the text check


def test_integers_must_match_the_bucket() -> None:
    with pytest.raises(ValueError, match="2 integers for a bucket of 1"):
        bucket_ints.remember_v4(frozenset({"10.0.0.0/8"}), np.zeros(2, np.int64))


@pytest.mark.parametrize("text", ["01.2.3.0/24", "1.2.3.0/024", "1.2.3/24", "1.2.3.4.5/32", "256.1.1.1/32", "1.2.3.0/33",
                                  "1.2.3.0/", "1.2.3.0/00", "1.2.3.0", " 1.2.3.0/24", "+1.2.3.0/24", "::/0", "1.2.3.0/-1"])
def test_key_of_refuses_every_other_spelling(text: str) -> None:
    assert bucket_ints.key_of(text) is None


def test_key_of_reads_dotted_decimal_and_text_of_spells_it_back() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        address, length = rng.getrandbits(32), rng.randint(0, 32)
        text = f"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}/{length}"
        key = bucket_ints.key_of(text)
        assert key == (address << bucket_ints.LENGTH_BITS) | length and bucket_ints.text_of(key) == text
