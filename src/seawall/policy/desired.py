"""The calculation's one output, everything the dataplanes, the status and the
oracle are given for a node: the untracked raw policy (``UntrackedState``), the
XDP blocklists (``XdpDesiredState``), per interface what was decided and why
(``InterfaceDecisions``), the effective Felix configuration and what is stored
but not enforced. ``seawall.calc.compute`` builds it once; the agent passes its
parts to the tiers untouched. Pure values, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from seawall.api.felix import EffectiveFelixConfig
from seawall.policy.model import UntrackedState
from seawall.policy.netset import NetSet
from seawall.policy.xdp import XdpDesiredState


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """Where one ingress rule is enforced, and why not (also) in XDP."""

    policy: str
    index: int
    action: str
    in_xdp: bool
    cidrs: NetSet  # the CIDRs of this rule that went to XDP
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.cidrs, NetSet):
            object.__setattr__(self, "cidrs", NetSet(self.cidrs))


@dataclass(frozen=True, slots=True)
class InterfaceDecisions:
    """What was decided for one local interface: its host endpoint, its
    policies in order, and per ingress rule where it is enforced and why."""

    name: str
    host_endpoint: str
    policies: tuple[str, ...]
    rules: tuple[RuleDecision, ...]
    xdp_cidrs: NetSet

    def __post_init__(self) -> None:
        if not isinstance(self.xdp_cidrs, NetSet):
            object.__setattr__(self, "xdp_cidrs", NetSet(self.xdp_cidrs))


@dataclass(frozen=True)
class DesiredState:
    untracked: UntrackedState
    xdp: XdpDesiredState
    config: EffectiveFelixConfig
    decisions: tuple[InterfaceDecisions, ...] = ()
    not_enforced: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    invalid: tuple[tuple[str, str, str], ...] = ()
    stored_only: tuple[str, ...] = ()  # what is stored but not enforced / never matches here (also in warnings)

    def decisions_for(self, interface: str) -> InterfaceDecisions | None:
        return next((d for d in self.decisions if d.name == interface), None)
