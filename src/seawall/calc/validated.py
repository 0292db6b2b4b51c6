"""Stored documents -> validated resources, remembering across calls.

Why a class and not ``Snapshot.from_stored``: (1) a million-net set costs about
a second to validate, so only documents that changed (a different object from
the syncer) are validated again; (2) a resource whose stored data *becomes*
invalid keeps its last valid version, so bad data is reported and never
weakens what is already enforced (an SRE's typo must not open the gate).
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from seawall.api.members import (
    CHUNK_KIND,
    ChunkDoc,
    MembersFormatError,
    MembersHead,
    chunk_name,
    overlay_buckets_for,
    parse_chunk,
    parse_head,
    without_manifest,
)
from seawall.calc.members import (
    FRESH_MIN,
    ChunkMembers,
    OverlayMembers,
    SetMembers,
    chunk_members,
    fresh_chunks,
    overlaid,
    overlay_members,
)
from seawall.calc.snapshot import Snapshot

KEPT = "kept the last valid version"
IGNORED = "ignored"


class ValidatedResources:
    """Also assembles chunked GlobalNetworkSets (``seawall.api.members``): a
    chunk is parsed when it first appears, against the previous chunk of the same
    set and bucket (only the nets that differ are parsed), and a head becomes the
    set's resource plus a ``SetMembers`` in ``Snapshot.members``."""

    def __init__(self) -> None:
        # (kind, name) -> (stored document it was validated from, resource or None, why invalid or None)
        self._cache: dict[tuple[str, str], tuple[dict[str, Any], Any, str | None]] = {}
        self._heads: dict[str, MembersHead] = {}  # set name -> manifest of its last valid head
        # chunk name -> (stored document, its members or None, why invalid or None)
        self._chunks: dict[str, tuple[dict[str, Any], ChunkMembers | OverlayMembers | None, str | None]] = {}
        self._last_chunk: dict[tuple[str, int, int], ChunkMembers] = {}  # (set, bucket, buckets) -> the chunk parsed last
        self._last_overlay: dict[tuple[str, int, int], OverlayMembers] = {}  # the same, of overlay buckets
        # set -> per base bucket (base chunk, its overlay chunk, the two applied) of the last call
        self._overlaid: dict[str, list[tuple[ChunkMembers | None, OverlayMembers | None, ChunkMembers | None]]] = {}
        # (set, base bucket) -> the same, worked out ahead for an overlay chunk that arrived
        # before the head naming it (a writer's first step): the head then costs the swap
        self._ahead: dict[tuple[str, int], tuple[ChunkMembers | None, OverlayMembers, ChunkMembers | None]] = {}
        self._parsed_for: dict[str, int] = {}  # chunk name -> the bucket count it was parsed for
        # The last call's heads, the chunk names they want (name -> bucket count) and their
        # members: an update that touches no chunk of a set hands out the same SetMembers
        # (so the calculation's memo holds), without walking its thousand chunk names again.
        self._wanted_for: dict[str, MembersHead] = {}
        self._wanted: dict[str, int] = {}
        self._set_members: dict[str, SetMembers] = {}

    def update(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> tuple[Snapshot, list[dict[str, Any]]]:
        """The full current list of stored (kind, name, document) -> the snapshot
        to enforce and the invalid entries ({kind, name, reason, action})."""
        valid, invalid = [], []
        seen = set()
        chunk_docs: list[tuple[str, dict[str, Any]]] = []
        for kind, name, value in items:
            if kind == CHUNK_KIND:
                chunk_docs.append((name, value))
                continue
            key = (kind, name)
            seen.add(key)
            cached = self._cache.get(key)
            if cached is None or cached[0] is not value:
                cached = self._validate(key, value, cached)
                self._cache[key] = cached
            _, resource, reason = cached
            if reason is not None:
                invalid.append({"kind": kind, "name": name, "reason": reason,
                                "action": KEPT if resource is not None else IGNORED})
            if resource is not None:
                valid.append(resource)
        for key in set(self._cache) - seen:  # deleted from the datastore
            del self._cache[key]
            if key[0] == "GlobalNetworkSet":
                self._heads.pop(key[1], None)
        members = self._members(valid, chunk_docs, invalid)
        snapshot = Snapshot.of(valid)
        return (dataclasses.replace(snapshot, members=members) if members else snapshot), invalid

    def _members(self, valid: list[Any], chunk_docs: list[tuple[str, dict[str, Any]]],
                 invalid: list[dict[str, Any]]) -> dict[str, SetMembers]:
        """Parse new chunks and give every valid chunked set its members."""
        heads = {r.metadata.name: self._heads[r.metadata.name] for r in valid
                 if r.kind == "GlobalNetworkSet" and r.metadata.name in self._heads}
        same_heads = heads.keys() == self._wanted_for.keys() and all(h is self._wanted_for[n] for n, h in heads.items())
        # bucket indexes whose digest changed, per set whose head changed with its bucket count kept
        moved: dict[str, list[int]] = {}
        if not same_heads:
            self._wanted = self._wanted_names(heads, moved)
            self._wanted_for = heads
        wanted = self._wanted
        touched: dict[str, set[str]] = {}  # set -> its chunk names whose entries changed
        present: set[str] = set()
        early_overlays: list[OverlayMembers] = []
        to_parse: list[tuple[str, dict[str, Any], int]] = []
        for name, value in chunk_docs:
            present.add(name)
            cached = self._chunks.get(name)
            buckets = wanted.get(name)
            if buckets is None:
                # Not (yet) referenced: a writer puts a big change's chunks in before the
                # head that names them. Parse it now, against the bucket count of its set's
                # current head, so that the head's arrival costs only the swap.
                buckets = self._early_buckets(value, heads)
                if buckets is None:
                    continue
            if cached is None or cached[0] is not value or self._parsed_for.get(name) != buckets:
                to_parse.append((name, value, buckets))
            elif cached[2] is not None and name in wanted:
                invalid.append({"kind": CHUNK_KIND, "name": name, "reason": cached[2], "action": IGNORED})
        fresh = self._parse_fresh(to_parse)
        for name, value, buckets in to_parse:
            cached = fresh.get(name) or self._parse_chunk(value, buckets)
            self._chunks[name] = cached
            self._parsed_for[name] = buckets
            touched.setdefault(_set_of_chunk(name), set()).add(name)
            if name not in wanted and isinstance(cached[1], OverlayMembers):
                early_overlays.append(cached[1])
            if cached[2] is not None and name in wanted:
                invalid.append({"kind": CHUNK_KIND, "name": name, "reason": cached[2], "action": IGNORED})
        for name in set(self._chunks) - present:
            del self._chunks[name]
            self._parsed_for.pop(name, None)
            touched.setdefault(_set_of_chunk(name), set()).add(name)
        out: dict[str, SetMembers] = {}
        for set_name, head in heads.items():
            last = self._set_members.get(set_name)
            changed = [] if last is not None and last.head is head else moved.get(set_name)
            if last is not None and changed is not None:
                # The same head, or one that swapped a few digests (one net added: one bucket).
                # Chunks it does not name (garbage, the replaced ones) may come and go; one it
                # names at a kept bucket must not have changed, or the set is assembled anew.
                # Overlay chunks are applied by identity, bucket by bucket, whatever changed.
                swapped = {chunk_name(set_name, head.chunks[i]) for i in changed if head.chunks[i]}
                overlays = set(head.overlay_names(set_name).values())
                mine = touched.get(set_name, ())
                if all(n not in wanted or n in swapped or n in overlays for n in mine):
                    if not changed and head.overlay == last.head.overlay and not overlays & set(mine):
                        out[set_name] = last if last.head is head else dataclasses.replace(last, head=head)
                        continue
                    patched = list(last.base if last.base is not None else last.chunks)
                    for index in changed:
                        patched[index] = self._chunk_for(set_name, index, head.chunks[index])
                    out[set_name] = self._overlaid_members(set_name, head, tuple(patched))
                    continue
            chunks: list[ChunkMembers | None] = [None] * head.buckets
            for index, digest in enumerate(head.chunks):
                if digest:
                    chunks[index] = self._chunk_for(set_name, index, digest)
            out[set_name] = self._overlaid_members(set_name, head, tuple(chunks))
        self._set_members = out
        for gone in self._overlaid.keys() - {n for n, h in heads.items() if h.overlay}:
            del self._overlaid[gone]
        for ahead in [k for k in self._ahead if k[0] not in heads]:
            del self._ahead[ahead]  # a set deleted, or a writer that never swapped its head in
        for overlay in early_overlays:
            self._work_ahead(overlay, heads[overlay.set], out[overlay.set])
        if not same_heads:
            for key in [k for k in self._last_chunk if k[0] not in heads or heads[k[0]].buckets != k[2]]:
                del self._last_chunk[key]
            for key in [k for k in self._last_overlay if k[0] not in heads or heads[k[0]].buckets != k[2]]:
                del self._last_overlay[key]
        return out

    def _overlaid_members(self, set_name: str, head: MembersHead, base: tuple[ChunkMembers | None, ...]) -> SetMembers:
        """The set's members from its base chunks and the overlay its head names."""
        if not head.overlay:
            return SetMembers(set_name, head, base)
        width = len(head.overlay)
        overlays = tuple(self._overlay_for(set_name, k, d, head.buckets) if d else None
                         for k, d in enumerate(head.overlay))
        last = self._overlaid.get(set_name)
        if last is not None and len(last) != len(base):
            last = None
        records: list[tuple[ChunkMembers | None, OverlayMembers | None, ChunkMembers | None]] = []
        for index, chunk in enumerate(base):
            overlay = overlays[index & (width - 1)]
            ahead = self._ahead.get((set_name, index))
            if ahead is not None and ahead[0] is chunk and ahead[1] is overlay:
                records.append(ahead)
                continue
            records.append((chunk, overlay, overlaid(chunk, index, overlay, last[index] if last is not None else None)))
        self._overlaid[set_name] = records
        for key in [k for k in self._ahead if k[0] == set_name]:
            del self._ahead[key]
        return SetMembers(set_name, head, tuple(r[2] for r in records), base, overlays)

    def _work_ahead(self, overlay: OverlayMembers, head: MembersHead, members: SetMembers) -> None:
        """Apply an overlay chunk that no head names yet to the buckets it will cover, as the
        head that names it is expected to (same base, same overlay width); kept in ``_ahead``
        and taken when a head with exactly that base chunk and overlay chunk arrives."""
        width = len(head.overlay) or overlay_buckets_for(head.buckets)
        if overlay.index >= width or overlay.buckets != head.buckets:
            return
        base = members.base if members.base is not None else members.chunks
        records = self._overlaid.get(overlay.set) if head.overlay else None
        for index in range(overlay.index, head.buckets, width):
            chunk = base[index]
            last = records[index] if records is not None and len(records) == len(base) else (chunk, None, chunk)
            self._ahead[(overlay.set, index)] = (chunk, overlay, overlaid(chunk, index, overlay, last))

    def _overlay_for(self, set_name: str, index: int, digest: str, buckets: int) -> OverlayMembers | None:
        """The parsed overlay chunk of overlay bucket ``index`` (None: missing, invalid, not ours)."""
        found = self._chunks.get(chunk_name(set_name, digest))
        member = found[1] if found is not None else None
        if not isinstance(member, OverlayMembers) or member.set != set_name or member.index != index \
                or member.buckets != buckets:
            return None
        return member

    def _wanted_names(self, heads: dict[str, MembersHead], moved: dict[str, list[int]]) -> dict[str, int]:
        """Chunk name -> bucket count, for every chunk the heads name. A head that kept its
        bucket count is patched where its digests changed (recorded in ``moved``), not
        walked again: a one-net change to a million-net set swaps one digest of thousands."""
        wanted = dict(self._wanted)
        for set_name, old in self._wanted_for.items():
            new = heads.get(set_name)
            if new is old:
                continue
            if new is not None and new.buckets == old.buckets:
                changed = [i for i, (a, b) in enumerate(zip(old.chunks, new.chunks, strict=True)) if a != b]
                moved[set_name] = changed
                kept = set(new.chunks)  # a digest may name two buckets (a foreign writer's chunks)
                for i in changed:
                    if old.chunks[i] and old.chunks[i] not in kept:
                        wanted.pop(chunk_name(set_name, old.chunks[i]), None)
                for i in changed:
                    if new.chunks[i]:
                        wanted[chunk_name(set_name, new.chunks[i])] = new.buckets
                if old.overlay != new.overlay:
                    new_overlays = new.overlay_names(set_name).values()
                    for name in set(old.overlay_names(set_name).values()) - set(new_overlays):
                        wanted.pop(name, None)
                    wanted.update(dict.fromkeys(new_overlays, new.buckets))
                continue
            for name in old.all_names(set_name):
                wanted.pop(name, None)
        for set_name, head in heads.items():
            if head is not self._wanted_for.get(set_name) and set_name not in moved:
                wanted.update(dict.fromkeys(head.all_names(set_name), head.buckets))
        return wanted

    def _chunk_for(self, set_name: str, index: int, digest: str) -> ChunkMembers | None:
        """The parsed chunk of bucket ``index`` (None: missing, invalid, or another set's or bucket's)."""
        found = self._chunks.get(chunk_name(set_name, digest))
        member = found[1] if found is not None else None
        if not isinstance(member, ChunkMembers) or member.set != set_name or member.index != index:
            return None  # a chunk of another set or bucket under this name (or an overlay): not ours
        return member

    @staticmethod
    def _early_buckets(value: dict[str, Any], heads: dict[str, MembersHead]) -> int | None:
        """The bucket count to parse an unreferenced chunk for: its set's current head's,
        when the chunk claims a bucket of it; else None (left until a head names it)."""
        if not isinstance(value, dict):
            return None
        set_name, index = value.get("set"), value.get("index")
        head = heads.get(set_name) if isinstance(set_name, str) else None
        if head is None or not isinstance(index, int) or not 0 <= index < head.buckets:
            return None
        return head.buckets

    def _parse_fresh(self, to_parse: list[tuple[str, dict[str, Any], int]]
                     ) -> dict[str, tuple[dict[str, Any], ChunkMembers, None]]:
        """The base chunks among ``to_parse`` with no previous chunk of their bucket (a
        start, a restart, a set that arrives whole), parsed together when they are many
        (``fresh_chunks``); the others are parsed one by one, by difference."""
        docs: dict[int, list[tuple[str, dict[str, Any], ChunkDoc]]] = {}
        for name, value, buckets in to_parse:
            try:
                doc = parse_chunk(value)
            except MembersFormatError:
                continue
            if not doc.overlay and (doc.set, doc.index, buckets) not in self._last_chunk:
                docs.setdefault(buckets, []).append((name, value, doc))
        out: dict[str, tuple[dict[str, Any], ChunkMembers, None]] = {}
        for buckets, group in docs.items():
            if sum(len(doc.nets) for _, _, doc in group) < FRESH_MIN:
                continue
            for (name, value, doc), members in zip(group, fresh_chunks([d for _, _, d in group], buckets), strict=True):
                self._last_chunk[(doc.set, doc.index, buckets)] = members
                out[name] = (value, members, None)
        return out

    def _parse_chunk(self, value: dict[str, Any], buckets: int
                     ) -> tuple[dict[str, Any], ChunkMembers | OverlayMembers | None, str | None]:
        try:
            doc: ChunkDoc = parse_chunk(value)
        except MembersFormatError as exc:
            return value, None, str(exc)
        if doc.overlay:
            overlay = overlay_members(doc, self._last_overlay.get((doc.set, doc.index, buckets)), buckets)
            self._last_overlay[(doc.set, doc.index, buckets)] = overlay
            return value, overlay, None
        members = chunk_members(doc, self._last_chunk.get((doc.set, doc.index, buckets)), buckets)
        self._last_chunk[(doc.set, doc.index, buckets)] = members
        return value, members, None

    def _validate(self, key: tuple[str, str], value: dict[str, Any],
                  last: tuple[dict[str, Any], Any, str | None] | None) -> tuple[dict[str, Any], Any, str | None]:
        head: MembersHead | None = None
        document = value
        if key[0] == "GlobalNetworkSet" and isinstance(value, dict):
            try:
                head = parse_head(value)
            except MembersFormatError as exc:
                return value, (last[1] if last is not None else None), str(exc)
            if head is not None:
                document = without_manifest(value)
        single = Snapshot.from_stored([(*key, document)])
        if single.invalid:
            return value, (last[1] if last is not None else None), single.invalid[0][2]
        resource = next(iter((*single.hep.values(), *single.gns.values(), *single.gnp.values(), *single.felix.values())))
        if head is not None:
            self._heads[key[1]] = head
        elif key[0] == "GlobalNetworkSet":
            self._heads.pop(key[1], None)
        return value, resource, None


def _set_of_chunk(name: str) -> str:
    """The set a chunk name belongs to (``<set>.<digest>``: digests hold no dot)."""
    return name.rpartition(".")[0]
