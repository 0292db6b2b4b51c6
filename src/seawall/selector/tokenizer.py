"""Turn selector text into position-tagged tokens.

Calico tokenizes the whole selector before parsing, so lexical errors (a lone
``=``, an unterminated string) take priority over grammar errors; we keep that
order. Every token remembers its 0-based character position so that any error
can point a caret at the offending spot.

The tokenizer is context sensitive in the same way as Calico's: a word that
directly follows a label is read as an operator keyword (``contains``, ``in``,
``not in``, ``starts with``...), anywhere else it is a label. Keywords must end
at a word boundary, so ``a inx {}`` is an error rather than ``a in x {}``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

MAX_LABEL_LENGTH = 512
WHITESPACE = " \t"
LABEL_RUN = re.compile(r"[A-Za-z0-9_./-]+")


class SelectorSyntaxError(ValueError):
    """A selector that does not parse; knows where and why, and can draw a caret."""

    def __init__(self, selector: str, position: int, reason: str) -> None:
        super().__init__(selector, position, reason)
        self.selector = selector
        self.position = position
        self.reason = reason

    def caret_lines(self) -> list[str]:
        """The selector indented by two spaces, and a caret under ``position``.

        Control characters other than tab are shown as ``?`` so the display stays
        on one line; tabs are echoed in the caret line to keep the caret aligned.
        """
        shown = "".join(ch if ch == "\t" or ch.isprintable() else "?" for ch in self.selector)
        pad = "".join("\t" if ch == "\t" else " " for ch in self.selector[: self.position])
        return ["  " + shown, "  " + pad + "^"]

    def __str__(self) -> str:
        return "\n".join([f"{self.reason} at position {self.position}", *self.caret_lines()])


class Kind(enum.Enum):
    """Token kinds; the value is how the token is described in messages."""

    LABEL = "label"
    STRING = "string"
    LPAREN = "("
    RPAREN = ")"
    LBRACE = "{"
    RBRACE = "}"
    COMMA = ","
    EQ = "=="
    NE = "!="
    NOT = "!"
    AND = "&&"
    OR = "||"
    IN = "in"
    NOT_IN = "not in"
    CONTAINS = "contains"
    STARTS_WITH = "starts with"
    ENDS_WITH = "ends with"
    HAS = "has()"
    ALL = "all()"
    GLOBAL = "global()"
    EOF = "end of selector"


@dataclass(frozen=True)
class Token:
    kind: Kind
    pos: int
    value: str = ""


_SINGLE = {"(": Kind.LPAREN, ")": Kind.RPAREN, "{": Kind.LBRACE, "}": Kind.RBRACE, ",": Kind.COMMA}
_DOUBLE = {"==": Kind.EQ, "!=": Kind.NE, "&&": Kind.AND, "||": Kind.OR}
_LONE = {"=": "expected ==", "&": "expected &&", "|": "expected ||"}
# Operator words after a label; the joined spellings are what Calico accepts
# when the optional whitespace inside "not in" / "starts with" is left out.
_OPERATOR_WORDS = {
    "contains": Kind.CONTAINS,
    "in": Kind.IN,
    "notin": Kind.NOT_IN,
    "startswith": Kind.STARTS_WITH,
    "endswith": Kind.ENDS_WITH,
}
_TWO_WORD_OPERATORS = {
    "not": ("in", Kind.NOT_IN),
    "starts": ("with", Kind.STARTS_WITH),
    "ends": ("with", Kind.ENDS_WITH),
}
_CALLS = {"has(": Kind.HAS, "all(": Kind.ALL, "global(": Kind.GLOBAL}
EXPECTED_OPERATOR = "expected operator after label"


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text``, always ending with an EOF token at ``len(text)``."""
    return _Lexer(text).run()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        while True:
            self._skip_whitespace()
            if self.pos >= len(self.text):
                self.tokens.append(Token(Kind.EOF, len(self.text)))
                return self.tokens
            self._next_token()

    def _error(self, position: int, reason: str) -> SelectorSyntaxError:
        return SelectorSyntaxError(self.text, position, reason)

    def _emit(self, kind: Kind, start: int, value: str = "") -> None:
        self.tokens.append(Token(kind, start, value))

    def _skip_whitespace(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in WHITESPACE:
            self.pos += 1

    def _follows_label(self) -> bool:
        return bool(self.tokens) and self.tokens[-1].kind is Kind.LABEL

    def _next_token(self) -> None:
        ch = self.text[self.pos]
        pair = self.text[self.pos : self.pos + 2]
        if ch in "\"'":
            self._string(ch)
        elif ch in _SINGLE:
            self._emit(_SINGLE[ch], self.pos)
            self.pos += 1
        elif pair in _DOUBLE:
            self._emit(_DOUBLE[pair], self.pos)
            self.pos += 2
        elif ch == "!":
            self._emit(Kind.NOT, self.pos)
            self.pos += 1
        elif ch in _LONE:
            raise self._error(self.pos, _LONE[ch])
        elif LABEL_RUN.match(self.text, self.pos) is None:
            raise self._error(self.pos, f"unexpected character {ch!r}")
        elif self._follows_label():
            self._operator()
        elif not self._call():
            start = self.pos
            self._emit(Kind.LABEL, start, self._label())

    def _string(self, quote: str) -> None:
        start = self.pos
        end = self.text.find(quote, start + 1)
        if end < 0:
            raise self._error(start, "unterminated string")
        self._emit(Kind.STRING, start, self.text[start + 1 : end])
        self.pos = end + 1

    def _word(self) -> str:
        """Consume a (possibly empty) run of label characters, with no length limit."""
        match = LABEL_RUN.match(self.text, self.pos)
        if match is None:
            return ""
        self.pos = match.end()
        return match.group()

    def _label(self) -> str:
        start = self.pos
        label = self._word()
        if len(label) > MAX_LABEL_LENGTH:
            raise self._error(start, f"label too long (max {MAX_LABEL_LENGTH})")
        return label

    def _operator(self) -> None:
        start = self.pos
        word = self._word()
        if word in _OPERATOR_WORDS:
            self._emit(_OPERATOR_WORDS[word], start)
            return
        if word not in _TWO_WORD_OPERATORS:
            raise self._error(start, EXPECTED_OPERATOR)
        second, kind = _TWO_WORD_OPERATORS[word]
        self._skip_whitespace()
        second_start = self.pos
        if self._word() != second:
            raise self._error(second_start, EXPECTED_OPERATOR)
        self._emit(kind, start)

    def _call(self) -> bool:
        """Handle ``has(label)``, ``all()`` and ``global()``; False if none starts here."""
        for prefix, kind in _CALLS.items():
            if self.text.startswith(prefix, self.pos):
                start = self.pos
                self.pos += len(prefix)
                label = self._has_argument() if kind is Kind.HAS else ""
                self._close_call(prefix)
                self._emit(kind, start, label)
                return True
        return False

    def _has_argument(self) -> str:
        self._skip_whitespace()
        label = self._label()
        if not label:
            raise self._error(self.pos, "no label name in has( expression")
        return label

    def _close_call(self, prefix: str) -> None:
        self._skip_whitespace()
        if not self.text.startswith(")", self.pos):
            raise self._error(self.pos, f"no closing ')' after {prefix}")
        self.pos += 1
