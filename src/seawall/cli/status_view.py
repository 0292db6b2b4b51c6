"""``seawall status`` as a table: pure rendering of the agent's status object.

Input is the dict the agent writes to ``<run-dir>/status.json`` (see
``seawall.agent.status``); output is a ``rich`` renderable, or plain text via
``to_text``. Every field is optional here: a status written by an older or
newer agent renders what it has, and fields this module does not know (new
metrics, say) are shown generically under the interface or node they belong
to instead of being dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from io import StringIO
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

# Fields rendered explicitly; anything else is shown under "other".
KNOWN_TOP = frozenset({
    "node", "inSync", "revision", "lastApplyTime", "lastReconcileMs", "refreshInterval",
    "xdpRefreshInterval", "iptablesRefreshInterval", "lastError", "lastErrorTime",
    "metricsError", "healthError", "interfaces", "notEnforced", "warnings", "invalid", "rawRepairs",
})
KNOWN_INTERFACE = frozenset({
    "name", "hostEndpoint", "mode", "reason", "policies", "xdpEntries", "rules", "raw",
    "errors", "counters", "countersLive", "skipped", "rawCounters",
})
KNOWN_RULE = frozenset({"policy", "index", "action", "inXdp", "xdpCidrs", "eligibleCidrs", "reason"})
MAX_VALUE_CHARS = 160
STALE_S = 10.0  # the agent rewrites status.json every second


def fmt_value(value: Any) -> str:
    """A compact one-line form of any JSON value (for fields this module does not know)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, Mapping) and all(not isinstance(v, (Mapping, list)) for v in value.values()):
        text = ", ".join(f"{k}={fmt_value(v)}" for k, v in value.items())
    elif isinstance(value, list) and all(not isinstance(v, (Mapping, list)) for v in value):
        text = ", ".join(fmt_value(v) for v in value)
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _xdp_entries(entries: Any) -> str:
    if not isinstance(entries, Mapping) or not entries:
        return "-"
    return f"{_int(entries.get('ipv4'))}/{_int(entries.get('ipv6'))}"


def _raw_summary(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return "-"
    members = raw.get("ipsetMembers")
    total = sum(_int(v) for v in members.values()) if isinstance(members, Mapping) else 0
    backend = raw.get("backend") or "?"
    state = "" if raw.get("programmed", True) else ", NOT programmed"
    return f"{backend}{state}, {total} ipset member{'s' if total != 1 else ''}"


def _header(data: Mapping[str, Any], age_s: float | None) -> Text:
    text = Text()
    text.append("node ", style="bold")
    text.append(str(data.get("node", "?")))
    in_sync = data.get("inSync")
    text.append("   in sync ", style="bold")
    text.append("yes" if in_sync else "no", style="green" if in_sync else "red")
    text.append("   revision ", style="bold")
    text.append(fmt_value(data.get("revision")))
    text.append("   last apply ", style="bold")
    text.append(str(data.get("lastApplyTime") or "never"))
    if data.get("lastReconcileMs") is not None:
        text.append(f" (took {fmt_value(data.get('lastReconcileMs'))} ms)")
    second: list[tuple[str, str, str]] = []  # (label, value, style)
    if age_s is not None:
        stale = age_s > STALE_S
        second.append(("status written ", _age(age_s) + (" (stale: a running agent rewrites it every second)" if stale else ""),
                       "yellow" if stale else ""))
    intervals = [(label, data.get(key)) for label, key in (("XDP", "xdpRefreshInterval"), ("iptables", "iptablesRefreshInterval"))
                 if data.get(key) is not None]
    if intervals:
        second.append(("refresh ", ", ".join(f"{label} every {fmt_value(value)} s" if value else f"{label} never"
                                             for label, value in intervals), ""))
    repairs = data.get("rawRepairs")
    if isinstance(repairs, Mapping):
        second.append(("raw drift repaired ", ", ".join(f"{label} {_int(repairs.get(key))}" for label, key in (
            ("rules", "rules"), ("set headers", "setHeaders"), ("set contents", "setContents"))),
            "yellow" if any(_int(v) for v in repairs.values()) else ""))
    for number, (label, value, style) in enumerate(second):
        text.append("\n" if number == 0 else "   ")
        text.append(label, style="bold")
        text.append(value, style=style)
    return text


def _agent_errors(data: Mapping[str, Any]) -> list[str]:
    rows = []
    if data.get("lastError"):
        when = f" (at {data['lastErrorTime']})" if data.get("lastErrorTime") else ""
        rows.append(f"last reconcile failed{when}: {data['lastError']}")
    for key, what in (("metricsError", "metrics endpoint"), ("healthError", "health endpoint")):
        if data.get(key):
            rows.append(f"{what}: {data[key]}")
    return rows


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _interface_table(interfaces: list[Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (("INTERFACE", "left"), ("HOST ENDPOINT", "left"), ("MODE", "left"),
                            ("POLICIES", "left"), ("XDP v4/v6", "right"), ("RAW", "left"),
                            ("DROPPED", "right"), ("PASSED", "right"), ("FAILSAFE", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=column in ("INTERFACE", "MODE"))
    for entry in interfaces:
        found = entry.get("counters")
        counters: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        mode = str(entry.get("mode", "?"))
        style = "green" if mode.startswith("xdp-") else ("yellow" if mode == "iptables-raw" else "")
        live = "*" if entry.get("countersLive") else ""
        raw_counters = entry.get("rawCounters")
        raw_dropped = _int(raw_counters.get("dropped")) if isinstance(raw_counters, Mapping) else 0
        dropped = f"{_int(counters.get('dropped'))}{live}"
        if mode.startswith("xdp-") and raw_dropped:
            dropped += f" +{raw_dropped} raw"  # raw still enforces what XDP does not hold
        table.add_row(
            str(entry.get("name", "?")), str(entry.get("hostEndpoint") or "-"), Text(mode, style=style),
            ", ".join(map(str, entry.get("policies") or ())) or "-", _xdp_entries(entry.get("xdpEntries")),
            _raw_summary(entry.get("raw")),
            dropped, f"{_int(counters.get('passed'))}{live}",
            f"{_int(counters.get('failsafe'))}{live}",
        )
    return table


def _interface_details(entry: Mapping[str, Any]) -> list[Text]:
    lines: list[Text] = []
    head = Text()
    head.append(str(entry.get("name", "?")), style="bold")
    head.append(f"  {entry.get('mode', '?')}: {entry.get('reason', '')}")
    lines.append(head)
    xdp_mode = str(entry.get("mode", "")).startswith("xdp-")
    for rule in entry.get("rules") or ():
        if not isinstance(rule, Mapping):
            lines.append(Text(f"    rule {fmt_value(rule)}"))
            continue
        if rule.get("inXdp") and xdp_mode:
            where = "XDP + raw"
            count = f", {rule['xdpCidrs']} CIDRs in XDP" if "xdpCidrs" in rule else ""
        elif rule.get("inXdp"):
            where, count = "raw only", f" (XDP-eligible, but the interface is in {entry.get('mode', '?')} mode)"
        else:
            where, count = "raw only", ""
        extra = {k: v for k, v in rule.items() if k not in KNOWN_RULE}
        tail = "".join(f"; {k} {fmt_value(v)}" for k, v in extra.items())
        lines.append(Text(f"    rule {rule.get('policy', '?')}[{rule.get('index', '?')}] {rule.get('action', '?')}: "
                          f"{where}{count} — {rule.get('reason', '')}{tail}"))
    raw = entry.get("raw")
    if isinstance(raw, Mapping):
        members = raw.get("ipsetMembers")
        if isinstance(members, Mapping) and members:
            lines.append(Text("    ipsets: " + ", ".join(f"{k} {fmt_value(v)}" for k, v in members.items())))
        extra = {k: v for k, v in raw.items() if k not in ("backend", "programmed", "chains", "ipsetMembers")}
        for key, value in extra.items():
            lines.append(Text(f"    raw {key}: {fmt_value(value)}"))
    raw_counters = entry.get("rawCounters")
    if isinstance(raw_counters, Mapping):
        fams = raw_counters.get("families")
        per = ", ".join(f"{fam} {_int(v.get('dropped'))}" for fam, v in fams.items() if isinstance(v, Mapping)) \
            if isinstance(fams, Mapping) else ""
        lines.append(Text(f"    raw dropped: {_int(raw_counters.get('dropped'))} packets, "
                          f"{_int(raw_counters.get('droppedBytes'))} bytes" + (f" ({per})" if per else "")))
    for error in entry.get("errors") or ():
        lines.append(Text(f"    error: {error}", style="red"))
    lines += _skipped_lines(entry.get("skipped"))
    for key, value in entry.items():
        if key not in KNOWN_INTERFACE:
            lines.append(Text(f"    {key}: {fmt_value(value)}"))
    return lines


def _skipped_lines(skipped: Any) -> list[Text]:
    """Values a tier skipped (not CIDRs, never programmed): the count, the first few and why."""
    lines: list[Text] = []
    if not isinstance(skipped, Mapping):
        return lines
    for tier, info in skipped.items():
        if not isinstance(info, Mapping):
            lines.append(Text(f"    {tier} skipped: {fmt_value(info)}", style="yellow"))
            continue
        values = [v for v in info.get("values") or () if isinstance(v, Mapping)]
        count = _int(info.get("count")) or len(values)
        if not count:
            continue
        lines.append(Text(f"    {tier} skipped {count} value{'s' if count != 1 else ''} (not CIDRs, not programmed):",
                          style="yellow"))
        for v in values:
            lines.append(Text(f"      {str(v.get('value', '?'))[:MAX_VALUE_CHARS]}: {v.get('reason', '')}", style="yellow"))
        if count > len(values):
            lines.append(Text(f"      ... and {count - len(values)} more", style="yellow"))
    return lines


def _section(title: str, rows: Iterable[str], style: str = "") -> list[Text]:
    rows = list(rows)
    if not rows:
        return []
    return [Text(""), Text(title, style="bold")] + [Text(f"  {row}", style=style) for row in rows]


def build(data: Mapping[str, Any], *, age_s: float | None = None) -> RenderableType:
    """The whole status view as one renderable."""
    parts: list[RenderableType] = [_header(data, age_s)]
    parts += _section("agent errors", _agent_errors(data), style="red")
    interfaces = [e for e in data.get("interfaces") or () if isinstance(e, Mapping)]
    if interfaces:
        parts += [Text(""), _interface_table(interfaces)]
        if any(e.get("countersLive") for e in interfaces):
            parts.append(Text("  * counters read live from the pinned XDP maps"))
        for entry in interfaces:
            parts.append(Text(""))
            parts.extend(_interface_details(entry))
    else:
        parts += [Text(""), Text("no interface of this node has a host endpoint (nothing to enforce)")]
    parts += _section("not enforced", (
        f"{e.get('policy', '?')}: {e.get('reason', '')}" if isinstance(e, Mapping) else fmt_value(e)
        for e in data.get("notEnforced") or ()
    ))
    parts += _section("warnings", map(str, data.get("warnings") or ()), style="yellow")
    parts += _section("invalid resources", (
        f"{e.get('kind', '?')}({e.get('name', '?')}): {e.get('reason', '')} -> {e.get('action', '?')}"
        if isinstance(e, Mapping) else fmt_value(e)
        for e in data.get("invalid") or ()
    ), style="red")
    parts += _section("other", (f"{k}: {fmt_value(v)}" for k, v in data.items() if k not in KNOWN_TOP))
    return Group(*parts)


class MalformedStatus(ValueError):
    """The status object does not have the shape an agent writes."""


_LIST_TOP = ("interfaces", "notEnforced", "warnings", "invalid")
_LIST_INTERFACE = ("policies", "rules", "errors")
_MAPPING_INTERFACE = ("xdpEntries", "raw", "counters", "skipped", "rawCounters")


def check_shape(data: Any) -> None:
    """Raise MalformedStatus naming the first field of the wrong type (unknown
    fields are fine; only the fields this view walks into are checked)."""
    if not isinstance(data, Mapping):
        raise MalformedStatus("not a JSON object")
    for field in _LIST_TOP:
        if data.get(field) is not None and not isinstance(data[field], list):
            raise MalformedStatus(f"{field} must be a list, not {type(data[field]).__name__}")
    for index, entry in enumerate(data.get("interfaces") or ()):
        if not isinstance(entry, Mapping):
            raise MalformedStatus(f"interfaces[{index}] must be an object, not {type(entry).__name__}")
        for field in _LIST_INTERFACE:
            if entry.get(field) is not None and not isinstance(entry[field], list):
                raise MalformedStatus(f"interfaces[{index}].{field} must be a list, not {type(entry[field]).__name__}")
        for field in _MAPPING_INTERFACE:
            if entry.get(field) is not None and not isinstance(entry[field], Mapping):
                raise MalformedStatus(f"interfaces[{index}].{field} must be an object, not {type(entry[field]).__name__}")


def to_text(renderable: RenderableType, *, width: int = 160) -> str:
    """Plain text (no colour codes) of a renderable, for tests and pipes."""
    buffer = StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False).print(renderable)
    return buffer.getvalue()


def render_status(data: Mapping[str, Any], *, age_s: float | None = None, width: int = 160) -> str:
    return to_text(build(data, age_s=age_s), width=width)


__all__ = ["MalformedStatus", "build", "check_shape", "fmt_value", "render_status", "to_text"]
