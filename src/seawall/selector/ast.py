"""Selector syntax tree: immutable nodes that evaluate labels and print canonically.

The canonical string is hashed into IP-set names (``Selector.unique_id``), so it
is byte-for-byte what Calico's ``Selector.String()`` produces for the same tree:

* ``label op "value"`` with double quotes, or single quotes if the value holds ``"``;
* sets as ``label in {"a", "b"}``, sorted by code point and de-duplicated
  (normalised when the node is built, so equivalent sets compare equal);
* ``has(label)``, ``all()``, ``global()``, ``!operand`` with no space;
* every ``&&`` / ``||`` group in parentheses, even at the top level:
  ``(a == "x" || (b == "y" && c == "z"))``. Groups are n-ary, so
  ``a && b && c`` is one group while ``(a && b) && c`` nests; both round-trip.

The one deliberate difference from Calico: a double negation such as
``!(!has(a))`` is collapsed to ``has(a)`` (Calico keeps it and prints ``!!has(a)``,
which it then re-parses differently); that keeps canonicalisation idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

LABEL_PATTERN = re.compile(r"[A-Za-z0-9_./-]{1,512}")


def quote(value: str) -> str:
    """Quote a value the way Calico prints it (there are no escapes)."""
    mark = "'" if '"' in value else '"'
    return f"{mark}{value}{mark}"


def _check_label(label: object) -> None:
    if not isinstance(label, str) or LABEL_PATTERN.fullmatch(label) is None:
        raise ValueError(f"invalid label name {label!r}: want 1-512 of [A-Za-z0-9_./-]")


def _check_value(value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"label value must be a str, not {type(value).__name__}")
    if '"' in value and "'" in value:
        raise ValueError(f"value {value!r} holds both quote characters; no selector can express it")


class Node:
    """Base of all selector nodes."""

    __slots__ = ()

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        raise NotImplementedError

    def canonical(self) -> str:
        raise NotImplementedError

    def children(self) -> tuple[Node, ...]:
        return ()

    def __str__(self) -> str:
        return self.canonical()


@dataclass(frozen=True)
class All(Node):
    """``all()``: matches everything (also what an empty selector means)."""

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True

    def canonical(self) -> str:
        return "all()"


@dataclass(frozen=True)
class Global(Node):
    """``global()``: matches everything; scopes a namespaceSelector to global resources."""

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return True

    def canonical(self) -> str:
        return "global()"


@dataclass(frozen=True)
class Has(Node):
    label: str

    def __post_init__(self) -> None:
        _check_label(self.label)

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.label in labels

    def canonical(self) -> str:
        return f"has({self.label})"


@dataclass(frozen=True)
class _LabelValue(Node):
    """``label OP "value"``; ``MATCH_ABSENT`` is the result when the label is missing."""

    label: str
    value: str
    OP: ClassVar[str] = ""
    MATCH_ABSENT: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_label(self.label)
        _check_value(self.value)

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        if self.label not in labels:
            return self.MATCH_ABSENT
        return self._matches(labels[self.label])

    def _matches(self, actual: str) -> bool:
        raise NotImplementedError

    def canonical(self) -> str:
        return f"{self.label} {self.OP} {quote(self.value)}"


@dataclass(frozen=True)
class Equal(_LabelValue):
    OP: ClassVar[str] = "=="

    def _matches(self, actual: str) -> bool:
        return actual == self.value


@dataclass(frozen=True)
class NotEqual(_LabelValue):
    """``!=`` also matches when the label is absent."""

    OP: ClassVar[str] = "!="
    MATCH_ABSENT: ClassVar[bool] = True

    def _matches(self, actual: str) -> bool:
        return actual != self.value


@dataclass(frozen=True)
class Contains(_LabelValue):
    OP: ClassVar[str] = "contains"

    def _matches(self, actual: str) -> bool:
        return self.value in actual


@dataclass(frozen=True)
class StartsWith(_LabelValue):
    OP: ClassVar[str] = "starts with"

    def _matches(self, actual: str) -> bool:
        return actual.startswith(self.value)


@dataclass(frozen=True)
class EndsWith(_LabelValue):
    OP: ClassVar[str] = "ends with"

    def _matches(self, actual: str) -> bool:
        return actual.endswith(self.value)


@dataclass(frozen=True)
class _LabelSet(Node):
    """``label OP {"a", "b"}``; ``values`` is normalised to a sorted, unique tuple."""

    label: str
    values: tuple[str, ...]
    OP: ClassVar[str] = ""
    MATCH_ABSENT: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_label(self.label)
        if isinstance(self.values, str):
            raise TypeError("values must be an iterable of str, not a single str")
        values = tuple(sorted(set(self.values)))
        for value in values:
            _check_value(value)
        object.__setattr__(self, "values", values)

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        if self.label not in labels:
            return self.MATCH_ABSENT
        return self._matches(labels[self.label])

    def _matches(self, actual: str) -> bool:
        raise NotImplementedError

    def canonical(self) -> str:
        items = ", ".join(quote(value) for value in self.values)
        return f"{self.label} {self.OP} {{{items}}}"


@dataclass(frozen=True)
class In(_LabelSet):
    OP: ClassVar[str] = "in"

    def _matches(self, actual: str) -> bool:
        return actual in self.values


@dataclass(frozen=True)
class NotIn(_LabelSet):
    """``not in`` also matches when the label is absent."""

    OP: ClassVar[str] = "not in"
    MATCH_ABSENT: ClassVar[bool] = True

    def _matches(self, actual: str) -> bool:
        return actual not in self.values


@dataclass(frozen=True)
class Not(Node):
    operand: Node

    def __post_init__(self) -> None:
        if not isinstance(self.operand, Node):
            raise TypeError("operand must be a selector node")

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return not self.operand.evaluate(labels)

    def canonical(self) -> str:
        return "!" + self.operand.canonical()

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class _Group(Node):
    """An n-ary ``&&`` / ``||``; always printed in parentheses, like Calico."""

    operands: tuple[Node, ...]
    JOIN: ClassVar[str] = ""

    def __post_init__(self) -> None:
        operands = tuple(self.operands)
        if len(operands) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two operands")
        if not all(isinstance(operand, Node) for operand in operands):
            raise TypeError("operands must be selector nodes")
        object.__setattr__(self, "operands", operands)

    def canonical(self) -> str:
        return "(" + self.JOIN.join(operand.canonical() for operand in self.operands) + ")"

    def children(self) -> tuple[Node, ...]:
        return self.operands


@dataclass(frozen=True)
class And(_Group):
    JOIN: ClassVar[str] = " && "

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return all(operand.evaluate(labels) for operand in self.operands)


@dataclass(frozen=True)
class Or(_Group):
    JOIN: ClassVar[str] = " || "

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return any(operand.evaluate(labels) for operand in self.operands)


def negate(node: Node) -> Node:
    """``!node``, cancelling an existing negation instead of stacking a second one."""
    return node.operand if isinstance(node, Not) else Not(node)


def collapse_double_negation(node: Node) -> Node:
    """Rebuild ``node`` with every ``!!x`` replaced by ``x``."""
    if isinstance(node, Not):
        return negate(collapse_double_negation(node.operand))
    if isinstance(node, _Group):
        return type(node)(tuple(collapse_double_negation(child) for child in node.operands))
    return node


def make_unique_id(prefix: str, content: str) -> str:
    """Calico's ``hash.MakeUniqueID``: prefix + ":" + unpadded base64url(SHA-224)."""
    digest = hashlib.sha224(f"{prefix}:{content}".encode()).digest()
    return f"{prefix}:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, repr=False)
class Selector:
    """A parsed selector; equality and hashing follow the (normalised) tree."""

    root: Node

    def __post_init__(self) -> None:
        if not isinstance(self.root, Node):
            raise TypeError("Selector root must be a selector node")
        object.__setattr__(self, "root", collapse_double_negation(self.root))

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        return self.root.evaluate(labels)

    @cached_property
    def canonical(self) -> str:
        return self.root.canonical()

    def unique_id(self) -> str:
        """Stable ID of the canonical form (Calico's selector IP-set ID)."""
        return make_unique_id("s", self.canonical)

    def uses_global(self) -> bool:
        """True if ``global()`` appears anywhere in the selector."""
        return any(isinstance(node, Global) for node in walk(self.root))

    def __str__(self) -> str:
        return self.canonical

    def __repr__(self) -> str:
        return f"Selector({self.canonical!r})"


def walk(node: Node) -> Iterable[Node]:
    """Every node of the tree, depth first, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children()))
