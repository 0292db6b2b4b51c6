"""The CLI's datastore messages: empty URL, password flags, no creation on read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from seawall.cli.main import cli


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_empty_datastore_flag_is_an_error() -> None:
    code, out = _run("--datastore", "", "get", "globalnetworkpolicy")
    assert code != 0 and "empty" in out


def test_password_flag_warns_about_the_process_list() -> None:
    code, out = _run("--datastore", "etcd://127.0.0.1:9/x", "--etcd-username", "u",
                     "--etcd-password", "hunter2", "get", "globalnetworkpolicy")
    assert code != 0 and "process list" in out and "hunter2" not in out


def test_password_file_is_read(tmp_path: Path) -> None:
    code, out = _run("--datastore", "etcd://127.0.0.1:1", "--etcd-password-file", str(tmp_path / "missing"),
                     "get", "globalnetworkpolicy")
    assert code != 0 and "cannot read etcd password file" in out


def test_url_password_is_redacted() -> None:
    code, out = _run("--datastore", "etcd://bob:hunter2@h/x", "get", "globalnetworkpolicy")
    assert code != 0 and "hunter2" not in out and "bob:***@" in out


@pytest.mark.xfail(reason="unfinished: a read of a missing store should read as empty without creating it", strict=True)
def test_a_read_never_creates_the_datastore(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    code, out = _run("--datastore", f"sqlite://{path}", "get", "globalnetworkpolicy")
    assert code != 0 and f"no datastore at {path}" in out
    assert not path.exists()
