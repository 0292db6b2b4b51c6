"""The global options (``--datastore``, ``--etcd-*``) before or after the
subcommand: real subprocesses on real SQLite files.

Every run sets ``SEAWALL_DATASTORE`` to a decoy file (and clears Calico's
``ETCD_*`` variables), so "not the flagged file" is visible as data landing in
the decoy, and no run ever touches the real default under /var/lib/seawall.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import seawall.cli.commands_agent as agent_module
from seawall.cli.main import cli
from seawall.datastore import SqliteDatastore
from seawall.datastore.url import ETCD_ENV
from tests.conftest import SEED
from tests.e2e.conftest import Result

pytestmark = pytest.mark.e2e

GLOBAL_FLAGS = (
    "--etcd-password-file",
    "--datastore", "--etcd-endpoints", "--etcd-ca-cert-file", "--etcd-cert-file",
    "--etcd-key-file", "--etcd-username", "--etcd-password",
)

GNS = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: {name}
  labels: {{role: blocklist}}
spec:
  nets: [192.0.2.0/24]
"""

#: where ``--datastore URL`` goes: before or after the subcommand
POSITIONS = ("before", "after")

#: loopback port 1: nothing listens, the connection is refused at once
UNREACHABLE_ETCD = "http://127.0.0.1:1"


def _run(*args: str, env: dict[str, str], stdin: str | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "seawall", *args], input=stdin, capture_output=True, text=True, timeout=60, env=env,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _placed(position: str, flags: list[str], command: list[str]) -> list[str]:
    """``flags`` before the subcommand (``command[0]``) or after all of its arguments."""
    return [*flags, *command] if position == "before" else [*command, *flags]


def _url(path: Path) -> str:
    return f"sqlite://{path}"


def _names(path: Path, kind: str = "GlobalNetworkSet") -> list[str]:
    """The names of ``kind`` stored in the SQLite file at ``path`` ([] if there is no file)."""
    if not path.exists():
        return []
    store = SqliteDatastore(str(path))
    try:
        return sorted(kv.name for kv in store.list(kind).items)
    finally:
        store.close()


def _labels(path: Path, name: str) -> dict[str, str]:
    store = SqliteDatastore(str(path))
    try:
        return dict(store.get("GlobalNetworkSet", name).value["metadata"].get("labels") or {})
    finally:
        store.close()


@pytest.fixture
def decoy(tmp_path: Path) -> Path:
    """The file ``SEAWALL_DATASTORE`` names: where data goes when no flag is given."""
    return tmp_path / "decoy" / "env.db"


@pytest.fixture
def env(decoy: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ETCD_ENV.values()}
    clean["SEAWALL_DATASTORE"] = _url(decoy)
    return clean


@pytest.fixture
def flagged(tmp_path: Path) -> Path:
    """The file the tests name with ``--datastore``."""
    return tmp_path / "flagged" / "seawall.db"


def _seed(path: Path, env: dict[str, str], *names: str) -> None:
    text = "---\n".join(GNS.format(name=name) for name in names)
    result = _run("--datastore", _url(path), "apply", "-f", "-", env=env, stdin=text)
    assert result.code == 0, result.err


# ------------------------------------------------------------ each command


@pytest.mark.parametrize("position", POSITIONS)
def test_apply_writes_to_the_flagged_file(position: str, env: dict[str, str], flagged: Path, decoy: Path) -> None:
    result = _run(*_placed(position, ["--datastore", _url(flagged)], ["apply", "-f", "-"]), env=env, stdin=GNS.format(name="a"))
    assert result.code == 0, result.err
    assert "Successfully applied 1 'GlobalNetworkSet' resource(s)" in result.out
    assert _names(flagged) == ["a"]
    assert _names(decoy) == []


@pytest.mark.parametrize("position", POSITIONS)
def test_get_reads_the_flagged_file(position: str, env: dict[str, str], flagged: Path, decoy: Path) -> None:
    _seed(flagged, env, "in-flagged")
    _seed(decoy, env, "in-decoy")
    result = _run(*_placed(position, ["--datastore", _url(flagged)], ["get", "gns", "-o", "json"]), env=env)
    assert result.code == 0, result.err
    assert [item["metadata"]["name"] for item in json.loads(result.out)["items"]] == ["in-flagged"]
    one = _run(*_placed(position, ["--datastore", _url(flagged)], ["get", "gns", "in-decoy"]), env=env)
    assert one.code == 1 and "resource does not exist: GlobalNetworkSet(in-decoy)" in one.err


@pytest.mark.parametrize("position", POSITIONS)
def test_delete_removes_from_the_flagged_file(position: str, env: dict[str, str], flagged: Path, decoy: Path) -> None:
    _seed(flagged, env, "a", "b")
    _seed(decoy, env, "a", "b")
    result = _run(*_placed(position, ["--datastore", _url(flagged)], ["delete", "gns", "a"]), env=env)
    assert result.code == 0, result.err
    assert _names(flagged) == ["b"]
    assert _names(decoy) == ["a", "b"]


@pytest.mark.parametrize("position", POSITIONS)
def test_patch_changes_the_flagged_file(position: str, env: dict[str, str], flagged: Path, decoy: Path) -> None:
    _seed(flagged, env, "a")
    _seed(decoy, env, "a")
    patch = json.dumps({"spec": {"nets": ["198.51.100.0/24"]}})
    result = _run(*_placed(position, ["--datastore", _url(flagged)], ["patch", "gns", "a", "-p", patch]), env=env)
    assert result.code == 0, result.err
    for path, nets in ((flagged, ["198.51.100.0/24"]), (decoy, ["192.0.2.0/24"])):
        store = SqliteDatastore(str(path))
        try:
            assert store.get("GlobalNetworkSet", "a").value["spec"]["nets"] == nets
        finally:
            store.close()


@pytest.mark.parametrize("position", POSITIONS)
def test_label_changes_the_flagged_file(position: str, env: dict[str, str], flagged: Path, decoy: Path) -> None:
    _seed(flagged, env, "a")
    _seed(decoy, env, "a")
    result = _run(*_placed(position, ["--datastore", _url(flagged)], ["label", "gns", "a", "tier=edge"]), env=env)
    assert result.code == 0, result.err
    assert _labels(flagged, "a") == {"role": "blocklist", "tier": "edge"}
    assert _labels(decoy, "a") == {"role": "blocklist"}


@pytest.mark.parametrize("position", POSITIONS)
def test_explain_reads_the_flagged_file(position: str, env: dict[str, str], flagged: Path, tmp_path: Path) -> None:
    applied = _run("apply", "-f", str(SEED), "--datastore", _url(flagged), env=env)
    assert applied.code == 0, applied.err
    command = ["explain", "--node", "jasper", "--run-dir", str(tmp_path / "run"), "--interface", "eth0=10.0.0.1", "-o", "json"]
    result = _run(*_placed(position, ["--datastore", _url(flagged)], command), env=env)
    assert result.code == 0, result.err
    (iface,) = json.loads(result.out)["interfaces"]
    assert (iface["name"], iface["hostEndpoint"], iface["policies"]) == ("eth0", "production-host", ["dos-mitigation"])
    unflagged = _run(*command, env=env)  # the decoy is empty: nothing protects eth0
    assert unflagged.code == 0, unflagged.err
    assert json.loads(unflagged.out)["interfaces"] == []


# ------------------------------------------------------------ precedence


def test_after_the_subcommand_beats_before(env: dict[str, str], tmp_path: Path, decoy: Path) -> None:
    before, after = tmp_path / "before.db", tmp_path / "after.db"
    result = _run("--datastore", _url(before), "apply", "-f", "-", "--datastore", _url(after), env=env, stdin=GNS.format(name="a"))
    assert result.code == 0, result.err
    assert (_names(before), _names(after), _names(decoy)) == ([], ["a"], [])
    _seed(before, env, "only-before")
    listed = _run("--datastore", _url(before), "get", "gns", "-o", "json", "--datastore", _url(after), env=env)
    assert listed.code == 0, listed.err
    assert [item["metadata"]["name"] for item in json.loads(listed.out)["items"]] == ["a"]


def test_the_environment_is_used_without_a_flag(env: dict[str, str], decoy: Path) -> None:
    result = _run("apply", "-f", "-", env=env, stdin=GNS.format(name="from-env"))
    assert result.code == 0, result.err
    assert _names(decoy) == ["from-env"]
    listed = _run("get", "gns", "from-env", "-o", "json", env=env)
    assert listed.code == 0, listed.err
    assert json.loads(listed.out)["metadata"]["name"] == "from-env"


@pytest.mark.parametrize("position", POSITIONS)
def test_the_flag_beats_the_environment(position: str, env: dict[str, str], flagged: Path, decoy: Path) -> None:
    assert env["SEAWALL_DATASTORE"] == _url(decoy)
    result = _run(*_placed(position, ["--datastore", _url(flagged)], ["apply", "-f", "-"]), env=env, stdin=GNS.format(name="a"))
    assert result.code == 0, result.err
    assert (_names(flagged), _names(decoy)) == (["a"], [])


# ------------------------------------------------------------ etcd flags


@pytest.mark.parametrize("position", POSITIONS)
def test_etcd_endpoints_select_etcd(position: str, env: dict[str, str], decoy: Path) -> None:
    """--etcd-endpoints beats SEAWALL_DATASTORE (a sqlite file) and selects etcd:
    nothing listens on the port, so the read fails naming it, quickly."""
    result = _run(*_placed(position, ["--etcd-endpoints", UNREACHABLE_ETCD], ["get", "gns"]), env=env)
    assert result.code == 1
    assert "etcd 127.0.0.1:1 unavailable" in result.err, result.err
    assert "No such option" not in result.err
    assert not decoy.exists()


@pytest.mark.parametrize("position", POSITIONS)
def test_etcd_tls_and_auth_flags_reach_the_etcd_client(position: str, env: dict[str, str], tmp_path: Path) -> None:
    """Each --etcd-* flag after the subcommand is seen by the etcd client (which
    rejects these before connecting)."""
    missing = tmp_path / "no-such-ca.pem"
    tls = _run(*_placed(position, ["--etcd-endpoints", UNREACHABLE_ETCD, "--etcd-ca-cert-file", str(missing)], ["get", "gns"]), env=env)
    assert tls.code == 1 and f"cannot read {missing}" in tls.err, tls.err
    half = _run(*_placed(position, ["--etcd-endpoints", UNREACHABLE_ETCD, "--etcd-cert-file", str(missing)], ["get", "gns"]), env=env)
    assert half.code == 1 and "a client certificate needs both cert and key" in half.err, half.err
    key = _run(*_placed(position, ["--etcd-endpoints", UNREACHABLE_ETCD, "--etcd-key-file", str(missing)], ["get", "gns"]), env=env)
    assert key.code == 1 and "a client certificate needs both cert and key" in key.err, key.err
    auth = _run(*_placed(position, ["--etcd-endpoints", UNREACHABLE_ETCD, "--etcd-password", "pw"], ["get", "gns"]), env=env)
    assert auth.code == 1 and "an etcd password needs a username" in auth.err, auth.err


def test_etcd_flags_from_both_positions_combine(env: dict[str, str]) -> None:
    """Different options given in the two positions are all used."""
    result = _run("--etcd-endpoints", UNREACHABLE_ETCD, "get", "gns", "--etcd-password", "pw", env=env)
    assert result.code == 1 and "an etcd password needs a username" in result.err, result.err
    named = _run("--etcd-username", "root", "get", "gns", "--etcd-endpoints", UNREACHABLE_ETCD, "--etcd-password", "pw", env=env)
    assert named.code == 1 and "etcd 127.0.0.1:1 unavailable" in named.err, named.err


# ------------------------------------------------------------ agent, validate, every command


def test_agent_takes_the_datastore_after_the_subcommand(env: dict[str, str], tmp_path: Path) -> None:
    args = ["--node", "n1", "--bpffs", str(tmp_path / "bpffs"), "--run-dir", str(tmp_path / "run")]
    result = _run("agent", *args, "--datastore", "bogus://x", env=env)
    assert result.code == 1
    assert "No such option" not in result.err
    assert "cannot open datastore: unsupported datastore URL 'bogus://x'" in result.err, result.err
    first = _run("agent", "--datastore", "bogus://y", *args, env=env)
    assert first.code == 1 and "unsupported datastore URL 'bogus://y'" in first.err, first.err
    both = _run("--datastore", "bogus://before", "agent", "--datastore", "bogus://after", *args, env=env)
    assert both.code == 1 and "unsupported datastore URL 'bogus://after'" in both.err, both.err


def test_agent_cleanup_parses_with_the_datastore_flags(flagged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``seawall agent --datastore URL --cleanup ...`` parses and runs the clean-up
    path (in process, with the clean-up itself stubbed: it changes this host's
    kernel state); the flags' values land where ``_store`` reads them."""
    seen: list[tuple[tuple[str | None, str, str], dict[str, str]]] = []

    def fake_teardown(node: str | None, bpffs: str, run_dir: str) -> None:
        seen.append(((node, bpffs, run_dir), dict(click.get_current_context().meta["seawall.globals"])))

    monkeypatch.setattr(agent_module, "_teardown", fake_teardown)
    bpffs, run = str(tmp_path / "bpffs"), str(tmp_path / "run")
    args = ["agent", "--datastore", _url(flagged), "--cleanup", "--node", "n1", "--bpffs", bpffs, "--run-dir", run, "--etcd-username", "u"]
    cli.main(args, prog_name="seawall", standalone_mode=False)
    assert seen == [(("n1", bpffs, run), {"datastore": _url(flagged), "etcd_username": "u"})]
    assert not flagged.exists()  # --cleanup needs no datastore


def test_validate_accepts_the_datastore_flags(env: dict[str, str], tmp_path: Path) -> None:
    doc = tmp_path / "gns.yaml"
    doc.write_text(GNS.format(name="a"))
    result = _run("validate", "-f", str(doc), "--datastore", "x", "--etcd-endpoints", UNREACHABLE_ETCD, env=env)
    assert result.code == 0, result.err
    assert "Successfully validated 1 'GlobalNetworkSet' resource(s)" in result.out


def test_teardown_and_status_accept_the_datastore_flags(env: dict[str, str], tmp_path: Path) -> None:
    result = _run("status", "--run-dir", str(tmp_path / "run"), "--datastore", "x", env=env)
    assert result.code == 1 and "no agent status at" in result.err, result.err


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_subcommand_lists_the_global_options(name: str, env: dict[str, str]) -> None:
    for help_flag in ("--help", "-h"):
        result = _run(name, help_flag, env=env)
        assert result.code == 0, result.err
        for flag in GLOBAL_FLAGS:
            assert flag in result.out, (name, flag)
        assert result.out.index("--datastore") > result.out.index("Options:")


def test_a_command_added_later_gets_the_global_options() -> None:
    group = type(cli)("late")

    @group.command()
    def later() -> None:
        """Added after the others."""

    other = click.Command("other", params=[click.Option(["--datastore"], help="its own")])
    group.add_command(other)
    group.add_command(other)  # twice: nothing duplicated
    for command in (later, other):
        flags = [opt for param in command.params for opt in param.opts]
        assert sorted(flags) == sorted(GLOBAL_FLAGS), flags


def test_group_help_and_version_still_work(env: dict[str, str]) -> None:
    top = _run("-h", env=env)
    assert top.code == 0 and all(flag in top.out for flag in GLOBAL_FLAGS)
    assert "before or after the subcommand" in " ".join(top.out.split())
    version = _run("--version", env=env)
    assert version.code == 0 and version.out.startswith("seawall, version ")
