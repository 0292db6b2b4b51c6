"""What untracked (doNotTrack) policy means on one node, resolved and ordered.

These frozen values sit between the calculation (which resolves selectors,
orders policies, picks the local interfaces) and everything that enforces or
judges policy: the iptables raw renderer, the XDP eligibility check and the
reference verdict (``seawall.policy.verdict``). Nothing here refers to
datastore resources or selectors any more: a rule's selector has become the id
of a ``CidrSet`` whose members are the CIDRs it means, and a rule's literal nets
are ``Cidr`` values (parsed once, in the calculation). Pure.

Semantics (Calico's untracked tier, see shared/reference/calico-dos-feature.md §2):
per interface and direction, after the failsafe checks, the policies apply in
the given order and each policy's rules in order. The first rule that matches
decides: Allow -> accept untracked (NOTRACK), Deny -> drop, Pass -> leave this
tier (the packet continues to the normal stack), Log -> log and go on to the
next rule. A packet no rule decides continues to the normal stack.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from seawall.api.cidr import Cidr, as_cidr
from seawall.policy.netset import NetSet


class Action(str, enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"
    LOG = "Log"
    PASS = "Pass"


class Direction(str, enum.Enum):
    INGRESS = "ingress"
    EGRESS = "egress"


@dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive range of ports; a single port is ``PortRange(p, p)``."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 65535:
            raise ValueError(f"bad port range {self.low}:{self.high}")

    def __contains__(self, port: int) -> bool:
        return self.low <= port <= self.high


@dataclass(frozen=True, slots=True)
class IcmpMatch:
    type: int | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class EntityMatch:
    """One side (source or destination) of a rule. Every non-empty field must
    match (AND); ``nets``/``sets``/``ports`` match if any member matches, the
    ``not_`` fields match if none does."""

    nets: tuple[Cidr, ...] = ()
    not_nets: tuple[Cidr, ...] = ()
    sets: tuple[str, ...] = ()  # CidrSet ids (a selector: the address is in the set)
    not_sets: tuple[str, ...] = ()
    ports: tuple[PortRange, ...] = ()
    not_ports: tuple[PortRange, ...] = ()

    def __post_init__(self) -> None:
        # Text is accepted (tests, examples) and parsed here, once: every consumer gets values.
        for name in ("nets", "not_nets"):
            values = getattr(self, name)
            if any(not isinstance(v, Cidr) for v in values):
                object.__setattr__(self, name, tuple(as_cidr(v) for v in values))

    @property
    def empty(self) -> bool:
        return not (self.nets or self.not_nets or self.sets or self.not_sets or self.ports or self.not_ports)


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    ip_version: int | None = None  # 4 | 6 | None (both)
    protocol: int | None = None  # IP protocol number
    not_protocol: int | None = None
    icmp: IcmpMatch | None = None
    not_icmp: IcmpMatch | None = None
    source: EntityMatch = field(default_factory=EntityMatch)
    destination: EntityMatch = field(default_factory=EntityMatch)
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """One doNotTrack GlobalNetworkPolicy, as it applies to an interface."""

    name: str
    order: float | None
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    # Each rule's index in the stored policy (rules that cannot be translated are
    # left out, so positions and stored indexes can differ); empty: the same.
    ingress_indexes: tuple[int, ...] = ()
    egress_indexes: tuple[int, ...] = ()

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    def numbered(self, direction: Direction) -> list[tuple[int, Rule]]:
        """(index in the stored policy, rule) in order — what status, reasons and
        rule comments name, so an operator finds the rule in their YAML."""
        rules = self.rules(direction)
        indexes = self.ingress_indexes if direction is Direction.INGRESS else self.egress_indexes
        return list(zip(indexes or range(len(rules)), rules, strict=True))


@dataclass(frozen=True, slots=True)
class CidrSet:
    """The addresses a selector means (network sets' nets, endpoints' IPs);
    either family, host bits already masked. ``selector`` is the selector's
    canonical text as Calico compiles it (scoped by namespaceSelector /
    serviceAccounts), for status and ``seawall explain``."""

    id: str
    cidrs: NetSet
    selector: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.cidrs, NetSet):
            object.__setattr__(self, "cidrs", NetSet(self.cidrs))


@dataclass(frozen=True, slots=True)
class FailsafePort:
    protocol: int  # 6 TCP, 17 UDP, 132 SCTP
    port: int
    net: Cidr | None = None  # only this remote CIDR, if set

    def __post_init__(self) -> None:
        if self.net is not None and not isinstance(self.net, Cidr):
            object.__setattr__(self, "net", as_cidr(self.net))


@dataclass(frozen=True, slots=True)
class InterfacePolicy:
    """An interface with its untracked policies, already in enforcement order
    (Calico: by ``order``, None last, then by name)."""

    name: str
    policies: tuple[Policy, ...]


@dataclass(frozen=True, slots=True)
class UntrackedState:
    """The whole untracked desired state of a node."""

    interfaces: tuple[InterfacePolicy, ...]
    sets: Mapping[str, CidrSet]
    failsafe_in: tuple[FailsafePort, ...] = ()
    failsafe_out: tuple[FailsafePort, ...] = ()

    def interface(self, name: str) -> InterfacePolicy | None:
        return next((i for i in self.interfaces if i.name == name), None)


def policy_sort_key(policy: Policy) -> tuple[int, float, str]:
    """Calico's policy order: lower ``order`` first, no order last, then name."""
    return (1, 0.0, policy.name) if policy.order is None else (0, policy.order, policy.name)
