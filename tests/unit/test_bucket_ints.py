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
from seawall.dataplane.xdp.tables import BlocklistTables
from seawall.policy import bucket_ints
from seawall.policy.netset import NetSet

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
    known, unknown = bucket_ints.known_v4(parsed.buckets())
    assert not unknown and len(known) == len(nets)
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
    known, unknown = bucket_ints.known_v4(changed.buckets())
    assert 1 <= len(unknown) <= 2  # the touched buckets: made by the change, not by the parse
    expected = sorted(set(nets) - {nets[0]} | {extra})
    assert BlocklistTables.from_cidrs(changed).cidrs() == BlocklistTables.from_cidrs(expected).cidrs()
    assert len(parse_members(4, changed)[0]) == len(expected)


def test_a_chunk_with_anything_but_canonical_ipv4_is_not_registered() -> None:
    nets = _chunk_nets(1, 3000, seed=5)  # (buckets equal to live registered ones would be known: same integers)
    odd = [*nets[:-1], "10.0.0.1/8"]  # host bits set: canonicalised, so its text is another object
    assert bucket_ints.known_v4(_parsed_chunk(odd).buckets())[0].size == 0


def test_the_raw_check_trusts_registered_buckets_only() -> None:
    parsed = _parsed_chunk(_chunk_nets(1, 3000))
    render._CLEAN_BUCKETS.clear()
    assert not render._suspect(parsed, 4)
    assert render._CLEAN_BUCKETS == {}  # the registry answered: no bucket needed the text check


def test_integers_must_match_the_bucket() -> None:
    with pytest.raises(ValueError, match="2 integers for a bucket of 1"):
        bucket_ints.remember_v4(frozenset({"10.0.0.0/8"}), np.zeros(2, np.int64))
