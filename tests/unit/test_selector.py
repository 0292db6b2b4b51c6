"""Unit tests for the selector language: grammar, semantics, canonical form, errors.

Canonical strings and unique IDs marked "Calico" are copied from Calico's own
parser tests, so they pin byte-compatibility of the IP-set names we derive.
"""

from __future__ import annotations

import base64
import hashlib
import pickle

import pytest

from seawall.selector import (
    ALL,
    All,
    And,
    Contains,
    EndsWith,
    Equal,
    Global,
    Has,
    In,
    Not,
    NotEqual,
    NotIn,
    Or,
    Selector,
    SelectorSyntaxError,
    StartsWith,
    parse,
)

# selector, labels that must match, labels that must not match
MATCH_CASES = [
    ("a == 'b'", [{"a": "b"}, {"a": "b", "c": "d"}], [{}, {"a": "c"}, {"c": "b"}]),
    ('a == "b"', [{"a": "b"}], [{"a": "B"}, {}]),
    ("a != 'b'", [{}, {"a": "c"}, {"c": "b"}], [{"a": "b"}]),
    ("a contains 'b'", [{"a": "b"}, {"a": "abc"}], [{}, {"a": "a"}, {"b": "b"}]),
    ("a contains ''", [{"a": ""}, {"a": "x"}], [{}]),
    ("a starts with 'ab'", [{"a": "ab"}, {"a": "abc"}], [{}, {"a": "cab"}, {"a": "a"}]),
    ("a ends with 'ab'", [{"a": "ab"}, {"a": "cab"}], [{}, {"a": "abc"}, {"a": "b"}]),
    ("a in {'x', 'y'}", [{"a": "x"}, {"a": "y"}], [{}, {"a": "z"}, {"b": "x"}]),
    ("a in {}", [], [{}, {"a": ""}]),
    ("a not in {'x', 'y'}", [{}, {"a": "z"}, {"b": "x"}], [{"a": "x"}, {"a": "y"}]),
    ("a not in {}", [{}, {"a": "x"}], []),
    ("a in {\"'\", '\"', 'c'}", [{"a": "'"}, {"a": '"'}, {"a": "c"}], [{}, {"a": "e"}]),
    ("has(a)", [{"a": ""}, {"a": "x"}], [{}, {"b": "a"}]),
    ("!has(a)", [{}, {"b": "a"}], [{"a": ""}]),
    ("!!has(a)", [{"a": "x"}], [{}]),
    ("!!!has(a)", [{}], [{"a": "x"}]),
    ("! !! has(a)", [{}], [{"a": "x"}]),
    ("!a == 'x'", [{}, {"a": "y"}], [{"a": "x"}]),
    ("!a in {'x'}", [{}, {"a": "y"}], [{"a": "x"}]),
    ("all()", [{}, {"a": "b"}], []),
    ("global()", [{}, {"a": "b"}], []),
    ("", [{}, {"a": "b"}], []),
    (" \t ", [{}], []),
    ("!all()", [], [{}, {"a": "b"}]),
    ("a == 'x' && b == 'y'", [{"a": "x", "b": "y"}], [{"a": "x"}, {"b": "y"}, {}]),
    ("a == 'x' || b == 'y'", [{"a": "x"}, {"b": "y"}], [{}, {"a": "y", "b": "x"}]),
    ("!(!has(a) || has(b))", [{"a": "1"}], [{}, {"a": "1", "b": "2"}]),
    ("has(a) && !has(b)", [{"a": "1"}], [{"b": "1"}, {"a": "1", "b": "1"}]),
]


@pytest.mark.parametrize(("text", "matches", "non_matches"), MATCH_CASES)
def test_evaluation(text: str, matches: list[dict[str, str]], non_matches: list[dict[str, str]]) -> None:
    selector = parse(text)
    reparsed = parse(str(selector))
    for labels in matches:
        assert selector.evaluate(labels), labels
        assert reparsed.evaluate(labels), labels
    for labels in non_matches:
        assert not selector.evaluate(labels), labels
        assert not reparsed.evaluate(labels), labels


@pytest.mark.parametrize("text", ["a != 'x'", "a not in {'x'}", "a notin {'x'}"])
def test_negative_operators_match_absent_label(text: str) -> None:
    assert parse(text).evaluate({})
    assert parse(text).evaluate({"other": "x"})


@pytest.mark.parametrize(
    "text",
    ["a == 'x'", "a in {'x'}", "has(a)", "a contains 'x'", "a starts with 'x'", "a ends with 'x'"],
)
def test_positive_operators_need_label_present(text: str) -> None:
    assert not parse(text).evaluate({})
    assert parse(text).evaluate({"a": "x"})


def test_precedence_and_binds_tighter_than_or() -> None:
    selector = parse("a == 'x' || b == 'y' && c == 'z'")
    assert selector.root == Or((Equal("a", "x"), And((Equal("b", "y"), Equal("c", "z")))))
    assert str(selector) == '(a == "x" || (b == "y" && c == "z"))'
    assert selector.evaluate({"a": "x"})
    assert not selector.evaluate({"b": "y"})
    assert selector.evaluate({"b": "y", "c": "z"})


def test_not_binds_tighter_than_and() -> None:
    assert parse("!has(a) && has(b)").root == And((Not(Has("a")), Has("b")))
    assert parse("!(has(a) && has(b))").root == Not(And((Has("a"), Has("b"))))


def test_parentheses_override_precedence() -> None:
    selector = parse("(a == 'x' || b == 'y') && c == 'z'")
    assert selector.root == And((Or((Equal("a", "x"), Equal("b", "y"))), Equal("c", "z")))
    assert not selector.evaluate({"a": "x"})


def test_chains_are_flat_but_explicit_groups_nest() -> None:
    assert parse("has(a) && has(b) && has(c)").root == And((Has("a"), Has("b"), Has("c")))
    assert parse("(has(a) && has(b)) && has(c)").root == And((And((Has("a"), Has("b"))), Has("c")))


@pytest.mark.parametrize(
    ("text", "root"),
    [
        ("a == 'b'", Equal("a", "b")),
        ("a != 'b'", NotEqual("a", "b")),
        ("a contains 'b'", Contains("a", "b")),
        ("a starts with 'b'", StartsWith("a", "b")),
        ("a ends with 'b'", EndsWith("a", "b")),
        ("a in {'b'}", In("a", ("b",))),
        ("a not in {'b'}", NotIn("a", ("b",))),
        ("has(a)", Has("a")),
        ("all()", All()),
        ("global()", Global()),
        ("!has(a)", Not(Has("a"))),
        ("!!has(a)", Has("a")),
        ("!(!has(a))", Has("a")),
        ("((has(a)))", Has("a")),
    ],
)
def test_every_operator_builds_its_node(text: str, root: object) -> None:
    assert parse(text).root == root


@pytest.mark.parametrize(
    ("text", "root"),
    [
        ("a=='b'", Equal("a", "b")),
        ("a\t==\t'b'", Equal("a", "b")),
        ("has( a )", Has("a")),
        ("has(\ta\t)", Has("a")),
        ("all( )", All()),
        ("global(\t)", Global()),
        ("a not  in {}", NotIn("a", ())),
        ("a not\tin {}", NotIn("a", ())),
        ("a notin {}", NotIn("a", ())),
        ("a in{'x'}", In("a", ("x",))),
        ("a starts  with 'x'", StartsWith("a", "x")),
        ("a startswith 'x'", StartsWith("a", "x")),
        ("a ends\twith 'x'", EndsWith("a", "x")),
        ("a endswith 'x'", EndsWith("a", "x")),
        ("a contains'x'", Contains("a", "x")),
        ("a in {'x',}", In("a", ("x",))),
        ("a in { 'y' , 'x' , 'y' , }", In("a", ("x", "y"))),
        ("  has(a)  ", Has("a")),
        ("a.b/c-d_E9 == 'x'", Equal("a.b/c-d_E9", "x")),
        ("in == 'x'", Equal("in", "x")),
        ("contains contains 'x'", Contains("contains", "x")),
        ("has == 'x'", Equal("has", "x")),
        ("all in {}", In("all", ())),
        ("not not in {}", NotIn("not", ())),
    ],
)
def test_whitespace_and_keyword_spellings(text: str, root: object) -> None:
    assert parse(text).root == root


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a == 'x y'", "x y"),
        ('a == "x y"', "x y"),
        ("a == 'say \"hi\"'", 'say "hi"'),
        ('a == "it\'s"', "it's"),
        ("a == ''", ""),
        ("a == 'back\\slash'", "back\\slash"),
        ("a == 'tab\there'", "tab\there"),
        ("a == 'ünïcode ✓'", "ünïcode ✓"),
        ("a == '(&& || !)'", "(&& || !)"),
    ],
)
def test_quoting_is_literal(text: str, value: str) -> None:
    assert parse(text).root == Equal("a", value)


def test_empty_and_blank_selectors_are_all() -> None:
    assert parse("") == ALL
    assert parse(" \t") == ALL
    assert ALL.root == All()
    assert str(ALL) == "all()"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("apply-dos-mitigation == 'true'", 'apply-dos-mitigation == "true"'),
        ("dos-blacklist == 'true'", 'dos-blacklist == "true"'),
        ("dos-deny-list == 'true'", 'dos-deny-list == "true"'),
        ("", "all()"),
        (" (all() )", "all()"),
        ("! (has( b)||! has(a ))", "!(has(b) || !has(a))"),
        ('! (a == "b"&&! c != "d")', '!(a == "b" && !c != "d")'),
        ("a == \"'\"", "a == \"'\""),
        ("a == '\"'", "a == '\"'"),
        ("a contains '\"'", "a contains '\"'"),
        ("a startswith '\"'", "a starts with '\"'"),
        ("a endswith \"'\"", "a ends with \"'\""),
        ("a!='\"'", "a != '\"'"),
        ("a in {\"z\", \"z\", \"x\", \"y\", \"x\", \"a\"}", 'a in {"a", "x", "y", "z"}'),
        ("a in {\"'\", '\"'}", "a in {'\"', \"'\"}"),  # '"' (0x22) sorts first
        ("a notin {}", "a not in {}"),
        ("has(a) && has(b) || has(c)", "((has(a) && has(b)) || has(c))"),
        ("!(k == 'v')", '!k == "v"'),
        (
            "!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
            '!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})',
        ),
        ("global()", "global()"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    selector = parse(text)
    assert str(selector) == canonical
    assert selector.canonical == canonical
    again = parse(canonical)
    assert again == selector
    assert str(again) == canonical


def test_equivalent_sets_canonicalise_identically() -> None:
    assert parse("a in {'b', 'a', 'b'}") == parse('a in {"a", "b",}')
    assert In("a", ["b", "a", "b"]).values == ("a", "b")


@pytest.mark.parametrize(
    ("text", "unique_id"),
    [  # Calico's own test vectors.
        ("", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
        (" all() ", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
        ("! (has( b)||! has(a ))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"),
        ('! (a == "b"&&! c != "d")', "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"),
    ],
)
def test_unique_id_matches_calico(text: str, unique_id: str) -> None:
    assert parse(text).unique_id() == unique_id


def test_unique_id_formula_and_stability() -> None:
    selector = parse("apply-dos-mitigation == 'true'")
    digest = hashlib.sha224(b's:apply-dos-mitigation == "true"').digest()
    expected = "s:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert selector.unique_id() == expected
    assert parse('apply-dos-mitigation=="true"').unique_id() == expected
    assert len(expected) == 40 and "=" not in expected
    assert parse("dos-blacklist == 'true'").unique_id() != expected


def test_uses_global() -> None:
    assert parse("global()").uses_global()
    assert parse("has(a) || !(has(b) && global())").uses_global()
    assert not parse("has(a) && all()").uses_global()
    assert not parse("global == 'x'").uses_global()


def test_selector_is_hashable_and_frozen() -> None:
    assert len({parse("has(a)"), parse("has( a )"), parse("!!has(a)")}) == 1
    with pytest.raises(AttributeError):
        parse("has(a)").root = All()  # type: ignore[misc]
    assert repr(parse("has(a)")) == "Selector('has(a)')"


def test_hand_built_selector_is_normalised() -> None:
    selector = Selector(Not(Not(Or((Has("a"), Not(Not(Has("b"))))))))
    assert selector.root == Or((Has("a"), Has("b")))
    assert parse(str(selector)) == selector


@pytest.mark.parametrize(
    "build",
    [
        lambda: Equal("bad label", "x"),
        lambda: Has(""),
        lambda: Has("x" * 513),
        lambda: Equal("a", "both ' and \""),
        lambda: In("a", "abc"),
        lambda: And((Has("a"),)),
        lambda: Or(()),
        lambda: Not("has(a)"),  # type: ignore[arg-type]
    ],
)
def test_nodes_reject_unprintable_content(build: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        build()  # type: ignore[operator]


def test_longest_label_is_accepted() -> None:
    label = "x" * 512
    assert parse(f"has({label})").root == Has(label)
    assert parse(f"{label} == 'a'").root == Equal(label, "a")


# text, reason, position
ERROR_CASES = [
    ("a = 'b'", "expected ==", 2),
    ("a == 'b' & has(c)", "expected &&", 9),
    ("a == 'b' | has(c)", "expected ||", 9),
    ("a == 'b' &", "expected &&", 9),
    ("a == 'b", "unterminated string", 5),
    ('"FOO', "unterminated string", 0),
    ("\"FOO'", "unterminated string", 0),
    ("a in {'x', \"y}", "unterminated string", 11),
    ("a", "expected operator after label", 1),
    ("a ", "expected operator after label", 2),
    ("a b", "expected operator after label", 2),
    ("a inx {}", "expected operator after label", 2),
    ("a containsx 'y'", "expected operator after label", 2),
    ("a not x {}", "expected operator after label", 6),
    ("a not", "expected operator after label", 5),
    ("a starts 'x'", "expected operator after label", 9),
    ("a ends within 'x'", "expected operator after label", 7),
    ("a has(b)", "expected operator after label", 2),
    ("a )", "expected operator after label", 2),
    ("has(a", "no closing ')' after has(", 5),
    ("has(a b)", "no closing ')' after has(", 6),
    ("has()", "no label name in has( expression", 4),
    ("has( 'a')", "no label name in has( expression", 5),
    ("all(x)", "no closing ')' after all(", 4),
    ("global(", "no closing ')' after global(", 7),
    ("(", "unexpected end of selector", 1),
    ("(a == 'foo'", "expected )", 11),
    ("(a == 'foo' has(b)", "expected )", 12),
    ("a in {'x'", "expected }", 9),
    ("a in {'x' 'y'}", "expected }", 10),
    ("a in {,}", "expected }", 6),
    ("a in {'x',, 'y'}", "expected }", 10),
    ("foo in {'', ||", "expected }", 12),
    ("b == b", "expected string", 5),
    ("a ==", "expected string", 4),
    ("foo != ||", "expected string", 7),
    ("a starts with b", "expected string", 14),
    ("a in {'x'} == 'y'", "unexpected content at end of selector", 11),
    ("a in 'x'", "expected set literal", 5),
    ("a not in", "expected set literal", 8),
    ("has(a) has(b)", "unexpected content at end of selector", 7),
    ("a == 'b' )", "unexpected content at end of selector", 9),
    ("all() == 'x'", "unexpected content at end of selector", 6),
    (")", "expected expression", 0),
    ("()", "expected expression", 1),
    ("'b1' == b", "expected expression", 0),
    ("&& has(a)", "expected expression", 0),
    ("!", "unexpected end of selector", 1),
    ("has(foo) &&", "unexpected end of selector", 11),
    ("%", "unexpected character '%'", 0),
    ("a == 'b' && %", "unexpected character '%'", 12),
    ("a == 'b'\n", "unexpected character '\\n'", 8),
    ("a\n== 'b'", "unexpected character '\\n'", 1),
    ("a\u00a0== 'b'", "unexpected character '\\xa0'", 1),
    ("ä == 'b'", "unexpected character 'ä'", 0),
    ("x" * 513 + " == 'a'", "label too long (max 512)", 0),
    ("has(" + "x" * 513 + ")", "label too long (max 512)", 4),
    ("(" * 101 + "has(a)" + ")" * 101, "selector nested too deeply (max 100)", 100),
]


@pytest.mark.parametrize(("text", "reason", "position"), ERROR_CASES)
def test_error_reason_and_position(text: str, reason: str, position: int) -> None:
    with pytest.raises(SelectorSyntaxError) as info:
        parse(text)
    err = info.value
    assert (err.reason, err.position, err.selector) == (reason, position, text)
    assert str(err).splitlines()[0] == f"{reason} at position {position}"


def test_error_is_value_error_and_picklable() -> None:
    with pytest.raises(ValueError):
        parse("a = 'b'")
    err = SelectorSyntaxError("a = 'b'", 2, "expected ==")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.selector, clone.position, clone.reason) == (err.selector, 2, "expected ==")


def test_caret_rendering() -> None:
    with pytest.raises(SelectorSyntaxError) as info:
        parse("dos-deny-list = 'true'")
    assert info.value.caret_lines() == ["  dos-deny-list = 'true'", "                ^"]
    assert str(info.value) == (
        "expected == at position 14\n  dos-deny-list = 'true'\n                ^"
    )


def test_caret_at_end_of_text() -> None:
    with pytest.raises(SelectorSyntaxError) as info:
        parse("has(a) &&")
    assert info.value.caret_lines() == ["  has(a) &&", "           ^"]


def test_caret_keeps_tabs_aligned_and_hides_control_characters() -> None:
    err = SelectorSyntaxError("a\t\tb\nc", 4, "unexpected character '\\n'")
    assert err.caret_lines() == ["  a\t\tb?c", "   \t\t ^"]


def test_nesting_limit_allows_100_levels() -> None:
    text = "(" * 100 + "has(a)" + ")" * 100
    assert parse(text).root == Has("a")
    assert parse("!" * 1001 + "has(a)").root == Not(Has("a"))


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]
