"""The pure calculation layer: stored resources + node facts -> desired state.

``Snapshot`` holds the validated resources (invalid ones recorded, treated as
absent); ``compute(snapshot, node, interfaces)`` resolves the node's host
endpoints to interfaces, the doNotTrack policies that apply, the CIDRs each
rule means, the effective FelixConfiguration and the exact XDP eligibility,
as one ``seawall.policy.DesiredState`` (the contract with the dataplanes).
No I/O anywhere in this package.
"""

from seawall.calc.compute import compute
from seawall.calc.eligibility import RuleRef, XdpEligibility, xdp_eligibility
from seawall.calc.memo import CalcMemo
from seawall.calc.snapshot import NodeInterfaces, Snapshot

__all__ = [
    "CalcMemo",
    "NodeInterfaces",
    "RuleRef",
    "Snapshot",
    "XdpEligibility",
    "compute",
    "xdp_eligibility",
]
