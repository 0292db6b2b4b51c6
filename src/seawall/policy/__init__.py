"""The contract between the calculation and everything that enforces or judges
policy: ``DesiredState`` (``desired``) holds the untracked raw policy
(``model``), the XDP blocklists (``xdp``) and the per-interface decisions; the
reference verdict every dataplane is tested against is ``verdict``. Pure."""

from seawall.policy.desired import DesiredState, InterfaceDecisions, RuleDecision
from seawall.policy.model import CidrSet, InterfacePolicy, UntrackedState
from seawall.policy.xdp import InterfaceBlocklist, XdpDesiredState

__all__ = [
    "CidrSet",
    "DesiredState",
    "InterfaceBlocklist",
    "InterfaceDecisions",
    "InterfacePolicy",
    "RuleDecision",
    "UntrackedState",
    "XdpDesiredState",
]
