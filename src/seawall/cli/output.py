"""Rendering resources as calicoctl does: a table (``ps``/``wide``), YAML, JSON or names."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from seawall.api import API_VERSION
from seawall.api.yamlio import dump_all

FORMATS = ("ps", "wide", "yaml", "json", "name")
_NETS_WIDTH = 80

Row = Callable[[dict[str, Any]], list[str]]


def _spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc.get("spec") or {}


def _name(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["name"])


def _truncate(text: str, width: int = _NETS_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# (headings, row) per kind and format, matching calicoctl's resource managers.
_COLUMNS: dict[str, dict[str, tuple[list[str], Row]]] = {
    "HostEndpoint": {
        "ps": (["NAME", "NODE"], lambda d: [_name(d), _spec(d).get("node", "")]),
        "wide": (
            ["NAME", "NODE", "INTERFACE", "IPS", "PROFILES"],
            lambda d: [
                _name(d), _spec(d).get("node", ""), _spec(d).get("interfaceName", ""),
                ",".join(_spec(d).get("expectedIPs", [])), ",".join(_spec(d).get("profiles", [])),
            ],
        ),
    },
    "GlobalNetworkSet": {
        "ps": (["NAME"], lambda d: [_name(d)]),
        "wide": (["NAME", "NETS"], lambda d: [_name(d), _truncate(",".join(_spec(d).get("nets", [])))]),
    },
    "GlobalNetworkPolicy": {
        "ps": (["NAME"], lambda d: [_name(d)]),
        "wide": (
            ["NAME", "ORDER", "SELECTOR", "DONOTTRACK"],
            lambda d: [
                _name(d), _format_order(_spec(d).get("order")), _spec(d).get("selector", "all()") or "all()",
                str(bool(_spec(d).get("doNotTrack"))).lower(),
            ],
        ),
    },
    "FelixConfiguration": {
        "ps": (["NAME"], lambda d: [_name(d)]),
        "wide": (["NAME"], lambda d: [_name(d)]),
    },
}


def _format_order(order: Any) -> str:
    if order is None:
        return ""
    return str(int(order)) if float(order).is_integer() else str(order)


def render_table(kind: str, docs: Sequence[dict[str, Any]], *, wide: bool) -> str:
    headings, row = _COLUMNS[kind]["wide" if wide else "ps"]
    rows = [headings] + [row(doc) for doc in docs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headings))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def as_list(kind: str, docs: Sequence[dict[str, Any]], revision: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": f"{kind}List",
        "items": list(docs),
        "metadata": {"resourceVersion": str(revision)},
    }


def render(kind: str, docs: Sequence[dict[str, Any]], fmt: str, *, revision: int, single: bool) -> str:
    """``single``: the user named exactly one resource, so print it bare (not a List)."""
    if fmt in ("ps", "wide"):
        return render_table(kind, docs, wide=fmt == "wide")
    if fmt == "name":
        return "".join(f"{kind.lower()}/{_name(d)}\n" for d in docs)
    payload = docs[0] if single and len(docs) == 1 else as_list(kind, docs, revision)
    if fmt == "json":
        return json.dumps(payload, indent=2) + "\n"
    return dump_all([payload])
