"""Blocklists for the flood: N non-overlapping random IPv4 prefixes and the
flood's sources inside them.

* Lengths are drawn from /16../32 with a realistic skew (as bench/xdp.py:
  /16, /20, /22, 3x /24, /28, 5x /32 out of 12 draws); a draw that overlaps a
  prefix already taken (inside it or containing it) is rejected, so at 1M the
  surviving lengths lean further towards the long ones (the histogram is
  reported with the results).
* Addresses avoid special-use space (0/8, 10/8, 100/8, 127/8, 169/8, 172/8,
  192/8, 198/8, 224/3): no source is a martian, none is the lab's own
  198.18.0.0/24.
* N = 1 is a single /16, so that the spread traffic can have 4,096 distinct
  sources inside the one blocked prefix.
* Every prefix has one *representative host*, a random address inside it.
  The single-source flood comes from the representative host of a /32 entry
  (the longest prefix: the deepest lookup for an LPM trie and the
  array-plus-hash path of Seawall's table); with N = 1 from a host of the /16.
  The spread flood comes from the representative hosts of 4,096 prefixes
  drawn at random from the whole list (N = 1: 4,096 hosts of the /16).
* ``xdp-filter`` takes exact addresses only: it gets the N representative
  hosts (so the flood's sources are among them).
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from dataclasses import dataclass

LENGTHS = (16, 20, 22, 24, 24, 24, 28, 32, 32, 32, 32, 32)
FIRST_OCTETS = tuple(n for n in range(1, 224) if n not in (10, 100, 127, 169, 172, 192, 198))
MASKS = [0] + [((1 << 32) - 1) ^ ((1 << (32 - n)) - 1) for n in range(1, 33)]
SPREAD_SOURCES = 4096


@dataclass(frozen=True)
class Blocklist:
    entries: int
    prefixes: list[tuple[int, int]]  # (network address, length)
    hosts: list[int]  # representative host of each prefix
    single: int  # the single-source flood's source
    spread: list[int]  # the spread flood's 4,096 sources

    def cidrs(self) -> list[str]:
        return [f"{ipaddress.IPv4Address(v)}/{n}" for v, n in self.prefixes]

    def length_histogram(self) -> dict[int, int]:
        return dict(sorted(Counter(n for _, n in self.prefixes).items()))

    def covers(self, address: int) -> bool:
        """Slow reference check (tests/debugging): is ``address`` in some prefix?"""
        return any((address & MASKS[n]) == v for v, n in self.prefixes)


def _host(rng: random.Random, value: int, length: int) -> int:
    return value | (rng.getrandbits(32 - length) if length < 32 else 0)


def generate(n: int, seed: int = 20261126) -> Blocklist:
    rng = random.Random(seed * 1_000_003 + n)
    if n < 1:
        raise ValueError("need at least one entry")
    if n == 1:
        value = (rng.choice(FIRST_OCTETS) << 24) | (rng.getrandbits(8) << 16)
        hosts = [_host(rng, value, 16)]
        spread: set[int] = set()
        while len(spread) < SPREAD_SOURCES:
            spread.add(_host(rng, value, 16))
        return Blocklist(1, [(value, 16)], hosts, hosts[0], sorted(spread, key=lambda _: rng.random()))
    kept: set[int] = set()  # (length << 32) | network
    covered: set[int] = set()  # strict ancestors (down to /16) of kept prefixes
    prefixes: list[tuple[int, int]] = []
    choice, bits = rng.choice, rng.getrandbits
    while len(prefixes) < n:
        length = choice(LENGTHS)
        value = ((choice(FIRST_OCTETS) << 24) | bits(24)) & MASKS[length]
        key = (length << 32) | value
        if key in covered:  # something inside it is taken
            continue
        if any(((n << 32) | (value & MASKS[n])) in kept for n in range(16, length + 1)):
            continue  # it is inside (or equal to) something taken
        kept.add(key)
        covered.update((n << 32) | (value & MASKS[n]) for n in range(16, length))
        prefixes.append((value, length))
    check_disjoint(prefixes)
    hosts = [_host(rng, v, length) for v, length in prefixes]
    slash32 = [i for i, (_, length) in enumerate(prefixes) if length == 32]
    single = hosts[rng.choice(slash32)] if slash32 else hosts[0]
    picks = rng.sample(range(n), min(n, SPREAD_SOURCES))
    return Blocklist(n, prefixes, hosts, single, [hosts[i] for i in picks])


def check_disjoint(prefixes: list[tuple[int, int]]) -> None:
    """Raise if two prefixes overlap (sorted by start, each must end before the next starts)."""
    last_end = -1
    for value, length in sorted(prefixes):
        if value <= last_end:
            raise AssertionError(f"overlapping prefixes at {ipaddress.IPv4Address(value)}/{length}")
        last_end = value + (1 << (32 - length)) - 1
