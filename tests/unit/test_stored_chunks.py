"""How a big GlobalNetworkSet document is cut into stored chunks (``datastore.members``):
every distinct canonical net exactly once, in the bucket ``bucket_of`` names, sorted;
duplicates (which the plain document may hold) dropped inside their bucket, and the
bucket count that of the distinct nets."""

from __future__ import annotations

import random

from seawall.api.members import bucket_of
from seawall.datastore import members as layout


def _document(nets: list[str]) -> dict:
    return {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
            "metadata": {"name": "big", "labels": {"a": "b"}}, "spec": {"nets": nets}}


def _nets(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}/32" for i in rng.sample(range(1 << 20), count)]


def _members(chunked: layout.ChunkedSet) -> list[list[str]]:
    buckets = chunked.manifest.buckets
    out: list[list[str]] = [[] for _ in range(buckets)]
    for value in chunked.chunks.values():
        out[value["index"]] = list(value["nets"])
    return out


def test_chunks_hold_each_distinct_net_once_sorted_in_its_bucket() -> None:
    nets = _nets(9000)
    with_duplicates = nets + random.Random(2).sample(nets, 3000) + ["10.0.0.1/32"] * 5
    chunked = layout.chunked_document(_document(with_duplicates))
    assert chunked is not None
    groups = _members(chunked)
    distinct = set(with_duplicates)
    assert chunked.manifest.count == len(distinct) == sum(map(len, groups))
    assert chunked.manifest.buckets == layout.bucket_count_for(len(distinct))
    for index, group in enumerate(groups):
        assert group == sorted(set(group)) and all(bucket_of(n, len(groups)) == index for n in group)
    assert set().union(*map(set, groups)) == distinct
    assert chunked == layout.chunked_document(_document(sorted(distinct)))  # as if given without duplicates


def test_many_duplicates_give_the_bucket_count_of_the_distinct_nets() -> None:
    nets = _nets(9000)
    chunked = layout.chunked_document(_document(nets * 3))  # 27,000 values, 9,000 nets
    assert chunked is not None and chunked.manifest.buckets == layout.bucket_count_for(9000) < layout.bucket_count_for(27000)
    assert chunked == layout.chunked_document(_document(nets))


def test_a_set_with_few_distinct_nets_stays_plain() -> None:
    assert layout.chunked_document(_document(_nets(100) * 50)) is None
