"""Calico's label selector language, as a pure library (no I/O, stdlib only).

Policies, network sets and host endpoints are matched by selectors such as
``apply-dos-mitigation == 'true'``. ``parse`` turns the text into a ``Selector``
that evaluates label maps and prints a canonical form identical to Calico's,
whose hash (``unique_id``) names the IP sets the dataplane programs.
"""

from .ast import (
    All,
    And,
    Contains,
    EndsWith,
    Equal,
    Global,
    Has,
    In,
    Node,
    Not,
    NotEqual,
    NotIn,
    Or,
    Selector,
    StartsWith,
)
from .parser import MAX_NESTING, parse
from .scoping import entity_selector, namespace_scope, policy_selector, service_account_scope, with_label_prefix
from .tokenizer import MAX_LABEL_LENGTH, SelectorSyntaxError

ALL = Selector(All())
"""The ``all()`` selector, which is also what an empty selector means."""

__all__ = [
    "ALL",
    "MAX_LABEL_LENGTH",
    "MAX_NESTING",
    "All",
    "And",
    "Contains",
    "EndsWith",
    "Equal",
    "Global",
    "Has",
    "In",
    "Node",
    "Not",
    "NotEqual",
    "NotIn",
    "Or",
    "Selector",
    "SelectorSyntaxError",
    "StartsWith",
    "entity_selector",
    "namespace_scope",
    "parse",
    "policy_selector",
    "service_account_scope",
    "with_label_prefix",
]
