"""Calico's semantic validation rules, each error tied to its exact field path.

The pydantic models have already checked structure; here we apply the rules
libcalico-go's validator applies (wording kept where Calico has one) and
Calico's defaulting (``types``). Pure: no I/O. ``validate`` returns the
normalised resource plus warnings, or raises with every error of the document.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from typing import Any

from seawall.api import models
from seawall.api.cidr import CidrError, ParsedNet, check_set_nets, parse_net
from seawall.api.cidr_bulk import canonical_texts
from seawall.api.durations import parse_duration
from seawall.api.errors import FieldError, Warning_
from seawall.api.felix import unenforced_fields
from seawall.api.names import (
    check_interface_name,
    check_label_key,
    check_label_value,
    check_policy_name,
    check_port_name,
    check_subdomain_name,
)
from seawall.api.protocols import PORT_PROTOCOLS, protocol_number
from seawall.selector import Global, Node, Selector, SelectorSyntaxError, parse
from seawall.selector.scoping import entity_selector, policy_selector, service_account_scope

ACTIONS = ("Allow", "Deny", "Log", "Pass")
POLICY_TYPES = ("Ingress", "Egress")
IPTABLES_BACKENDS = ("Auto", "Legacy", "NFT")
LOG_SEVERITIES = ("Debug", "Info", "Warning", "Error", "Fatal")
FAILSAFE_PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_ANNOTATIONS_BYTES = 256 * 1024
NAMESPACE_LABEL = "projectcalico.org/namespace"


class _Collector:
    """Accumulates errors and warnings while walking one resource."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.warnings: list[Warning_] = []

    def error(self, path: str, reason: str, value: Any = ..., *, detail: str | None = None) -> None:
        if value is ...:
            self.errors.append(FieldError(path, reason, detail=detail))
        else:
            self.errors.append(FieldError(path, reason, value, detail=detail))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Warning_(path, message))


def validate(resource: models.Resource) -> tuple[models.Resource, list[Warning_], list[FieldError]]:
    """Check Calico's rules; return (normalised resource, warnings, errors)."""
    out = _Collector()
    _check_metadata(resource, out)
    checker = _SPEC_CHECKERS[resource.kind]
    checker(resource, out)
    if out.errors:
        return resource, out.warnings, out.errors
    return _normalise(resource), out.warnings, out.errors


# ---------------------------------------------------------------- metadata


def _check_metadata(resource: models.Resource, out: _Collector) -> None:
    meta = resource.metadata
    check_name = check_policy_name if resource.kind == "GlobalNetworkPolicy" else check_subdomain_name
    if not meta.name:
        out.error("metadata.name", "name must not be empty", meta.name)
    elif reason := check_name(meta.name):
        out.error("metadata.name", reason, meta.name)
    if resource.kind == "FelixConfiguration" and meta.name and meta.name != "default" and not meta.name.startswith("node."):
        out.error("metadata.name", "FelixConfiguration name must be 'default' or 'node.<nodename>'", meta.name)
    if meta.namespace:
        out.error("metadata.namespace", f"{resource.kind} is cluster-scoped and cannot have a namespace", meta.namespace)
    for key, value in (meta.labels or {}).items():
        path = f"metadata.labels.{key}"
        if reason := check_label_key(key):
            out.error(path, reason, key)
        if reason := check_label_value(value):
            out.error(path, reason, value)
        if key == NAMESPACE_LABEL and resource.kind == "GlobalNetworkSet":
            out.error(path, f"{NAMESPACE_LABEL} is not a valid label name", key)
    if meta.annotations:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.annotations.items())
        if size > MAX_ANNOTATIONS_BYTES:
            out.error("metadata.annotations", f"total size of annotations is too large by {size - MAX_ANNOTATIONS_BYTES} bytes")
        for key in meta.annotations:
            if reason := check_label_key(key):
                out.error(f"metadata.annotations.{key}", reason, key)


# ---------------------------------------------------------------- HostEndpoint


def _check_host_endpoint(resource: models.HostEndpoint, out: _Collector) -> None:
    spec = resource.spec
    if not spec.node:
        out.error("spec.node", "no node has been specified")
    elif reason := check_subdomain_name(spec.node):
        out.error("spec.node", reason.replace("name", "node name", 1), spec.node)
    if spec.interfaceName:
        if reason := check_interface_name(spec.interfaceName):
            out.error("spec.interfaceName", reason, spec.interfaceName)
    elif not spec.expectedIPs:
        out.error("spec", "no interface or expected IPs have been specified")
    for index, ip in enumerate(spec.expectedIPs or []):
        try:
            parsed = parse_net(ip, strict=False)
        except CidrError:
            out.error(f"spec.expectedIPs[{index}]", "invalid IP address", ip)
            continue
        if "/" in ip:
            out.error(f"spec.expectedIPs[{index}]", "must be an IP address, not a CIDR", ip)
        del parsed
    for index, profile in enumerate(spec.profiles or []):
        if reason := check_subdomain_name(profile):
            out.error(f"spec.profiles[{index}]", reason.replace("name", "profile name", 1), profile)
    for index, port in enumerate(spec.ports or []):
        path = f"spec.ports[{index}]"
        if reason := check_port_name(port.name):
            out.error(f"{path}.name", reason, port.name)
        number = protocol_number(port.protocol)
        if number is None:
            out.error(f"{path}.protocol", "invalid protocol", port.protocol)
        elif number not in PORT_PROTOCOLS:
            out.error(f"{path}.protocol", "EndpointPort protocol does not support ports.", port.protocol)
        if not 1 <= port.port <= 65535:
            out.error(f"{path}.port", "port must be between 1 and 65535", port.port)


# ---------------------------------------------------------------- GlobalNetworkSet


CATCH_ALL_WARNING = (
    "catch-all CIDR: every source matches, so everything but the failsafe ports "
    "will be dropped on the interfaces this blocks"
)


def _check_network_set(resource: models.GlobalNetworkSet, out: _Collector) -> None:
    """One bulk pass finds the nets already in canonical form (``cidr_bulk``: a 1M-net
    set of /24s in ~0.8 s, not ~60 s of ``ipaddress``); only the others are parsed,
    for their error or their host-bits warning."""
    nets = resource.spec.nets or []
    texts = canonical_texts(nets)
    bad = check_set_nets([net for net, text in zip(nets, texts, strict=True) if text is None])
    if bad:
        where = [index for index, text in enumerate(texts) if text is None]
        for position, value, reason in bad:
            out.error(f"spec.nets[{where[position]}]", reason, value)
        return
    _warn_set_nets(nets, texts, out)


def _warn_set_nets(nets: list[str], texts: list[str | None], out: _Collector) -> None:
    """Catch-all and host-bits warnings: canonical nets need no parsing; of the
    others only those with a '/' that is not /32 or /128 are parsed."""
    for index, (net, text) in enumerate(zip(nets, texts, strict=True)):
        if text == net:
            if net.endswith("/0"):
                out.warn(f"spec.nets[{index}]", f"{net}: {CATCH_ALL_WARNING}")
            continue
        if type(net) is not str or "/" not in net or net.endswith("/128") or (net.endswith("/32") and ":" not in net):
            continue  # a full-length prefix has no host bits (an IPv6 /32 can)
        try:
            parsed = parse_net(net, strict=False)
        except CidrError:
            continue
        path = f"spec.nets[{index}]"
        if parsed.network.prefixlen == 0:
            out.warn(path, f"{net}: {CATCH_ALL_WARNING}")
        address = net.partition("/")[0]
        if ipaddress.ip_address(address) != parsed.network.network_address:
            out.warn(path, f"{net} has host bits set; it is stored and enforced as {parsed.network}")


# ---------------------------------------------------------------- GlobalNetworkPolicy


def _check_policy(resource: models.GlobalNetworkPolicy, out: _Collector) -> None:
    spec = resource.spec
    if spec.tier not in (None, "", "default"):
        out.error("spec.tier", "tier does not exist (Seawall supports only the 'default' tier)", spec.tier)
    if spec.order is not None and not math.isfinite(spec.order):
        out.error("spec.order", "order must be a finite number", spec.order)
    if spec.selector:
        _check_selector("spec.selector", spec.selector, out)
    _check_policy_scoping(spec, out)
    for index, hint in enumerate(spec.performanceHints or []):
        if hint != "AssumeNeededOnEveryNode":
            out.error(f"spec.performanceHints[{index}]", "unknown performance hint (expected 'AssumeNeededOnEveryNode')", hint)
    seen: set[str] = set()
    for index, kind in enumerate(spec.types or []):
        if kind not in POLICY_TYPES:
            out.error(f"spec.types[{index}]", "type must be 'Ingress' or 'Egress'", kind)
        elif kind in seen:
            out.error(f"spec.types[{index}]", f"'{kind}' type specified more than once", kind)
        seen.add(kind)
    if spec.doNotTrack and spec.preDNAT:
        out.error("spec.preDNAT", "PreDNAT and DoNotTrack cannot both be true, for a given PolicySpec", True)
    if (spec.doNotTrack or spec.preDNAT) and not spec.applyOnForward:
        out.error(
            "spec.applyOnForward",
            "ApplyOnForward must be true if either PreDNAT or DoNotTrack is true, for a given PolicySpec",
            spec.applyOnForward if spec.applyOnForward is not None else False,
        )
    if spec.preDNAT:
        if spec.egress:
            out.error("spec.egress", "PreDNAT PolicySpec cannot have any Egress rules")
        if "Egress" in (spec.types or []):
            out.error("spec.types", "PreDNAT PolicySpec cannot have 'egress' Type")
    for direction in ("ingress", "egress"):
        for index, rule in enumerate(getattr(spec, direction) or []):
            _check_rule(f"spec.{direction}[{index}]", rule, out, direction)
    if not spec.doNotTrack:
        out.warn(
            "spec.doNotTrack",
            "policy is not doNotTrack: it is stored, but this version of Seawall enforces only doNotTrack policy",
        )


def _check_selector(path: str, text: str, out: _Collector, *, allow_global: bool = False) -> Selector | None:
    try:
        selector = parse(text)
    except SelectorSyntaxError as exc:
        caret = "\n".join("    " + line for line in exc.caret_lines())
        out.error(path, f"invalid selector: {exc.reason} at position {exc.position}", text, detail=caret)
        return None
    if selector.uses_global() and not allow_global:
        out.error(path, "global() can only be used in an EntityRule namespaceSelector", text)
        return None
    return selector


def _scoped(path: str, text: str, build: Callable[[], Node], out: _Collector) -> str | None:
    """The canonical effective selector ``build`` makes, or None (error reported)
    when a prefixed label name grows past Calico's 512-character limit."""
    try:
        return Selector(build()).canonical
    except ValueError as exc:
        out.error(path, f"invalid selector once scoped: {exc}", text)
        return None


POLICY_NAMESPACE_WARNING = (
    "selects Kubernetes namespaces: the policy applies only to endpoints in a selected namespace; "
    "host endpoints are in none, so this policy applies to no host endpoint here"
)
POLICY_SERVICE_ACCOUNT_WARNING = (
    "selects Kubernetes service accounts: the policy applies only to endpoints running as a selected "
    "service account; host endpoints have none, so this policy applies to no host endpoint here"
)


def _check_policy_scoping(spec: models.GlobalNetworkPolicySpec, out: _Collector) -> None:
    """spec.namespaceSelector / spec.serviceAccountSelector: Calico AND's them
    (labels prefixed pcns. / pcsa.) into the policy's selector."""
    parsed: dict[str, Selector] = {}
    for field, why in (("namespaceSelector", POLICY_NAMESPACE_WARNING),
                       ("serviceAccountSelector", POLICY_SERVICE_ACCOUNT_WARNING)):
        text = getattr(spec, field)
        if not text:
            continue
        selector = _check_selector(f"spec.{field}", text, out)
        if selector is not None:
            parsed[field] = selector
            out.warn(f"spec.{field}", why)
    if not parsed:
        return
    try:
        base = parse(spec.selector or "").root
    except SelectorSyntaxError:
        return  # already reported
    ns, sa = parsed.get("namespaceSelector"), parsed.get("serviceAccountSelector")
    _scoped("spec.selector", spec.selector or "", lambda: policy_selector(
        base, namespace_selector=ns.root if ns else None, service_account_selector=sa.root if sa else None), out)


HTTP_WARNING = (
    "matches HTTP methods/paths, which needs Calico's application layer policy (an L7 proxy); "
    "Seawall sees only L3/L4, so this rule never matches here (it allows nothing)"
)


def _check_http(path: str, rule: models.Rule, protocol: int | None, out: _Collector) -> None:
    if rule.http is None:
        return
    if rule.action != "Allow":
        out.error(f"{path}.http", "only valid for Allow rules")
    if rule.protocol is not None and protocol is not None and protocol != 6:
        out.error(f"{path}.protocol", "rules that specify HTTP fields must set protocol to TCP or empty", rule.protocol)
    for index, entry in enumerate(rule.http.paths or []):
        if (entry.exact is None) == (entry.prefix is None):
            out.error(f"{path}.http.paths[{index}]", "a path must set exactly one of exact or prefix")
    out.warn(f"{path}.http", HTTP_WARNING)


def _check_rule(path: str, rule: models.Rule, out: _Collector, direction: str = "ingress") -> None:
    if rule.action not in ACTIONS:
        out.error(f"{path}.action", "action must be one of Allow, Deny, Log, Pass", rule.action)
    if rule.ipVersion is not None and rule.ipVersion not in (4, 6):
        out.error(f"{path}.ipVersion", "ipVersion must be 4 or 6", rule.ipVersion)
    protocol = _check_protocol(f"{path}.protocol", rule.protocol, out)
    _check_http(path, rule, protocol, out)
    _check_protocol(f"{path}.notProtocol", rule.notProtocol, out)
    _check_icmp(path, rule, protocol, out)
    families: set[int] = set()
    for side in ("source", "destination"):
        entity = getattr(rule, side)
        if entity is not None:
            families |= _check_entity(f"{path}.{side}", entity, protocol, rule.ipVersion, out)
            _check_workload_fields(f"{path}.{side}", entity, out, ingress_destination=(direction, side) == ("ingress", "destination"))
    if len(families) > 1:
        out.error(path, "rule contains both IPv4 and IPv6 CIDRs")
    if rule.action == "Deny":
        _warn_deny_rule(path, rule, out)
    if rule.metadata and rule.metadata.annotations:
        for key in rule.metadata.annotations:
            if reason := check_label_key(key):
                out.error(f"{path}.metadata.annotations.{key}", reason, key)


_MATCH_FIELDS = ("protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "http")
_ENTITY_FIELDS = ("nets", "notNets", "selector", "notSelector", "ports", "notPorts",
                  "namespaceSelector", "serviceAccounts", "services")


def _warn_deny_rule(path: str, rule: models.Rule, out: _Collector) -> None:
    source = rule.source
    for index, net in enumerate((source.nets or []) if source else []):
        if isinstance(net, str) and net.endswith("/0"):
            out.warn(f"{path}.source.nets[{index}]", f"{net}: {CATCH_ALL_WARNING}")
    has_match = any(getattr(rule, name) is not None for name in _MATCH_FIELDS) or any(
        getattr(entity, name) for entity in (rule.source, rule.destination) if entity is not None for name in _ENTITY_FIELDS
    )
    if not has_match:
        out.warn(path, "Deny rule has no match criteria: it drops all traffic but the failsafe ports")


def _check_protocol(path: str, value: int | str | None, out: _Collector) -> int | None:
    if value is None:
        return None
    number = protocol_number(value)
    if number is None:
        out.error(path, "protocol must be one of TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255", value)
    return number


def _check_icmp(path: str, rule: models.Rule, protocol: int | None, out: _Collector) -> None:
    for field in ("icmp", "notICMP"):
        icmp = getattr(rule, field)
        if icmp is None:
            continue
        if protocol not in (1, 58):
            out.error(f"{path}.{field}", "rules that specify ICMP fields must set protocol to ICMP")
        if icmp.code is not None and icmp.type is None:
            out.error(f"{path}.{field}.code", "ICMP code specified without an ICMP type", icmp.code)
        if icmp.type is not None and not 0 <= icmp.type <= 254:
            out.error(f"{path}.{field}.type", "ICMP type must be between 0 and 254", icmp.type)
        if icmp.code is not None and not 0 <= icmp.code <= 255:
            out.error(f"{path}.{field}.code", "ICMP code must be between 0 and 255", icmp.code)
    if protocol == 1 and rule.ipVersion == 6:
        out.error(f"{path}.ipVersion", "must set ipversion to '4' with protocol icmp", 6)
    if protocol == 58 and rule.ipVersion == 4:
        out.error(f"{path}.ipVersion", "must set ipversion to '6' with protocol icmpv6", 4)


def _check_entity(
    path: str, entity: models.EntityRule, protocol: int | None, ip_version: int | None, out: _Collector
) -> set[int]:
    families: set[int] = set()
    for field in ("nets", "notNets"):
        for index, net in enumerate(getattr(entity, field) or []):
            item = f"{path}.{field}[{index}]"
            try:
                parsed: ParsedNet = parse_net(net, strict=True)
            except CidrError as exc:
                out.error(item, str(exc), net)
                continue
            families.add(parsed.version)
            if ip_version is not None and parsed.version != ip_version:
                out.error(item, "rule IP version doesn't match CIDR version", net)
            if field == "notNets" and parsed.network.prefixlen == 0:
                out.error(item, "catch-all CIDR in negation creates logical contradiction (matches no traffic)", net)
    for field in ("selector", "notSelector"):
        text = getattr(entity, field)
        if text:
            _check_selector(f"{path}.{field}", text, out)
    for field in ("ports", "notPorts"):
        ports = getattr(entity, field)
        if not ports:
            continue
        if protocol not in PORT_PROTOCOLS:
            out.error(f"{path}.{field}", "rules that specify ports must set protocol to TCP or UDP or SCTP")
        for index, port in enumerate(ports):
            if reason := _check_port(port):
                out.error(f"{path}.{field}[{index}]", reason, port)
    return families


NAMESPACE_WARNING = (
    "namespaceSelector selects Kubernetes namespaces; no host endpoint or GlobalNetworkSet is in one, "
    "so this rule matches nothing here"
)
SERVICE_ACCOUNTS_WARNING = (
    "serviceAccounts matches Kubernetes service accounts; no host endpoint or GlobalNetworkSet has one, "
    "so this rule matches nothing here"
)
SERVICES_WARNING = (
    "services matches the endpoints of a Kubernetes service; there are none here, "
    "so this rule matches nothing (it is ignored)"
)


def _check_workload_fields(path: str, entity: models.EntityRule, out: _Collector, *, ingress_destination: bool) -> None:
    """namespaceSelector, serviceAccounts, services: Calico's checks, and a warning
    saying what each means on host endpoints."""
    ns: Selector | None = None
    if entity.namespaceSelector:
        ns = _check_selector(f"{path}.namespaceSelector", entity.namespaceSelector, out, allow_global=True)
        if ns is not None and ns.uses_global() and not isinstance(ns.root, Global):
            out.error(f"{path}.namespaceSelector", "global() cannot be combined with other selectors", entity.namespaceSelector)
            ns = None
    sa_selector: Selector | None = None
    sa = entity.serviceAccounts
    if sa is not None and sa.selector:
        sa_selector = _check_selector(f"{path}.serviceAccounts.selector", sa.selector, out)
    if ns is not None or (sa is not None and (sa_selector is not None or sa.names)):
        try:
            selector = parse(entity.selector or "").root if entity.selector else None
        except SelectorSyntaxError:
            selector = None  # already reported
        names = tuple(sa.names or ()) if sa is not None else ()
        canonical = _scoped(f"{path}.selector", entity.selector or "", lambda: _entity_node(selector, ns, sa_selector, names), out)
        effective = f" (effective selector {canonical})" if canonical else ""
        if ns is not None and not isinstance(ns.root, Global):
            out.warn(f"{path}.namespaceSelector", NAMESPACE_WARNING + effective)
        if sa is not None and (sa_selector is not None or sa.names):
            out.warn(f"{path}.serviceAccounts", SERVICE_ACCOUNTS_WARNING + effective)
    services = entity.services
    if services is not None:
        if entity.ports or entity.notPorts:
            out.error(f"{path}.ports" if entity.ports else f"{path}.notPorts", "cannot specify ports with a service selector")
        if ingress_destination:
            out.error(f"{path}.services", "not allowed in ingress rule destination")
        if not services.namespace:
            out.error(f"{path}.services.namespace", "must specify a namespace")
        out.warn(f"{path}.services", SERVICES_WARNING)


def _entity_node(selector: Node | None, ns: Selector | None, sa: Selector | None, names: tuple[str, ...]) -> Node:
    node = entity_selector(
        selector,
        namespace_selector=ns.root if ns is not None else None,
        service_accounts=service_account_scope(sa.root if sa is not None else None, names),
    )
    assert node is not None  # there is a namespace or service-account scope
    return node


def _check_port(port: int | str) -> str | None:
    """A port is a number, a "start:end" range, or a named port."""
    if isinstance(port, int):
        return None if 0 <= port <= 65535 else "port must be between 0 and 65535"
    if ":" in port:
        start, _, end = port.partition(":")
        if not (_ascii_number(start) and _ascii_number(end)):
            return "port range must be 'start:end' with numbers"
        low, high = int(start), int(end)
        if high > 65535:
            return "port must be between 0 and 65535"
        if low > high:
            return "port range start must not be greater than its end"
        return None
    if _ascii_number(port):
        return None if int(port) <= 65535 else "port must be between 0 and 65535"
    if port.isdigit():  # '２２' or '²': digits int() may read, or may not; never a port
        return "port must be written in ASCII digits"
    return check_port_name(port)


def _ascii_number(text: str) -> bool:
    """ASCII digits, at most 10 of them (str.isdigit alone accepts '²', which int() refuses)."""
    return text.isascii() and text.isdigit() and len(text) <= 10


# ---------------------------------------------------------------- FelixConfiguration


def _is_host_address(value: str) -> bool:
    """An IPv4/IPv6 literal or a DNS host name (Felix's ``host-address`` parameter type)."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return check_subdomain_name(value.lower()) is None


def _check_felix_configuration(resource: models.FelixConfiguration, out: _Collector) -> None:
    spec = resource.spec
    stored = unenforced_fields(spec)
    if stored:
        out.warn("spec", f"stored, not enforced by Seawall: {', '.join(stored)}")
    for field in ("xdpRefreshInterval", "iptablesRefreshInterval"):
        value = getattr(spec, field)
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as exc:
                out.error(f"spec.{field}", str(exc), value)
    if spec.iptablesBackend is not None and spec.iptablesBackend not in IPTABLES_BACKENDS:
        out.error("spec.iptablesBackend", "must be one of Auto, Legacy, NFT", spec.iptablesBackend)
    if spec.logSeverityScreen is not None and spec.logSeverityScreen not in LOG_SEVERITIES:
        out.error("spec.logSeverityScreen", f"must be one of {', '.join(LOG_SEVERITIES)}", spec.logSeverityScreen)
    for field in ("prometheusMetricsPort", "healthPort"):
        port = getattr(spec, field)
        if port is not None and not 1 <= port <= 65535:
            out.error(f"spec.{field}", "port must be between 1 and 65535", port)
    if spec.healthHost is not None and not _is_host_address(spec.healthHost):
        out.error("spec.healthHost", "must be an IP address or a host name", spec.healthHost)
    for field in ("failsafeInboundHostPorts", "failsafeOutboundHostPorts"):
        if getattr(spec, field) == []:
            out.warn(
                f"spec.{field}",
                "empty: no failsafe ports, so a policy can lock you out of the host (SSH, DHCP, ...)",
            )
        for index, entry in enumerate(getattr(spec, field) or []):
            path = f"spec.{field}[{index}]"
            if entry.protocol not in FAILSAFE_PROTOCOLS:
                out.error(f"{path}.protocol", "protocol must be 'TCP' or 'UDP' or 'SCTP'.", entry.protocol)
            if not 1 <= entry.port <= 65535:
                out.error(f"{path}.port", "port must be between 1 and 65535", entry.port)
            if entry.net is not None:
                try:
                    parse_net(entry.net, strict=True)
                except CidrError as exc:
                    out.error(f"{path}.net", str(exc), entry.net)


_SPEC_CHECKERS: dict[str, Callable[[Any, _Collector], None]] = {
    "HostEndpoint": _check_host_endpoint,
    "GlobalNetworkSet": _check_network_set,
    "GlobalNetworkPolicy": _check_policy,
    "FelixConfiguration": _check_felix_configuration,
}


# ---------------------------------------------------------------- defaulting


def default_policy_types(spec: models.GlobalNetworkPolicySpec) -> list[str]:
    """Calico's defaulting: Ingress unless there are only egress rules; both if both."""
    if spec.types:
        return list(spec.types)
    has_in, has_out = bool(spec.ingress), bool(spec.egress)
    if has_out and not has_in:
        return ["Egress"]
    if has_out and has_in:
        return ["Ingress", "Egress"]
    return ["Ingress"]


def _normalise(resource: models.Resource) -> models.Resource:
    if isinstance(resource, models.GlobalNetworkPolicy) and not resource.spec.types:
        spec = resource.spec.model_copy(update={"types": default_policy_types(resource.spec)})
        return resource.model_copy(update={"spec": spec})
    return resource
