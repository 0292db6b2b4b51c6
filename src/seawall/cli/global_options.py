"""The global options (``--datastore``, ``--etcd-*``), accepted before or after
any subcommand: their definitions, and where their values are kept for
``common._store`` to read. Separate from ``main`` so that ``common`` can read
them without importing the root group.
"""

from __future__ import annotations

from collections.abc import Callable

import click

#: where the global options' values live: ``ctx.meta`` is one dict shared by the
#: group's context and every subcommand's, so ``_store`` reads one place.
_GLOBALS_KEY = "seawall.globals"

#: global option name -> open_datastore keyword (``datastore`` is its URL argument)
_ETCD_KEYWORDS = {
    "etcd_endpoints": "endpoints",
    "etcd_ca_cert_file": "ca_cert_file",
    "etcd_cert_file": "cert_file",
    "etcd_key_file": "key_file",
    "etcd_username": "username",
    "etcd_password": "argv_password",
    "etcd_password_file": "password_file",
}


def _globals(ctx: click.Context) -> dict[str, str]:
    values: dict[str, str] = ctx.meta.setdefault(_GLOBALS_KEY, {})
    return values


def _remember_global(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Keep a global option's value, given before or after the subcommand. The
    group's options are processed first, the subcommand's after, so a value
    given after the subcommand (the more specific) wins; not given = untouched."""
    if value is not None and param.name:
        _globals(ctx)[param.name] = value


def _global_option(*decls: str, metavar: str, help: str) -> Callable[[], click.Option]:
    def make() -> click.Option:
        return click.Option(decls, metavar=metavar, default=None, expose_value=False, callback=_remember_global, help=help)

    return make


#: the options accepted before or after any subcommand (None = not given:
#: open_datastore then falls back to SEAWALL_DATASTORE and Calico's ETCD_* environment)
_GLOBAL_OPTIONS: tuple[Callable[[], click.Option], ...] = (
    _global_option(
        "--datastore", metavar="URL",
        help="sqlite:///path (default /var/lib/seawall/seawall.db), etcd://host:port[,host:port] or etcds://...; "
             "env SEAWALL_DATASTORE.",
    ),
    _global_option("--etcd-endpoints", metavar="URLS",
                   help="etcd endpoints, comma-separated http(s)://host:port (selects etcd); env ETCD_ENDPOINTS."),
    _global_option("--etcd-ca-cert-file", metavar="PATH", help="CA certificate for etcd TLS; env ETCD_CA_CERT_FILE."),
    _global_option("--etcd-cert-file", metavar="PATH", help="Client certificate for etcd TLS; env ETCD_CERT_FILE."),
    _global_option("--etcd-key-file", metavar="PATH", help="Client key for etcd TLS; env ETCD_KEY_FILE."),
    _global_option("--etcd-username", metavar="NAME", help="etcd user; env ETCD_USERNAME."),
    _global_option("--etcd-password", metavar="PASSWORD",
                   help="etcd password (visible in the process list: prefer --etcd-password-file); env ETCD_PASSWORD."),
    _global_option("--etcd-password-file", metavar="PATH",
                   help="Read the etcd password from this file (first line); safer than --etcd-password."),
)


def _add_global_options(command: click.Command, *, first: bool = False) -> None:
    """Add the global options to a command: after its own (its help lists them
    last), or ``first``; an option whose flag the command already has is left out
    (so adding twice is harmless)."""
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    options = [option for option in (make() for make in _GLOBAL_OPTIONS) if not taken.intersection(option.opts)]
    if first:
        command.params[:0] = options
    else:
        command.params.extend(options)
