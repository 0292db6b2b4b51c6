"""The stored shape of a big GlobalNetworkSet: a head and content-named member chunks.

A set with many nets is stored as its document without ``spec.nets`` plus a
top-level ``seawallMembers`` manifest (the head), and the nets split by the
hash of their canonical text into ``SeawallNetChunk`` resources named
``<set>.<digest>`` after their content. The head lists, per bucket, the digest
of the chunk that holds it, so a reader knows exactly which chunks make up the
set; any other chunk is garbage of an interrupted write and is ignored. A
change to a few nets rewrites a few chunks and the head, in one revision
(see ``seawall.datastore.members`` for the writing side).

This module only reads the format (the agent's calculation needs it, and it
must not import the datastore). Pure.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CHUNK_KIND = "SeawallNetChunk"
CHUNK_API_VERSION = "seawall.io/v1"
MEMBERS_KEY = "seawallMembers"
MEMBERS_VERSION = 1


class MembersFormatError(ValueError):
    """A head manifest or a chunk document that does not have the stored shape."""


@dataclass(frozen=True, slots=True)
class MembersHead:
    """The manifest of a chunked set: how many nets, and the chunk of each bucket ("" = empty)."""

    count: int
    buckets: int
    chunks: tuple[str, ...]

    def chunk_names(self, set_name: str) -> dict[int, str]:
        """bucket index -> the name of the chunk resource that holds it."""
        return {i: chunk_name(set_name, d) for i, d in enumerate(self.chunks) if d}


@dataclass(frozen=True, slots=True)
class ChunkDoc:
    set: str
    index: int
    nets: tuple[Any, ...]  # as stored (validated later, member by member)


def text_crc(text: str) -> int:
    """The CRC-32 of a canonical net text: what stored chunks (and the agent's
    ``NetSet`` buckets) go by; stable across processes, unlike ``hash``."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def text_crcs(texts: list[str]) -> np.ndarray:
    """``text_crc`` of every text as an int64 array, in C loops (canonical texts are
    ASCII; others one by one). numpy is imported here, not at CLI start-up."""
    import numpy as np

    try:
        return np.fromiter(map(zlib.crc32, map(str.encode, texts)), np.int64, len(texts))
    except UnicodeEncodeError:
        return np.fromiter(map(text_crc, texts), np.int64, len(texts))


def bucket_of(canonical: str, buckets: int) -> int:
    """A net's bucket: ``text_crc`` of its canonical text. A chunk holds only nets of
    its own bucket; a member stored in another bucket's chunk is not part of the set
    (so a net lives in one chunk only, and a chunk's change says exactly which nets
    the set gained or lost)."""
    return text_crc(canonical) & (buckets - 1)


def chunk_name(set_name: str, digest: str) -> str:
    return f"{set_name}.{digest}"


_HEX = frozenset("0123456789abcdef")


def _are_digests(values: list[Any]) -> bool:
    """Every value a digest (16 hex digits) or "", checked in C loops, not one regex
    per bucket (a million-net set's head is checked on every change to it)."""
    return all(type(v) is str for v in values) and set(map(len, values)) <= {0, 16} and set("".join(values)) <= _HEX


def parse_head(value: Mapping[str, Any]) -> MembersHead | None:
    """The manifest of a stored GlobalNetworkSet, or None when it is stored plain."""
    raw = value.get(MEMBERS_KEY)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MembersFormatError(f"{MEMBERS_KEY}: must be an object, not {type(raw).__name__}")
    if raw.get("version") != MEMBERS_VERSION:
        raise MembersFormatError(f"{MEMBERS_KEY}.version: {raw.get('version')!r} is not {MEMBERS_VERSION}")
    count, buckets, chunks = raw.get("count"), raw.get("buckets"), raw.get("chunks")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise MembersFormatError(f"{MEMBERS_KEY}.count: {count!r} is not a count")
    if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < 1 or buckets & (buckets - 1):
        raise MembersFormatError(f"{MEMBERS_KEY}.buckets: {buckets!r} is not a power of two")
    if not isinstance(chunks, list) or len(chunks) != buckets or not _are_digests(chunks):
        raise MembersFormatError(f"{MEMBERS_KEY}.chunks: must list {buckets} chunk digests (16 hex digits or \"\")")
    return MembersHead(count, buckets, tuple(chunks))


def without_manifest(value: Mapping[str, Any]) -> dict[str, Any]:
    """The head as a plain GlobalNetworkSet document (no nets), for validation."""
    return {k: v for k, v in value.items() if k != MEMBERS_KEY}


def parse_chunk(value: Mapping[str, Any]) -> ChunkDoc:
    if value.get("kind") != CHUNK_KIND or value.get("apiVersion") != CHUNK_API_VERSION:
        raise MembersFormatError(f"not a {CHUNK_API_VERSION} {CHUNK_KIND} document")
    set_name, index, nets = value.get("set"), value.get("index"), value.get("nets")
    if not isinstance(set_name, str) or not set_name:
        raise MembersFormatError(f"set: {set_name!r} is not a set name")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise MembersFormatError(f"index: {index!r} is not a bucket index")
    if not isinstance(nets, list):
        raise MembersFormatError(f"nets: must be a list, not {type(nets).__name__}")
    return ChunkDoc(set_name, index, tuple(nets))
