"""Property tests for the selector language.

Random trees are printed (canonically, and in a deliberately messy but
equivalent spelling), re-parsed, and evaluated. Evaluation is checked against
an independent oracle: this file translates each tree into a Python boolean
expression with its own rules and ``eval``s it, never calling ``Node.evaluate``.
"""

from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from seawall.selector import (
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
    SelectorSyntaxError,
    StartsWith,
    parse,
)

FAST = settings(max_examples=300, deadline=None)

# Keyword-like names are valid labels and stress the context-sensitive tokenizer.
LABEL_POOL = ["a", "b", "c", "in", "not", "contains", "has", "all", "global", "starts", "x.y/z-1_2"]
SHORT_LABELS = ["a", "b", "c"]  # shared by trees and label maps so operators often hit
labels_st = st.one_of(
    st.sampled_from(SHORT_LABELS),
    st.sampled_from(LABEL_POOL),
    st.from_regex(r"[A-Za-z0-9_./-]{1,12}", fullmatch=True),
)
RICH_CHARS = "ab '\"\t(){}!&|=,\\ü✓"
values_st = st.one_of(
    st.text(alphabet="ab", max_size=3),
    st.text(alphabet=RICH_CHARS, max_size=6).filter(lambda v: not ('"' in v and "'" in v)),
)
VALUE_NODES = [Equal, NotEqual, Contains, StartsWith, EndsWith]
SET_NODES = [In, NotIn]


def _leaf_of(cls: type[Node]) -> st.SearchStrategy[Node]:
    if cls in VALUE_NODES:
        return st.builds(cls, labels_st, values_st)
    if cls in SET_NODES:
        return st.builds(cls, labels_st, st.lists(values_st, max_size=4))
    if cls is Has:
        return st.builds(Has, labels_st)
    return st.just(cls())


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    operands = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(Not, children), st.builds(And, operands), st.builds(Or, operands))


# Pick the node type uniformly first, so every operator gets its share of examples.
leaves_st = st.sampled_from([*VALUE_NODES, *SET_NODES, Has, All, Global]).flatmap(_leaf_of)
trees_st = st.recursive(leaves_st, _extend, max_leaves=10)


def _labels_and_values(tree: Node) -> tuple[list[str], list[str]]:
    labels: list[str] = []
    values: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "operands", ()))
        stack.extend([node.operand] if isinstance(node, Not) else [])
        labels.extend([node.label] if hasattr(node, "label") else [])
        values.extend([node.value] if hasattr(node, "value") else list(getattr(node, "values", ())))
    return labels, values


def label_maps_for(tree: Node) -> st.SearchStrategy[dict[str, str]]:
    """Label maps built from the tree's own labels and (padded) values, so matches are near misses."""
    labels, values = _labels_and_values(tree)
    seeds = st.sampled_from(values) if values else st.just("")
    pad = st.text(alphabet="ab", max_size=2)
    label_values = st.one_of(
        seeds, st.builds(lambda p, v, s: p + v + s, pad, seeds, pad), st.text(alphabet="ab", max_size=3)
    )
    keys = st.sampled_from(labels + ["a", "zz"])
    return st.dictionaries(keys, label_values, max_size=6)


def _with_label_maps(nodes: st.SearchStrategy[Node]) -> st.SearchStrategy[tuple[Node, list[dict[str, str]]]]:
    return nodes.flatmap(lambda n: st.tuples(st.just(n), st.lists(label_maps_for(n), min_size=1, max_size=6)))


# ---------------------------------------------------------------- test-side helpers


def normalise(node: Node) -> Node:
    """What parsing should give back: double negations cancel, nothing else changes."""
    if isinstance(node, Not):
        inner = normalise(node.operand)
        return inner.operand if isinstance(inner, Not) else Not(inner)
    if isinstance(node, (And, Or)):
        return type(node)(tuple(normalise(child) for child in node.operands))
    return node


def to_python(node: Node) -> str:
    """Independent oracle: a Python expression over the label dict ``L``."""
    if isinstance(node, (All, Global)):
        return "True"
    if isinstance(node, Has):
        return f"({node.label!r} in L)"
    if isinstance(node, Not):
        return f"(not {to_python(node.operand)})"
    if isinstance(node, And):
        return "(" + " and ".join(to_python(child) for child in node.operands) + ")"
    if isinstance(node, Or):
        return "(" + " or ".join(to_python(child) for child in node.operands) + ")"
    return _leaf_to_python(node)


def _leaf_to_python(node: Node) -> str:
    label, get = repr(node.label), f"L.get({node.label!r})"
    if isinstance(node, (In, NotIn)):
        members = "(" + "".join(f"{v!r}, " for v in node.values) + ")"
        op = "in" if isinstance(node, In) else "not in"
        return f"({get} {op} {members})"  # None is never a member: absent fails in, passes not in
    value = repr(node.value)
    if isinstance(node, Equal):
        return f"({get} == {value})"
    if isinstance(node, NotEqual):
        return f"({get} != {value})"
    method = {Contains: "__contains__", StartsWith: "startswith", EndsWith: "endswith"}[type(node)]
    return f"({label} in L and L[{label}].{method}({value}))"


def oracle(node: Node, labels: dict[str, str]) -> bool:
    return bool(eval(to_python(node), {"__builtins__": {}}, {"L": labels}))  # noqa: S307


class MessyPrinter:
    """Prints a tree with random (valid) whitespace, quotes, spellings and redundancy."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def ws(self, required: bool = False) -> str:
        choices = [" ", "\t", "  ", " \t"] if required else ["", " ", "\t", "  "]
        return self.rng.choice(choices)

    def quote(self, value: str) -> str:
        if '"' in value:
            mark = "'"
        elif "'" in value:
            mark = '"'
        else:
            mark = self.rng.choice("'\"")
        return f"{mark}{value}{mark}"

    def render(self, node: Node, top: bool = True) -> str:
        text = self._render(node, top)
        if self.rng.random() < 0.15:
            text = "!" + self.ws() + "!" + self.ws() + text
        if not isinstance(node, (And, Or)) and self.rng.random() < 0.2:
            text = "(" + self.ws() + text + self.ws() + ")"
        return text

    def _render(self, node: Node, top: bool) -> str:
        if isinstance(node, (And, Or)):
            joiner = self.ws() + ("&&" if isinstance(node, And) else "||") + self.ws()
            inner = joiner.join(self.render(child, top=False) for child in node.operands)
            return inner if top and self.rng.random() < 0.5 else "(" + inner + ")"
        if isinstance(node, Not):
            return "!" + self.ws() + self.render(node.operand, top=False)
        if isinstance(node, (All, Global, Has)):
            name = {All: "all", Global: "global", Has: "has"}[type(node)]
            arg = node.label if isinstance(node, Has) else ""
            return f"{name}({self.ws()}{arg}{self.ws()})"
        return self._comparison(node)

    def _comparison(self, node: Node) -> str:
        lhs = node.label + self.ws(required=True)
        if isinstance(node, (In, NotIn)):
            return lhs + self._set_op(node) + self.ws() + self._set(node.values)
        spelling = {
            Equal: ["=="],
            NotEqual: ["!="],
            Contains: ["contains"],
            StartsWith: ["starts with", "startswith", "starts\t with"],
            EndsWith: ["ends with", "endswith", "ends  with"],
        }[type(node)]
        return lhs + self.rng.choice(spelling) + self.ws() + self.quote(node.value)

    def _set_op(self, node: Node) -> str:
        return "in" if isinstance(node, In) else self.rng.choice(["not in", "notin", "not \t in"])

    def _set(self, values: tuple[str, ...]) -> str:
        items = list(values) + self.rng.sample(list(values), k=min(len(values), 2))
        self.rng.shuffle(items)
        body = ("," + self.ws()).join(self.quote(v) for v in items)
        if items and self.rng.random() < 0.3:
            body += ","
        return "{" + self.ws() + body + self.ws() + "}"


# ---------------------------------------------------------------- properties


@FAST
@given(trees_st)
def test_canonical_string_round_trips(tree: Node) -> None:
    selector = Selector(tree)
    canonical = str(selector)
    reparsed = parse(canonical)
    assert reparsed.root == normalise(tree)
    assert str(reparsed) == canonical
    assert reparsed.unique_id() == selector.unique_id()


@FAST
@given(trees_st, st.randoms(use_true_random=False))
def test_messy_spelling_parses_to_the_same_tree(tree: Node, rng: random.Random) -> None:
    text = MessyPrinter(rng).render(tree)
    assert parse(text).root == normalise(tree), text
    assert str(parse(text)) == str(Selector(tree))


@FAST
@given(_with_label_maps(trees_st))
def test_evaluation_agrees_with_independent_oracle(case: tuple[Node, list[dict[str, str]]]) -> None:
    tree, label_maps = case
    selector = Selector(tree)
    reparsed = parse(str(selector))
    for labels in label_maps:
        expected = oracle(tree, labels)
        assert selector.evaluate(labels) == expected, (str(selector), labels)
        assert reparsed.evaluate(labels) == expected, (str(selector), labels)


@FAST
@given(_with_label_maps(leaves_st))
def test_every_leaf_operator_agrees_with_oracle(case: tuple[Node, list[dict[str, str]]]) -> None:
    leaf, label_maps = case
    for labels in label_maps:
        assert Selector(leaf).evaluate(labels) == oracle(leaf, labels), (str(leaf), labels)


@FAST
@given(_with_label_maps(trees_st), st.randoms(use_true_random=False))
def test_messy_text_evaluates_like_the_oracle(
    case: tuple[Node, list[dict[str, str]]], rng: random.Random
) -> None:
    tree, label_maps = case
    text = MessyPrinter(rng).render(tree)
    selector = parse(text)
    for labels in label_maps:
        assert selector.evaluate(labels) == oracle(tree, labels), (text, labels)


def _check_parse_outcome(text: str) -> None:
    """Either a selector that round-trips, or a well-formed SelectorSyntaxError."""
    try:
        selector = parse(text)
    except SelectorSyntaxError as err:
        assert err.selector == text
        assert 0 <= err.position <= len(text)
        lines = str(err).split("\n")
        assert lines[0] == f"{err.reason} at position {err.position}"
        assert lines[1:] == err.caret_lines()
        assert lines[2].endswith("^") and lines[2].count("^") == 1
        return
    assert parse(str(selector)) == selector


@FAST
@given(st.text(max_size=60))
def test_fuzz_random_text_only_raises_syntax_errors(text: str) -> None:
    _check_parse_outcome(text)


FRAGMENTS = [
    "a", "b", " ", "\t", "==", "!=", "=", "!", "&&", "||", "&", "|", "(", ")", "{", "}", ",",
    "'x'", '"y"', "'", '"', "in", "not", "notin", "contains", "starts", "ends", "with",
    "has(", "has(a)", "all()", "all(", "global()", "\n", "%",
]


@FAST
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join))
def test_fuzz_token_soup_only_raises_syntax_errors(text: str) -> None:
    _check_parse_outcome(text)
