"""What the raw renderer produces and the raw driver programs: plain values.

The renderer (pure) turns an ``UntrackedState`` into a ``RenderedRaw``; the
driver makes the kernel hold exactly that (our chains and ipsets only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from seawall.policy.netset import NetSet

CHAIN_PREFIX = "sw-"  # every chain Seawall owns starts with this (<= 28 characters in all)
IPSET_PREFIX = "sw"  # every ipset Seawall owns: "sw4-..." / "sw6-..." (<= 31 characters)
COMMENT_PREFIX = "sw:"  # every rule Seawall writes carries "-m comment --comment sw:<hash>"


@dataclass(frozen=True, slots=True)
class IpSetContent:
    name: str  # e.g. "sw4-<hash>", at most 31 characters
    family: str  # "inet" | "inet6"
    members: frozenset[str] | NetSet  # CIDRs of that family (hash:net)


@dataclass(frozen=True, slots=True)
class TableContent:
    """Our part of the raw table of one family (iptables for 4, ip6tables for 6)."""

    family: int
    # chain name -> its rules, each the iptables arguments after "-A <chain>",
    # e.g. '-i eth0 -m comment --comment "sw:3fa9c1d2e4b5a6c7" -g sw-fh-eth0'
    chains: Mapping[str, tuple[str, ...]]
    # (built-in chain, our chain): one jump each, inserted first in raw PREROUTING/OUTPUT
    hooks: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RuleOrigin:
    """Where a rendered rule line comes from (for reading its counters back).

    ``role``: "action" (the line of a policy rule that takes its action: DROP,
    accept mark, pass mark or LOG; its counter is "packets decided by this
    rule"), "match" (a scratch-mark line building an OR/exclusion), "return"
    (the RETURN after an Allow/Pass), "probe" (a deny-probe line clearing the
    failsafe-reply mark), "probe-match", "failsafe", "dispatch", "interface",
    "jump" (interface chain into a policy / probe chain), "accept", "hook".
    A policy chain is shared by every interface using the policy, so
    ``interface`` is None there; ``policy`` is the policy's name (``name#n`` when
    two different policies share a name in one direction).
    """

    interface: str | None
    direction: str  # "ingress" | "egress" | "any" (the shared accept chain)
    policy: str | None
    rule_index: int | None
    role: str


@dataclass(frozen=True, slots=True)
class RenderedRaw:
    tables: Mapping[int, TableContent]
    ipsets: Mapping[str, IpSetContent]
    # the "sw:<hash>" comment of every rule (and hook jump) -> its origin. The same
    # line text in one chain gets the same comment; where such lines come from
    # different rules, the fields that differ are None (role "mixed" if roles differ).
    origins: Mapping[str, RuleOrigin] = field(default_factory=dict)
    # (family, chain) -> the origin of each of its rules, in order (unambiguous)
    line_origins: Mapping[tuple[int, str], tuple[RuleOrigin, ...]] = field(default_factory=dict)
    # values skipped as not CIDRs, by where they were found: ("set", set id),
    # ("policy", policy name) or ("failsafe", "") -> {value: why}
    skipped: Mapping[tuple[str, str], Mapping[object, str]] = field(default_factory=dict)
