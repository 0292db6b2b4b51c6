"""The read-only views of this node: ``status`` (what the agent reports it
enforces, from its status.json and, with --bpffs, the pinned XDP counters) and
``explain`` (where each ingress rule is enforced, and why). Their renderers
(``status_view``, ``explain``) are imported inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from seawall.cli.common import CliError, _node_option, _run_dir_option, _store


def _console() -> Any:
    """A rich console on stdout: the terminal's width, or wide lines when piped."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    return console


def _read_status(run_dir: str) -> tuple[dict[str, Any], float] | None:
    """The agent's status object and its age in seconds, or None if there is none."""
    import time
    from pathlib import Path

    path = Path(run_dir) / "status.json"
    try:
        text = path.read_text(encoding="utf-8")
        age = max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not valid JSON: not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path} does not hold a status object")
    return data, age


def _live_counters(status: Any, bpffs: str) -> tuple[Any, list[str]]:
    """The status with each interface's counters replaced by the values in its
    pinned XDP maps (current even when the agent is not running), and the
    problems met."""
    import dataclasses
    from pathlib import Path

    from seawall.agent.status import Verdicts
    from seawall.dataplane.xdp.loader import interface_dir, open_pinned

    problems: list[str] = []
    interfaces = []
    for entry in status.interfaces:
        if entry.name:
            try:
                program = open_pinned(interface_dir(Path(bpffs), entry.name))
                if program is not None:
                    try:
                        counters = program.maps.counters()
                    finally:
                        program.close()
                    entry = dataclasses.replace(entry, counters=Verdicts(counters.dropped, counters.passed, counters.failsafe),
                                                counters_live=True)
            except Exception as exc:  # noqa: BLE001 - status must show what it has
                problems.append(f"{entry.name}: cannot read the pinned XDP counters under {bpffs}: {exc}")
        interfaces.append(entry)
    return dataclasses.replace(status, interfaces=tuple(interfaces)), problems


@click.command()
@_run_dir_option
@click.option("--bpffs", default=None, type=click.Path(),
              help="Read the XDP counters live from the pins under this bpffs root (e.g. /sys/fs/bpf).")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status(run_dir: str, bpffs: str | None, fmt: str) -> None:
    """Show what the agent enforces: mode per interface and why, counters, problems."""
    found = _read_status(run_dir)
    if found is None:
        raise CliError(f"no agent status at {run_dir}/status.json "
                       f"(is `seawall agent` running with --run-dir {run_dir}?)")
    data, age = found
    from seawall.agent.status import AgentStatus, MalformedStatus
    from seawall.cli.status_view import build

    try:
        agent_status = AgentStatus.from_json(data)
    except MalformedStatus as exc:
        raise CliError(f"{run_dir}/status.json is malformed: {exc}") from None
    if bpffs:
        agent_status, problems = _live_counters(agent_status, bpffs)
        for problem in problems:
            click.echo(f"warning: {problem}", err=True)
    if fmt == "json":  # the object the agent wrote, unless live counters changed it
        live = any(i.counters_live for i in agent_status.interfaces)
        click.echo(json.dumps(agent_status.to_json() if live else data, indent=2))
        return
    try:
        view = build(agent_status, age_s=age)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise CliError(f"{run_dir}/status.json is malformed: cannot show it ({type(exc).__name__}: {exc})") from None
    _console().print(view)


def _interfaces_from(specs: tuple[str, ...]) -> Any:
    """``--interface NAME[=ADDR[,ADDR...]]`` -> NodeInterfaces; without
    addresses, the interface's real addresses if it exists here, else none."""
    from seawall.agent.links import read_interfaces
    from seawall.calc import NodeInterfaces

    real = read_interfaces()
    if not specs:
        return real
    chosen: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name, eq, addresses = spec.partition("=")
        if not name:
            raise CliError(f"explain: --interface {spec!r}: give NAME or NAME=ADDR[,ADDR...]")
        if eq:
            values = tuple(a.strip() for a in addresses.split(",") if a.strip())
            import ipaddress

            for value in values:
                try:
                    ipaddress.ip_interface(value)
                except ValueError:
                    raise CliError(f"explain: --interface {spec!r}: {value!r} is not an IP address") from None
            chosen[name] = chosen.get(name, ()) + values
        else:
            chosen[name] = chosen.get(name, ()) + tuple(real.addresses.get(name, ()))
    return NodeInterfaces(chosen)


@click.command()
@_node_option
@click.option("--interface", "iface_specs", multiple=True, metavar="NAME[=ADDR,...]",
              help="Explain for this interface only (repeatable); with =ADDR, as if it held these addresses. "
                   "Default: every interface of this host.")
@_run_dir_option
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def explain(ctx: click.Context, node: str | None, iface_specs: tuple[str, ...], run_dir: str, fmt: str) -> None:
    """Explain, per interface and ingress rule, where each rule is enforced (XDP + raw, or raw) and why."""
    import socket as _socket

    from seawall.agent.status import AgentStatus
    from seawall.agent.syncer import KINDS
    from seawall.calc import compute
    from seawall.calc.validated import ValidatedResources
    from seawall.cli import explain as explaining

    node = node or _socket.gethostname()
    with _store(ctx, reading=True) as store:
        listing = store.list()
    items = [(kv.kind, kv.name, kv.value) for kv in listing.items if kv.kind in KINDS]
    snapshot, invalid = ValidatedResources().update(items)
    interfaces = _interfaces_from(iface_specs)
    desired = compute(snapshot, node, interfaces)
    found = _read_status(run_dir)
    result = explaining.explain(
        desired, node=node, interfaces=interfaces,
        status=AgentStatus.from_json(found[0], strict=False) if found else None, invalid=invalid, revision=listing.revision,
    )
    if fmt == "json":
        click.echo(json.dumps(explaining.as_json(result), indent=2))
        return
    _console().print(explaining.build(result))



#: in the order ``main`` registers them
COMMANDS: Sequence[click.Command] = (status, explain)
