"""Validation errors that name exactly what is wrong and where.

Every problem found in an input document becomes a ``FieldError`` (field path,
bad value, reason); a document's errors are wrapped in ``DocumentError`` with the
file, the document index and kind/name, so an operator fixing a file under
pressure never has to guess which line to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_MAX_VALUE_CHARS = 80
_MAX_LINE_CHARS = 300  # any one line of a message (a reason, a detail line, a path)
_MAX_DETAIL_LINES = 12
MAX_ERRORS_SHOWN = 100  # field errors listed per run; the rest are counted
_PREVIEW_DEPTH = 3
_PREVIEW_ITEMS = 8
_MAX_INT_BITS = 256


def _preview(value: Any, depth: int) -> str:
    """A bounded repr: at most _PREVIEW_ITEMS items per level and _PREVIEW_DEPTH
    levels, so a huge or alias-shared structure is never walked or expanded."""
    if isinstance(value, str):
        return repr(value[: _MAX_VALUE_CHARS + 1])
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            return f"<integer of {value.bit_length()} bits>"
        return str(value)
    if isinstance(value, (list, tuple, dict)):
        opener, closer = ("{", "}") if isinstance(value, dict) else ("[", "]") if isinstance(value, list) else ("(", ")")
        if not value:
            return opener + closer
        if depth >= _PREVIEW_DEPTH:
            return f"{opener}...{closer}"
        parts: list[str] = []
        items = iter(value.items()) if isinstance(value, dict) else iter(value)
        for count, item in enumerate(items):
            if count >= _PREVIEW_ITEMS:
                parts.append("...")
                break
            if isinstance(value, dict):
                parts.append(f"{_preview(item[0], depth + 1)}: {_preview(item[1], depth + 1)}")
            else:
                parts.append(_preview(item, depth + 1))
        return opener + ", ".join(parts) + closer
    return f"<{type(value).__name__}>"


def shown_repr(value: object, limit: int = _MAX_VALUE_CHARS) -> str:
    """``repr`` of a value, at most ``limit`` characters (warnings and reports
    name bad values; a megabyte-long one must not become a megabyte-long line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(text: str, limit: int = _MAX_LINE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with '...')."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip_lines(text: str, *, max_lines: int = _MAX_DETAIL_LINES) -> str:
    """Every line of ``text`` clipped, and at most ``max_lines`` lines kept."""
    if len(text) <= _MAX_LINE_CHARS and "\n" not in text:
        return text
    lines = text[: _MAX_LINE_CHARS * (max_lines + 1) * 4].split("\n")
    shown = [clip(line) for line in lines[:max_lines]]
    if len(lines) > max_lines:
        shown.append("...")
    return "\n".join(shown)


def render_value(value: Any) -> str:
    """A short, quoted rendering of a bad value for error messages (bounded in time
    and size whatever the value: huge lists, shared aliases, huge integers)."""
    if isinstance(value, str):
        text = value[: _MAX_VALUE_CHARS + 1]
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = _preview(value, 0)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return f"'{text}'"


def join_path(parts: Sequence[str | int]) -> str:
    """('spec', 'ingress', 0, 'source', 'nets', 1) -> 'spec.ingress[0].source.nets[1]'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: ``error with field <path> = '<value>' (<reason>)`` as Calico words it."""

    path: str
    reason: str
    value: Any = _MISSING
    detail: str | None = None  # extra lines shown below, e.g. a caret under a selector

    def __str__(self) -> str:
        path, reason = clip(self.path), clip_lines(self.reason)
        if self.value is _MISSING:
            text = f"error with field {path} ({reason})" if path else reason
        else:
            text = f"error with field {path} = {render_value(self.value)} ({reason})"
        return f"{text}\n{clip_lines(self.detail)}" if self.detail else text


@dataclass(frozen=True, slots=True)
class Warning_:
    """A non-fatal remark about a document (accepted, but worth knowing)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(slots=True)
class DocumentError(Exception):
    """All the errors of one input document."""

    source: str
    index: str
    kind: str | None
    name: str | None
    errors: list[FieldError] = field(default_factory=list)

    def where(self) -> str:
        if self.index == "-" and not self.kind:
            return self.source
        ident = f"{clip(self.kind or '<no kind>', 80)}({clip(self.name or '<no name>', 120)})"
        return f"{clip(self.source)}: document {clip(self.index, 80)}: {ident}"

    def __str__(self) -> str:
        where = self.where()
        lines = [f"{where}: {err}" for err in self.errors[:MAX_ERRORS_SHOWN]]
        if len(self.errors) > MAX_ERRORS_SHOWN:
            lines.append(f"{where}: ... and {len(self.errors) - MAX_ERRORS_SHOWN} more errors")
        return "\n".join(lines)


@dataclass(slots=True)
class _MoreErrors(DocumentError):
    """Stands for the document errors past ``MAX_ERRORS_SHOWN``: counted, not listed.

    ``errors`` holds the hidden field errors (so counts stay right) and ``hidden``
    the hidden document errors (so re-raising ``ValidationFailed(exc.errors)``
    loses nothing)."""

    hidden: list[DocumentError] = field(default_factory=list)

    def __str__(self) -> str:
        return f"... and {len(self.errors)} more errors in {len(self.hidden)} document error(s), not shown"


def _bounded(errors: list[DocumentError]) -> list[DocumentError]:
    flat: list[DocumentError] = []
    for error in errors:
        flat.extend(error.hidden if isinstance(error, _MoreErrors) else [error])
    total = sum(len(error.errors) for error in flat)
    if total <= MAX_ERRORS_SHOWN:
        return flat
    shown: list[DocumentError] = []
    hidden: list[DocumentError] = []
    budget = MAX_ERRORS_SHOWN
    for error in flat:
        if budget >= len(error.errors):
            shown.append(error)
            budget -= len(error.errors)
        elif budget > 0:
            shown.append(DocumentError(error.source, error.index, error.kind, error.name, error.errors[:budget]))
            hidden.append(DocumentError(error.source, error.index, error.kind, error.name, error.errors[budget:]))
            budget = 0
        else:
            hidden.append(error)
    rest = [field_error for error in hidden for field_error in error.errors]
    shown.append(_MoreErrors("", "-", None, None, rest, hidden))
    return shown


class ValidationFailed(Exception):
    """Raised by ``api`` entry points with every document error found.

    ``errors`` lists at most ``MAX_ERRORS_SHOWN`` field errors; the rest are
    folded into one trailing entry that prints "... and N more errors"."""

    def __init__(self, errors: list[DocumentError]) -> None:
        self.errors = _bounded(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
