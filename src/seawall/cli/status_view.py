"""``seawall status`` as a table: pure rendering of the agent's status object.

Input is the agent's status, ``seawall.agent.status.AgentStatus``, or the
JSON object the agent writes to ``<run-dir>/status.json`` (read with
``AgentStatus.from_json``); output is a ``rich`` renderable, or plain text via
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

from seawall.agent.status import (
    AgentStatus,
    InterfaceStatus,
    MalformedStatus,
    RawStatus,
    Unparsed,
)
from seawall.dataplane.skipped import Skipped

#: Top-level fields of older agents, known and not shown (not under "other").
RETIRED_TOP = frozenset({"refreshInterval"})
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


def _or(value: Any, default: str) -> Any:
    """``default`` for a field the status does not have (None), else the value."""
    return default if value is None else value


def _mode(entry: InterfaceStatus) -> str:
    return "?" if entry.mode is None else str(entry.mode)


def _xdp_entries(entries: Mapping[str, int]) -> str:
    if not entries:
        return "-"
    return f"{entries.get('ipv4', 0)}/{entries.get('ipv6', 0)}"


def _raw_summary(raw: RawStatus | None) -> str:
    if raw is None:
        return "-"
    total = sum(raw.ipset_members.values())
    backend = raw.backend or "?"
    state = "" if raw.programmed else ", NOT programmed"
    return f"{backend}{state}, {total} ipset member{'s' if total != 1 else ''}"


def _header(status: AgentStatus, age_s: float | None) -> Text:
    text = Text()
    text.append("node ", style="bold")
    text.append(str(_or(status.node, "?")))
    text.append("   in sync ", style="bold")
    text.append("yes" if status.in_sync else "no", style="green" if status.in_sync else "red")
    text.append("   revision ", style="bold")
    text.append(fmt_value(status.revision))
    text.append("   last apply ", style="bold")
    text.append(str(status.last_apply_time or "never"))
    if status.last_reconcile_ms is not None:
        text.append(f" (took {fmt_value(status.last_reconcile_ms)} ms)")
    second: list[tuple[str, str, str]] = []  # (label, value, style)
    if age_s is not None:
        stale = age_s > STALE_S
        second.append(("status written ", _age(age_s) + (" (stale: a running agent rewrites it every second)" if stale else ""),
                       "yellow" if stale else ""))
    intervals = [(label, value) for label, value in (("XDP", status.xdp_refresh_interval),
                                                     ("iptables", status.iptables_refresh_interval))
                 if value is not None]
    if intervals:
        second.append(("refresh ", ", ".join(f"{label} every {fmt_value(value)} s" if value else f"{label} never"
                                             for label, value in intervals), ""))
    repairs = status.raw_repairs
    if repairs is not None:
        second.append(("raw drift repaired ", ", ".join(f"{label} {repairs.get(key, 0)}" for label, key in (
            ("rules", "rules"), ("set headers", "setHeaders"), ("set contents", "setContents"))),
            "yellow" if any(repairs.values()) else ""))
    for number, (label, value, style) in enumerate(second):
        text.append("\n" if number == 0 else "   ")
        text.append(label, style="bold")
        text.append(value, style=style)
    return text


def _agent_errors(status: AgentStatus) -> list[str]:
    rows = []
    if status.last_error:
        when = f" (at {status.last_error_time})" if status.last_error_time else ""
        rows.append(f"last reconcile failed{when}: {status.last_error}")
    for error, what in ((status.metrics_error, "metrics endpoint"), (status.health_error, "health endpoint")):
        if error:
            rows.append(f"{what}: {error}")
    return rows


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _interface_table(interfaces: Iterable[InterfaceStatus]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (("INTERFACE", "left"), ("HOST ENDPOINT", "left"), ("MODE", "left"),
                            ("POLICIES", "left"), ("XDP v4/v6", "right"), ("RAW", "left"),
                            ("DROPPED", "right"), ("PASSED", "right"), ("FAILSAFE", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=column in ("INTERFACE", "MODE"))
    for entry in interfaces:
        counters = entry.counters
        mode = _mode(entry)
        style = "green" if mode.startswith("xdp-") else ("yellow" if mode == "iptables-raw" else "")
        live = "*" if entry.counters_live else ""
        raw_dropped = entry.raw_counters.dropped if entry.raw_counters is not None else 0
        dropped = f"{counters.dropped}{live}"
        if mode.startswith("xdp-") and raw_dropped:
            dropped += f" +{raw_dropped} raw"  # raw still enforces what XDP does not hold
        table.add_row(
            entry.name or "?", entry.host_endpoint or "-", Text(mode, style=style),
            ", ".join(entry.policies) or "-", _xdp_entries(entry.xdp_entries),
            _raw_summary(entry.raw),
            dropped, f"{counters.passed}{live}",
            f"{counters.failsafe}{live}",
        )
    return table


def _interface_details(entry: InterfaceStatus) -> list[Text]:
    lines: list[Text] = []
    mode = _mode(entry)
    head = Text()
    head.append(entry.name or "?", style="bold")
    head.append(f"  {mode}: {_or(entry.reason, '')}")
    lines.append(head)
    xdp_mode = mode.startswith("xdp-")
    for rule in entry.rules:
        if isinstance(rule, Unparsed):
            lines.append(Text(f"    rule {fmt_value(rule.value)}"))
            continue
        if rule.in_xdp and xdp_mode:
            where = "XDP + raw"
            count = f", {rule.xdp_cidrs} CIDRs in XDP" if rule.xdp_cidrs is not None else ""
        elif rule.in_xdp:
            where, count = "raw only", f" (XDP-eligible, but the interface is in {mode} mode)"
        else:
            where, count = "raw only", ""
        tail = "".join(f"; {k} {fmt_value(v)}" for k, v in rule.extra.items())
        lines.append(Text(f"    rule {_or(rule.policy, '?')}[{_or(rule.index, '?')}] {_or(rule.action, '?')}: "
                          f"{where}{count} — {_or(rule.reason, '')}{tail}"))
    raw = entry.raw
    if raw is not None:
        if raw.ipset_members:
            lines.append(Text("    ipsets: " + ", ".join(f"{k} {fmt_value(v)}" for k, v in raw.ipset_members.items())))
        for key, value in raw.extra.items():
            lines.append(Text(f"    raw {key}: {fmt_value(value)}"))
    raw_counters = entry.raw_counters
    if raw_counters is not None:
        per = ", ".join(f"{fam} {v.dropped}" for fam, v in raw_counters.families.items())
        lines.append(Text(f"    raw dropped: {raw_counters.dropped} packets, "
                          f"{raw_counters.dropped_bytes} bytes" + (f" ({per})" if per else "")))
    for error in entry.errors:
        lines.append(Text(f"    error: {error}", style="red"))
    lines += _skipped_lines(entry.skipped)
    for key, value in entry.extra.items():
        lines.append(Text(f"    {key}: {fmt_value(value)}"))
    return lines


def _skipped_lines(skipped: Mapping[str, Skipped | Unparsed]) -> list[Text]:
    """Values a tier skipped (not CIDRs, never programmed): the count, the first few and why."""
    lines: list[Text] = []
    for tier, info in skipped.items():
        if isinstance(info, Unparsed):
            lines.append(Text(f"    {tier} skipped: {fmt_value(info.value)}", style="yellow"))
            continue
        count = info.count or len(info.values)
        if not count:
            continue
        lines.append(Text(f"    {tier} skipped {count} value{'s' if count != 1 else ''} (not CIDRs, not programmed):",
                          style="yellow"))
        for v in info.values:
            lines.append(Text(f"      {v.value[:MAX_VALUE_CHARS]}: {v.reason}", style="yellow"))
        if count > len(info.values):
            lines.append(Text(f"      ... and {count - len(info.values)} more", style="yellow"))
    return lines


def _section(title: str, rows: Iterable[str], style: str = "") -> list[Text]:
    rows = list(rows)
    if not rows:
        return []
    return [Text(""), Text(title, style="bold")] + [Text(f"  {row}", style=style) for row in rows]


def as_status(data: AgentStatus | Mapping[str, Any]) -> AgentStatus:
    """The status to show: as it is, or read from its JSON object (tolerantly:
    a field of the wrong type shows as empty; ``check_shape`` is the strict test)."""
    return data if isinstance(data, AgentStatus) else AgentStatus.from_json(data, strict=False)


def build(data: AgentStatus | Mapping[str, Any], *, age_s: float | None = None) -> RenderableType:
    """The whole status view as one renderable."""
    status = as_status(data)
    parts: list[RenderableType] = [_header(status, age_s)]
    parts += _section("agent errors", _agent_errors(status), style="red")
    if status.interfaces:
        parts += [Text(""), _interface_table(status.interfaces)]
        if any(e.counters_live for e in status.interfaces):
            parts.append(Text("  * counters read live from the pinned XDP maps"))
        for entry in status.interfaces:
            parts.append(Text(""))
            parts.extend(_interface_details(entry))
    else:
        parts += [Text(""), Text("no interface of this node has a host endpoint (nothing to enforce)")]
    parts += _section("not enforced", (
        fmt_value(e.value) if isinstance(e, Unparsed) else f"{_or(e.policy, '?')}: {_or(e.reason, '')}"
        for e in status.not_enforced or ()
    ))
    parts += _section("warnings", status.warnings or (), style="yellow")
    parts += _section("invalid resources", (
        fmt_value(e.value) if isinstance(e, Unparsed)
        else f"{_or(e.kind, '?')}({_or(e.name, '?')}): {_or(e.reason, '')} -> {_or(e.action, '?')}"
        for e in status.invalid or ()
    ), style="red")
    parts += _section("other", (f"{k}: {fmt_value(v)}" for k, v in status.extra.items() if k not in RETIRED_TOP))
    return Group(*parts)


def check_shape(data: AgentStatus | Any) -> None:
    """Raise MalformedStatus naming the first field of the wrong type in a status
    JSON object (unknown fields are fine; only the containers this view walks
    into are checked). An ``AgentStatus`` is well-formed by construction."""
    if not isinstance(data, AgentStatus):
        AgentStatus.from_json(data)


def to_text(renderable: RenderableType, *, width: int = 160) -> str:
    """Plain text (no colour codes) of a renderable, for tests and pipes."""
    buffer = StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False).print(renderable)
    return buffer.getvalue()


def render_status(data: AgentStatus | Mapping[str, Any], *, age_s: float | None = None, width: int = 160) -> str:
    return to_text(build(data, age_s=age_s), width=width)


__all__ = ["MalformedStatus", "as_status", "build", "check_shape", "fmt_value", "render_status", "to_text"]
