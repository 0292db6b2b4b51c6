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


def test_a_read_never_creates_the_datastore(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    code, out = _run("--datastore", f"sqlite://{path}", "get", "globalnetworkpolicy")
    assert code == 0, out
    assert f"no datastore at {path} yet" in out and "reads as empty" in out
    assert not path.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("get", "globalnetworkset", "-o", "yaml"),
        ("get", "hostendpoint", "nope"),
        ("delete", "globalnetworkset", "nope"),
        ("patch", "globalnetworkset", "nope", "-p", '{"spec": {"nets": ["10.0.0.0/8"]}}'),
        ("label", "globalnetworkset", "nope", "a=b"),
        ("explain", "--interface", "eth0=10.0.0.1"),
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_no_command_but_a_successful_write_creates_the_datastore(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "sub" / "s.db"
    _run("--datastore", f"sqlite://{path}", *args)
    assert not path.exists() and not path.parent.exists()


def test_the_first_write_creates_the_datastore_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    doc = tmp_path / "set.yaml"
    doc.write_text("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\nspec: {nets: [10.0.0.0/8]}\n")
    code, out = _run("--datastore", f"sqlite://{path}", "apply", "-f", str(doc))
    assert code == 0, out
    assert f"created new datastore {path}" in out and "reads as empty" not in out
    assert path.exists()
    code, out = _run("--datastore", f"sqlite://{path}", "get", "globalnetworkset", "s", "-o", "json")
    assert code == 0 and "10.0.0.0/8" in out and "note:" not in out


def test_a_refused_write_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    doc = tmp_path / "bad.yaml"
    doc.write_text("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s}\nspec: {nets: [nope]}\n")
    code, _ = _run("--datastore", f"sqlite://{path}", "apply", "-f", str(doc))
    assert code != 0 and not path.exists()
