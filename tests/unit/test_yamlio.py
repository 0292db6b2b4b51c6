"""YAML 1.2 scalars, strictness, and agreement between the two parse paths."""

from __future__ import annotations

import pytest
import yaml_rs

from seawall.api import yamlio
from tests.conftest import SEED


def test_yaml_12_scalars() -> None:
    (doc,) = yamlio.load_all("a: yes\nb: on\nc: 012\nd: 0o12\ne: 80:59\nf: 2024-01-01\ng: true\nh: ~\ni: 1.5\n")
    assert doc == {"a": "yes", "b": "on", "c": 12, "d": 10, "e": "80:59", "f": "2024-01-01", "g": True, "h": None, "i": 1.5}


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(yamlio.YamlSyntaxError, match="duplicate mapping key 'a' at line 2"):
        yamlio.load_all("a: 1\na: 2\n")


def test_syntax_errors_name_line_and_column() -> None:
    with pytest.raises(yamlio.YamlSyntaxError, match=r"line 2, column 1"):
        yamlio.load_all("a: [1,\n")


CORPUS = [
    SEED.read_text(),
    "- a\n- b\n",
    "---\n- a\n",
    "---\n- a\n---\n- b\n",
    "a: 1\n---\nb: 2\n",
    "# c\n---\na: 1\n",
    "a: |\n  ---\n  x\n",
    "---\n---\na: 1\n",
    "a: {b: [1, 2, {c: d}]}\nlabels: {x: 'true', y: true}\n",
]


@pytest.mark.parametrize("text", CORPUS)
def test_fast_path_agrees_with_pyyaml(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = yamlio.load_all_pyyaml(text)
    monkeypatch.setattr(yamlio, "FAST_PATH_BYTES", 0)
    assert yamlio.load_all(text) == expected


def test_fast_path_is_taken_for_large_single_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = yaml_rs.loads
    monkeypatch.setattr(yaml_rs, "loads", lambda *a, **k: calls.append(1) or real(*a, **k))
    text = "nets:\n" + "".join(f"- 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32\n" for i in range(70000))
    assert len(text) > yamlio.FAST_PATH_BYTES
    (doc,) = yamlio.load_all(text)
    assert len(doc["nets"]) == 70000 and calls == [1]


def test_dump_quotes_strings_that_would_read_back_as_other_types() -> None:
    text = yamlio.dump_all([{"a": "true", "b": "1", "c": "yes", "d": True}])
    assert yamlio.load_all(text) == [{"a": "true", "b": "1", "c": "yes", "d": True}]
