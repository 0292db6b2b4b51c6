"""The node-agent commands: ``agent`` (run it, or ``--cleanup``) and ``teardown``,
which remove what the agent installed. The agent's own modules are imported
inside the commands, so other commands do not pay for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from seawall.cli.common import CliError, _bpffs_option, _node_option, _run_dir_option, _store


def _teardown(node: str | None, bpffs: str, run_dir: str) -> None:
    """``agent --cleanup`` and ``teardown``: remove every XDP program, pin, chain
    and ipset Seawall installed, and the published status. Needs no datastore
    (it must work when the datastore is unreachable): the agent's clean-up only
    looks at what is in the kernel and under ``<bpffs>/seawall``."""
    from pathlib import Path

    from seawall.agent.entry import cleanup

    del node  # clean-up removes what this host has, whatever the node name
    holder = _running_agent(Path(run_dir))
    if holder:
        click.echo(f"warning: {holder}; it will install everything again", err=True)
    report = cleanup(Path(bpffs))
    (Path(run_dir) / "status.json").unlink(missing_ok=True)
    for line in report.removed:
        click.echo(f"removed: {line}")
    if not report.removed:
        click.echo("removed: nothing (no Seawall XDP program attached or pinned)")
    click.echo("removed: Seawall's sw- chains and sw4-/sw6- ipsets (if any)")
    for line in report.left:
        click.echo(f"left: {line}")


def _running_agent(run_dir: Path) -> str | None:
    """Who holds ``<run-dir>/agent.lock`` (a running agent), or None."""
    from seawall.agent.lock import AgentLockError, lock_agent

    if not (run_dir / "agent.lock").exists():
        return None
    try:
        lock_agent(run_dir, Path("/nonexistent")).release()  # only the run-dir lock: bpffs is not touched
    except AgentLockError as exc:
        return str(exc).split(";", 1)[0]
    except OSError:
        return None
    return None


@click.command()
@_node_option
@_bpffs_option
@_run_dir_option
@click.option("--cleanup", "do_cleanup", is_flag=True, help="Remove everything Seawall installed, then exit (= seawall teardown).")
@click.pass_context
def agent(ctx: click.Context, node: str | None, bpffs: str, run_dir: str, do_cleanup: bool) -> None:
    """Run the node agent: watch the datastore, enforce untracked policy in XDP and iptables raw.

    SIGTERM/SIGINT stop the agent and leave the XDP programs, chains and ipsets in
    place: protection continues while it is away (use `seawall teardown` to remove them).
    """
    import logging
    import signal
    import socket as _socket
    from pathlib import Path

    from seawall.agent.entry import build_agent
    from seawall.agent.loop import AgentOptions

    if do_cleanup:
        _teardown(node, bpffs, run_dir)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = AgentOptions(node or _socket.gethostname(), Path(bpffs), Path(run_dir))
    from seawall.agent.lock import AgentLockError

    with _store(ctx, create=True, raw=True) as store:
        daemon = build_agent(store, options)
        signal.signal(signal.SIGTERM, lambda *_: daemon.stop.set())
        signal.signal(signal.SIGINT, lambda *_: daemon.stop.set())
        try:
            daemon.run()
        except AgentLockError as exc:
            raise CliError(f"seawall agent: {exc}") from None


@click.command()
@_node_option
@_bpffs_option
@_run_dir_option
def teardown(node: str | None, bpffs: str, run_dir: str) -> None:
    """Remove everything Seawall installed (same as `seawall agent --cleanup`).

    Detaches Seawall's XDP programs (never anyone else's), removes its pins under
    <bpffs>/seawall, its sw- chains and sw4-/sw6- ipsets, and <run-dir>/status.json.
    Stop the agent first, or it puts everything back.
    """
    _teardown(node, bpffs, run_dir)



#: in the order ``main`` registers them
COMMANDS: Sequence[click.Command] = (agent, teardown)
