"""From input text to validated resources, and from resources back to documents.

The CLI's contract: everything is parsed and validated before anything is
written, and every problem is reported at once with file, document, kind/name,
field path, value and reason. This module does the parsing and validation half;
it is pure (the CLI reads the files and hands us their text).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic

from seawall.api import models, validation
from seawall.api.errors import (
    MAX_ERRORS_SHOWN,
    DocumentError,
    FieldError,
    ValidationFailed,
    Warning_,
    join_path,
    render_value,
)
from seawall.api.kinds import KINDS, UnknownKind, resolve_kind
from seawall.api.yamlio import YamlSyntaxError, check_shape, load_all


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One raw document: where it came from and its decoded data."""

    source: str
    index: str
    data: Any


@dataclass(frozen=True, slots=True)
class ParsedResource:
    source: str
    index: str
    resource: models.Resource
    warnings: list[Warning_] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return self.resource.kind, self.resource.metadata.name


def split_documents(text: str, source: str) -> list[SourceDocument]:
    """Decode a YAML/JSON stream into documents, expanding lists and ``<Kind>List``.

    Raises DocumentError for text that is not YAML/JSON or holds no resource."""
    try:
        raw_docs = _decode(text, source)
    except YamlSyntaxError as exc:
        raise DocumentError(source, "-", None, None, [FieldError("", f"not valid YAML or JSON: {exc}")]) from None
    out: list[SourceDocument] = []
    for number, data in enumerate(raw_docs, start=1):
        if data is None:
            continue
        out.extend(_expand(data, source, str(number)))
    if not out:
        raise DocumentError(source, "-", None, None, [FieldError("", "no resources specified in the input")])
    return out


def _decode(text: str, source: str) -> list[Any]:
    stripped = text.lstrip()
    if source.endswith(".json") or stripped[:1] in ("{", "["):
        try:
            data = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
        except json.JSONDecodeError:
            if source.endswith(".json"):
                raise YamlSyntaxError("invalid JSON") from None
        except _DuplicateKey as exc:
            raise YamlSyntaxError(f"invalid JSON: duplicate key {render_value(exc.key)} in an object") from None
        except RecursionError:
            raise YamlSyntaxError("invalid JSON: nesting is too deep") from None
        except ValueError as exc:  # e.g. an integer beyond Python's int/str digit limit
            raise YamlSyntaxError(f"invalid JSON: {str(exc).split(';')[0]}") from None
        else:
            check_shape(data)
            return [data]
    return load_all(text)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _expand(data: Any, source: str, index: str) -> Iterable[SourceDocument]:
    if isinstance(data, list):
        for position, item in enumerate(data):
            yield SourceDocument(source, f"{index}[{position}]", item)
        return
    if isinstance(data, dict) and isinstance(data.get("kind"), str) and data["kind"].endswith("List") and "items" in data:
        items = data["items"]
        if not isinstance(items, list):
            yield SourceDocument(source, index, {"kind": data["kind"], "items": items})
            return
        for position, item in enumerate(items):
            yield SourceDocument(source, f"{index}.items[{position}]", item)
        return
    yield SourceDocument(source, index, data)


def parse_document(doc: SourceDocument) -> ParsedResource:
    """Validate one document into a resource, or raise DocumentError with all its errors."""
    data = doc.data
    name = _peek_name(data)
    kind = data.get("kind") if isinstance(data, dict) else None

    def fail(errors: list[FieldError]) -> DocumentError:
        return DocumentError(doc.source, doc.index, kind if isinstance(kind, str) else None, name, errors)

    if not isinstance(data, dict):
        raise fail([FieldError("", "a resource must be a mapping with apiVersion, kind, metadata and spec", data)])
    errors: list[FieldError] = []
    if "kind" not in data:
        errors.append(FieldError("kind", "required field is missing"))
    elif not isinstance(kind, str) or kind not in KINDS:
        reason = _unknown_kind_reason(kind)
        errors.append(FieldError("kind", reason, kind))
    if data.get("apiVersion") != models.API_VERSION:
        reason = "required field is missing" if "apiVersion" not in data else f"apiVersion must be '{models.API_VERSION}'"
        if "apiVersion" in data:
            errors.append(FieldError("apiVersion", reason, data.get("apiVersion")))
        else:
            errors.append(FieldError("apiVersion", reason))
    if errors:
        raise fail(errors)
    assert isinstance(kind, str)  # checked above: no errors means a known kind
    if oversized := _oversized_mapping(data):
        raise fail([oversized])
    warnings: list[Warning_] = []
    data = _coerce_boolean_labels(data, warnings)
    try:
        resource = KINDS[kind].model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise fail(_pydantic_errors(exc)) from None
    resource, more_warnings, errors = validation.validate(resource)  # type: ignore[arg-type]
    if errors:
        raise fail(errors)
    return ParsedResource(doc.source, doc.index, resource, warnings + more_warnings)


def parse_documents(docs: Iterable[SourceDocument]) -> list[ParsedResource]:
    """Validate every document; raise ValidationFailed listing all bad ones (and
    resources named twice), so that nothing is half-applied."""
    parsed: list[ParsedResource] = []
    failures: list[DocumentError] = []
    seen: dict[tuple[str, str], ParsedResource] = {}
    for doc in docs:
        try:
            item = parse_document(doc)
        except DocumentError as exc:
            failures.append(exc)
            continue
        first = seen.get(item.key)
        if first is not None:
            failures.append(
                DocumentError(doc.source, doc.index, item.key[0], item.key[1], [FieldError(
                    "metadata.name",
                    f"resource appears twice in the input (first in {first.source}: document {first.index})",
                    item.key[1],
                )])
            )
            continue
        seen[item.key] = item
        parsed.append(item)
    if failures:
        raise ValidationFailed(failures)
    return parsed


def _peek_name(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
        name = data["metadata"].get("name")
        return name if isinstance(name, str) else None
    return None


def _unknown_kind_reason(kind: Any) -> str:
    try:
        if isinstance(kind, str):
            info = resolve_kind(kind)
            return f"kind must be written '{info.kind}'"
    except UnknownKind as exc:
        return str(exc)
    return "kind must be a string"


def _coerce_boolean_labels(data: dict[str, Any], warnings: list[Warning_]) -> dict[str, Any]:
    """Accept ``label: true`` (a YAML boolean) as the string "true", with a warning:
    the Calico DoS page writes its HostEndpoint label that way."""
    meta = data.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(labels, dict) or not any(isinstance(v, bool) for v in labels.values()):
        return data
    fixed = {}
    for key, value in labels.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
            warnings.append(Warning_(
                f"metadata.labels.{key}",
                f"label value is a YAML boolean; using the string '{text}' (quote it: '{text}')",
            ))
            value = text
        fixed[key] = value
    return {**data, "metadata": {**meta, "labels": fixed}}


_PYDANTIC_REASONS = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be a boolean (true or false)",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "literal_error": "unexpected value",
}


MAX_MAPPING_KEYS = 100_000
"""No field of these kinds is a mapping this big (labels and annotations included:
annotations are capped at 256 KiB in all); checked before the models, so a
document of a million unknown keys costs a walk, not a million errors."""


def _oversized_mapping(data: Any, path: tuple[str | int, ...] = ()) -> FieldError | None:
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(data, path)]
    while pending:
        value, where = pending.pop()
        if isinstance(value, dict):
            if len(value) > MAX_MAPPING_KEYS:
                return FieldError(join_path(list(where)), f"a mapping of {len(value):,} keys; no field of a Calico resource "
                                  f"has more than {MAX_MAPPING_KEYS:,} (unknown fields?)")
            pending.extend((v, (*where, str(k))) for k, v in value.items() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            pending.extend((v, (*where, i)) for i, v in enumerate(value) if isinstance(v, (dict, list)))
    return None


def _pydantic_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    """Field errors in pydantic's order; past the first ``MAX_ERRORS_SHOWN`` (which
    are all that is listed) they are counted cheaply: no did-you-mean, no value."""
    errors: list[FieldError] = []
    for index, err in enumerate(exc.errors(include_url=False, include_context=False)):
        path = join_path([p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-")])
        if index >= MAX_ERRORS_SHOWN:
            errors.append(FieldError(path, err["type"]))
            continue
        reason = _PYDANTIC_REASONS.get(err["type"]) or err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            errors.append(FieldError(path, reason))
        elif err["type"] == "extra_forbidden":
            errors.append(FieldError(path, _unknown_field_reason(str(err["loc"][-1]))))
        else:
            errors.append(FieldError(path, reason, err.get("input")))
    return errors


def _all_field_names() -> set[str]:
    names: set[str] = set()
    pending: list[type[pydantic.BaseModel]] = [info.model for info in KINDS.values()]
    while pending:
        model = pending.pop()
        for name, info in model.model_fields.items():
            names.add(name)
            for arg in _model_args(info.annotation):
                pending.append(arg)
    return names


def _model_args(annotation: Any) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _model_args(arg)]


_FIELD_NAMES = _all_field_names()


def _unknown_field_reason(name: str) -> str:
    if name in _FIELD_NAMES:  # a real field, at the wrong level: a suggestion would repeat it
        return f'unknown field "{name}" (not a field at this level)'
    close = difflib.get_close_matches(name, _FIELD_NAMES, n=1) if len(name) <= 64 else []
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f'unknown field "{name}"{hint}'


# ------------------------------------------------------------------ output


def to_document(resource: models.Resource, *, resource_version: int | None = None) -> dict[str, Any]:
    """The JSON-compatible document of a resource, as ``get`` prints and the store keeps."""
    doc = resource.model_dump(mode="json", exclude_none=True)
    if resource_version is not None:
        doc["metadata"]["resourceVersion"] = str(resource_version)
    else:
        doc["metadata"].pop("resourceVersion", None)
    return doc


def from_stored(value: dict[str, Any], *, source: str) -> ParsedResource:
    """Re-validate a stored document (the agent must survive bad data in the store)."""
    return parse_document(SourceDocument(source, "-", value))


def load_text(text: str, source: str) -> list[ParsedResource]:
    """Split and validate in one go; raises ValidationFailed."""
    try:
        docs = split_documents(text, source)
    except DocumentError as exc:
        raise ValidationFailed([exc]) from None
    return parse_documents(docs)
