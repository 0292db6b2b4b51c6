"""Values a dataplane tier skipped (defence in depth): plain values, no I/O.

Validation and the calculation drop and report a value that is not a CIDR
before it reaches a tier; should one slip through anyway, the tier skips it
(one bad value must not fail a whole table, set or map load) and records it
here so that ``status.json``, ``seawall status`` and the metrics show it, not
only the log. Bounded: the exact count plus the first few values (in a stable
order), each shown as its ``repr`` cut to ``MAX_CHARS``.

Shared by the XDP and iptables tiers (neither imports the other).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from seawall.api.errors import shown_repr

MAX_SHOWN = 5
MAX_CHARS = 80

#: What a tier collects while it works: the value itself (or its ``repr`` if
#: unhashable) -> why it was skipped. The first reason recorded for a value wins.
Sink = dict[Any, str]


def shown(value: object) -> str:
    """``repr`` of a value, at most ``MAX_CHARS`` characters."""
    return shown_repr(value, MAX_CHARS)


def skip(log: logging.Logger, tier: str, sink: Sink | None, value: object, reason: str, logged: str | None = None) -> None:
    """Log a skipped value (``tier: skipped VALUE: why``, the value cut to
    ``MAX_CHARS``) and record it in ``sink`` with ``reason`` (``logged``: a
    shorter why for the log line, if the recorded reason says more)."""
    log.warning("%s: skipped %s: %s", tier, shown(value), logged or reason)
    record(sink, value, reason)


def record(sink: Sink | None, value: object, reason: str) -> None:
    if sink is None:
        return
    try:
        sink.setdefault(value, reason)
    except TypeError:  # unhashable: keyed by its text
        sink.setdefault(repr(value), reason)


@dataclass(frozen=True, slots=True)
class SkippedValue:
    value: str  # shown(value)
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """The values one tier skipped on one interface: how many, and the first few."""

    count: int = 0
    values: tuple[SkippedValue, ...] = ()

    def __bool__(self) -> bool:
        return self.count > 0

    def as_status(self) -> dict[str, Any]:
        return {"count": self.count, "values": [{"value": v.value, "reason": v.reason} for v in self.values]}


NONE = Skipped()


def summarize(*sinks: Mapping[Any, str] | None) -> Skipped:
    """One bounded summary of the union of some sinks (a value counted once)."""
    merged: dict[Any, str] = {}
    for sink in sinks:
        if sink:
            for value, reason in sink.items():
                merged.setdefault(value, reason)
    if not merged:
        return NONE
    if len(merged) <= MAX_SHOWN:
        first = sorted((shown(v), r) for v, r in merged.items())
    else:  # no full sort of a large sink
        first = heapq.nsmallest(MAX_SHOWN, ((shown(v), r) for v, r in merged.items()))
    return Skipped(len(merged), tuple(SkippedValue(v, r) for v, r in first[:MAX_SHOWN]))


def merge(parts: Iterable[Skipped]) -> Skipped:
    """Combine summaries (counts add; the first few values of all, in order)."""
    parts = [p for p in parts if p]
    if not parts:
        return NONE
    values = sorted({v for p in parts for v in p.values}, key=lambda v: (v.value, v.reason))
    return Skipped(sum(p.count for p in parts), tuple(values[:MAX_SHOWN]))


__all__ = ["MAX_CHARS", "MAX_SHOWN", "NONE", "Sink", "Skipped", "SkippedValue", "merge", "record", "shown", "summarize"]
