"""The status the agent publishes (``status.json``, ``seawall status``), as a type.

Pure. ``AgentStatus`` is a frozen value: the agent builds it from the
calculation's decisions and the two dataplanes' reports (``interfaces_status``,
``not_enforced``, ``with_counters``) and evolves it with
``dataclasses.replace``; ``seawall status``, ``seawall explain`` and the
metrics read its fields. The JSON form is written and read in one place,
``AgentStatus.to_json`` / ``AgentStatus.from_json``. Sizes, never member lists:
with a million-entry set the object stays a few KB (``seawall explain`` shows
members on demand).

Reading is tolerant, as a status written by an older or newer agent must still
render what it has: every field is optional (``None``: absent from the file,
and not written back), fields this version does not know are kept in
``extra`` (per level, written back after the known ones), and a list entry
that is not the object an agent writes is kept as ``Unparsed``. Only the
containers a reader walks into are checked: ``from_json`` raises
``MalformedStatus`` naming the first one of the wrong type (``strict=False``
replaces them by empty values instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.mode import Mode
from seawall.dataplane.skipped import Skipped, SkippedValue
from seawall.dataplane.xdp.reference import Outcome
from seawall.dataplane.xdp.report import InterfaceReport
from seawall.policy import DesiredState, InterfaceDecisions, RuleDecision

NO_POLICY = "no doNotTrack ingress policy applies"
NOT_ENFORCED = "doNotTrack is false: only untracked (doNotTrack) policies are enforced by this version"
RAW_ONLY_MODE = "only egress rules apply here: the iptables raw tier enforces"
#: the kinds of drift the raw tier repairs (``rawRepairs``), in the order they are shown
RAW_REPAIR_KINDS = ("rules", "setHeaders", "setContents")


class MalformedStatus(ValueError):
    """The status object does not have the shape an agent writes."""


def _no_extra() -> Mapping[str, Any]:
    return {}


# ---------------------------------------------------------------- the types


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A list or mapping entry of a status file that is not the object an agent
    writes (a newer agent's, or a hand-edited file): kept as it is, to be shown."""

    value: Any


@dataclass(frozen=True, slots=True)
class Verdicts:
    """Packets (or bytes) by verdict, as ``seawall status`` shows them (``counters``)."""

    dropped: int = 0
    passed: int = 0
    failsafe: int = 0
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    def to_json(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "passed": self.passed, "failsafe": self.failsafe, **self.extra}


ZERO = Verdicts()


@dataclass(frozen=True, slots=True)
class Drops:
    """What the raw tier's DROP lines counted (one family, or all)."""

    dropped: int = 0
    dropped_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "droppedBytes": self.dropped_bytes}


@dataclass(frozen=True, slots=True)
class RawCounters:
    """``rawCounters``: the raw tier's drops on one interface, in all and per family."""

    dropped: int = 0
    dropped_bytes: int = 0
    families: Mapping[str, Drops] = field(default_factory=dict)  # "ipv4" | "ipv6" -> drops
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    def to_json(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "droppedBytes": self.dropped_bytes,
                "families": {fam: d.to_json() for fam, d in self.families.items()}, **self.extra}


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """Where one ingress rule *is* enforced on one interface (``rules[]``)."""

    policy: str | None = None
    index: int | None = None
    action: str | None = None
    in_xdp: bool = False
    xdp_cidrs: int | None = None  # CIDRs of the rule in this interface's XDP maps
    eligible_cidrs: int | None = None  # CIDRs the calculation found XDP-eligible
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "policy", self.policy)
        _put(out, "index", self.index)
        _put(out, "action", self.action)
        out["inXdp"] = self.in_xdp
        _put(out, "xdpCidrs", self.xdp_cidrs)
        _put(out, "eligibleCidrs", self.eligible_cidrs)
        _put(out, "reason", self.reason)
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class RawStatus:
    """The iptables raw tier on one interface (``raw``)."""

    backend: str | None = None  # "nft" | "legacy"
    programmed: bool = True
    chains: tuple[str, ...] = ()
    ipset_members: Mapping[str, int] = field(default_factory=dict)  # ipset name -> members
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "backend", self.backend)
        out.update(programmed=self.programmed, chains=list(self.chains), ipsetMembers=dict(self.ipset_members))
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class InterfaceStatus:
    """One interface a HostEndpoint of this node claims (``interfaces[]``)."""

    name: str
    host_endpoint: str | None = None
    mode: Mode | str | None = None  # a str: a mode this version does not know (a newer agent's)
    reason: str | None = None
    policies: tuple[str, ...] = ()
    xdp_entries: Mapping[str, int] = field(default_factory=dict)  # "ipv4" | "ipv6" -> CIDRs in the XDP maps
    rules: tuple[RuleStatus | Unparsed, ...] = ()
    raw: RawStatus | None = None  # None: the raw tier has nothing here (written as null)
    errors: tuple[str, ...] = ()
    #: values a tier skipped as not CIDRs (they slipped past validation and the
    #: calculation): tier -> how many, and the first few with why
    skipped: Mapping[str, Skipped | Unparsed] = field(default_factory=dict)
    counters: Verdicts = ZERO
    counters_live: bool = False  # ``seawall status --bpffs``: counters read from the pinned maps
    raw_counters: RawCounters | None = None
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        _put(out, "hostEndpoint", self.host_endpoint)
        _put(out, "mode", None if self.mode is None else str(self.mode))
        _put(out, "reason", self.reason)
        out["policies"] = list(self.policies)
        out["xdpEntries"] = dict(self.xdp_entries)
        out["rules"] = [_entry_json(r) for r in self.rules]
        out["raw"] = self.raw.to_json() if self.raw is not None else None
        out["errors"] = list(self.errors)
        out["skipped"] = {tier: _skipped_json(s) for tier, s in self.skipped.items()}
        out["counters"] = self.counters.to_json()
        if self.counters_live:
            out["countersLive"] = True
        if self.raw_counters is not None:
            out["rawCounters"] = self.raw_counters.to_json()
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class NotEnforced:
    """A stored policy this version does not enforce, and why (``notEnforced[]``)."""

    policy: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "policy", self.policy)
        _put(out, "reason", self.reason)
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class InvalidResource:
    """A stored resource that fails validation and what was done (``invalid[]``)."""

    kind: str | None = None
    name: str | None = None
    reason: str | None = None
    action: str | None = None  # "ignored" | "kept the last valid version"
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> InvalidResource:
        """From one of ``ValidatedResources.update``'s entries ({kind, name, reason, action})."""
        known = ("kind", "name", "reason", "action")
        return cls(kind=_str(entry.get("kind")), name=_str(entry.get("name")), reason=_str(entry.get("reason")),
                   action=_str(entry.get("action")), extra={k: v for k, v in entry.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("kind", "name", "reason", "action"):
            _put(out, key, getattr(self, key))
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """The whole status. ``None``: not known yet (before the first reconcile, or
    from an older agent's file), and then not written; ``last_error``,
    ``metrics_error`` and ``health_error`` are always written (null: none)."""

    node: str | None = None
    in_sync: bool = False
    revision: int | None = None
    interfaces: tuple[InterfaceStatus, ...] = ()
    not_enforced: tuple[NotEnforced | Unparsed, ...] | None = None
    warnings: tuple[str, ...] | None = None
    invalid: tuple[InvalidResource | Unparsed, ...] | None = None
    last_apply_time: str | None = None  # ISO 8601, UTC, milliseconds
    last_reconcile_ms: float | None = None
    last_error: str | None = None
    last_error_time: str | None = None
    xdp_refresh_interval: float | None = None  # seconds; 0: never
    iptables_refresh_interval: float | None = None
    raw_repairs: Mapping[str, int] | None = None  # RAW_REPAIR_KINDS -> drift found and repaired
    metrics_error: str | None = None
    health_error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_no_extra)

    def interface(self, name: str) -> InterfaceStatus | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``status.json`` (JSON-ready: str, int, float, bool, None, list, dict)."""
        out: dict[str, Any] = {}
        _put(out, "node", self.node)
        out["inSync"] = self.in_sync
        _put(out, "revision", self.revision)
        out["interfaces"] = [i.to_json() for i in self.interfaces]
        if self.not_enforced is not None:
            out["notEnforced"] = [_entry_json(e) for e in self.not_enforced]
        if self.warnings is not None:
            out["warnings"] = list(self.warnings)
        if self.invalid is not None:
            out["invalid"] = [_entry_json(e) for e in self.invalid]
        _put(out, "lastApplyTime", self.last_apply_time)
        _put(out, "lastReconcileMs", self.last_reconcile_ms)
        out["lastError"] = self.last_error
        _put(out, "lastErrorTime", self.last_error_time)
        _put(out, "xdpRefreshInterval", self.xdp_refresh_interval)
        _put(out, "iptablesRefreshInterval", self.iptables_refresh_interval)
        if self.raw_repairs is not None:
            out["rawRepairs"] = dict(self.raw_repairs)
        out["metricsError"] = self.metrics_error
        out["healthError"] = self.health_error
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, *, strict: bool = True) -> AgentStatus:
        """The status a JSON object describes (see the module's doc for what is
        tolerated). Raises MalformedStatus naming the first field of the wrong
        type, unless ``strict`` is False: then such a field reads as empty (an
        interface that is not an object is left out), as ``seawall status``
        draws it."""
        if strict:
            check_shape(data)
        elif not isinstance(data, Mapping):
            return cls()
        return _read_status(data)


# ---------------------------------------------------------------- builders (what the agent calls)


def _rule_status(rule: RuleDecision, attached: bool) -> RuleStatus:
    """Where the rule *is* enforced: an eligible rule on an interface without
    an XDP program runs in raw only, and says so."""
    in_xdp = rule.in_xdp and attached
    reason = rule.reason
    if rule.in_xdp and not attached:
        reason = f"raw only: this interface has no XDP program (eligible: {rule.reason})"
    return RuleStatus(policy=rule.policy, index=rule.index, action=rule.action, in_xdp=in_xdp,
                      xdp_cidrs=len(rule.cidrs) if in_xdp else 0, eligible_cidrs=len(rule.cidrs), reason=reason)


def interface_status(decision: InterfaceDecisions, xdp: InterfaceReport | None,
                     raw: RawInterfaceReport | None) -> InterfaceStatus:
    """One interface from its decisions and the two tiers' reports (zero counters)."""
    if xdp is not None:
        mode, reason = xdp.mode, xdp.reason
    elif raw is not None:
        mode, reason = Mode.RAW, RAW_ONLY_MODE
    else:
        mode, reason = Mode.NONE, NO_POLICY
    attached = mode.in_xdp
    return InterfaceStatus(
        name=decision.name,
        host_endpoint=decision.host_endpoint,
        mode=mode,
        reason=reason,
        policies=tuple(decision.policies),
        xdp_entries=dict(xdp.entries) if xdp and attached else {},
        rules=tuple(_rule_status(r, attached) for r in decision.rules),
        raw=RawStatus(backend=raw.backend, programmed=raw.programmed, chains=tuple(raw.chains),
                      ipset_members=dict(raw.ipset_members)) if raw else None,
        errors=tuple(xdp.errors if xdp else ()) + tuple(raw.errors if raw else ()),
        skipped={tier: report.skipped for tier, report in (("xdp", xdp), ("raw", raw))
                 if report is not None and report.skipped},
    )


def interfaces_status(desired: DesiredState, xdp_reports: Mapping[str, InterfaceReport],
                      raw_reports: Mapping[str, RawInterfaceReport]) -> tuple[InterfaceStatus, ...]:
    """Every interface the calculation decided for, in its order (zero counters:
    ``with_counters`` adds them)."""
    return tuple(interface_status(d, xdp_reports.get(d.name), raw_reports.get(d.name)) for d in desired.decisions)


def not_enforced(desired: DesiredState) -> tuple[NotEnforced, ...]:
    return tuple(NotEnforced(policy=name, reason=NOT_ENFORCED) for name in desired.not_enforced)


def invalid_resources(entries: Iterable[Mapping[str, Any]]) -> tuple[InvalidResource, ...]:
    """``ValidatedResources.update``'s invalid entries ({kind, name, reason, action}) as the status lists them."""
    return tuple(InvalidResource.of(e) for e in entries)


def verdict_totals(values: Mapping[Outcome, int]) -> Verdicts:
    """XDP outcome counters -> dropped / passed / failsafe, as ``seawall status`` shows them."""
    dropped, failsafe = values.get(Outcome.DROP, 0), values.get(Outcome.FAILSAFE, 0)
    passed = sum(n for outcome, n in values.items() if outcome not in (Outcome.DROP, Outcome.FAILSAFE))
    return Verdicts(dropped=dropped, passed=passed, failsafe=failsafe)


def with_counters(interfaces: tuple[InterfaceStatus, ...], xdp: Mapping[str, Verdicts],
                  raw_drops: Mapping[str, Mapping[str, tuple[int, int]]] | None) -> tuple[InterfaceStatus, ...]:
    """The interfaces with the counters the agent read.

    ``xdp``: interface -> its XDP program's packets by verdict (``counters``);
    an interface not in it keeps its counters. ``raw_drops``: {interface:
    {"ipv4"|"ipv6": (packets, bytes)}} from the DROP line of the raw tier's
    chains (``RawDataplane.interface_drops``); None when they could not be read
    (every interface keeps its ``raw_counters``). Otherwise every interface with
    raw drops or a raw tier gets ``raw_counters`` (its raw drops per family and
    in all; others none); an ``iptables-raw`` interface also shows them as its
    ``counters.dropped`` (the XDP counters it would otherwise show do not
    exist). On an XDP interface ``counters`` stays the XDP program's and
    ``raw_counters`` adds what raw dropped behind it (rules XDP cannot hold)."""
    out = []
    for iface in interfaces:
        counters = xdp.get(iface.name, iface.counters)
        raw_counters = iface.raw_counters
        if raw_drops is not None:
            per_family = raw_drops.get(iface.name)
            if per_family is None and iface.raw is None:
                raw_counters = None
            else:
                families = {fam: Drops(p, b) for fam, (p, b) in sorted((per_family or {}).items())}
                raw_counters = RawCounters(dropped=sum(d.dropped for d in families.values()),
                                           dropped_bytes=sum(d.dropped_bytes for d in families.values()),
                                           families=families)
                if iface.mode == Mode.RAW:
                    counters = replace(counters, dropped=raw_counters.dropped)
        if counters is not iface.counters or raw_counters is not iface.raw_counters:
            iface = replace(iface, counters=counters, raw_counters=raw_counters)
        out.append(iface)
    return tuple(out)


def raw_repairs(repairs: Mapping[str, int]) -> dict[str, int]:
    """The raw tier's repair counts (``RawDataplane.repairs``) as ``rawRepairs``: every kind, in order."""
    return {kind: int(repairs.get(kind, 0)) for kind in RAW_REPAIR_KINDS}


# ---------------------------------------------------------------- JSON: writing


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _entry_json(entry: RuleStatus | NotEnforced | InvalidResource | Unparsed) -> Any:
    return entry.value if isinstance(entry, Unparsed) else entry.to_json()


def _skipped_json(skipped: Skipped | Unparsed) -> Any:
    return skipped.value if isinstance(skipped, Unparsed) else skipped.as_status()


# ---------------------------------------------------------------- JSON: reading

_LIST_TOP = ("interfaces", "notEnforced", "warnings", "invalid")
_LIST_INTERFACE = ("policies", "rules", "errors")
_MAPPING_INTERFACE = ("xdpEntries", "raw", "counters", "skipped", "rawCounters")
_TOP = frozenset({
    "node", "inSync", "revision", "interfaces", "notEnforced", "warnings", "invalid", "lastApplyTime",
    "lastReconcileMs", "lastError", "lastErrorTime", "xdpRefreshInterval", "iptablesRefreshInterval",
    "rawRepairs", "metricsError", "healthError",
})
_INTERFACE = frozenset({
    "name", "hostEndpoint", "mode", "reason", "policies", "xdpEntries", "rules", "raw",
    "errors", "counters", "countersLive", "skipped", "rawCounters",
})
_RULE = frozenset({"policy", "index", "action", "inXdp", "xdpCidrs", "eligibleCidrs", "reason"})
_RAW = frozenset({"backend", "programmed", "chains", "ipsetMembers"})
_VERDICTS = frozenset({"dropped", "passed", "failsafe"})
_RAW_COUNTERS = frozenset({"dropped", "droppedBytes", "families"})


def check_shape(data: Any) -> None:
    """Raise MalformedStatus naming the first field of the wrong type (unknown
    fields are fine; only the containers a reader walks into are checked)."""
    if not isinstance(data, Mapping):
        raise MalformedStatus("not a JSON object")
    for name in _LIST_TOP:
        if data.get(name) is not None and not isinstance(data[name], list):
            raise MalformedStatus(f"{name} must be a list, not {type(data[name]).__name__}")
    for index, entry in enumerate(data.get("interfaces") or ()):
        if not isinstance(entry, Mapping):
            raise MalformedStatus(f"interfaces[{index}] must be an object, not {type(entry).__name__}")
        for name in _LIST_INTERFACE:
            if entry.get(name) is not None and not isinstance(entry[name], list):
                raise MalformedStatus(f"interfaces[{index}].{name} must be a list, not {type(entry[name]).__name__}")
        for name in _MAPPING_INTERFACE:
            if entry.get(name) is not None and not isinstance(entry[name], Mapping):
                raise MalformedStatus(f"interfaces[{index}].{name} must be an object, not {type(entry[name]).__name__}")


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


def _str(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sizes(value: Any) -> dict[str, int]:
    """A mapping of counts; a count that is not an integer reads as 0."""
    return {str(k): _int(v) or 0 for k, v in _mapping(value).items()}


def _read_mode(value: Any) -> Mode | str | None:
    if value is None:
        return None
    try:
        return Mode(value)
    except ValueError:
        return str(value)


def _read_verdicts(value: Any) -> Verdicts:
    data = _mapping(value)
    return Verdicts(dropped=_int(data.get("dropped")) or 0, passed=_int(data.get("passed")) or 0,
                    failsafe=_int(data.get("failsafe")) or 0, extra=_extra(data, _VERDICTS))


def _read_raw_counters(value: Any) -> RawCounters | None:
    if not isinstance(value, Mapping):
        return None
    families = {str(fam): Drops(_int(v.get("dropped")) or 0, _int(v.get("droppedBytes")) or 0)
                for fam, v in _mapping(value.get("families")).items() if isinstance(v, Mapping)}
    return RawCounters(_int(value.get("dropped")) or 0, _int(value.get("droppedBytes")) or 0, families,
                       extra=_extra(value, _RAW_COUNTERS))


def _read_rule(value: Any) -> RuleStatus | Unparsed:
    if not isinstance(value, Mapping):
        return Unparsed(value)
    return RuleStatus(policy=_str(value.get("policy")), index=_int(value.get("index")), action=_str(value.get("action")),
                      in_xdp=bool(value.get("inXdp")), xdp_cidrs=_int(value.get("xdpCidrs")),
                      eligible_cidrs=_int(value.get("eligibleCidrs")), reason=_str(value.get("reason")),
                      extra=_extra(value, _RULE))


def _read_raw(value: Any) -> RawStatus | None:
    if not isinstance(value, Mapping):
        return None
    return RawStatus(backend=_str(value.get("backend")), programmed=bool(value.get("programmed", True)),
                     chains=tuple(str(c) for c in _list(value.get("chains"))),
                     ipset_members=_sizes(value.get("ipsetMembers")), extra=_extra(value, _RAW))


def _read_skipped(value: Any) -> Skipped | Unparsed:
    if not isinstance(value, Mapping):
        return Unparsed(value)
    values = tuple(SkippedValue(str(v.get("value", "?")), str(v.get("reason", "")))
                   for v in _list(value.get("values")) if isinstance(v, Mapping))
    return Skipped(_int(value.get("count")) or len(values), values)


def _read_interface(data: Mapping[str, Any]) -> InterfaceStatus:
    return InterfaceStatus(
        name=_str(data.get("name")) or "",
        host_endpoint=_str(data.get("hostEndpoint")),
        mode=_read_mode(data.get("mode")),
        reason=_str(data.get("reason")),
        policies=tuple(str(p) for p in _list(data.get("policies"))),
        xdp_entries=_sizes(data.get("xdpEntries")),
        rules=tuple(_read_rule(r) for r in _list(data.get("rules"))),
        raw=_read_raw(data.get("raw")),
        errors=tuple(str(e) for e in _list(data.get("errors"))),
        skipped={str(tier): _read_skipped(info) for tier, info in _mapping(data.get("skipped")).items()},
        counters=_read_verdicts(data.get("counters")),
        counters_live=bool(data.get("countersLive")),
        raw_counters=_read_raw_counters(data.get("rawCounters")),
        extra=_extra(data, _INTERFACE),
    )


def _read_not_enforced(value: Any) -> NotEnforced | Unparsed:
    if not isinstance(value, Mapping):
        return Unparsed(value)
    return NotEnforced(_str(value.get("policy")), _str(value.get("reason")), extra=_extra(value, frozenset({"policy", "reason"})))


def _read_invalid(value: Any) -> InvalidResource | Unparsed:
    return InvalidResource.of(value) if isinstance(value, Mapping) else Unparsed(value)


def _optional_list(data: Mapping[str, Any], key: str) -> list[Any] | None:
    value = data.get(key)
    return value if isinstance(value, list) else None


def _read_status(data: Mapping[str, Any]) -> AgentStatus:
    not_enforced_ = _optional_list(data, "notEnforced")
    warnings = _optional_list(data, "warnings")
    invalid = _optional_list(data, "invalid")
    repairs = data.get("rawRepairs")
    return AgentStatus(
        node=_str(data.get("node")),
        in_sync=bool(data.get("inSync")),
        revision=_int(data.get("revision")),
        interfaces=tuple(_read_interface(e) for e in _list(data.get("interfaces")) if isinstance(e, Mapping)),
        not_enforced=None if not_enforced_ is None else tuple(_read_not_enforced(e) for e in not_enforced_),
        warnings=None if warnings is None else tuple(str(w) for w in warnings),
        invalid=None if invalid is None else tuple(_read_invalid(e) for e in invalid),
        last_apply_time=_str(data.get("lastApplyTime")),
        last_reconcile_ms=_number(data.get("lastReconcileMs")),
        last_error=_str(data.get("lastError")),
        last_error_time=_str(data.get("lastErrorTime")),
        xdp_refresh_interval=_number(data.get("xdpRefreshInterval")),
        iptables_refresh_interval=_number(data.get("iptablesRefreshInterval")),
        raw_repairs=_sizes(repairs) if isinstance(repairs, Mapping) else None,
        metrics_error=_str(data.get("metricsError")),
        health_error=_str(data.get("healthError")),
        extra=_extra(data, _TOP),
    )


__all__ = [
    "NO_POLICY", "NOT_ENFORCED", "RAW_REPAIR_KINDS", "ZERO",
    "AgentStatus", "Drops", "InterfaceStatus", "InvalidResource", "MalformedStatus", "NotEnforced", "RawCounters",
    "RawStatus", "RuleStatus", "Unparsed", "Verdicts",
    "check_shape", "interface_status", "interfaces_status", "invalid_resources", "not_enforced", "raw_repairs", "verdict_totals",
    "with_counters",
]
