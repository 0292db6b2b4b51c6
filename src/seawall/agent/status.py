"""The status object the agent publishes (``status.json``, ``seawall status``).

Pure: built from the calculation's decisions and the two dataplanes' reports.
Sizes, never member lists: with a million-entry set the object stays a few KB
(``seawall explain`` shows members on demand).
"""

from __future__ import annotations

from typing import Any

from seawall.calc import DesiredState, InterfaceDecisions, RuleDecision
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.xdp.report import InterfaceReport

NO_POLICY = "no doNotTrack ingress policy applies"
ZERO_COUNTERS = {"dropped": 0, "passed": 0, "failsafe": 0}


def _rule_status(rule: RuleDecision, attached: bool) -> dict[str, Any]:
    """Where the rule *is* enforced: an eligible rule on an interface without
    an XDP program runs in raw only, and says so."""
    in_xdp = rule.in_xdp and attached
    reason = rule.reason
    if rule.in_xdp and not attached:
        reason = f"raw only: this interface has no XDP program (eligible: {rule.reason})"
    return {"policy": rule.policy, "index": rule.index, "action": rule.action, "inXdp": in_xdp,
            "xdpCidrs": len(rule.cidrs) if in_xdp else 0, "eligibleCidrs": len(rule.cidrs), "reason": reason}


def interface_status(decision: InterfaceDecisions, xdp: InterfaceReport | None,
                     raw: RawInterfaceReport | None) -> dict[str, Any]:
    if xdp is not None:
        mode, reason = xdp.mode, xdp.reason
    elif raw is not None:
        mode, reason = "iptables-raw", "only egress rules apply here: the iptables raw tier enforces"
    else:
        mode, reason = "none", NO_POLICY
    attached = mode.startswith("xdp-")
    return {
        "name": decision.name,
        "hostEndpoint": decision.host_endpoint,
        "mode": mode,
        "reason": reason,
        "policies": list(decision.policies),
        "xdpEntries": dict(xdp.entries) if xdp and attached else {},
        "rules": [_rule_status(r, attached) for r in decision.rules],
        "raw": {
            "backend": raw.backend, "programmed": raw.programmed, "chains": list(raw.chains),
            "ipsetMembers": dict(raw.ipset_members),
        } if raw else None,
        "errors": list(xdp.errors if xdp else ()) + list(raw.errors if raw else ()),
        # values a tier skipped as not CIDRs (they slipped past validation and the
        # calculation): tier -> {"count": n, "values": [{"value", "reason"}, ...first few]}
        "skipped": {tier: report.skipped.as_status() for tier, report in (("xdp", xdp), ("raw", raw))
                    if report is not None and report.skipped},
        "counters": dict(ZERO_COUNTERS),
    }


def reconcile_status(desired: DesiredState, xdp_reports: dict[str, InterfaceReport],
                     raw_reports: dict[str, RawInterfaceReport]) -> dict[str, Any]:
    """The parts of the status a reconcile determines."""
    return {
        "interfaces": [
            interface_status(d, xdp_reports.get(d.name), raw_reports.get(d.name)) for d in desired.decisions
        ],
        "notEnforced": [
            {"policy": name, "reason": "doNotTrack is false: only untracked (doNotTrack) policies are enforced by this version"}
            for name in desired.not_enforced
        ],
        "warnings": list(desired.warnings),
    }
