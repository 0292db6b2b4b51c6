"""calicoctl's write commands as one atomic datastore transaction each.

calicoctl applies a file resource by resource and leaves the good half applied
when one fails. Seawall plans every write first (reading the current state),
then commits them all in a single ``Datastore.commit``: either the whole file
lands under one revision, or nothing does. ``plan_*`` functions are pure.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from seawall.api import DocumentError, FieldError, ParsedResource, ValidationFailed, to_document
from seawall.datastore import Create, Datastore, Delete, KeyValue, NotFound, Op, Update
from seawall.datastore.documents import Documents

Key = tuple[str, str]


class Mode(enum.Enum):
    APPLY = "apply"
    CREATE = "create"
    REPLACE = "replace"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Plan:
    ops: list[Op]
    skipped: list[Key]


def read_current(store: Datastore, keys: Sequence[Key]) -> dict[Key, KeyValue | None]:
    """What is stored under ``keys`` (metadata and revisions: a big set's members are not read)."""
    read = store.head if isinstance(store, Documents) else store.get
    current: dict[Key, KeyValue | None] = {}
    for kind, name in keys:
        try:
            current[(kind, name)] = read(kind, name)
        except NotFound:
            current[(kind, name)] = None
    return current


def plan(
    mode: Mode,
    items: Sequence[ParsedResource],
    current: dict[Key, KeyValue | None],
    *,
    skip: bool = False,
    now: Callable[[], str] | None = None,
    new_uid: Callable[[], str] | None = None,
) -> Plan:
    """The ops for ``mode`` given the current state; raises ValidationFailed naming
    every resource that cannot be written (exists / missing / bad resourceVersion)."""
    now = now or _utc_now
    new_uid = new_uid or (lambda: str(uuid.uuid4()))
    ops: list[Op] = []
    skipped: list[Key] = []
    failures: list[DocumentError] = []
    for item in items:
        kind, name = item.key
        existing = current.get(item.key)
        expected, rv_error = _expected_revision(item)
        if rv_error:
            failures.append(_fail(item, FieldError("metadata.resourceVersion", rv_error, item.resource.metadata.resourceVersion)))
            continue
        if mode is Mode.DELETE:
            if existing is None:
                if skip:
                    skipped.append(item.key)
                else:
                    failures.append(_fail(item, FieldError("", f"resource does not exist: {kind}({name})")))
                continue
            ops.append(Delete(kind, name, expected))
            continue
        if existing is None:
            if mode is Mode.REPLACE:
                failures.append(_fail(item, FieldError("", f"resource does not exist: {kind}({name})")))
                continue
            ops.append(Create(kind, name, stored_value(item, uid=new_uid(), created=now())))
            continue
        if mode is Mode.CREATE:
            if skip:
                skipped.append(item.key)
            else:
                failures.append(_fail(item, FieldError("", f"resource already exists: {kind}({name})")))
            continue
        meta = existing.value.get("metadata", {})
        value = stored_value(item, uid=meta.get("uid") or new_uid(), created=meta.get("creationTimestamp") or now())
        ops.append(Update(kind, name, value, expected if expected is not None else existing.mod_revision))
    if failures:
        raise ValidationFailed(failures)
    return Plan(ops, skipped)


def stored_value(item: ParsedResource, *, uid: str, created: str) -> dict[str, Any]:
    """The document as stored: no resourceVersion (it is the key's mod revision),
    server-owned uid and creationTimestamp kept from the first create."""
    doc = to_document(item.resource)
    doc["metadata"]["uid"] = uid
    doc["metadata"]["creationTimestamp"] = created
    return doc


MAX_REVISION_DIGITS = 20  # a 64-bit revision (etcd's and SQLite's) has at most 20 digits


def _expected_revision(item: ParsedResource) -> tuple[int | None, str | None]:
    text = item.resource.metadata.resourceVersion
    if text in (None, ""):
        return None, None
    # ASCII digits only (str.isdigit accepts '²' and '٢'), and short enough to be a revision.
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_REVISION_DIGITS:
        return None, "resourceVersion must be a revision number as returned by 'seawall get'"
    return int(text), None


def _fail(item: ParsedResource, error: FieldError) -> DocumentError:
    return DocumentError(item.source, item.index, item.key[0], item.key[1], [error])


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_resource_version(kv: KeyValue) -> dict[str, Any]:
    """A stored value as ``get`` shows it: resourceVersion = the key's mod revision."""
    metadata = {**kv.value.get("metadata", {}), "resourceVersion": str(kv.mod_revision)}
    return {**kv.value, "metadata": metadata}


def rule_selectors(policy: dict[str, Any]) -> list[str]:
    """The selectors of a stored/serialised GlobalNetworkPolicy's rules (source and
    destination ``selector``), which is how a policy uses a GlobalNetworkSet."""
    spec = policy.get("spec") if isinstance(policy, dict) else None
    out: list[str] = []
    if not isinstance(spec, dict):
        return out
    for direction in ("ingress", "egress"):
        rules = spec.get(direction)
        for rule in rules if isinstance(rules, list) else ():
            for side in ("source", "destination"):
                entity = rule.get(side) if isinstance(rule, dict) else None
                text = entity.get("selector") if isinstance(entity, dict) else None
                if isinstance(text, str) and text:
                    out.append(text)
    return out


def unselected_sets(items: Sequence[ParsedResource], stored_policies: dict[str, dict[str, Any]]) -> list[ParsedResource]:
    """The GlobalNetworkSets of the input that no rule selector of any
    GlobalNetworkPolicy (the input's, else the stored one of that name) selects."""
    from seawall.selector import SelectorSyntaxError, parse

    policies = dict(stored_policies)
    for item in items:
        if item.key[0] == "GlobalNetworkPolicy":
            policies[item.key[1]] = to_document(item.resource)
    selectors = []
    for policy in policies.values():
        for text in rule_selectors(policy):
            try:
                selectors.append(parse(text))
            except SelectorSyntaxError:
                continue
    out = []
    for item in items:
        if item.key[0] != "GlobalNetworkSet":
            continue
        labels = dict(item.resource.metadata.labels or {})
        if not any(selector.evaluate(labels) for selector in selectors):
            out.append(item)
    return out
