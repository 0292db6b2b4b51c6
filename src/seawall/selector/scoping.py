"""Calico's selector scoping for workload-only fields, on the syntax tree.

Calico turns the Kubernetes-only parts of a policy into ordinary label
selectors before Felix sees them (libcalico-go's update processors): a
namespace selector becomes a selector over ``pcns.``-prefixed labels, a
service-account selector one over ``pcsa.``-prefixed labels, and both are
AND'ed with the rule's (or policy's) own selector. The result is one selector,
whose canonical string names the IP set. These pure functions build the same
trees (re-implemented from Calico's documented behaviour):

* ``with_label_prefix(node, prefix)``: every label name gets ``prefix``;
* ``namespace_scope(node)``: prefix ``pcns.``, then ``all()`` -> ``has(projectcalico.org/namespace)``
  and ``global()`` -> ``!has(projectcalico.org/namespace)``;
* ``service_account_scope(selector, names)``: prefix ``pcsa.``, AND'ed with
  ``projectcalico.org/serviceaccount in {names}`` when names are given;
* ``entity_selector(...)``: an EntityRule's effective source/destination selector;
* ``policy_selector(...)``: a GlobalNetworkPolicy's effective endpoint selector.

Host endpoints and network sets normally carry none of these labels, so a
scoped selector normally matches nothing here, except ``global()``'s
``!has(projectcalico.org/namespace)``, which matches every non-namespaced
resource. Nothing is special-cased: evaluation decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .ast import All, And, Global, Has, In, Node, Not, _Group, _LabelSet, _LabelValue

NAMESPACE_LABEL = "projectcalico.org/namespace"
SERVICE_ACCOUNT_LABEL = "projectcalico.org/serviceaccount"
NAMESPACE_PREFIX = "pcns."
SERVICE_ACCOUNT_PREFIX = "pcsa."


def with_label_prefix(node: Node, prefix: str) -> Node:
    """``node`` with every label name prefixed (``all()``/``global()`` unchanged).
    Raises ValueError if a prefixed label exceeds the 512-character limit."""
    if isinstance(node, (Has, _LabelValue, _LabelSet)):
        return dataclasses.replace(node, label=prefix + node.label)
    if isinstance(node, Not):
        return Not(with_label_prefix(node.operand, prefix))
    if isinstance(node, _Group):
        return type(node)(tuple(with_label_prefix(child, prefix) for child in node.operands))
    return node


def _substitute(node: Node, all_: Node | None, global_: Node | None) -> Node:
    if isinstance(node, All) and all_ is not None:
        return all_
    if isinstance(node, Global) and global_ is not None:
        return global_
    if isinstance(node, Not):
        return Not(_substitute(node.operand, all_, global_))
    if isinstance(node, _Group):
        return type(node)(tuple(_substitute(child, all_, global_) for child in node.operands))
    return node


def namespace_scope(namespace_selector: Node) -> Node:
    """The selector over endpoints that a namespaceSelector means."""
    prefixed = with_label_prefix(namespace_selector, NAMESPACE_PREFIX)
    return _substitute(prefixed, Has(NAMESPACE_LABEL), Not(Has(NAMESPACE_LABEL)))


def service_account_scope(selector: Node | None, names: Sequence[str] = ()) -> Node | None:
    """The selector a ``serviceAccounts {selector, names}`` match means; None if both are empty."""
    parts: list[Node] = []
    if selector is not None:
        parts.append(with_label_prefix(selector, SERVICE_ACCOUNT_PREFIX))
    if names:
        parts.append(In(SERVICE_ACCOUNT_LABEL, tuple(names)))
    return _and(parts)


def _and(parts: Sequence[Node]) -> Node | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def entity_selector(
    selector: Node | None,
    *,
    namespace_selector: Node | None = None,
    service_accounts: Node | None = None,
) -> Node | None:
    """An EntityRule's effective selector (None: no selector). ``service_accounts``
    is the result of ``service_account_scope``. ``notSelector`` is not scoped (the
    caller leaves it alone); a namespaceSelector applies even when ``selector`` is empty."""
    combined = _and([p for p in (service_accounts, selector) if p is not None])
    if namespace_selector is None:
        return combined
    scope = namespace_scope(namespace_selector)
    return scope if combined is None else And((scope, combined))


def policy_selector(
    selector: Node | None, *, namespace_selector: Node | None = None, service_account_selector: Node | None = None
) -> Node:
    """A GlobalNetworkPolicy's effective endpoint selector."""
    out: Node = selector if selector is not None else All()
    if namespace_selector is not None:
        scope = _substitute(with_label_prefix(namespace_selector, NAMESPACE_PREFIX), Has(NAMESPACE_LABEL), None)
        out = And((out, scope))
    if service_account_selector is not None:
        scope = _substitute(
            with_label_prefix(service_account_selector, SERVICE_ACCOUNT_PREFIX), Has(SERVICE_ACCOUNT_LABEL), None
        )
        out = And((out, scope))
    return out


__all__ = [
    "NAMESPACE_LABEL",
    "NAMESPACE_PREFIX",
    "SERVICE_ACCOUNT_LABEL",
    "SERVICE_ACCOUNT_PREFIX",
    "entity_selector",
    "namespace_scope",
    "policy_selector",
    "service_account_scope",
    "with_label_prefix",
]
