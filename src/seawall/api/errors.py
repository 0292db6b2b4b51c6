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


def render_value(value: Any) -> str:
    """A short, quoted rendering of a bad value for error messages."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value) if not isinstance(value, (int, float)) else str(value)
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
        if self.value is _MISSING:
            text = f"error with field {self.path} ({self.reason})" if self.path else self.reason
        else:
            text = f"error with field {self.path} = {render_value(self.value)} ({self.reason})"
        return f"{text}\n{self.detail}" if self.detail else text


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
        ident = f"{self.kind or '<no kind>'}({self.name or '<no name>'})"
        return f"{self.source}: document {self.index}: {ident}"

    def __str__(self) -> str:
        return "\n".join(f"{self.where()}: {err}" for err in self.errors)


class ValidationFailed(Exception):
    """Raised by ``api`` entry points with every document error found."""

    def __init__(self, errors: list[DocumentError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors
