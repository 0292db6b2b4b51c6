"""BPF_PROG_TEST_RUN tests load real programs: they need root (kernel-marked,
so CI fails rather than skips them)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("loading BPF programs needs root")
