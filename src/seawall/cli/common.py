"""Helpers shared by several ``seawall`` commands: the operator-facing error
(``CliError``), warning output, opening the datastore the global options name,
loading and validating ``-f`` input, and the options more than one command takes.

It exists so that the command modules (``commands_*``) depend on it and not on
each other, nor on ``main``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from seawall.api import KindInfo, ParsedResource, UnknownKind, ValidationFailed, parse_documents, resolve_kind
from seawall.api.errors import MAX_ERRORS_SHOWN
from seawall.cli import operations
from seawall.cli.global_options import _ETCD_KEYWORDS, _globals
from seawall.cli.inputs import read_documents
from seawall.datastore import Datastore, DatastoreError, open_datastore
from seawall.datastore.documents import Documents


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
def _store(ctx: click.Context, *, reading: bool = False, create: bool | None = None, raw: bool = False) -> Iterator[Datastore]:
    """The datastore the global options name, as whole documents (big sets are
    stored chunked: ``seawall.datastore.documents``). ``create`` None: a missing
    SQLite store is created by the first write only, so a read or a failed write
    leaves nothing behind; ``reading``: a read-only command, which says on
    stderr when the store does not exist yet (it reads as empty); ``raw``: the
    backend as stored (the agent reads chunks itself)."""
    try:
        given = _globals(ctx)
        etcd_options = {keyword: given.get(name) for name, keyword in _ETCD_KEYWORDS.items()}
        store = open_datastore(given.get("datastore"), create=create, note_missing_read=reading, **etcd_options)
    except DatastoreError as exc:
        raise CliError(f"cannot open datastore: {exc}") from None
    try:
        yield store if raw else Documents(store)
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

_node_option = click.option("--node", default=None, help="This node's name (default: the hostname).")
_bpffs_option = click.option("--bpffs", default="/sys/fs/bpf", show_default=True, type=click.Path(), help="bpffs root for pins.")
_run_dir_option = click.option("--run-dir", default="/run/seawall", show_default=True, type=click.Path(),
                               help="Where the agent publishes status.json.")
