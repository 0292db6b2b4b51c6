"""Shared fixtures and the CI rule: kernel tests may skip locally, never in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SEED = REPO / "examples" / "dos-mitigation.yaml"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config, items


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and item.get_closest_marker("kernel"):
        report.outcome = "failed"
        report.longrepr = f"kernel test skipped in CI (CI=true): {report.longrepr}"


# ---------------------------------------------------------------- install truth, the dynamic net
# tests/unit/test_install_truth.py finds statically what the code runs; this records what the test
# run really started (audit events of this pytest process) and fails the session if a program is not
# a `program` row of packaging/debian-packages.tsv, i.e. something the set-up does not install.

import sys  # noqa: E402
import tempfile  # noqa: E402

_STARTED: dict[str, str] = {}  # program basename -> one command line that started it
_AUDITED = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"})
_OURS = tuple({str(REPO), os.path.realpath(tempfile.gettempdir()), tempfile.gettempdir(), "/tmp", "/var/tmp"})
_PYTHONS = {sys.executable, os.path.realpath(sys.executable)}


def _ignored(exe: str) -> bool:
    """Our own Python, and programs inside the repo (the venv's scripts) or a temp dir (built by a test)."""
    if exe in _PYTHONS:
        return True
    if "/" not in exe:
        return False  # a bare name, found on PATH
    real = os.path.realpath(exe)
    return real in _PYTHONS or real.startswith(_OURS) or exe.startswith(_OURS)


def _note(argv: list[str]) -> None:
    for _ in range(4):  # `ip netns exec NS prog ...` and `sh -c "prog ..."`: prog runs too
        while argv and "=" in argv[0] and "/" not in argv[0].split("=", 1)[0]:
            argv = argv[1:]  # VAR=value before a shell command
        if not argv:
            return
        exe = argv[0]
        if not _ignored(exe):
            _STARTED.setdefault(os.path.basename(exe), " ".join(argv[:8]))
        name = os.path.basename(exe)
        if name == "ip" and argv[1:3] == ["netns", "exec"]:
            argv = argv[4:]
        elif name in ("sh", "bash", "dash") and argv[1:2] == ["-c"] and len(argv) > 2:
            argv = argv[2].split()
        else:
            return


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event not in _AUDITED:
        return
    try:
        if event == "os.system":
            _note(["/bin/sh", "-c", os.fsdecode(args[0])])  # type: ignore[arg-type]
            return
        # subprocess.Popen (executable, args, cwd, env); os.exec / os.posix_spawn (path, args, env);
        # os.spawn (mode, path, args, env). The executable is what runs, whatever argv[0] says.
        executable, argv = (args[1], args[2]) if event == "os.spawn" else (args[0], args[1])
        if isinstance(argv, str | bytes | os.PathLike):
            argv = [argv]
        words = [os.fsdecode(a) for a in argv]  # type: ignore[union-attr]
        if executable is not None:
            words = [os.fsdecode(executable), *words[1:]]  # type: ignore[arg-type]
        _note(words)
    except Exception:  # noqa: BLE001 - an audit hook must never break the call it watches
        pass


sys.addaudithook(_audit)


def _table_programs() -> set[str] | None:
    table = REPO / "packaging" / "debian-packages.tsv"
    if not table.exists():
        return None
    rows = (line.split("\t") for line in table.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {cols[1].strip() for cols in rows if len(cols) >= 3 and cols[0].strip() == "program"}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _STARTED:
        return
    known = _table_programs()
    unknown = sorted(name for name in _STARTED if known is None or name not in known)
    if not unknown:
        return
    lines = [f"  {name}: {_STARTED[name]}" for name in unknown]
    message = ("install truth: this test run started programs that packaging/debian-packages.tsv does not list "
               "(so `make test`'s set-up may not install them); add a `program` row for each:\n" + "\n".join(lines))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = 1
