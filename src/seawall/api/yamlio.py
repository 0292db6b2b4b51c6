"""Reading YAML the way Kubernetes-style tools should, and fast enough for 1M nets.

PyYAML implements YAML 1.1, where ``yes``/``on`` are booleans, ``012`` is octal
and ``80:59`` is a base-60 integer: surprising in a policy file. We load with
YAML 1.2 core-schema scalars (what go-yaml v3 and yaml_rs do) and refuse
duplicate keys (as sigs.k8s.io/yaml's strict mode does).

PyYAML's libyaml binding spends ~7 s on a 1,000,000-item list, so inputs over
``FAST_PATH_BYTES`` go through ``yaml_rs`` (a Rust YAML 1.2 parser, ~0.5 s).
yaml_rs returns a bare list both for "one document that is a list" and for
"several documents", so we count document markers ourselves and fall back to
PyYAML whenever the two views disagree. Both paths are tested to agree.

Hostile input is refused with ``YamlSyntaxError``, never a traceback: nesting
deeper than ``MAX_DEPTH``, aliases that would expand to more than
``MAX_ALIAS_EXPANSION`` extra nodes (a "billion laughs"), recursive aliases,
integers too long for Python's int/str limit, and non-scalar mapping keys.
PyYAML is checked on the node graph before anything is constructed; yaml_rs
has its own alias-replay and depth limits and its result is checked with
``check_shape``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

FAST_PATH_BYTES = 1 << 20
MAX_DEPTH = 100  # a Calico resource is < 15 levels deep
MAX_ALIAS_EXPANSION = 100_000  # nodes that aliases may add beyond the document's own


class YamlSyntaxError(ValueError):
    """A document that is not well-formed YAML; the message names line and column."""


class _Yaml12Loader(yaml.CSafeLoader):
    """libyaml parser, YAML 1.2 core-schema scalars, duplicate keys refused."""


_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _regex, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_regex), _first)


_MAX_INT_CHARS = 4000  # below Python's int/str conversion limit (4300 digits)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if len(text) > _MAX_INT_CHARS:
        mark = node.start_mark
        raise YamlSyntaxError(
            f"integer with {len(text)} digits at line {mark.line + 1}, column {mark.column + 1} is too large"
        )
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            mark = key_node.start_mark
            raise YamlSyntaxError(
                f"mapping key at line {mark.line + 1}, column {mark.column + 1} must be a scalar, not a {type(key).__name__}"
            ) from None
        if key in mapping:
            mark = key_node.start_mark
            raise YamlSyntaxError(
                f"duplicate mapping key {key!r} at line {mark.line + 1}, column {mark.column + 1}"
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)

_DOC_MARKER = re.compile(r"^(---|\.\.\.)(?=[ \t\r\n]|$)", re.MULTILINE)


def load_all(text: str) -> list[Any]:
    """All documents of a YAML stream (empty documents included as None)."""
    if len(text) >= FAST_PATH_BYTES:
        docs = _fast_load_all(text)
        if docs is not None:
            return docs
    return load_all_pyyaml(text)


def load_all_pyyaml(text: str) -> list[Any]:
    loader = _Yaml12Loader(text)
    try:
        docs: list[Any] = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            _check_nodes(node)
            docs.append(loader.construct_document(node))
        return docs
    except RecursionError:
        raise YamlSyntaxError(f"nesting is deeper than {MAX_DEPTH} levels") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f"{exc.context}: " if exc.context else ""
        raise YamlSyntaxError(f"{where}{context}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc)) from None
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node) -> None:
    """Refuse deep nesting, recursive aliases and alias blow-up, looking only at
    the composed node graph (each aliased node is visited once)."""
    size: dict[int, int] = {}  # id(node) -> expanded node count, once finished
    active: set[int] = set()
    unique = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            continue
        if key in size:
            continue
        if key in active:
            raise YamlSyntaxError(f"recursive alias at line {node.start_mark.line + 1}")
        if len(active) >= MAX_DEPTH:
            raise YamlSyntaxError(f"nesting is deeper than {MAX_DEPTH} levels (line {node.start_mark.line + 1})")
        unique += 1
        children = _children(node)
        if not children:
            size[key] = 1
            continue
        active.add(key)
        stack.append((node, True))
        for child in children:
            child_key = id(child)
            if child_key in active:
                raise YamlSyntaxError(f"recursive alias at line {child.start_mark.line + 1}")
            if child_key not in size:
                stack.append((child, False))
    if size[id(root)] > unique + MAX_ALIAS_EXPANSION:
        raise YamlSyntaxError(
            f"aliases expand the document to {size[id(root)]} nodes (limit: {MAX_ALIAS_EXPANSION} more than its own {unique})"
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_shape(data: Any) -> None:
    """Refuse decoded data nested deeper than ``MAX_DEPTH`` (JSON, yaml_rs)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise YamlSyntaxError(f"nesting is deeper than {MAX_DEPTH} levels")
        if type(value) is dict:
            value = value.values()
        elif type(value) is not list:
            continue
        for item in value:
            if type(item) is dict or type(item) is list:
                stack.append((item, depth + 1))


def _fast_load_all(text: str) -> list[Any] | None:
    """yaml_rs, when the document count is unambiguous; None means 'use PyYAML'."""
    try:
        import yaml_rs
    except ImportError:  # pragma: no cover - optional speed-up
        return None
    try:
        result = yaml_rs.loads(text, parse_datetime=False)
    except (yaml_rs.YAMLDecodeError, ValueError, RecursionError) as exc:
        raise YamlSyntaxError(str(exc)) from None
    check_shape(result)
    markers = _DOC_MARKER.findall(text)
    if "..." in markers:
        return None
    expected = len(markers) + (1 if not markers or _content_before_first_marker(text) else 0)
    if expected == 1:
        return [result]
    if isinstance(result, list) and len(result) == expected:
        return result
    return None


def _content_before_first_marker(text: str) -> bool:
    first = _DOC_MARKER.search(text)
    assert first is not None
    for line in text[: first.start()].splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.startswith("%"):
            return True
    return False


class _Dumper(yaml.CSafeDumper):
    """Block-style YAML; keeps field order; never emits aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_all(documents: list[Any]) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
