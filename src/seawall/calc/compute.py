"""compute(snapshot, node, interfaces[, memo]) -> DesiredState. Pure and deterministic.

Choices worth knowing:
* Interface resolution follows Calico (reference §2.5): a HEP with an explicit
  ``interfaceName`` matches that interface if the node has it; a HEP with an
  empty name matches every interface holding one of its ``expectedIPs``;
  among the HEPs matching an interface the lexically smallest name wins.
  ``"*"`` HEPs (which Seawall, unlike Calico, supports with doNotTrack) apply
  to every non-loopback interface that no specific HEP claims; among several
  ``"*"`` HEPs the smallest name wins. Loopback = the interface named ``lo``
  or one whose addresses are all loopback addresses.
* Named ports (``ports: [http]``) cannot be resolved without the endpoints'
  port maps: a rule using one is dropped (treated as matching nothing, as a
  dangling reference is) and a warning names it.
* ``types`` decides which directions of a policy apply; without ``types``, a
  direction applies if it has rules.
* Workload-only Calico fields keep Calico's meaning (``selector.scoping``): an
  EntityRule's ``namespaceSelector`` / ``serviceAccounts`` are AND'ed (labels
  prefixed ``pcns.`` / ``pcsa.``) into its selector, so the set normally holds
  nothing, except ``namespaceSelector: global()`` (``!has(projectcalico.org/namespace)``),
  which selects every GlobalNetworkSet and host endpoint; a policy's
  ``spec.namespaceSelector`` / ``serviceAccountSelector`` scope its endpoint
  selector likewise. A rule with ``services`` (no Kubernetes service has
  endpoints here) or ``http`` (Seawall cannot see HTTP) matches nothing and is
  dropped. Each is said in ``warnings`` and, with the FelixConfiguration fields
  stored but not enforced, in ``stored_only``.
* Only interfaces with at least one doNotTrack policy appear in
  ``untracked.interfaces``; only those with ingress rules appear in
  ``xdp.interfaces`` (even with no eligible CIDR, so the program stays
  attached and counting while a set is briefly empty).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from seawall.api import models
from seawall.api.cidr import Cidr, parse_cidr
from seawall.api.errors import shown_repr
from seawall.api.felix import config_name_for_node, effective_config, unenforced_fields
from seawall.api.protocols import protocol_number
from seawall.calc.eligibility import interface_eligibility
from seawall.calc.members import SetMembers, assemble, canonical_split
from seawall.calc.memo import CalcMemo, NoMemo
from seawall.calc.snapshot import NodeInterfaces, Snapshot
from seawall.policy.desired import DesiredState, InterfaceDecisions
from seawall.policy.model import (
    Action,
    CidrSet,
    EntityMatch,
    FailsafePort,
    IcmpMatch,
    InterfacePolicy,
    Policy,
    PortRange,
    Rule,
    UntrackedState,
    policy_sort_key,
)
from seawall.policy.netset import NetSet
from seawall.policy.xdp import InterfaceBlocklist, XdpDesiredState
from seawall.selector import Selector, parse
from seawall.selector.scoping import entity_selector, policy_selector, service_account_scope

FAILSAFE_PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132}
LOOPBACK = "lo"


@lru_cache(maxsize=4096)
def _selector(text: str | None) -> Selector:
    return parse(text or "")


@lru_cache(maxsize=4096)
def _scoped_selector(selector: str, namespace: str, account_selector: str, account_names: tuple[str, ...],
                     has_accounts: bool) -> Selector | None:
    accounts = (service_account_scope(parse(account_selector).root if account_selector else None, account_names)
                if has_accounts else None)
    node = entity_selector(
        parse(selector).root if selector else None,
        namespace_selector=parse(namespace).root if namespace else None,
        service_accounts=accounts,
    )
    return Selector(node) if node is not None else None


def effective_selector(entity: models.EntityRule) -> Selector | None:
    """An EntityRule's selector as Calico compiles it: ``selector`` scoped by its
    ``namespaceSelector`` and ``serviceAccounts`` (None: no selector)."""
    accounts = entity.serviceAccounts
    return _scoped_selector(
        entity.selector or "",
        entity.namespaceSelector or "",
        (accounts.selector or "") if accounts is not None else "",
        tuple(accounts.names or ()) if accounts is not None else (),
        accounts is not None,
    )


def is_scoped(entity: models.EntityRule) -> bool:
    """True when namespaceSelector or serviceAccounts changed the entity's selector."""
    accounts = entity.serviceAccounts
    return bool(entity.namespaceSelector) or (accounts is not None and bool(accounts.selector or accounts.names))


@lru_cache(maxsize=1024)
def _policy_selector(selector: str, namespace: str, account: str) -> Selector:
    if not namespace and not account:
        return _selector(selector)
    return Selector(policy_selector(
        parse(selector).root if selector else None,
        namespace_selector=parse(namespace).root if namespace else None,
        service_account_selector=parse(account).root if account else None,
    ))


def effective_policy_selector(spec: models.GlobalNetworkPolicySpec) -> Selector:
    """A policy's endpoint selector as Calico compiles it: ``selector`` AND'ed with
    its ``namespaceSelector`` / ``serviceAccountSelector`` scopes."""
    return _policy_selector(spec.selector or "", spec.namespaceSelector or "", spec.serviceAccountSelector or "")


def _labels(resource: models._Resource) -> Mapping[str, str]:
    return resource.metadata.labels or {}


def _try_parse(value: object) -> Cidr | None:
    """The CIDR a stored value means, or None when it is not one (a non-ASCII
    digit, an IPv6 zone, a prefix out of range, not a string): such a value
    matches no address, so dropping it from a list is exact."""
    try:
        return parse_cidr(value)
    except (ValueError, TypeError):
        return None


def _try_canonical(value: object) -> str | None:
    """The canonical text of a stored value's CIDR, or None (see ``_try_parse``)."""
    parsed = _try_parse(value)
    return parsed.text if parsed is not None else None


SHOWN_BAD = 3


def bad_values_warning(where: str, field: str, bad: Sequence[object], what: str = "entry dropped") -> str:
    """``Kind name: field: invalid value 'x' (...); entry dropped`` naming a few values, each truncated."""
    values = sorted(bad, key=repr)
    shown = ", ".join(shown_repr(v) for v in values[:SHOWN_BAD])
    more = f" and {len(values) - SHOWN_BAD} more" if len(values) > SHOWN_BAD else ""
    plural = "s" if len(values) > 1 else ""
    return f"{where}: {field}: invalid CIDR value{plural} {shown}{more}; {what}"


def _host_cidr(text: object) -> str | None:
    if _try_canonical(text) is None:
        return None
    try:
        addr = ipaddress.ip_interface(text).ip  # type: ignore[arg-type]
    except ValueError:
        return None
    return f"{addr}/{addr.max_prefixlen}"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_interface(text).ip
    except ValueError:
        return None


# ------------------------------------------------------------------ interfaces


def _is_loopback(name: str, addresses: tuple[str, ...]) -> bool:
    if name == LOOPBACK:
        return True
    parsed = [a for a in map(_address, addresses) if a is not None]
    return bool(parsed) and all(a.is_loopback for a in parsed)


def resolve_interfaces(heps: Mapping[str, models.HostEndpoint], interfaces: NodeInterfaces) -> dict[str, str]:
    """interface name -> name of the HEP that owns it (local HEPs only)."""
    owners: dict[str, str] = {}
    wildcard = sorted(n for n, h in heps.items() if h.spec.interfaceName == "*")
    for iface, addresses in sorted(interfaces.addresses.items()):
        held = {a for a in map(_address, addresses) if a is not None}
        matching = []
        for name, hep in heps.items():
            wanted = hep.spec.interfaceName
            if wanted == "*":
                continue
            if wanted:
                if wanted == iface:
                    matching.append(name)
            elif any(_address(ip) in held for ip in hep.spec.expectedIPs or ()):
                matching.append(name)
        if matching:
            owners[iface] = min(matching)
        elif wildcard and not _is_loopback(iface, addresses):
            owners[iface] = wildcard[0]
    return owners


# ------------------------------------------------------------------ rules


def _raw_set(nets: Sequence[Any]) -> tuple[frozenset[Any], tuple[Any, ...]]:
    """The hashable values of ``nets`` as a set, and the unhashable ones (never CIDRs)."""
    try:
        return frozenset(nets), ()
    except TypeError:
        unhashable = tuple(n for n in nets if not isinstance(n, (str, int, float, bool, type(None))))
        return frozenset(n for n in nets if isinstance(n, (str, int, float, bool, type(None)))), unhashable


def _canonical_nets(memo: CalcMemo, name: str, nets: Sequence[Any]) -> tuple[NetSet, tuple[Any, ...]]:
    """A plain (not chunked) network set's nets, canonical, and the values that
    are not CIDRs (dropped: each matches no address). When the previous version
    of the set of this name was canonicalised one-to-one (no two nets with the
    same canonical form), only the difference is parsed."""
    raw, unhashable = _raw_set(nets)
    canonical: NetSet
    bad: frozenset[Any]
    previous = memo.recall("gns-raw", name)
    if previous is not None and len(previous[0]) - len(previous[2]) == len(previous[1]):
        old_raw, old_canonical, old_bad = previous
        removed, _ = canonical_split(old_raw - raw - old_bad)
        added, added_bad = canonical_split(raw - old_raw)
        canonical = old_canonical.with_changes(added, removed)
        bad = (old_bad & raw) | added_bad
    else:
        good, bad = canonical_split(raw)
        canonical = NetSet(good)
    memo.keep("gns-raw", name, (raw, canonical, bad))
    return canonical, (*bad, *unhashable)


def _chunked_nets(memo: CalcMemo, members: SetMembers) -> tuple[NetSet, tuple[Any, ...]]:
    """A chunked set's nets, patched from its previous version bucket by bucket."""
    parts, netset = assemble(members, memo.recall("gns-chunked", members.name))
    memo.keep("gns-chunked", members.name, (parts, netset))
    return netset, members.bad


class _Translator:
    def __init__(self, snapshot: Snapshot, warnings: list[str], memo: CalcMemo) -> None:
        self.snapshot = snapshot
        self.warnings = warnings
        self.stored_only: list[str] = []
        self.memo = memo
        self.sets: dict[str, CidrSet] = {}
        self._reported: set[tuple[str, str]] = set()

    def _report(self, kind: str, name: str, field: str, bad: Sequence[object]) -> None:
        if bad and (kind, name) not in self._reported:
            self._reported.add((kind, name))
            self.warnings.append(bad_values_warning(f"{kind} {name}", field, bad))

    def _members(self, resource: models.GlobalNetworkSet | models.HostEndpoint) -> NetSet:
        name = resource.metadata.name
        if isinstance(resource, models.GlobalNetworkSet):
            chunked = self.snapshot.members.get(name)
            if chunked is not None:
                members, bad = self.memo.get("gns-members", (resource, chunked),
                                             lambda: _chunked_nets(self.memo, chunked))
                if chunked.missing:
                    self.warnings.append(
                        f"GlobalNetworkSet {name}: {len(chunked.missing)} of its member chunks are missing from the "
                        "datastore (an interrupted write by another tool?); enforcing the nets that are present")
            else:
                nets = resource.spec.nets or ()
                members, bad = self.memo.get("gns-members", (resource,), lambda: _canonical_nets(self.memo, name, nets))
            self._report("GlobalNetworkSet", name, "nets", bad)
            return members
        ips = resource.spec.expectedIPs or ()

        def hep() -> tuple[NetSet, tuple[Any, ...]]:
            cidrs = [(ip, _host_cidr(ip)) for ip in ips]
            return NetSet(c for _, c in cidrs if c), tuple(ip for ip, c in cidrs if c is None)

        members, bad = self.memo.get("hep-members", (resource,), hep)
        self._report("HostEndpoint", name, "expectedIPs", bad)
        return members

    def _stored_only(self, message: str) -> None:
        self.warnings.append(message)
        self.stored_only.append(message)

    def set_for(self, text: str | Selector) -> str:
        selector = text if isinstance(text, Selector) else _selector(text)
        set_id = selector.unique_id()
        if set_id not in self.sets:
            sources: list[models.GlobalNetworkSet | models.HostEndpoint] = [*self.snapshot.gns.values(), *self.snapshot.hep.values()]
            parts = [
                self._members(resource)
                for resource in sources
                if selector.evaluate(_labels(resource))
            ]
            parts = [p for p in parts if p]
            cidrs = self.memo.get("set", tuple(parts), lambda: self._union(set_id, parts))
            self.sets[set_id] = CidrSet(set_id, cidrs, selector.canonical)
        return set_id

    def _union(self, set_id: str, parts: list[NetSet]) -> NetSet:
        """The members of every set a selector picks; with the previous union of
        this selector, only the buckets some part changed are united again (a net
        in two sets stays until both drop it)."""
        union = NetSet.union(parts, self.memo.recall("set-union", set_id))
        self.memo.keep("set-union", set_id, (tuple(parts), union))
        return union

    def ports(self, values: list[int | str] | None) -> tuple[PortRange, ...] | None:
        """None when a named port makes the rule untranslatable."""
        out: list[PortRange] = []
        for value in values or ():
            if isinstance(value, int):
                out.append(PortRange(value, value))
            elif ":" in value:
                low, _, high = value.partition(":")
                out.append(PortRange(int(low), int(high)))
            elif value.isdigit():
                out.append(PortRange(int(value), int(value)))
            else:
                return None
        return tuple(out)

    def nets(self, values: Sequence[Any] | None, policy: str, field: str, negated: bool) -> tuple[Cidr, ...] | None:
        """A rule's literal nets (or notNets), parsed; values that are not
        CIDRs are dropped and reported (each matches no address). None when
        every ``nets`` value was bad: the rule then matches nothing (an empty
        ``nets`` would match every source)."""
        parsed = [(v, _try_parse(v)) for v in values or ()]
        bad = [v for v, c in parsed if c is None]
        good = tuple(c for _, c in parsed if c is not None)
        matches_nothing = bool(bad) and not good and not negated
        if bad:
            what = "the rule matches nothing and is ignored" if matches_nothing else "entry dropped"
            self.warnings.append(bad_values_warning(f"GlobalNetworkPolicy {policy}", field, bad, what))
        return None if matches_nothing else good

    def entity(self, entity: models.EntityRule | None, policy: str = "", where: str = "") -> EntityMatch | str:
        """The match, or why the rule cannot be translated (it is then ignored)."""
        if entity is None:
            return EntityMatch()
        if entity.services is not None:
            service = f"{entity.services.namespace or ''}/{entity.services.name or ''}"
            self._stored_only(f"GlobalNetworkPolicy {policy}: {where}.services: matches the endpoints of Kubernetes "
                              f"service {service}; there are none here, so the rule matches nothing and is ignored")
            return ""
        ports = self.ports(entity.ports)
        not_ports = self.ports(entity.notPorts)
        if ports is None or not_ports is None:
            return "named ports are not supported; the rule is ignored"
        nets = self.nets(entity.nets, policy, f"{where}.nets", negated=False)
        if nets is None:
            return ""  # already reported
        not_nets = self.nets(entity.notNets, policy, f"{where}.notNets", negated=True)
        selector = effective_selector(entity)
        set_id = self.set_for(selector) if selector is not None else None
        sets = (set_id,) if set_id is not None else ()
        if selector is not None and set_id is not None and is_scoped(entity) and not self.sets[set_id].cidrs:
            fields = " and ".join(f for f in ("namespaceSelector", "serviceAccounts") if getattr(entity, f))
            self._stored_only(
                f"GlobalNetworkPolicy {policy}: {where}: {fields} (Kubernetes only) make the effective selector "
                f"{selector.canonical}, which no host endpoint or GlobalNetworkSet matches: the rule matches nothing here")
        return EntityMatch(
            nets=nets,
            not_nets=not_nets or (),
            sets=sets,
            not_sets=(self.set_for(entity.notSelector),) if entity.notSelector else (),
            ports=ports,
            not_ports=not_ports,
        )

    def rule(self, policy: str, where: str, rule: models.Rule) -> Rule | None:
        if rule.http is not None:
            self._stored_only(f"GlobalNetworkPolicy {policy}: {where}.http: Seawall cannot see HTTP (Calico needs its "
                              "application layer policy); the rule never matches and is ignored")
            return None
        source = self.entity(rule.source, policy, f"{where}.source")
        destination = self.entity(rule.destination, policy, f"{where}.destination")
        if isinstance(source, str) or isinstance(destination, str):
            reason = next((r for r in (source, destination) if isinstance(r, str) and r), "")
            if reason:
                self.warnings.append(f"GlobalNetworkPolicy {policy}: {where}: {reason}")
            return None
        return Rule(
            action=Action(rule.action),
            ip_version=rule.ipVersion,
            protocol=protocol_number(rule.protocol) if rule.protocol is not None else None,
            not_protocol=protocol_number(rule.notProtocol) if rule.notProtocol is not None else None,
            icmp=IcmpMatch(rule.icmp.type, rule.icmp.code) if rule.icmp is not None else None,
            not_icmp=IcmpMatch(rule.notICMP.type, rule.notICMP.code) if rule.notICMP is not None else None,
            source=source,
            destination=destination,
            annotations=tuple(sorted(((rule.metadata and rule.metadata.annotations) or {}).items())),
        )

    def policy(self, gnp: models.GlobalNetworkPolicy) -> Policy:
        spec = gnp.spec
        name = gnp.metadata.name
        if spec.namespaceSelector or spec.serviceAccountSelector:
            selector = effective_policy_selector(spec)
            fields = " and ".join(f"spec.{f}" for f in ("namespaceSelector", "serviceAccountSelector") if getattr(spec, f))
            selects = any(selector.evaluate(_labels(h)) for h in self.snapshot.hep.values())
            self._stored_only(
                f"GlobalNetworkPolicy {name}: {fields} (Kubernetes only) make the policy's selector {selector.canonical}"
                + ("" if selects else ", which no host endpoint matches: the policy applies to none"))
        directions: dict[str, list[tuple[int, Rule]]] = {}
        for direction, type_name in (("ingress", "Ingress"), ("egress", "Egress")):
            rules = getattr(spec, direction) or []
            applies = type_name in spec.types if spec.types is not None else bool(rules)
            translated = [(i, self.rule(name, f"{direction}[{i}]", r)) for i, r in enumerate(rules)] if applies else []
            directions[direction] = [(i, r) for i, r in translated if r is not None]
        ingress, egress = directions["ingress"], directions["egress"]

        def indexes(kept: list[tuple[int, Rule]]) -> tuple[int, ...]:
            numbers = tuple(i for i, _ in kept)
            return () if numbers == tuple(range(len(kept))) else numbers

        return Policy(name, spec.order, tuple(r for _, r in ingress), tuple(r for _, r in egress),
                      indexes(ingress), indexes(egress))


# ------------------------------------------------------------------ compute


def _failsafe(ports: tuple[Any, ...], warnings: list[str], which: str) -> tuple[FailsafePort, ...]:
    out: list[FailsafePort] = []
    for entry in ports:
        number = FAILSAFE_PROTOCOLS.get(entry.protocol.upper())
        if number is None:
            warnings.append(f"FelixConfiguration: {which}: unknown protocol {entry.protocol!r}; entry ignored")
            continue
        net = _try_parse(entry.net) if entry.net else None
        if entry.net and net is None:  # matches no source: the entry is exact without it
            warnings.append(bad_values_warning("FelixConfiguration", f"{which}.net", [entry.net]))
            continue
        out.append(FailsafePort(number, entry.port, net))
    return tuple(out)


def compute(snapshot: Snapshot, node: str, interfaces: NodeInterfaces, memo: CalcMemo | None = None) -> DesiredState:
    """The desired state of ``node``. With a ``CalcMemo`` shared across calls
    (the agent), work on resources that are the same objects as last time is
    reused; the result is identical either way."""
    memo = memo if memo is not None else NoMemo()
    try:
        return _compute(snapshot, node, interfaces, memo)
    finally:
        memo.sweep()


def _compute(snapshot: Snapshot, node: str, interfaces: NodeInterfaces, memo: CalcMemo) -> DesiredState:
    warnings: list[str] = []
    config = effective_config(snapshot.felix.get("default"), snapshot.felix.get(config_name_for_node(node)))
    failsafe_in = _failsafe(config.failsafeInboundHostPorts, warnings, "failsafeInboundHostPorts")
    failsafe_out = _failsafe(config.failsafeOutboundHostPorts, warnings, "failsafeOutboundHostPorts")

    tracked = sorted(n for n, p in snapshot.gnp.items() if not p.spec.doNotTrack)
    untracked_gnps = [p for _, p in sorted(snapshot.gnp.items()) if p.spec.doNotTrack]
    translator = _Translator(snapshot, warnings, memo)
    for felix_name in ("default", config_name_for_node(node)):
        felix_config = snapshot.felix.get(felix_name)
        stored = unenforced_fields(felix_config.spec) if felix_config is not None else []
        if stored:
            translator._stored_only(f"FelixConfiguration {felix_name}: stored, not enforced by Seawall: {', '.join(stored)}")
    policies = sorted((translator.policy(p) for p in untracked_gnps), key=policy_sort_key)
    by_name = {p.metadata.name: p for p in untracked_gnps}

    local = {n: h for n, h in snapshot.hep.items() if h.spec.node == node}
    owners = resolve_interfaces(local, interfaces)

    iface_policies: list[InterfacePolicy] = []
    heps_of: dict[str, str] = {}
    for iface, hep_name in sorted(owners.items()):
        labels = _labels(local[hep_name])
        chosen = tuple(p for p in policies if effective_policy_selector(by_name[p.name].spec).evaluate(labels))
        heps_of[iface] = hep_name
        if chosen:
            iface_policies.append(InterfacePolicy(iface, chosen))

    used = {
        s
        for ip in iface_policies
        for p in ip.policies
        for r in (*p.ingress, *p.egress)
        for s in (*r.source.sets, *r.source.not_sets, *r.destination.sets, *r.destination.not_sets)
    }
    sets = {k: v for k, v in sorted(translator.sets.items()) if k in used}
    untracked = UntrackedState(tuple(iface_policies), sets, failsafe_in, failsafe_out)

    decisions: list[InterfaceDecisions] = []
    blocklists: list[InterfaceBlocklist] = []
    pairs = frozenset((f.protocol, f.port) for f in failsafe_in)
    for iface, hep_name in sorted(heps_of.items()):
        ip = untracked.interface(iface)
        if ip is None:
            decisions.append(InterfaceDecisions(iface, hep_name, (), (), NetSet.EMPTY))
            continue
        result = interface_eligibility(untracked, ip, memo)
        decisions.append(
            InterfaceDecisions(iface, hep_name, tuple(p.name for p in ip.policies), result.rules, result.cidrs)
        )
        if any(p.ingress for p in ip.policies):
            blocklists.append(InterfaceBlocklist(iface, result.cidrs, pairs))
    for name, hep in sorted(local.items()):
        wanted = hep.spec.interfaceName
        if _hep_unused(name, heps_of):
            if wanted and wanted != "*" and wanted not in interfaces.addresses:
                warnings.append(f"HostEndpoint {name}: interface {wanted!r} does not exist on node {node}")
            elif not wanted:
                warnings.append(f"HostEndpoint {name}: no interface of node {node} holds its expectedIPs")

    xdp = XdpDesiredState(tuple(blocklists), config.xdpEnabled, config.genericXDPEnabled)
    return DesiredState(
        untracked=untracked,
        xdp=xdp,
        config=config,
        decisions=tuple(decisions),
        not_enforced=tuple(tracked),
        warnings=tuple(warnings),
        invalid=snapshot.invalid,
        stored_only=tuple(translator.stored_only),
    )


def _hep_unused(name: str, owners: Mapping[str, str]) -> bool:
    return name not in owners.values()
