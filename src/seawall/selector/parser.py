"""Recursive-descent parser for Calico selectors.

Grammar (precedence low to high: ``||``, ``&&``, prefix ``!``, operand)::

    selector := <empty> | or
    or       := and ( "||" and )*
    and      := unary ( "&&" unary )*
    unary    := "!"* operand          # an even number of ! cancels out
    operand  := "(" or ")" | has(label) | all() | global()
              | label ( "==" | "!=" | contains | starts with | ends with ) string
              | label ( in | not in ) "{" [ string ( "," string )* [","] ] "}"

Chains of the same operator become one n-ary ``And`` / ``Or`` node, as in Calico,
so the canonical string (and thus the IP-set ID) matches Calico's. Parenthesis
nesting is capped so hostile input gets a syntax error, not a RecursionError.
"""

from __future__ import annotations

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
    NotEqual,
    NotIn,
    Or,
    Selector,
    StartsWith,
    negate,
)
from .tokenizer import EXPECTED_OPERATOR, Kind, SelectorSyntaxError, Token, tokenize

MAX_NESTING = 100

_VALUE_OPERATORS = {
    Kind.EQ: Equal,
    Kind.NE: NotEqual,
    Kind.CONTAINS: Contains,
    Kind.STARTS_WITH: StartsWith,
    Kind.ENDS_WITH: EndsWith,
}
_SET_OPERATORS = {Kind.IN: In, Kind.NOT_IN: NotIn}


def parse(text: str) -> Selector:
    """Parse selector text; empty or blank text means ``all()``.

    Raises SelectorSyntaxError (a ValueError) with the position of the problem.
    """
    if not isinstance(text, str):
        raise TypeError(f"selector must be a str, not {type(text).__name__}")
    return Selector(_Parser(text, tokenize(text)).selector())


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    def _peek(self) -> Token:
        return self.tokens[self.index]

    def _advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.EOF:
            self.index += 1
        return token

    def _accept(self, kind: Kind) -> bool:
        if self._peek().kind is kind:
            self.index += 1
            return True
        return False

    def _error(self, token: Token, reason: str) -> SelectorSyntaxError:
        return SelectorSyntaxError(self.text, token.pos, reason)

    def selector(self) -> Node:
        if self._peek().kind is Kind.EOF:
            return All()
        node = self._or(0)
        leftover = self._peek()
        if leftover.kind is not Kind.EOF:
            raise self._error(leftover, "unexpected content at end of selector")
        return node

    def _or(self, depth: int) -> Node:
        operands = [self._and(depth)]
        while self._accept(Kind.OR):
            operands.append(self._and(depth))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self, depth: int) -> Node:
        operands = [self._unary(depth)]
        while self._accept(Kind.AND):
            operands.append(self._unary(depth))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _unary(self, depth: int) -> Node:
        negated = False
        while self._accept(Kind.NOT):
            negated = not negated
        node = self._operand(depth)
        return negate(node) if negated else node

    def _operand(self, depth: int) -> Node:
        token = self._advance()
        if token.kind is Kind.HAS:
            return Has(token.value)
        if token.kind is Kind.ALL:
            return All()
        if token.kind is Kind.GLOBAL:
            return Global()
        if token.kind is Kind.LPAREN:
            return self._group(token, depth)
        if token.kind is Kind.LABEL:
            return self._comparison(token.value)
        if token.kind is Kind.EOF:
            raise self._error(token, "unexpected end of selector")
        raise self._error(token, "expected expression")

    def _group(self, opening: Token, depth: int) -> Node:
        if depth >= MAX_NESTING:
            raise self._error(opening, f"selector nested too deeply (max {MAX_NESTING})")
        node = self._or(depth + 1)
        if not self._accept(Kind.RPAREN):
            raise self._error(self._peek(), "expected )")
        return node

    def _comparison(self, label: str) -> Node:
        operator = self._advance()
        if operator.kind in _VALUE_OPERATORS:
            value = self._advance()
            if value.kind is not Kind.STRING:
                raise self._error(value, "expected string")
            return _VALUE_OPERATORS[operator.kind](label, value.value)
        if operator.kind in _SET_OPERATORS:
            return _SET_OPERATORS[operator.kind](label, self._set_literal())
        raise self._error(operator, EXPECTED_OPERATOR)

    def _set_literal(self) -> tuple[str, ...]:
        if not self._accept(Kind.LBRACE):
            raise self._error(self._peek(), "expected set literal")
        values: list[str] = []
        while self._peek().kind is Kind.STRING:
            values.append(self._advance().value)
            if not self._accept(Kind.COMMA):
                break
        if not self._accept(Kind.RBRACE):
            raise self._error(self._peek(), "expected }")
        return tuple(values)
