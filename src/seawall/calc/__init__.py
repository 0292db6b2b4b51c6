"""The pure calculation layer: stored resources + node facts -> desired state.

``Snapshot`` holds the validated resources (invalid ones recorded, treated as
absent); ``compute(snapshot, node, interfaces)`` resolves the node's host
endpoints to interfaces, the doNotTrack policies that apply, the CIDRs each
rule means, the effective FelixConfiguration and the exact XDP eligibility.
No I/O anywhere in this package.
"""

from seawall.calc.compute import DesiredState, InterfaceDecisions, compute
from seawall.calc.eligibility import RuleDecision, RuleRef, XdpEligibility, xdp_eligibility
from seawall.calc.memo import CalcMemo
from seawall.calc.snapshot import NodeInterfaces, Snapshot

__all__ = [
    "CalcMemo",
    "DesiredState",
    "InterfaceDecisions",
    "NodeInterfaces",
    "RuleDecision",
    "RuleRef",
    "Snapshot",
    "XdpEligibility",
    "compute",
    "xdp_eligibility",
]
