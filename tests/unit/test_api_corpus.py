"""Every document of the bad corpus is refused with the documented error."""

from __future__ import annotations

from pathlib import Path

import pytest

from seawall.api import ValidationFailed, load_text
from tests.conftest import DATA

BAD = sorted((DATA / "bad").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[:1]
    if first and first[0].startswith("# expect: "):
        return first[0].removeprefix("# expect: ")
    return "no resources specified in the input"


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_document_is_refused_with_its_reason(path: Path) -> None:
    with pytest.raises(ValidationFailed) as info:
        load_text(path.read_text(), str(path))
    message = str(info.value)
    assert _expected(path) in message, message
    assert str(path) in message


def test_corpus_is_not_empty() -> None:
    assert len(BAD) >= 20
