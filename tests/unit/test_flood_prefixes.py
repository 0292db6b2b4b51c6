"""The flood bench's blocklists: disjoint prefixes, every flood source blocked,
deterministic — the benchmark's claims rest on these."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.flood.prefixes import SPREAD_SOURCES, check_disjoint, generate  # noqa: E402


@pytest.mark.parametrize("n", [1, 2, 5000, 20_000])
def test_prefixes_are_disjoint_and_every_source_is_blocked(n: int) -> None:
    block = generate(n)
    assert len(block.prefixes) == n == len(block.hosts)
    check_disjoint(block.prefixes)
    assert block.covers(block.single)
    assert len(block.spread) == min(SPREAD_SOURCES, n) if n > 1 else len(set(block.spread)) == SPREAD_SOURCES
    assert all(block.covers(s) for s in block.spread)
    for cidr in block.cidrs()[:200]:
        net = ipaddress.ip_network(cidr)  # strict: host bits are clear
        assert not net.is_private or net.network_address.packed[0] not in (10, 172, 192)


def test_the_same_n_gives_the_same_blocklist() -> None:
    assert generate(3000).prefixes == generate(3000).prefixes


def test_overlap_is_detected() -> None:
    with pytest.raises(AssertionError, match="overlapping"):
        check_disjoint([(int(ipaddress.IPv4Address("20.0.0.0")), 16), (int(ipaddress.IPv4Address("20.0.1.0")), 24)])
