"""``seawall``: a calicoctl-shaped CLI over Seawall's datastore.

Each write command reads and validates all of its input first, then commits it
in one transaction (see ``operations``), so a bad document anywhere means
nothing is written. Errors go to stderr naming file, document, kind/name,
field path, value and reason; the exit code is 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from seawall import __version__
from seawall.api import (
    KINDS,
    DocumentError,
    FieldError,
    KindInfo,
    ParsedResource,
    SourceDocument,
    UnknownKind,
    ValidationFailed,
    parse_document,
    parse_documents,
    resolve_kind,
)
from seawall.api.errors import MAX_ERRORS_SHOWN
from seawall.cli import operations
from seawall.cli.inputs import read_documents
from seawall.cli.operations import Mode, with_resource_version
from seawall.cli.output import FORMATS, render
from seawall.datastore import Datastore, DatastoreError, Delete, NotFound, Update, open_datastore


class CliError(click.ClickException):
    """An error already worded for the operator; exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


def _fail_validation(exc: ValidationFailed, *, verb: str) -> NoReturn:
    lines = [str(doc_error) for doc_error in exc.errors]
    count = sum(len(doc_error.errors) for doc_error in exc.errors)
    lines.append(f"failed to {verb}: {count} error(s) in {len(exc.errors)} document(s); nothing was written")
    raise CliError("\n".join(lines))


def _echo_warnings(lines: Iterable[str]) -> None:
    """At most ``MAX_ERRORS_SHOWN`` warnings, then a count (as for errors): 100k
    sets with the same problem must not print 100k lines."""
    count = 0
    for line in lines:
        count += 1
        if count <= MAX_ERRORS_SHOWN:
            click.echo(f"warning: {line}", err=True)
    if count > MAX_ERRORS_SHOWN:
        click.echo(f"warning: ... and {count - MAX_ERRORS_SHOWN} more warnings", err=True)


def _warn(items: Sequence[ParsedResource]) -> None:
    _echo_warnings(
        f"{item.source}: document {item.index}: {item.key[0]}({item.key[1]}): {warning}"
        for item in items
        for warning in item.warnings
    )


@contextmanager
def _store(ctx: click.Context, *, reading: bool = False, create: bool | None = None) -> Iterator[Datastore]:
    """The datastore the global options name. ``create`` None: a missing SQLite
    store is created by the first write only, so a read or a failed write
    leaves nothing behind; ``reading``: a read-only command, which says on
    stderr when the store does not exist yet (it reads as empty)."""
    try:
        given = _globals(ctx)
        etcd_options = {keyword: given.get(name) for name, keyword in _ETCD_KEYWORDS.items()}
        store = open_datastore(given.get("datastore"), create=create, note_missing_read=reading, **etcd_options)
    except DatastoreError as exc:
        raise CliError(f"cannot open datastore: {exc}") from None
    try:
        yield store
    except DatastoreError as exc:
        raise CliError(f"datastore error: {exc}; nothing was written") from None
    finally:
        store.close()


def _load(files: tuple[str, ...], recursive: bool, verb: str) -> list[ParsedResource]:
    try:
        docs, failures = read_documents(files, recursive=recursive)
        try:
            items = parse_documents(docs)
        except ValidationFailed as exc:
            failures += exc.errors
        if failures:
            raise ValidationFailed(failures)
    except ValidationFailed as exc:
        _fail_validation(exc, verb=verb)
    _warn(items)
    return items


def _warn_unselected(items: Sequence[ParsedResource], stored: dict[str, dict[str, Any]], where: str) -> None:
    def lines() -> Iterator[str]:
        for item in operations.unselected_sets(items, stored):
            labels = item.resource.metadata.labels or {}
            shown = ", ".join(f"{k}={v}" for k, v in labels.items()) or "no labels"
            yield (f"{item.source}: document {item.index}: {item.key[0]}({item.key[1]}): "
                   f"no GlobalNetworkPolicy rule in {where} selects this set ({shown}); it blocks nothing (a label typo?)")

    _echo_warnings(lines())


def _summary(verb: str, keys: Sequence[tuple[str, str]]) -> str:
    kinds = {kind for kind, _ in keys}
    if len(kinds) == 1:
        return f"Successfully {verb} {len(keys)} '{kinds.pop()}' resource(s)"
    return f"Successfully {verb} {len(keys)} resource(s)"


def _kind(text: str) -> KindInfo:
    try:
        return resolve_kind(text)
    except UnknownKind as exc:
        raise CliError(str(exc)) from None


_files_option = click.option(
    "-f", "--filename", "files", multiple=True, metavar="FILE|DIR|-",
    help="File, directory (.yaml/.yml/.json) or - for stdin. Repeatable.",
)
_recursive_option = click.option("-R", "--recursive", is_flag=True, help="Recurse into directories given with -f.")


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


def _write(ctx: click.Context, mode: Mode, files: tuple[str, ...], recursive: bool, *, skip: bool = False) -> None:
    verb = {Mode.APPLY: "apply", Mode.CREATE: "create", Mode.REPLACE: "replace", Mode.DELETE: "delete"}[mode]
    if not files:
        raise CliError(f"{verb}: no input given; use -f FILE|DIR|-")
    items = _load(files, recursive, verb)
    with _store(ctx) as store:
        if mode in (Mode.APPLY, Mode.CREATE, Mode.REPLACE) and any(item.key[0] == "GlobalNetworkSet" for item in items):
            try:
                stored = {kv.name: kv.value for kv in store.list("GlobalNetworkPolicy").items}
            except DatastoreError:  # e.g. no datastore yet: nothing stored; a real fault shows on the write
                stored = {}
            _warn_unselected(items, stored, "the input or the datastore")
        current = operations.read_current(store, [item.key for item in items])
        try:
            planned = operations.plan(mode, items, current, skip=skip)
        except ValidationFailed as exc:
            _fail_validation(exc, verb=verb)
        store.commit(planned.ops)
    done = [item.key for item in items if item.key not in planned.skipped]
    past = {"apply": "applied", "create": "created", "replace": "replaced", "delete": "deleted"}[verb]
    for kind, name in planned.skipped:
        click.echo(f"skipped {kind}({name})", err=True)
    click.echo(_summary(past, done))


@cli.command()
@_files_option
@_recursive_option
@click.pass_context
def apply(ctx: click.Context, files: tuple[str, ...], recursive: bool) -> None:
    """Create or update resources from files (all or nothing)."""
    _write(ctx, Mode.APPLY, files, recursive)


@cli.command()
@_files_option
@_recursive_option
@click.option("--skip-exists", is_flag=True, help="Skip resources that already exist instead of failing.")
@click.pass_context
def create(ctx: click.Context, files: tuple[str, ...], recursive: bool, skip_exists: bool) -> None:
    """Create resources; fails if any already exists (all or nothing)."""
    _write(ctx, Mode.CREATE, files, recursive, skip=skip_exists)


@cli.command()
@_files_option
@_recursive_option
@click.pass_context
def replace(ctx: click.Context, files: tuple[str, ...], recursive: bool) -> None:
    """Replace existing resources; fails if any does not exist (all or nothing)."""
    _write(ctx, Mode.REPLACE, files, recursive)


@cli.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@_files_option
@_recursive_option
@click.option("--skip-not-exists", is_flag=True, help="Skip resources that do not exist instead of failing.")
@click.pass_context
def delete(
    ctx: click.Context, kind: str | None, names: tuple[str, ...], files: tuple[str, ...],
    recursive: bool, skip_not_exists: bool,
) -> None:
    """Delete resources by KIND NAME... or by -f (all or nothing)."""
    if files:
        if kind:
            raise CliError("delete: give either KIND NAME... or -f, not both")
        _write(ctx, Mode.DELETE, files, recursive, skip=skip_not_exists)
        return
    if not kind or not names:
        raise CliError("delete: give KIND NAME... or -f FILE")
    info = _kind(kind)
    with _store(ctx) as store:
        ops, missing = [], []
        for name in names:
            try:
                store.get(info.kind, name)
                ops.append(Delete(info.kind, name))
            except NotFound:
                missing.append(name)
        if missing and not skip_not_exists:
            raise CliError("\n".join(f"resource does not exist: {info.kind}({n})" for n in missing) + "\nnothing was deleted")
        store.commit(ops)
    for name in missing:
        click.echo(f"skipped {info.kind}({name})", err=True)
    click.echo(_summary("deleted", [(info.kind, op.name) for op in ops]))


@cli.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@_files_option
@_recursive_option
@click.option("-o", "--output", "fmt", type=click.Choice(FORMATS), default="ps", show_default=True)
@click.pass_context
def get(ctx: click.Context, kind: str | None, names: tuple[str, ...], files: tuple[str, ...], recursive: bool, fmt: str) -> None:
    """Show resources: KIND [NAME...], or the resources named in -f files."""
    if files:
        if kind:
            raise CliError("get: give either KIND [NAME...] or -f, not both")
        wanted = [item.key for item in _load(files, recursive, "get")]
    elif kind:
        info = _kind(kind)
        wanted = [(info.kind, name) for name in names] if names else [(info.kind, "")]
    else:
        _list_kinds()
        return
    with _store(ctx, reading=True) as store:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        listed: set[str] = set()
        missing: list[str] = []
        revision = store.current_revision()
        for kind_name, name in wanted:
            docs = by_kind.setdefault(kind_name, [])
            if not name:
                listing = store.list(kind_name)
                revision = listing.revision
                listed.add(kind_name)
                docs.extend(with_resource_version(kv) for kv in listing.items)
                continue
            try:
                docs.append(with_resource_version(store.get(kind_name, name)))
            except NotFound:
                missing.append(f"resource does not exist: {kind_name}({name})")
    single = len(wanted) == 1 and bool(wanted[0][1])
    for kind_name, docs in by_kind.items():
        if docs or kind_name in listed:
            click.echo(render(kind_name, docs, fmt, revision=revision, single=single), nl=False)
    if missing:
        raise CliError("\n".join(missing))


def _list_kinds() -> None:
    """``seawall get`` without a kind: the kinds it knows and their short names."""
    from seawall.api.kinds import short_aliases

    rows = [(info.kind, ", ".join(short_aliases(info))) for info in KINDS.values()]
    width = max(len("KIND"), *(len(kind) for kind, _ in rows))
    click.echo(f"{'KIND':<{width}}   SHORT NAMES")
    for kind, aliases in rows:
        click.echo(f"{kind:<{width}}   {aliases}")
    click.echo("usage: seawall get KIND [NAME...] | -f FILE", err=True)


def _read_one(store: Datastore, info: KindInfo, name: str) -> tuple[Any, int]:
    try:
        kv = store.get(info.kind, name)
    except NotFound:
        raise CliError(f"resource does not exist: {info.kind}({name})") from None
    return kv.value, kv.mod_revision


def _validate_edited(info: KindInfo, name: str, doc: dict[str, Any], verb: str) -> ParsedResource:
    try:
        item = parse_document(SourceDocument(f"{verb} of {info.kind}({name})", "1", doc))
    except DocumentError as exc:
        _fail_validation(ValidationFailed([exc]), verb=verb)
    if item.key != (info.kind, name):
        raise CliError(f"{verb}: kind and metadata.name cannot be changed ({info.kind}({name}))")
    _warn([item])
    return item


def _update_in_place(store: Datastore, item: ParsedResource, old: dict[str, Any], revision: int) -> None:
    meta = old.get("metadata", {})
    value = operations.stored_value(item, uid=meta.get("uid", ""), created=meta.get("creationTimestamp", ""))
    store.commit([Update(item.key[0], item.key[1], value, revision)])


@cli.command()
@click.argument("kind")
@click.argument("name")
@click.option("-p", "--patch", "patch_text", required=True, help="JSON merge patch (RFC 7386).")
@click.pass_context
def patch(ctx: click.Context, kind: str, name: str, patch_text: str) -> None:
    """Apply a JSON merge patch to one resource (compare-and-swap)."""
    info = _kind(kind)
    try:
        patch_doc = json.loads(patch_text)
    except json.JSONDecodeError as exc:
        raise CliError(f"patch: -p is not valid JSON: {exc}") from None
    if not isinstance(patch_doc, dict):
        raise CliError("patch: -p must be a JSON object")
    wanted = _patch_resource_version(patch_doc, f"{info.kind}({name})")
    with _store(ctx) as store:
        old, revision = _read_one(store, info, name)
        if wanted is not None and wanted != str(revision):
            raise CliError(
                f"patch: conflict: {info.kind}({name}) is at resourceVersion {revision}, the patch expects "
                f"{wanted}; nothing was written (get it again and retry)"
            )
        item = _validate_edited(info, name, merge_patch(old, patch_doc), "patch")
        _update_in_place(store, item, old, revision)
    click.echo(f"Successfully patched 1 '{info.kind}' resource")


def _patch_resource_version(patch_doc: dict[str, Any], what: str) -> str | None:
    """The ``metadata.resourceVersion`` a patch expects the resource to be at, if any."""
    metadata = patch_doc.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("resourceVersion") in (None, ""):
        return None
    wanted = str(metadata["resourceVersion"])
    if not (wanted.isascii() and wanted.isdigit()) or len(wanted) > operations.MAX_REVISION_DIGITS:
        raise CliError(f"patch {what}: metadata.resourceVersion must be a revision number as returned by 'seawall get'")
    return str(int(wanted))


def merge_patch(target: Any, patch_doc: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes, objects merge, anything else replaces."""
    if not isinstance(patch_doc, dict):
        return patch_doc
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch_doc.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@cli.command()
@click.argument("kind")
@click.argument("name")
@click.argument("label")
@click.option("--overwrite", is_flag=True, help="Replace the value of an existing label.")
@click.option("--remove", is_flag=True, help="Remove the label KEY.")
@click.pass_context
def label(ctx: click.Context, kind: str, name: str, label: str, overwrite: bool, remove: bool) -> None:
    """Set (KEY=VALUE) or remove (KEY --remove) a label on one resource."""
    info = _kind(kind)
    key, eq, value = label.partition("=")
    if remove == bool(eq):
        raise CliError("label: give KEY=VALUE to set, or KEY with --remove")
    with _store(ctx) as store:
        old, revision = _read_one(store, info, name)
        labels = dict((old.get("metadata") or {}).get("labels") or {})
        if remove:
            if key not in labels:
                raise CliError(f"label: {info.kind}({name}) has no label '{key}'")
            del labels[key]
        else:
            if key in labels and not overwrite:
                if labels[key] == value:
                    click.echo(f"label '{key}' already has value '{value}'")
                    return
                raise CliError(f"label: '{key}' already has a value ('{labels[key]}'); use --overwrite to change it")
            labels[key] = value
        doc = {**old, "metadata": {**old.get("metadata", {}), "labels": labels}}
        if not labels:
            doc["metadata"].pop("labels")
        item = _validate_edited(info, name, doc, "label")
        _update_in_place(store, item, old, revision)
    click.echo(f"Successfully {'removed label from' if remove else 'set label on'} {info.kind}({name})")


@cli.command()
@_files_option
@_recursive_option
def validate(files: tuple[str, ...], recursive: bool) -> None:
    """Validate files offline (no datastore access)."""
    if not files:
        raise CliError("validate: no input given; use -f FILE|DIR|-")
    items = _load(files, recursive, "validate")
    if any(item.key[0] == "GlobalNetworkPolicy" for item in items):  # offline: only the input's policies are known
        _warn_unselected(items, {}, "the input")
    click.echo(_summary("validated", [item.key for item in items]))


_node_option = click.option("--node", default=None, help="This node's name (default: the hostname).")
_bpffs_option = click.option("--bpffs", default="/sys/fs/bpf", show_default=True, type=click.Path(), help="bpffs root for pins.")
_run_dir_option = click.option("--run-dir", default="/run/seawall", show_default=True, type=click.Path(),
                               help="Where the agent publishes status.json.")


def _teardown(node: str | None, bpffs: str, run_dir: str) -> None:
    """``agent --cleanup`` and ``teardown``: remove every XDP program, pin, chain
    and ipset Seawall installed, and the published status. Needs no datastore
    (it must work when the datastore is unreachable): the agent's clean-up only
    looks at what is in the kernel and under ``<bpffs>/seawall``."""
    from pathlib import Path

    from seawall.agent.loop import cleanup

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


@cli.command()
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

    from seawall.agent.loop import Agent, AgentOptions

    if do_cleanup:
        _teardown(node, bpffs, run_dir)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = AgentOptions(node or _socket.gethostname(), Path(bpffs), Path(run_dir))
    from seawall.agent.lock import AgentLockError

    with _store(ctx, create=True) as store:
        daemon = Agent(store, options)
        signal.signal(signal.SIGTERM, lambda *_: daemon.stop.set())
        signal.signal(signal.SIGINT, lambda *_: daemon.stop.set())
        try:
            daemon.run()
        except AgentLockError as exc:
            raise CliError(f"seawall agent: {exc}") from None


@cli.command()
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


def _live_counters(data: dict[str, Any], bpffs: str) -> list[str]:
    """Replace each interface's counters with the values in its pinned XDP maps
    (current even when the agent is not running); returns problems met."""
    from pathlib import Path

    from seawall.dataplane.xdp.loader import interface_dir, open_pinned

    problems: list[str] = []
    for entry in data.get("interfaces") or ():
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        try:
            program = open_pinned(interface_dir(Path(bpffs), str(entry["name"])))
            if program is None:
                continue
            try:
                counters = program.maps.counters()
            finally:
                program.close()
        except Exception as exc:  # noqa: BLE001 - status must show what it has
            problems.append(f"{entry['name']}: cannot read the pinned XDP counters under {bpffs}: {exc}")
            continue
        entry["counters"] = {"dropped": counters.dropped, "passed": counters.passed, "failsafe": counters.failsafe}
        entry["countersLive"] = True
    return problems


@cli.command()
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
    from seawall.cli.status_view import MalformedStatus, build, check_shape

    try:
        check_shape(data)
    except MalformedStatus as exc:
        raise CliError(f"{run_dir}/status.json is malformed: {exc}") from None
    problems = _live_counters(data, bpffs) if bpffs else []
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    try:
        view = build(data, age_s=age)
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


@cli.command()
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
        desired, node=node, interfaces=interfaces, selectors=explaining.set_selectors(snapshot),
        status=found[0] if found else None, invalid=invalid, revision=listing.revision,
    )
    if fmt == "json":
        click.echo(json.dumps(explaining.as_json(result), indent=2))
        return
    _console().print(explaining.build(result))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="seawall", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


__all__ = ["cli", "main", "merge_patch", "FieldError"]
