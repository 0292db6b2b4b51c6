"""``seawall``: a calicoctl-shaped CLI over Seawall's datastore.

Each write command reads and validates all of its input first, then commits it
in one transaction (see ``operations``), so a bad document anywhere means
nothing is written. Errors go to stderr naming file, document, kind/name,
field path, value and reason; the exit code is 1.

The commands live in modules by job (``commands_resources``, ``commands_agent``,
``commands_status``) over shared helpers (``common``, ``global_options``); this
module holds the root group and the console-script entry point, and registers them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from seawall import __version__
from seawall.api import FieldError
from seawall.cli import commands_agent, commands_resources, commands_status
from seawall.cli.commands_resources import merge_patch
from seawall.cli.global_options import _add_global_options


class _SeawallGroup(click.Group):
    """A group whose every subcommand (added by ``@cli.command()`` or
    ``add_command``, now or later) also accepts the global options."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _add_global_options(cmd)
        super().add_command(cmd, name)


@click.group(cls=_SeawallGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seawall")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Seawall: defend hosts against DoS with Calico v3 policy, enforced in XDP or iptables raw.

    The datastore options (--datastore, --etcd-*) go before or after the subcommand.
    """
    ctx.ensure_object(dict)


_add_global_options(cli, first=True)

for _command in (*commands_resources.COMMANDS, *commands_agent.COMMANDS, *commands_status.COMMANDS):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="seawall", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


__all__ = ["cli", "main", "merge_patch", "FieldError"]
