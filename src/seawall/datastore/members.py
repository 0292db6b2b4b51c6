"""How a big GlobalNetworkSet is cut into content-named member chunks (the writing side).

A set of ``CHUNKED_MIN_NETS`` nets or more is stored as a head (the document
without ``spec.nets``, plus the ``seawallMembers`` manifest) and one
``SeawallNetChunk`` per non-empty bucket (format: ``seawall.api.members``).
A net's bucket is the CRC-32 of its canonical text, so a change to a few nets
touches the few chunks that hold them; a chunk is named after a digest of its
content, so a chunk that did not change keeps its name and is not rewritten,
and a reader that sees a name knows exactly what it holds. Chunked nets are
stored in canonical form (``10.0.0.1`` is stored ``10.0.0.1/32``), which means
the same to Calico and the agent and lets a removal find its bucket. Overlay
chunks (``overlay_value``) record a spread change on top of the base; when a
writer uses them and when it folds them is decided here too (``prefers_overlay``,
``overlay_limit``).

Pure: no I/O (``seawall.datastore.documents`` does the reading and writing).
"""

from __future__ import annotations

import hashlib
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seawall.api.cidr_bulk import canonical_texts
from seawall.api.members import (
    CHUNK_API_VERSION,
    CHUNK_KIND,
    MEMBERS_KEY,
    MEMBERS_VERSION,
    MembersHead,
    chunk_name,
    parse_head,
    text_crcs,
    without_manifest,
)

CHUNKED_MIN_NETS = 4096  # below this a set is stored plain, as Calico stores it
TARGET_CHUNK_NETS = 1024  # nets per chunk the bucket count aims at (~20 KB of JSON)
MIN_BUCKETS = 8
MAX_BUCKETS = 4096
OVERLAY_MIN_BUCKETS = 16  # a change touching this many base buckets goes into an overlay (see prefers_overlay)
OVERLAY_FRACTION = 8  # an overlay is folded into the base once it holds more than 1/8 of the set


def prefers_overlay(touched: int, buckets: int) -> bool:
    """A change touching this many of the base's buckets goes into the overlay (else those
    base chunks are rewritten): from OVERLAY_MIN_BUCKETS on, or more than half of them."""
    return touched >= min(OVERLAY_MIN_BUCKETS, buckets // 2 + 1)


def overlay_limit(count: int) -> int:
    """The most changes an overlay holds before the write that would exceed it folds it."""
    return max(CHUNKED_MIN_NETS, count // OVERLAY_FRACTION)


def bucket_count_for(count: int) -> int:
    """A power of two in [MIN_BUCKETS, MAX_BUCKETS] giving ~TARGET_CHUNK_NETS nets per chunk."""
    buckets = MIN_BUCKETS
    while buckets < MAX_BUCKETS and buckets * TARGET_CHUNK_NETS < count:
        buckets *= 2
    return buckets


def chunk_digest(set_name: str, buckets: int, index: int, nets: Sequence[str]) -> str:
    """16 hex digits naming a chunk's content (its set, bucketing and sorted nets)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{set_name}\n{buckets}\n{index}\n".encode())
    h.update("\n".join(nets).encode())
    return h.hexdigest()


def _chunk_document(set_name: str, digest: str, index: int, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = chunk_name(set_name, digest)
    return name, {"apiVersion": CHUNK_API_VERSION, "kind": CHUNK_KIND, "metadata": {"name": name},
                  "set": set_name, "index": index, **fields}


def overlay_value(set_name: str, buckets: int, index: int, added: Sequence[str],
                  removed: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(name, stored document) of overlay bucket ``index``'s chunk (sorted canonical texts)."""
    digest = chunk_digest(f"overlay\n{set_name}", buckets, index, [*added, "-", *removed])
    return _chunk_document(set_name, digest, index, {"overlay": True, "nets": list(added), "removed": list(removed)})


def chunk_value(set_name: str, buckets: int, index: int, nets: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(name, stored document) of bucket ``index``'s chunk holding ``nets`` (sorted canonical texts)."""
    return _chunk_document(set_name, chunk_digest(set_name, buckets, index, nets), index, {"nets": list(nets)})


class NotCanonical(ValueError):
    """A net that is not a CIDR reached the chunk writer (validation should have refused it)."""


def canonical_nets(nets: Sequence[object]) -> list[str]:
    """The distinct canonical texts of validated nets, in first-seen order."""
    return list(dict.fromkeys(_canonical_each(nets)))


def _canonical_each(nets: Sequence[object]) -> list[str]:
    texts = canonical_texts(nets)
    for value, text in zip(nets, texts, strict=True):
        if text is None:
            raise NotCanonical(f"spec.nets: {value!r} is not a CIDR")
    return texts  # type: ignore[return-value]


def bucketed(nets: Sequence[str], buckets: int) -> list[list[str]]:
    """Canonical nets grouped by bucket (``bucket_of``), each bucket sorted and without
    duplicates; the grouping is one numpy sort (a 1M-net set in ~0.3 s)."""
    import numpy as np

    ordered = nets if isinstance(nets, list) else list(nets)
    keys = text_crcs(ordered) & (buckets - 1)
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=buckets).tolist()
    del keys
    references = np.empty(len(ordered), dtype=object)  # gathered as references: no Python int per index
    references[:] = ordered
    grouped = references[order]
    del references, order
    out: list[list[str]] = []
    first = 0
    for count in counts:
        group: list[str] = grouped[first : first + count].tolist()
        group.sort()
        if any(map(operator.eq, group, itertools.islice(group, 1, None))):
            group = list(dict.fromkeys(group))  # sorted: still sorted
        out.append(group)
        first += count
    return out


@dataclass(frozen=True, slots=True)
class ChunkedSet:
    """A set as stored chunked: its head document and its chunks by name."""

    head: dict[str, Any]
    chunks: dict[str, dict[str, Any]]  # name -> stored chunk document
    manifest: MembersHead


def head_value(document: Mapping[str, Any], count: int, buckets: int, digests: Sequence[str],
               overlay: Sequence[str] = (), overlay_count: int = 0) -> dict[str, Any]:
    """The stored head: the document without ``spec.nets``, with the manifest."""
    head = {k: v for k, v in document.items() if k != MEMBERS_KEY}
    spec = {k: v for k, v in (head.get("spec") or {}).items() if k != "nets"}
    head["spec"] = spec
    head[MEMBERS_KEY] = {"version": MEMBERS_VERSION, "count": count, "buckets": buckets, "chunks": list(digests)}
    if any(overlay):
        head[MEMBERS_KEY]["overlay"] = list(overlay)
        head[MEMBERS_KEY]["overlayCount"] = overlay_count
    return head


def chunked_from_groups(document: Mapping[str, Any], set_name: str, groups: Sequence[Sequence[str]]) -> ChunkedSet:
    """Head + chunks for bucketed canonical nets (one sorted group per bucket)."""
    digests: list[str] = []
    chunks: dict[str, dict[str, Any]] = {}
    for index, group in enumerate(groups):
        if not group:
            digests.append("")
            continue
        name, value = chunk_value(set_name, len(groups), index, group)
        digests.append(name[len(set_name) + 1:])
        chunks[name] = value
    count = sum(map(len, groups))
    head = head_value(document, count, len(groups), digests)
    return ChunkedSet(head, chunks, MembersHead(count, len(groups), tuple(digests)))


def chunked_document(document: Mapping[str, Any]) -> ChunkedSet | None:
    """A GlobalNetworkSet document as stored chunked, or None when it stays plain."""
    nets = (document.get("spec") or {}).get("nets") or []
    if len(nets) < CHUNKED_MIN_NETS:
        return None
    texts = _canonical_each(nets)  # duplicates go within their bucket (a dict of a million costs ~40 MiB)
    buckets = bucket_count_for(len(texts))
    groups = bucketed(texts, buckets)
    del texts
    distinct = sum(map(len, groups))
    if distinct < CHUNKED_MIN_NETS:
        return None
    if bucket_count_for(distinct) != buckets:  # many duplicates: fewer buckets
        groups = bucketed([net for group in groups for net in group], bucket_count_for(distinct))
    return chunked_from_groups(document, document["metadata"]["name"], groups)


def manifest_of(value: Mapping[str, Any] | None) -> MembersHead | None:
    """The manifest of a stored GlobalNetworkSet value (None: stored plain or absent)."""
    return parse_head(value) if value is not None else None


def plain_document(head: Mapping[str, Any], chunk_nets: Iterable[Sequence[str]]) -> dict[str, Any]:
    """A chunked set as the plain GlobalNetworkSet document Calico's tools show."""
    doc = without_manifest(head)
    doc["spec"] = {**(doc.get("spec") or {}), "nets": [net for nets in chunk_nets for net in nets]}
    return doc
