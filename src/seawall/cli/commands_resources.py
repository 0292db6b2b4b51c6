"""The resource commands: ``apply``, ``create``, ``replace``, ``delete``, ``get``,
``patch``, ``label`` and ``validate``, which read, write and check the Calico
resources in the datastore (or, for ``validate``, in files only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from seawall.api import (
    KINDS,
    DocumentError,
    KindInfo,
    ParsedResource,
    SourceDocument,
    ValidationFailed,
    parse_document,
)
from seawall.api.errors import shown_repr
from seawall.cli import operations
from seawall.cli.common import (
    CliError,
    _fail_validation,
    _files_option,
    _kind,
    _load,
    _recursive_option,
    _store,
    _summary,
    _warn,
    _warn_unselected,
)
from seawall.cli.operations import Mode, with_resource_version
from seawall.cli.output import FORMATS, render
from seawall.datastore import Conflict, Datastore, DatastoreError, Delete, NotFound, Update
from seawall.datastore.documents import Documents, InvalidNets


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


@click.command()
@_files_option
@_recursive_option
@click.pass_context
def apply(ctx: click.Context, files: tuple[str, ...], recursive: bool) -> None:
    """Create or update resources from files (all or nothing)."""
    _write(ctx, Mode.APPLY, files, recursive)


@click.command()
@_files_option
@_recursive_option
@click.option("--skip-exists", is_flag=True, help="Skip resources that already exist instead of failing.")
@click.pass_context
def create(ctx: click.Context, files: tuple[str, ...], recursive: bool, skip_exists: bool) -> None:
    """Create resources; fails if any already exists (all or nothing)."""
    _write(ctx, Mode.CREATE, files, recursive, skip=skip_exists)


@click.command()
@_files_option
@_recursive_option
@click.pass_context
def replace(ctx: click.Context, files: tuple[str, ...], recursive: bool) -> None:
    """Replace existing resources; fails if any does not exist (all or nothing)."""
    _write(ctx, Mode.REPLACE, files, recursive)


@click.command()
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


@click.command()
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


@click.command()
@click.argument("kind")
@click.argument("name")
@click.option("-p", "--patch", "patch_text", default=None, help="JSON merge patch (RFC 7386).")
@click.option("--add-nets", "add_nets", multiple=True, metavar="CIDR[,CIDR...]",
              help="GlobalNetworkSet only: nets to add (repeatable, comma-separated); writes only what changes.")
@click.option("--remove-nets", "remove_nets", multiple=True, metavar="CIDR[,CIDR...]",
              help="GlobalNetworkSet only: nets to remove (repeatable, comma-separated).")
@click.option("--resource-version", "resource_version", default=None,
              help="With --add-nets/--remove-nets: fail unless the set is at this resourceVersion.")
@click.pass_context
def patch(ctx: click.Context, kind: str, name: str, patch_text: str | None, add_nets: tuple[str, ...],
          remove_nets: tuple[str, ...], resource_version: str | None) -> None:
    """Apply a JSON merge patch to one resource (compare-and-swap), or add/remove a set's nets."""
    info = _kind(kind)
    if add_nets or remove_nets:
        if patch_text is not None:
            raise CliError("patch: give either -p or --add-nets/--remove-nets, not both")
        _patch_nets(ctx, info, name, _net_list(add_nets), _net_list(remove_nets), resource_version)
        return
    if patch_text is None:
        raise CliError("patch: give -p PATCH, or --add-nets/--remove-nets for a GlobalNetworkSet")
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


def _net_list(values: tuple[str, ...]) -> list[str]:
    return [net.strip() for value in values for net in value.split(",") if net.strip()]


def _patch_nets(ctx: click.Context, info: KindInfo, name: str, add: list[str], remove: list[str],
                resource_version: str | None) -> None:
    """The member path: only the chunks holding the changed nets are rewritten (``Documents.patch_nets``)."""
    if info.kind != "GlobalNetworkSet":
        raise CliError(f"patch: --add-nets/--remove-nets apply to a GlobalNetworkSet, not a {info.kind}")
    both = sorted(set(add) & set(remove))
    if both:
        raise CliError(f"patch: {', '.join(both)}: in both --add-nets and --remove-nets; nothing was written")
    expected = None
    if resource_version not in (None, ""):
        expected = int(_patch_resource_version({"metadata": {"resourceVersion": resource_version}}, f"{info.kind}({name})") or 0)
    with _store(ctx) as store:
        assert isinstance(store, Documents)
        try:
            store.patch_nets(name, add, remove, expected_revision=expected)
        except InvalidNets as exc:
            lines = [f"patch of {info.kind}({name}): nets: {shown_repr(value)}: {reason}" for value, reason in exc.bad]
            raise CliError("\n".join([*lines, "nothing was written"])) from None
        except NotFound:
            raise CliError(f"resource does not exist: {info.kind}({name})") from None
        except Conflict as exc:
            raise CliError(f"patch: conflict: {exc}; nothing was written (get it again and retry)") from None
    click.echo(f"Successfully patched 1 '{info.kind}' resource ({len(add)} net(s) added, {len(remove)} removed)")


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


@click.command()
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


@click.command()
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



#: in the order ``main`` registers them
COMMANDS: Sequence[click.Command] = (apply, create, replace, delete, get, patch, label, validate)
