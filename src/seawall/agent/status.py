"""The status object the agent publishes (``status.json``, ``seawall status``).

Pure: built from the calculation's decisions and the two dataplanes' reports.
Sizes, never member lists: with a million-entry set the object stays a few KB
(``seawall explain`` shows members on demand).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.mode import Mode
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.policy import DesiredState, InterfaceDecisions, RuleDecision

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
        mode, reason = Mode.RAW, "only egress rules apply here: the iptables raw tier enforces"
    else:
        mode, reason = Mode.NONE, NO_POLICY
    attached = mode.in_xdp
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


RAW_REPAIR_KINDS = ("rules", "setHeaders", "setContents")


def apply_raw_counters(status: dict[str, Any], drops: Mapping[str, Mapping[str, tuple[int, int]]] | None,
                       repairs: Mapping[str, int] | None = None) -> None:
    """Fold the raw tier's own counters into the status (in place).

    ``drops``: {interface: {"ipv4"|"ipv6": (packets, bytes)}} from the DROP line of
    its raw chains (``RawDataplane.interface_drops``); None when they could not be
    read (the previous values stay). Every interface gets ``rawCounters`` (its raw
    drops per family and in all); an ``iptables-raw`` interface also shows them as
    its ``counters.dropped`` (the XDP counters it would otherwise show do not
    exist). On an XDP interface ``counters`` stays the XDP program's and
    ``rawCounters`` adds what raw dropped behind it (rules XDP cannot hold).
    ``repairs``: drift the raw tier found and repaired, per kind."""
    if repairs is not None:
        status["rawRepairs"] = {kind: int(repairs.get(kind, 0)) for kind in RAW_REPAIR_KINDS}
    if drops is None:
        return
    for entry in status.get("interfaces", []):
        per_family = drops.get(entry.get("name", ""))
        if per_family is None and not entry.get("raw"):
            entry.pop("rawCounters", None)
            continue
        families = {fam: {"dropped": p, "droppedBytes": b} for fam, (p, b) in sorted((per_family or {}).items())}
        total = sum(v["dropped"] for v in families.values())
        total_bytes = sum(v["droppedBytes"] for v in families.values())
        entry["rawCounters"] = {"dropped": total, "droppedBytes": total_bytes, "families": families}
        if entry.get("mode") == Mode.RAW:
            counters = entry.setdefault("counters", dict(ZERO_COUNTERS))
            counters["dropped"] = total
