"""``seawall explain``: why each rule is enforced where it is. Pure.

``explain(desired, ...)`` turns the calculation's result for one node (plus,
optionally, the agent's ``status.json``) into an ``Explanation``: per
interface and per ingress rule in order, the action, where it runs (XDP + raw,
or raw only) and why not in XDP; per CIDR set a rule uses, its selector, how
many members it has, how many went to XDP on this interface and how many stay
in the raw table only, with a few examples of each. ``render`` shows it as
text, ``as_json`` as a JSON-ready dict. No I/O here; the CLI reads the
datastore, the interfaces and the status file.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Set as AbstractSet
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from seawall.agent.status import AgentStatus, InterfaceStatus
from seawall.api.cidr import parse_cidr
from seawall.calc import NodeInterfaces
from seawall.policy import DesiredState, RuleDecision
from seawall.policy.model import EntityMatch, FailsafePort, Policy, Rule

EXAMPLES = 5
XDP_AND_RAW = "XDP + raw"
RAW_ONLY = "raw only"
NOT_ENFORCED = "doNotTrack is false: only untracked (doNotTrack) policies are enforced by this version"
_PROTOCOL_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite"}


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class SetUse:
    """One CIDR set (or a rule's literal nets) a rule refers to, on one interface."""

    role: str  # "source selector", "source notSelector", "destination selector", ..., "source nets"
    selector: str | None  # canonical selector text; None for literal nets
    set_id: str | None
    members: int
    in_xdp: int  # members that went to XDP through this rule on this interface
    raw_only: int  # members enforced by the raw table only
    xdp_examples: tuple[str, ...] = ()
    raw_examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleExplanation:
    policy: str
    index: int  # the rule's index as the calculation (and status.json) reports it
    action: str
    match: str  # what the rule matches, in short
    enforced_at: str  # XDP_AND_RAW | RAW_ONLY
    in_xdp: bool  # the calculation put (some of) its CIDRs in XDP
    reason: str  # the calculation's reason (why not, or not all, in XDP)
    xdp_cidrs: int
    sets: tuple[SetUse, ...] = ()
    matches_nothing: bool = False  # a selector of the rule selects no CIDR (e.g. a namespaceSelector here)


@dataclass(frozen=True)
class InterfaceExplanation:
    name: str
    host_endpoint: str
    policies: tuple[str, ...]
    rules: tuple[RuleExplanation, ...]
    xdp_cidrs: int  # CIDRs of the interface's XDP blocklist (all its rules)
    egress_rules: int = 0  # egress rules: always raw only
    agent_mode: str | None = None  # what the agent actually uses (from status.json)
    agent_reason: str | None = None
    note: str | None = None  # why no rule runs in XDP here, when that is so


@dataclass(frozen=True)
class Explanation:
    node: str
    interfaces: tuple[InterfaceExplanation, ...]
    unprotected_interfaces: tuple[str, ...] = ()  # interfaces no HostEndpoint of this node claims
    failsafe_inbound: tuple[str, ...] = ()
    not_enforced: tuple[dict[str, str], ...] = ()
    stored_only: tuple[str, ...] = ()  # stored but not enforced, or never matching here (http, services, ...)
    unmatched_host_endpoints: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    invalid: tuple[dict[str, str], ...] = ()
    xdp_enabled: bool = True
    revision: int | None = None
    status_note: str | None = None


# ---------------------------------------------------------------- inputs


# ---------------------------------------------------------------- logic


def _sort_key(cidr: str) -> tuple[int, int, int]:
    try:
        net = parse_cidr(cidr)
    except ValueError:
        return (9, 0, 0)
    return (net.family, net.start, net.end)


EXACT_ORDER_LIMIT = 1 << 16


def examples(cidrs: Iterable[str], limit: int = EXAMPLES) -> tuple[str, ...]:
    """Up to ``limit`` CIDRs, shown in address order, chosen deterministically in
    linear time: the lowest addresses, or for sets over EXACT_ORDER_LIMIT members
    (a million-member set would take seconds to key) the first in text order."""
    values = cidrs if isinstance(cidrs, (set, frozenset, list, tuple)) else list(cidrs)
    if len(values) <= EXACT_ORDER_LIMIT:
        return tuple(heapq.nsmallest(limit, values, key=_sort_key))
    return tuple(sorted(heapq.nsmallest(limit, values), key=_sort_key))


def _set_use(role: str, selector: str | None, set_id: str | None, members: AbstractSet[str],
             xdp: AbstractSet[str]) -> SetUse:
    raw_only: AbstractSet[str]
    if xdp is members or xdp == members:
        in_xdp, raw_only = members, frozenset()
    elif not xdp:
        in_xdp, raw_only = frozenset(), members
    else:
        in_xdp = members & xdp
        raw_only = members - in_xdp
    return SetUse(role, selector, set_id, len(members), len(in_xdp), len(raw_only),
                  examples(in_xdp), examples(raw_only))


def _describe_entity(entity: EntityMatch, selectors: Mapping[str, str]) -> list[str]:
    parts: list[str] = []

    def listed(values: tuple[str, ...]) -> str:
        return ", ".join(values[:3]) + (f", … ({len(values)} in all)" if len(values) > 3 else "")

    if entity.nets:
        parts.append(f"nets [{listed(tuple(c.text for c in entity.nets))}]")
    if entity.not_nets:
        parts.append(f"notNets [{listed(tuple(c.text for c in entity.not_nets))}]")
    for set_id in entity.sets:
        parts.append(f"selector {selectors.get(set_id, set_id)!r}")
    for set_id in entity.not_sets:
        parts.append(f"notSelector {selectors.get(set_id, set_id)!r}")
    if entity.ports:
        parts.append("ports " + ",".join(str(p.low) if p.low == p.high else f"{p.low}:{p.high}" for p in entity.ports))
    if entity.not_ports:
        parts.append("notPorts " + ",".join(str(p.low) if p.low == p.high else f"{p.low}:{p.high}" for p in entity.not_ports))
    return parts


def describe_rule(rule: Rule, selectors: Mapping[str, str]) -> str:
    """A short text of what an ingress rule matches, e.g. ``from selector 'a == "b"'``."""
    parts: list[str] = []
    if rule.ip_version is not None:
        parts.append(f"IPv{rule.ip_version}")
    if rule.protocol is not None:
        parts.append(_PROTOCOL_NAMES.get(rule.protocol, f"protocol {rule.protocol}"))
    if rule.not_protocol is not None:
        parts.append(f"not {_PROTOCOL_NAMES.get(rule.not_protocol, f'protocol {rule.not_protocol}')}")
    if rule.icmp is not None:
        parts.append(f"icmp type {rule.icmp.type} code {rule.icmp.code}")
    if rule.not_icmp is not None:
        parts.append(f"not icmp type {rule.not_icmp.type} code {rule.not_icmp.code}")
    source = _describe_entity(rule.source, selectors)
    destination = _describe_entity(rule.destination, selectors)
    parts.append("from " + " ".join(source) if source else "from anywhere")
    if destination:
        parts.append("to " + " ".join(destination))
    return " ".join(parts)


def _rule_sets(rule: Rule, decision: RuleDecision, state_sets: Mapping[str, Any],
               selectors: Mapping[str, str]) -> tuple[SetUse, ...]:
    out: list[SetUse] = []
    if rule.source.nets:
        out.append(_set_use("source nets", None, None, frozenset(c.text for c in rule.source.nets), decision.cidrs))
    for role, entity in (("source", rule.source), ("destination", rule.destination)):
        for kind, ids in (("selector", entity.sets), ("notSelector", entity.not_sets)):
            for set_id in ids:
                cidr_set = state_sets.get(set_id)
                members = cidr_set.cidrs if cidr_set is not None else frozenset()
                # Only a source selector's members can go to XDP; the others stay in raw.
                xdp = decision.cidrs if (role, kind) == ("source", "selector") else frozenset()
                out.append(_set_use(f"{role} {kind}", selectors.get(set_id), set_id, members, xdp))
    return tuple(out)


def _matches_nothing(rule: Rule, state_sets: Mapping[str, Any]) -> bool:
    """A rule whose (source or destination) selector set is empty matches no packet."""
    for entity in (rule.source, rule.destination):
        for set_id in entity.sets:
            cidr_set = state_sets.get(set_id)
            if cidr_set is None or not cidr_set.cidrs:
                return True
    return False


def _failsafe_text(port: FailsafePort) -> str:
    name = _PROTOCOL_NAMES.get(port.protocol, str(port.protocol)).lower()
    return f"{name}:{port.port}" + (f" from {port.net}" if port.net else "")


def _agent_view(status: AgentStatus | None, name: str) -> InterfaceStatus | None:
    return status.interface(name) if status is not None else None


def _note(agent_mode: str | None, agent_reason: str | None, has_ingress: bool, xdp_enabled: bool) -> str | None:
    if not has_ingress:
        return None
    if agent_mode is not None and not agent_mode.startswith("xdp-"):
        return f"the agent enforces this interface in {agent_mode} mode, so no rule runs in XDP here: {agent_reason or 'no reason given'}"
    if agent_mode is None and not xdp_enabled:
        return "xdpEnabled is false (FelixConfiguration): no rule runs in XDP; the iptables raw tier enforces"
    return None


def explain(desired: DesiredState, *, node: str, interfaces: NodeInterfaces | None = None,
            selectors: Mapping[str, str] | None = None, status: AgentStatus | Mapping[str, Any] | None = None,
            invalid: Iterable[Mapping[str, Any]] = (), revision: int | None = None) -> Explanation:
    """The explanation of ``desired`` (computed for ``node`` on ``interfaces``).
    ``status`` is the agent's status (or its JSON object, read tolerantly), used
    only if it is for ``node``."""
    selectors = selectors if selectors is not None else {k: s.selector for k, s in desired.untracked.sets.items()}
    status_note = None
    agent = status if status is None or isinstance(status, AgentStatus) else AgentStatus.from_json(status, strict=False)
    if agent is not None and agent.node != node:
        status_note = f"the agent's status is for node {agent.node!r}, not {node!r}; not used"
        agent = None
    by_policy: dict[str, dict[str, Policy]] = {
        ip.name: {p.name: p for p in ip.policies} for ip in desired.untracked.interfaces
    }
    out: list[InterfaceExplanation] = []
    for decision in desired.decisions:
        policies = by_policy.get(decision.name, {})
        rules: list[RuleExplanation] = []
        view = _agent_view(agent, decision.name)
        agent_mode = str(view.mode) if view is not None and view.mode else None
        agent_reason = view.reason if view is not None else None
        xdp_possible = (agent_mode.startswith("xdp-") if agent_mode is not None else desired.config.xdpEnabled)
        seen: dict[str, int] = {}
        for d in decision.rules:
            # Decisions come in the order of the policies' translated ingress rules: the
            # k-th decision of a policy is its k-th rule (whatever ``index`` counts).
            k = seen[d.policy] = seen.get(d.policy, -1) + 1
            policy = policies.get(d.policy)
            rule = policy.ingress[k] if policy is not None and k < len(policy.ingress) else None
            rules.append(RuleExplanation(
                policy=d.policy, index=d.index, action=d.action,
                match=describe_rule(rule, selectors) if rule is not None else "?",
                enforced_at=XDP_AND_RAW if d.in_xdp and xdp_possible else RAW_ONLY,
                in_xdp=d.in_xdp, reason=d.reason, xdp_cidrs=len(d.cidrs),
                sets=_rule_sets(rule, d, desired.untracked.sets, selectors) if rule is not None else (),
                matches_nothing=rule is not None and _matches_nothing(rule, desired.untracked.sets),
            ))
        egress = sum(len(p.egress) for p in policies.values())
        out.append(InterfaceExplanation(
            name=decision.name, host_endpoint=decision.host_endpoint, policies=decision.policies,
            rules=tuple(rules), xdp_cidrs=len(decision.xdp_cidrs), egress_rules=egress,
            agent_mode=agent_mode, agent_reason=agent_reason,
            note=_note(agent_mode, agent_reason, bool(decision.rules), desired.config.xdpEnabled),
        ))
    claimed = {d.name for d in desired.decisions}
    unprotected = tuple(n for n in (interfaces.names if interfaces else ()) if n not in claimed)
    heps = tuple(w for w in desired.warnings if w.startswith("HostEndpoint "))
    stored_only = set(desired.stored_only)
    return Explanation(
        node=node,
        interfaces=tuple(out),
        unprotected_interfaces=unprotected,
        failsafe_inbound=tuple(_failsafe_text(p) for p in desired.untracked.failsafe_in),
        not_enforced=tuple({"policy": name, "reason": NOT_ENFORCED} for name in desired.not_enforced),
        stored_only=desired.stored_only,
        unmatched_host_endpoints=heps,
        warnings=tuple(w for w in desired.warnings if w not in heps and w not in stored_only),
        invalid=tuple(
            {k: str(v) for k, v in entry.items()} for entry in invalid
        ) + tuple({"kind": k, "name": n, "reason": r, "action": "ignored"} for k, n, r in desired.invalid),
        xdp_enabled=desired.config.xdpEnabled,
        revision=revision,
        status_note=status_note,
    )


# ---------------------------------------------------------------- output


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)  # in_xdp -> inXdp, as in status.json


def as_json(value: Any) -> Any:
    """Dataclasses -> JSON-ready dicts with camelCase keys (``in_xdp`` -> ``inXdp``)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {_camel(f.name): as_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    return value


def _set_lines(use: SetUse) -> list[Text]:
    what = f"{use.role} {use.selector!r}" if use.selector is not None else use.role
    if use.selector is None and use.set_id is not None:
        what = f"{use.role} (set {use.set_id}: no stored policy uses this selector)"
    lines = [Text(f"      {what}: {use.members} member{'s' if use.members != 1 else ''}, "
                  f"{use.in_xdp} in XDP, {use.raw_only} in raw only")]
    if use.xdp_examples:
        lines.append(Text(f"        in XDP:   {', '.join(use.xdp_examples)}{' …' if use.in_xdp > len(use.xdp_examples) else ''}"))
    if use.raw_examples:
        lines.append(Text(f"        raw only: {', '.join(use.raw_examples)}{' …' if use.raw_only > len(use.raw_examples) else ''}"))
    return lines


def build(result: Explanation) -> RenderableType:
    """The explanation as text (a rich renderable)."""
    lines: list[Text] = []
    head = Text()
    head.append("node ", style="bold")
    head.append(result.node)
    if result.revision is not None:
        head.append("   datastore revision ", style="bold")
        head.append(str(result.revision))
    if result.failsafe_inbound:
        head.append("   failsafe inbound ", style="bold")
        head.append(", ".join(result.failsafe_inbound) + " (always accepted, even from blocked sources)")
    lines.append(head)
    if result.status_note:
        lines.append(Text(result.status_note, style="yellow"))
    if not result.xdp_enabled:
        lines.append(Text("xdpEnabled is false (FelixConfiguration): everything is enforced by the iptables raw tier",
                          style="yellow"))
    if not result.interfaces:
        lines.append(Text(""))
        lines.append(Text("no interface of this node is claimed by a HostEndpoint: nothing is enforced here"))
    for iface in result.interfaces:
        lines.append(Text(""))
        title = Text()
        title.append(f"interface {iface.name}", style="bold")
        title.append(f"  host endpoint {iface.host_endpoint}")
        if iface.agent_mode is not None:
            title.append(f"  agent mode {iface.agent_mode}")
        else:
            title.append("  agent mode unknown (no status)")
        lines.append(title)
        if iface.agent_reason and not iface.note:
            lines.append(Text(f"  why: {iface.agent_reason}"))
        if iface.note:
            lines.append(Text(f"  {iface.note}", style="yellow"))
        if not iface.policies:
            lines.append(Text("  no doNotTrack policy selects this host endpoint: traffic is not filtered"))
            continue
        lines.append(Text(f"  policies in order: {', '.join(iface.policies)}; "
                          f"{iface.xdp_cidrs} CIDR{'s' if iface.xdp_cidrs != 1 else ''} in the XDP blocklist"))
        if not iface.rules:
            lines.append(Text("  no ingress rules"))
        for rule in iface.rules:
            style = "green" if rule.enforced_at == XDP_AND_RAW else ""
            line = Text(f"    {rule.policy}[{rule.index}] {rule.action} {rule.match}: ")
            line.append(rule.enforced_at, style=style)
            line.append(f" — {rule.reason}")
            if rule.matches_nothing:
                line.append(" (matches nothing here: its selector selects no CIDR)", style="yellow")
            lines.append(line)
            for use in rule.sets:
                lines.extend(_set_lines(use))
        if iface.egress_rules:
            lines.append(Text(f"  {iface.egress_rules} egress rule(s): raw only (XDP sees ingress traffic only)"))
    if result.unprotected_interfaces:
        lines.append(Text(""))
        lines.append(Text("interfaces without a host endpoint (not filtered): " + ", ".join(result.unprotected_interfaces)))
    for heading, rows, style in (
        ("not enforced", [f"{e['policy']}: {e['reason']}" for e in result.not_enforced] + list(result.stored_only), ""),
        ("host endpoints of this node that match no interface", list(result.unmatched_host_endpoints), "yellow"),
        ("warnings", list(result.warnings), "yellow"),
        ("invalid resources", [f"{e.get('kind')}({e.get('name')}): {e.get('reason')} -> {e.get('action')}"
                               for e in result.invalid], "red"),
    ):
        if rows:
            lines.append(Text(""))
            lines.append(Text(heading, style="bold"))
            lines.extend(Text(f"  {row}", style=style) for row in rows)
    return Group(*lines)


__all__ = [
    "Explanation", "InterfaceExplanation", "RuleExplanation", "SetUse",
    "as_json", "build", "describe_rule", "examples", "explain",
]
