"""Run the real ``seawall`` CLI as a subprocess against a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str


Seawall = Callable[..., Result]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path}/state/seawall.db"


@pytest.fixture
def seawall(db_url: str) -> Seawall:
    def run(*args: str, stdin: str | None = None, datastore: str | None = db_url) -> Result:
        cmd = [sys.executable, "-m", "seawall"]
        if datastore:
            cmd += ["--datastore", datastore]
        proc = subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True, timeout=120)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
