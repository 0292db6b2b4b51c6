"""Resources as operators see them, over a store that keeps big sets chunked.

``Documents(store)`` is a ``Datastore`` whose GlobalNetworkSets are always
whole documents (``get``/``list`` assemble a chunked set from its head and
chunks and hide the chunks), while what reaches the backend is the chunked
form of ``seawall.datastore.members``: writing a 1M-net set writes only the
chunks that differ from what is stored, and ``patch_nets`` adds or removes a
few nets by rewriting the few chunks that hold them and the head (a change
spread over many chunks, a feed's churn, is written into the head's overlay
chunks instead, and folded into the base once the overlay outgrows 1/8 of the set).

Writes keep the store's guarantees: the head (with the caller's
compare-and-swap) is swapped in one commit, after the new chunks were
pre-written (a reader follows only the chunks a head names, so pre-written
chunks are invisible); chunks no head names any more are deleted in the same
commit when it fits the backend's transaction limit, else right after. A
failed commit removes the chunks it pre-wrote unless the head now names them.
The agent reads the backend directly (it understands chunks; see
``seawall.calc.validated``).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from seawall.api.cidr import check_set_nets
from seawall.api.cidr_bulk import canonical_texts
from seawall.api.members import CHUNK_KIND, MembersFormatError, MembersHead, bucket_of, overlay_buckets_for, parse_head
from seawall.datastore import members as layout
from seawall.datastore.interface import (
    AlreadyExists,
    Conflict,
    Create,
    Datastore,
    DatastoreError,
    Delete,
    Keep,
    KeyValue,
    ListResult,
    NotFound,
    Op,
    Update,
    WatchEvent,
)

GNS = "GlobalNetworkSet"
_READ_ATTEMPTS = 5  # a head swapped between reading it and its chunks: read again
_PATCH_ATTEMPTS = 16  # patch_nets without an expected revision retries a lost compare-and-swap
_FETCH_BY_LIST = 32  # from this many chunks on, one list of the chunk kind beats gets
_BATCH_BYTES = 512 * 1024  # pre-written chunks per commit at most this much JSON


class InvalidNets(ValueError):
    """Nets given to ``patch_nets`` that are not CIDRs: (value, reason) each."""

    def __init__(self, bad: Sequence[tuple[object, str]]) -> None:
        super().__init__("; ".join(f"{value!r}: {reason}" for value, reason in bad))
        self.bad = list(bad)


class Documents(Datastore):
    """Whole documents in, whole documents out; chunked set storage underneath."""

    def __init__(self, store: Datastore) -> None:
        self.store = store

    @property
    def _max_ops(self) -> int | None:
        return getattr(self.store, "max_txn_ops", None)

    # ------------------------------------------------------------------ reads

    def get(self, kind: str, name: str) -> KeyValue:
        for _ in range(_READ_ATTEMPTS):
            kv = self.store.get(kind, name)
            if kind != GNS:
                return kv
            whole = self._whole(kv, None)
            if whole is not None:
                return whole
        raise DatastoreError(f"{kind}({name}): its member chunks keep changing or are missing; try again")

    def head(self, kind: str, name: str) -> KeyValue:
        """The resource as stored, without a chunked set's members (its metadata and
        revisions, cheaply: what a writer needs to plan a write)."""
        kv = self.store.get(kind, name)
        if kind == GNS and _manifest(kv.value) is not None:
            return KeyValue(kv.kind, kv.name, layout.plain_document(kv.value, ()), kv.create_revision, kv.mod_revision)
        return kv

    def list(self, kind: str | None = None, *, keep: Keep | None = None) -> ListResult:
        listing = self._list(kind)
        if keep is None:
            return listing
        return ListResult([KeyValue(kv.kind, kv.name, keep(kv.kind, kv.value), kv.create_revision, kv.mod_revision)
                           for kv in listing.items], listing.revision)

    def _list(self, kind: str | None) -> ListResult:
        for _ in range(_READ_ATTEMPTS):
            listing = self.store.list(kind)
            if kind not in (None, GNS):
                return listing
            chunks = ({kv.name: kv.value for kv in listing.items if kv.kind == CHUNK_KIND} if kind is None else None)
            items: builtins.list[KeyValue] = []
            for kv in listing.items:
                if kv.kind == CHUNK_KIND:
                    continue
                if kv.kind != GNS:
                    items.append(kv)
                    continue
                if chunks is None and _manifest(kv.value) is not None:
                    chunks = {c.name: c.value for c in self.store.list(CHUNK_KIND).items}
                whole = self._whole(kv, chunks)
                if whole is None:
                    break  # a chunk of this head is gone: the head changed since; list again
                items.append(whole)
            else:
                return ListResult(items, listing.revision)
        raise DatastoreError("GlobalNetworkSet member chunks keep changing or are missing; try again")

    def _whole(self, kv: KeyValue, chunks: Mapping[str, dict[str, Any]] | None) -> KeyValue | None:
        """The set as one document (None: a chunk it names is missing)."""
        manifest = _manifest(kv.value)
        if manifest is None:
            return kv
        names = manifest.chunk_names(kv.name)
        overlays = manifest.overlay_names(kv.name)
        found = chunks if chunks is not None else self._fetch([*names.values(), *overlays.values()])
        nets: dict[int, Sequence[str]] = {}
        for index in sorted(names):
            value = found.get(names[index])
            if value is None:
                return None
            nets[index] = value.get("nets") or []
        if overlays:
            values = [found.get(name) for name in overlays.values()]
            if any(v is None for v in values):
                return None
            for index, (added, removed) in _overlay_by_bucket(values, manifest.buckets).items():  # type: ignore[arg-type]
                base = nets.get(index, [])
                present = set(base)
                nets[index] = [n for n in base if n not in removed or n in added] + sorted(added - present)
        return KeyValue(kv.kind, kv.name, layout.plain_document(kv.value, [nets[i] for i in sorted(nets)]),
                        kv.create_revision, kv.mod_revision)

    def _fetch(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = builtins.list(names)
        if len(wanted) >= _FETCH_BY_LIST:
            subset = set(wanted)
            return {kv.name: kv.value for kv in self.store.list(CHUNK_KIND).items if kv.name in subset}
        out = {}
        for name in wanted:
            with contextlib.suppress(NotFound):
                out[name] = self.store.get(CHUNK_KIND, name).value
        return out

    # ----------------------------------------------------------------- writes

    def commit(self, ops: Sequence[Op]) -> builtins.list[KeyValue]:
        """``Datastore.commit`` with GlobalNetworkSets written chunked (see the module doc)."""
        main: builtins.list[Op] = []
        fresh: dict[str, dict[str, Any]] = {}
        orphans: set[str] = set()
        originals: dict[int, dict[str, Any]] = {}
        for op in ops:
            if op.kind != GNS:
                main.append(op)
                continue
            old = _stored_manifest(self.store, op.name) if not isinstance(op, Create) else None
            old_names = old.all_names(op.name) if old is not None else set()
            if isinstance(op, Delete):
                main.append(op)
                orphans |= old_names
                continue
            chunked = layout.chunked_document(op.value)
            if chunked is None:
                main.append(op)
                orphans |= old_names
                continue
            originals[len(main)] = op.value
            main.append(Create(GNS, op.name, chunked.head) if isinstance(op, Create)
                        else Update(GNS, op.name, chunked.head, op.expected_revision))
            fresh.update({n: v for n, v in chunked.chunks.items() if n not in old_names})
            orphans |= old_names - set(chunked.chunks)
        results = self._swap(main, fresh, sorted(orphans))
        return [KeyValue(kv.kind, kv.name, originals[i], kv.create_revision, kv.mod_revision) if i in originals else kv
                for i, kv in enumerate(results)]

    def patch_nets(self, name: str, add: Sequence[object] = (), remove: Sequence[object] = (),
                   expected_revision: int | None = None) -> KeyValue:
        """Add and remove nets of one GlobalNetworkSet, writing only the chunks they
        fall in and the head. ``expected_revision``: compare-and-swap on the set
        (Conflict when it moved); None: retry on a concurrent change. Raises
        NotFound, InvalidNets (nothing written). Returns the head as stored."""
        bad = [(net, reason) for _, net, reason in check_set_nets([*add, *remove])]
        if bad:
            raise InvalidNets(bad)
        adding = layout.canonical_nets(add)
        removing = set(layout.canonical_nets(remove)) - set(adding)
        for _ in range(_PATCH_ATTEMPTS):
            kv = self.store.get(GNS, name)
            if expected_revision is not None and kv.mod_revision != expected_revision:
                raise Conflict(GNS, name, expected_revision, kv.mod_revision)
            try:
                return self._patch_once(kv, adding, removing)
            except Conflict:
                if expected_revision is not None:
                    raise
            except _ChunksMoved:
                if expected_revision is not None:
                    raise Conflict(GNS, name, expected_revision, -1) from None
        raise DatastoreError(f"{GNS}({name}): gave up after {_PATCH_ATTEMPTS} concurrent changes; try again")

    def _patch_once(self, kv: KeyValue, adding: Sequence[str], removing: set[str]) -> KeyValue:
        manifest = _manifest(kv.value)
        if manifest is None:
            return self._patch_whole(kv, adding, removing)
        if manifest.overlay or layout.prefers_overlay(
                len({bucket_of(n, manifest.buckets) for n in (*adding, *removing)}), manifest.buckets):
            patched = self._patch_overlay(kv, manifest, adding, removing)
            if patched is not None:
                return patched
            # The overlay would grow past its limit: fold it (and this change) into the base.
            overlays = manifest.overlay_names(kv.name)
            # The fold touches (nearly) every base chunk: one read of them all serves both steps.
            everything = self._fetch([*manifest.chunk_names(kv.name).values(), *overlays.values()])
            if any(name not in everything for name in overlays.values()):
                raise _ChunksMoved()
            added: set[str] = set()
            removed: set[str] = set()
            for name in overlays.values():
                added |= set(everything[name].get("nets") or [])
                removed |= set(everything[name].get("removed") or [])
            added = (added - removing) | set(adding)
            removed = (removed - added) | removing
            return self._patch_base(kv, manifest, sorted(added), removed, set(overlays.values()), everything)
        return self._patch_base(kv, manifest, adding, removing, set())

    def _patch_base(self, kv: KeyValue, manifest: MembersHead, adding: Sequence[str], removing: set[str],
                    overlay_names: set[str], fetched: Mapping[str, dict[str, Any]] | None = None) -> KeyValue:
        """Rewrite the base chunks the nets fall in (and drop the overlay chunks named in
        ``overlay_names``, whose changes ``adding``/``removing`` then include). ``fetched``:
        chunks already read (name -> value); the others touched are read here."""
        buckets = manifest.buckets
        adding_by_bucket: dict[int, set[str]] = {}
        for net in adding:
            adding_by_bucket.setdefault(bucket_of(net, buckets), set()).add(net)
        touched = set(adding_by_bucket) | {bucket_of(net, buckets) for net in removing}
        names = manifest.chunk_names(kv.name)
        found = dict(fetched) if fetched is not None else {}
        found.update(self._fetch(names[i] for i in touched if i in names and names[i] not in found))
        groups: dict[int, builtins.list[str]] = {}
        count = manifest.count
        for index in touched:
            old_name = names.get(index)
            if old_name is not None and old_name not in found:
                raise _ChunksMoved()
            old = set(found[old_name]["nets"]) if old_name is not None else set()
            new = (old - removing) | adding_by_bucket.get(index, set())
            count += len(new) - len(old)
            groups[index] = sorted(new)
        if count < layout.CHUNKED_MIN_NETS // 2 or layout.bucket_count_for(count) > 2 * buckets:
            whole = self._whole(kv, None)  # re-bucket (or back to plain): the whole set once
            if whole is None:
                raise _ChunksMoved()
            return self._patch_whole(whole, adding, removing)
        digests = list(manifest.chunks)
        fresh: dict[str, dict[str, Any]] = {}
        orphans: builtins.list[str] = sorted(overlay_names)
        for index, group in groups.items():
            _replace(kv.name, digests, index, names.get(index),
                     layout.chunk_value(kv.name, buckets, index, group) if group else ("", {}), fresh, orphans)
        if not fresh and not orphans:
            return kv
        head = layout.head_value(kv.value, count, buckets, digests)
        return self._swap([Update(GNS, kv.name, head, kv.mod_revision)], fresh, orphans)[0]

    def _patch_overlay(self, kv: KeyValue, manifest: MembersHead, adding: Sequence[str],
                       removing: set[str]) -> KeyValue | None:
        """Record the change in the overlay chunks it falls in (the base is not read);
        None when the overlay would then exceed ``layout.overlay_limit``."""
        if manifest.overlay_count + len(adding) + len(removing) > layout.overlay_limit(manifest.count):
            return None
        width = len(manifest.overlay) or overlay_buckets_for(manifest.buckets)
        adds: dict[int, set[str]] = {}
        removes: dict[int, set[str]] = {}
        for net in adding:
            adds.setdefault(bucket_of(net, width), set()).add(net)
        for net in removing:
            removes.setdefault(bucket_of(net, width), set()).add(net)
        names = manifest.overlay_names(kv.name)
        touched = adds.keys() | removes.keys()
        try:  # one get each: ``_fetch`` would list every chunk of the kind (the base too) from 32 on
            found = {name: self.store.get(CHUNK_KIND, name).value for name in (names[i] for i in touched if i in names)}
        except NotFound:
            raise _ChunksMoved() from None
        digests = list(manifest.overlay) or [""] * width
        total = manifest.overlay_count
        fresh: dict[str, dict[str, Any]] = {}
        orphans: builtins.list[str] = []
        for index in touched:
            old_name = names.get(index)
            old = found[old_name] if old_name is not None else {}
            added, removed = set(old.get("nets") or []), set(old.get("removed") or [])
            total -= len(added) + len(removed)
            plus, minus = adds.get(index, set()), removes.get(index, set())
            added, removed = (added - minus) | plus, (removed - plus) | minus
            total += len(added) + len(removed)
            _replace(kv.name, digests, index, old_name,
                     layout.overlay_value(kv.name, manifest.buckets, index, sorted(added), sorted(removed))
                     if added or removed else ("", {}), fresh, orphans)
        if not fresh and not orphans:
            return kv
        head = layout.head_value(kv.value, manifest.count, manifest.buckets, manifest.chunks, digests, total)
        return self._swap([Update(GNS, kv.name, head, kv.mod_revision)], fresh, orphans)[0]

    def _patch_whole(self, whole: KeyValue, adding: Sequence[str], removing: set[str]) -> KeyValue:
        """The set as one document (stored plain, or being re-bucketed): the nets
        whose canonical form is removed go, the added ones not yet present (in any
        spelling) join; ``commit`` decides plain or chunked."""
        nets = (whole.value.get("spec") or {}).get("nets") or []
        kept = [net for net, text in zip(nets, canonical_texts(nets), strict=True) if text not in removing]
        present = set(canonical_texts(kept))
        doc = {**whole.value, "spec": {**(whole.value.get("spec") or {}), "nets": kept + [n for n in adding if n not in present]}}
        return self.commit([Update(GNS, whole.name, doc, whole.mod_revision)])[0]

    def _swap(self, main: builtins.list[Op], fresh: Mapping[str, dict[str, Any]],
              orphans: Sequence[str]) -> builtins.list[KeyValue]:
        """Pre-write ``fresh`` chunks, commit ``main`` (+ orphan deletes when they fit), delete the rest."""
        written = self._prewrite(fresh)
        limit = self._max_ops
        inline = builtins.list(orphans) if limit is None or len(main) + len(orphans) <= limit else []
        try:
            try:
                results = self.store.commit([*main, *(Delete(CHUNK_KIND, n) for n in inline)])
            except NotFound as exc:
                if exc.kind != CHUNK_KIND or not inline:
                    raise
                results = self.store.commit(main)  # an orphan is already gone: delete the others one by one
                inline = []
        except BaseException:
            self._discard(written, main)
            raise
        self._delete_quietly([n for n in orphans if n not in set(inline)])
        return results[: len(main)]

    def _prewrite(self, fresh: Mapping[str, dict[str, Any]]) -> builtins.list[str]:
        """Create the chunks (already-present ones are content-equal: skipped); the names created."""
        limit = self._max_ops or 1 << 30
        budget = min(_BATCH_BYTES, getattr(self.store, "max_request_bytes", 1 << 30) // 2)
        created: builtins.list[str] = []
        batch: builtins.list[Create] = []
        size = 0
        try:
            for name, value in fresh.items():
                cost = len(json.dumps(value["nets"])) + 256
                if batch and (len(batch) >= limit or size + cost > budget):
                    created += self._create_batch(batch)
                    batch, size = [], 0
                batch.append(Create(CHUNK_KIND, name, value))
                size += cost
            if batch:
                created += self._create_batch(batch)
        except BaseException:
            self._delete_quietly(created)
            raise
        return created

    def _create_batch(self, batch: builtins.list[Create]) -> builtins.list[str]:
        try:
            self.store.commit(batch)
            return [op.name for op in batch]
        except AlreadyExists:
            created = []
            for op in batch:  # content-named: one that exists holds the same nets
                with contextlib.suppress(AlreadyExists):
                    self.store.commit([op])
                    created.append(op.name)
            return created

    def _discard(self, written: Sequence[str], main: Sequence[Op]) -> None:
        """After a failed commit: delete the chunks it pre-wrote that no head names
        (a concurrent writer's head may name the same content; keep those)."""
        if not written:
            return
        named: set[str] = set()
        for op in main:
            if op.kind == GNS:
                with contextlib.suppress(DatastoreError, MembersFormatError):
                    head = self.store.get(GNS, op.name).value
                    manifest = parse_head(head)
                    if manifest is not None:
                        named |= manifest.all_names(op.name)
        self._delete_quietly([n for n in written if n not in named])

    def _delete_quietly(self, names: Sequence[str]) -> None:
        limit = self._max_ops or len(names) or 1
        for first in range(0, len(names), limit):
            batch = names[first : first + limit]
            try:
                self.store.commit([Delete(CHUNK_KIND, n) for n in batch])
            except NotFound:
                for name in batch:
                    with contextlib.suppress(NotFound):
                        self.store.delete(CHUNK_KIND, name)
            except DatastoreError:
                return  # garbage, not harm: readers ignore chunks no head names

    # -------------------------------------------------------------- the rest

    def current_revision(self) -> int:
        return self.store.current_revision()

    def watch(self, start_revision: int, *, kinds: Sequence[str] | None = None,
              stop: threading.Event | None = None, prev: bool = True) -> Iterator[WatchEvent]:
        """The backend's events as stored (chunks included): watchers that need sets
        whole read them with ``get``."""
        return self.store.watch(start_revision, kinds=kinds, stop=stop, prev=prev)

    def compact(self, revision: int) -> None:
        self.store.compact(revision)

    def close(self) -> None:
        self.store.close()


def _replace(set_name: str, digests: builtins.list[str], index: int, old_name: str | None,
             new: tuple[str, dict[str, Any]], fresh: dict[str, dict[str, Any]], orphans: builtins.list[str]) -> None:
    """Bucket ``index`` now holds chunk ``new`` (("", {}): none): record the write and the orphan."""
    new_name, value = new
    if new_name == old_name:
        return
    if old_name is not None:
        orphans.append(old_name)
    if value:
        fresh[new_name] = value
    digests[index] = new_name[len(set_name) + 1:]


def _overlay_by_bucket(values: Iterable[Mapping[str, Any]], buckets: int) -> dict[int, tuple[set[str], set[str]]]:
    """Overlay chunks' (added, removed) nets grouped by base bucket."""
    out: dict[int, tuple[set[str], set[str]]] = {}
    for value in values:
        for position, key in ((0, "nets"), (1, "removed")):
            for net in value.get(key) or []:
                if isinstance(net, str):
                    out.setdefault(bucket_of(net, buckets), (set(), set()))[position].add(net)
    return out


class _ChunksMoved(Exception):
    """A chunk the head named is gone: the head was swapped since it was read."""


def _manifest(value: Mapping[str, Any]) -> MembersHead | None:
    try:
        return parse_head(value)
    except MembersFormatError:
        return None  # shown as stored: `seawall get` lets the operator see and fix it


def _stored_manifest(store: Datastore, name: str) -> MembersHead | None:
    try:
        return _manifest(store.get(GNS, name).value)
    except NotFound:
        return None
