"""A fast slice of the hostile-input corpus (bench/hostile_corpus.py): every class, through the real CLI.

No case may end in a traceback, a timeout, a signal or > 500 MB; no refused input may change the datastore.
The full corpus (and its per-class table) is ``make bench-hostile``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import hostile_corpus as corpus  # noqa: E402

pytestmark = pytest.mark.e2e

HEAVY = ("1M ", "100,000", "1 GiB", "300 MiB", "64 MiB", "exactly the limit", "1000000 digits", "100000 digits",
         "depth 100000", "1048576 random")


def _light_slice() -> list[corpus.Case]:
    cases = [c for c in corpus.all_cases(cli_mutations=4) if not any(h in c.desc for h in HEAVY)]
    return corpus.slice_cases(cases, 3)


def test_a_slice_of_every_class_has_no_traceback_and_refusals_leave_the_store_alone() -> None:
    cases = _light_slice()
    assert {c.cls for c in cases} >= set(corpus.EXPECTATION) - {"random mutations (in-process)"}
    results = corpus.run_all(cases, workers=2)
    broken = [f"{r['cls']}: {r['desc']}: {r['reason']}: {r['first_line']}" for r in results if r["outcome"] == corpus.TRACEBACK]
    assert not broken, "\n".join(broken)
    changed = [f"{r['cls']}: {r['desc']}" for r in results if "datastore changed" in r["reason"]]
    assert not changed, "\n".join(changed)


def test_mutations_in_process_have_no_traceback() -> None:
    results = corpus.run_mutations(100, workers=2)
    broken = [f"{r['desc']}: {r['first_line']}" for r in results if r["outcome"] == corpus.TRACEBACK]
    assert len(results) == 100 and not broken, "\n".join(broken)


def test_the_corpus_is_deterministic() -> None:
    assert corpus.mutation_texts(20) == corpus.mutation_texts(20)
    assert [c.desc for c in corpus.all_cases(4)] == [c.desc for c in corpus.all_cases(4)]
