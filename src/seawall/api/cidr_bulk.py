"""Canonical forms of many stored nets at once: a million in a fraction of a second.

An agent that starts with a million-net set must check every stored net (a
foreign writer may have stored anything) and know its canonical text. One at a
time that is ~4.5 µs per net in Python (``parse_cidr``), 4.5 s at a million.
Almost every stored net is already canonical IPv4 text (``a.b.c.d/len``, no
leading zeros, host bits clear), and that can be checked with a few numpy
operations over all of them together: the texts are joined into one byte buffer
(one pass over the strings, which is what a million scattered ``str`` objects
cost), the separators found, and each row's four octets and prefix folded from
the digits before its separators. The same pass yields every row's network and
prefix length as integers, so the XDP tier loads a million nets from it too.
Rows that pass keep their very ``str`` object (no new strings); the rest (IPv6,
bare addresses, host bits set, garbage) go through ``parse_cidr`` one by one. A
block whose bytes do not even have the shape of IPv4 rows (a newline inside a
value, non-ASCII, a missing separator) is checked row by row in a byte matrix
instead. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from seawall.api.cidr import parse_cidr

if TYPE_CHECKING:
    import numpy as np

WIDTH = 18  # len("255.255.255.255/32")
BLOCK = 1 << 16  # rows per numpy pass (bounded scratch memory)
SMALL = 512  # fewer values than this: one by one (no numpy import, no numpy overhead)
_ZERO, _NINE, _DOT, _SLASH, _NEWLINE = ord("0"), ord("9"), ord("."), ord("/"), ord("\n")


def canonical_texts(values: Sequence[object], small: int = SMALL) -> list[str | None]:
    """Per value: its canonical CIDR text (the value itself when it already is),
    or None when it is not a CIDR (see ``parse_cidr``). ``small``: below this many
    values, one by one (a caller that has numpy loaded anyway passes less)."""
    if len(values) < small:
        return [_same_if_equal(v, _slow(v)) for v in values]
    out: list[str | None] = [None] * len(values)
    for first in range(0, len(values), BLOCK):
        block = values[first : first + BLOCK]
        rows = _v4_block(block)[0]
        if rows.all():  # the usual case: every value is its own canonical text
            out[first : first + len(block)] = block  # type: ignore[assignment]
            continue
        ok = rows.tolist()
        out[first : first + len(block)] = [v if good else _slow(v) for v, good in zip(block, ok, strict=True)]  # type: ignore[misc]
    return out


def _same_if_equal(value: object, text: str | None) -> str | None:
    return value if text is not None and value == text else text


def _slow(value: object) -> str | None:
    try:
        return parse_cidr(value).text
    except (ValueError, TypeError):
        return None


def v4_rows(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per value: is it canonical ``a.b.c.d/len`` IPv4 text, its network address and
    its prefix length (int64; meaningful only where the first is true)."""
    import numpy as np

    if len(values) <= BLOCK:
        return _v4_block(values)
    parts = [_v4_block(values[first : first + BLOCK]) for first in range(0, len(values), BLOCK)]
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]


def _v4_block(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import numpy as np

    if not values:
        return np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat = _v4_flat(values)
    return flat if flat is not None else _v4_matrix(values)


_ROW_SEPARATORS = (_DOT, _DOT, _DOT, _SLASH, _NEWLINE)


def _v4_flat(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``_v4_block`` over the values joined into one buffer; None when the buffer is
    not rows of four dotted fields and a prefix (then ``_v4_matrix`` sorts the rows)."""
    import numpy as np

    n = len(values)
    try:
        joined = "\n".join(values) + "\n"  # type: ignore[arg-type]
    except TypeError:  # a value that is not a str
        return None
    if not joined.isascii():
        return None
    buf = np.frombuffer(joined.encode("ascii"), np.uint8)
    separator = (buf == _DOT) | (buf == _SLASH) | (buf == _NEWLINE)
    found = np.flatnonzero(separator).astype(np.int32)
    if len(found) != 5 * n:  # also: a value with a newline in it
        return None
    stops = found.reshape(n, 5)
    digits = buf - np.uint8(_ZERO)
    if not (buf[stops] == np.array(_ROW_SEPARATORS, np.uint8)).all() or ((digits > 9) & ~separator).any():
        return None
    starts = np.empty((n, 5), np.int32)
    starts[0, 0] = 0
    starts[1:, 0] = stops[:-1, 4] + 1
    starts[:, 1:] = stops[:, :4] + 1
    widths = stops - starts
    ok = np.all((widths >= 1) & (widths <= 3), axis=1) & (widths[:, 4] <= 2)
    # each field's last three digits, right-aligned (a missing one counts as 0)
    ones = digits[stops - 1].astype(np.uint16)
    tens = np.where(widths >= 2, digits[stops - 2], 0).astype(np.uint16)
    hundreds = np.where(widths >= 3, digits[np.maximum(stops - 3, 0)], 0).astype(np.uint16)
    fields = hundreds * 100 + tens * 10 + ones
    ok &= ~np.any((digits[starts] == 0) & (widths > 1), axis=1)  # no leading zeros
    return _v4_checked(ok, fields.astype(np.int64))


def _v4_checked(ok: np.ndarray, fields: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of (octet, octet, octet, octet, prefix): in range and no host bits set."""
    import numpy as np

    ok &= np.all(fields[:, :4] <= 255, axis=1) & (fields[:, 4] <= 32)
    address = (fields[:, 0] << 24) | (fields[:, 1] << 16) | (fields[:, 2] << 8) | fields[:, 3]
    length = fields[:, 4]
    host = (np.int64(1) << (32 - np.clip(length, 0, 32))) - 1
    ok &= (address & host) == 0
    return ok, address, length


def _v4_matrix(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_v4_block`` row by row: the texts as rows of a byte matrix, folded column by column."""
    import numpy as np

    n = len(values)
    texts: Sequence[object] = values
    if set(map(type, values)) != {str}:
        texts = [v if type(v) is str else "" for v in values]
    try:
        packed = np.array(texts, dtype=f"S{WIDTH}")  # longer texts are cut: they fail on length
    except UnicodeEncodeError:
        texts = [v if type(v) is str and v.isascii() else "" for v in texts]
        packed = np.array(texts, dtype=f"S{WIDTH}")
    lengths = np.fromiter(map(len, texts), np.int64, n)  # type: ignore[arg-type]
    matrix = packed.view(np.uint8).reshape(n, WIDTH)
    ok = (lengths >= 9) & (lengths <= WIDTH)
    used = np.arange(WIDTH)[None, :] < lengths[:, None]
    digit = (matrix >= _ZERO) & (matrix <= _NINE)
    dot = matrix == _DOT
    slash = matrix == _SLASH
    ok &= ~np.any(used & ~(digit | dot | slash), axis=1)
    ok &= (dot.sum(axis=1) == 3) & (slash.sum(axis=1) == 1)
    # the four separators of every row in order: three dots, then the slash
    separators = np.where(dot | slash, np.arange(WIDTH, dtype=np.int8)[None, :], np.int8(WIDTH))
    separators.sort(axis=1)
    stops = separators[:, :4].astype(np.int64)
    ok &= matrix[np.arange(n), np.minimum(stops[:, 3], WIDTH - 1)] == _SLASH
    starts = np.concatenate([np.zeros((n, 1), np.int64), stops + 1], axis=1)  # 5 fields
    ends = np.concatenate([stops, lengths[:, None]], axis=1)
    widths = ends - starts
    ok &= np.all((widths >= 1) & (widths <= 3), axis=1) & (widths[:, 4] <= 2)
    fields = np.zeros((n, 5), np.int64)
    for j in range(3):
        column = np.minimum(starts + j, WIDTH - 1)
        digit_j = np.take_along_axis(matrix, column, axis=1).astype(np.int64) - _ZERO
        fields = np.where(j < widths, fields * 10 + digit_j, fields)
    first = np.take_along_axis(matrix, np.minimum(starts, WIDTH - 1), axis=1).astype(np.int64) - _ZERO
    ok &= ~np.any((first == 0) & (widths > 1), axis=1)  # no leading zeros
    return _v4_checked(ok, fields)
