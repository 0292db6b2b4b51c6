"""The vectorised canonical check agrees with ``parse_cidr`` on every value, and keeps canonical strings as they are."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from seawall.api.cidr import parse_cidr
from seawall.api.cidr_bulk import canonical_texts


def _one(value: object) -> str | None:
    try:
        return parse_cidr(value).text
    except (ValueError, TypeError):
        return None


OCTET = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "010", "255", "256", "", "1a", "٣"]))
PREFIX = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["", "032", "08", "-1", "3/2"]))
TEXT_V4 = st.builds(lambda a, b, c, d, sep, p: f"{a}.{b}.{c}.{d}{sep}{p}", OCTET, OCTET, OCTET, OCTET,
                    st.sampled_from(["/", "", "//", " /"]), PREFIX)
CANONICAL = st.builds(lambda v, p: f"{(v >> 24) & 255}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}/{p}",
                      st.integers(0, 2**32 - 1), st.integers(0, 32)).map(lambda t: _one(t) or t)
VALUE = st.one_of(TEXT_V4, CANONICAL, st.text(max_size=20), st.integers(), st.none(), st.floats(allow_nan=False),
                  st.sampled_from(["2001:db8::/32", "::/0", "::ffff:1.2.3.4/128", "fe80::1%eth0/64", "1.2.3.4"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUE, max_size=700))
def test_bulk_agrees_with_parse_cidr(values: list[object]) -> None:
    got = canonical_texts(values)
    assert got == [_one(v) for v in values]
    for value, text in zip(values, got, strict=True):
        if text is not None and text == value and ":" not in text:
            assert text is value  # canonical IPv4 input is kept, not copied


WITH_NEWLINES = st.one_of(VALUE, st.sampled_from(["1.2.3.0/24\n", "1.2.3.0\n/24", "\n", "1.2.3.0/24\n5.6.7.0/24"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(WITH_NEWLINES, max_size=60), st.integers(1, 9))
def test_rows_give_network_and_length_of_canonical_ipv4(values: list[object], block: int) -> None:
    """``v4_rows`` marks exactly the canonical IPv4 texts and gives their integers,
    whichever path a block takes (one buffer, or the byte matrix when a value breaks
    the rows' shape) and however the values fall into blocks."""
    import pytest

    from seawall.api import cidr_bulk

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cidr_bulk, "BLOCK", block)
        ok, networks, lengths = cidr_bulk.v4_rows(values)
    assert len(ok) == len(networks) == len(lengths) == len(values)
    for value, good, network, length in zip(values, ok.tolist(), networks.tolist(), lengths.tolist(), strict=True):
        text = _one(value)
        canonical_v4 = text is not None and text == value and ":" not in text
        assert good == canonical_v4, value
        if good:
            cidr = parse_cidr(value)
            assert (network, length) == (cidr.network, cidr.prefix)
