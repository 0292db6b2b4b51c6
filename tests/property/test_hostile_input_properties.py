"""Hypothesis: whatever bytes arrive, the CLI's parse+validate path ends in the
project's own error types, quickly and in bounded memory."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from seawall.api import DocumentError, ValidationFailed
from seawall.api.codec import parse_documents, split_documents

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "dos-mitigation.yaml").read_text(encoding="utf-8")
TIME_BOUND = 2.0
MEMORY_BOUND = 64 << 20

NASTY = [
    "*a", "&a ", "[", "]", "{", "}", "9" * 4500, "0x" + "f" * 5000, "? [a]\n: 1\n", "%eth0", "\u0663", "\x00",
    ": ", "- ", "\n", "'", '"', "!!python/object:os.system", "<<: *a\n", "1.2.3.4/\u0663", "fe80::1%lo",
]


def _through_cli_path(text: str, source: str) -> None:
    """What ``seawall validate -f`` does with a file's text (see cli.inputs / cli.main)."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        parse_documents(split_documents(text, source))
    except (DocumentError, ValidationFailed) as exc:
        assert len(str(exc)) < 200_000
    finally:
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < TIME_BOUND, elapsed
    assert peak < MEMORY_BOUND, peak


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    text = EXAMPLE
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 40)):]
        else:
            text = text[:position] + piece + text[position + len(piece):]
    return text


@st.composite
def structures(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3000))
    width = draw(st.integers(1, 3000))
    shape = draw(st.sampled_from(["flow-list", "flow-map", "block", "wide", "json-deep", "json-wide", "aliases", "int"]))
    head = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: x\n"
    if shape == "flow-list":
        return head + "spec:\n  nets: " + "[" * depth + "]" * depth + "\n"
    if shape == "flow-map":
        return head + "  labels: " + "{a: " * depth + "1" + "}" * depth + "\n"
    if shape == "block":
        return head + "spec:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(min(depth, 600)))
    if shape == "wide":
        return head + "spec:\n  nets: [" + ", ".join(f"'{i}'" for i in range(width)) + "]\n"
    if shape == "json-deep":
        return '{"kind": "GlobalNetworkSet", "spec": ' + "[" * depth + "]" * depth + "}"
    if shape == "json-wide":
        return '{"kind": "GlobalNetworkSet", "metadata": {' + ", ".join(f'"k{i}": {i}' for i in range(width)) + "}}"
    if shape == "aliases":
        levels = draw(st.integers(2, 12))
        fan = draw(st.integers(2, 10))
        lines = ["l0: &a0 [lol]"] + [f"l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels)]
        return head + "  labels:\n" + "".join(f"    {line}\n" for line in lines)
    digits = draw(st.integers(1, 20_000))
    return head + "spec:\n  nets: [" + "9" * digits + "]\n"


settings_ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings_
@given(mutated_example(), st.sampled_from(["f.yaml", "f.json"]))
def test_mutated_example_fails_cleanly(text: str, source: str) -> None:
    _through_cli_path(text, source)


@settings_
@given(structures(), st.sampled_from(["f.yaml", "f.json"]))
def test_deep_wide_huge_and_aliased_fail_cleanly(text: str, source: str) -> None:
    _through_cli_path(text, source)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["f.yaml", "f.json"]))
def test_random_bytes_fail_cleanly(data: bytes, source: str) -> None:
    _through_cli_path(data.decode("utf-8", errors="replace"), source)
