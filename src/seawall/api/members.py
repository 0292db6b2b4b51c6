"""The stored shape of a big GlobalNetworkSet: a head and content-named member chunks.

A set with many nets is stored as its document without ``spec.nets`` plus a
top-level ``seawallMembers`` manifest (the head), and the nets split by the
hash of their canonical text into ``SeawallNetChunk`` resources named
``<set>.<digest>`` after their content. The head lists, per bucket, the digest
of the chunk that holds it, so a reader knows exactly which chunks make up the
set; any other chunk is garbage of an interrupted write and is ignored. A
change to a few nets rewrites a few chunks and the head, in one revision
(see ``seawall.datastore.members`` for the writing side).

A change that is spread over many buckets (a blocklist feed's churn) goes into
an **overlay** instead: the head may also list, per overlay bucket (the low
bits of the same CRC-32), an overlay chunk of nets added and nets removed. The
set is ``(base - removed) | added``, bucket by bucket, so a writer never needs
the base to write an overlay, and a churn of 30,000 nets writes and parses
30,000 nets, not the million of the base. Writers fold the overlay into the
base chunks when it grows past a fraction of the set.

This module only reads the format (the agent's calculation needs it, and it
must not import the datastore). Pure.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CHUNK_KIND = "SeawallNetChunk"
CHUNK_API_VERSION = "seawall.io/v1"
MEMBERS_KEY = "seawallMembers"
MEMBERS_VERSION = 1
OVERLAY_BUCKETS = 64  # overlay chunks per set at most (a one-net change rewrites one of them)


def overlay_buckets_for(buckets: int) -> int:
    """How many overlay buckets a writer gives a set of ``buckets`` base buckets."""
    return min(OVERLAY_BUCKETS, buckets)


class MembersFormatError(ValueError):
    """A head manifest or a chunk document that does not have the stored shape."""


@dataclass(frozen=True, slots=True)
class MembersHead:
    """The manifest of a chunked set: how many nets, and the chunk of each bucket ("" = empty)."""

    count: int  # nets in the base chunks (the overlay's changes not counted)
    buckets: int
    chunks: tuple[str, ...]
    overlay: tuple[str, ...] = ()  # per overlay bucket, the overlay chunk's digest ("" = none); () = no overlay
    overlay_count: int = 0  # nets listed in the overlay chunks (added + removed): when to fold

    def chunk_names(self, set_name: str) -> dict[int, str]:
        """bucket index -> the name of the chunk resource that holds it."""
        return {i: chunk_name(set_name, d) for i, d in enumerate(self.chunks) if d}

    def overlay_names(self, set_name: str) -> dict[int, str]:
        """overlay bucket index -> the name of its overlay chunk."""
        return {i: chunk_name(set_name, d) for i, d in enumerate(self.overlay) if d}

    def all_names(self, set_name: str) -> set[str]:
        """Every chunk resource this head names (base and overlay)."""
        return {*self.chunk_names(set_name).values(), *self.overlay_names(set_name).values()}


@dataclass(frozen=True, slots=True, eq=False)
class ChunkDoc:
    set: str
    index: int
    nets: Sequence[Any]  # as stored (validated later, member by member); an overlay's: added
    overlay: bool = False
    removed: tuple[Any, ...] = ()  # an overlay's nets removed from the base


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
    overlay = raw.get("overlay", [])
    if not isinstance(overlay, list) or not _are_digests(overlay) or (
            overlay and (len(overlay) & (len(overlay) - 1) or len(overlay) > buckets)):
        raise MembersFormatError(f"{MEMBERS_KEY}.overlay: must list a power of two (at most {buckets}) of chunk "
                                 "digests (16 hex digits or \"\")")
    overlay_count = raw.get("overlayCount", 0)
    if not isinstance(overlay_count, int) or isinstance(overlay_count, bool) or overlay_count < 0:
        raise MembersFormatError(f"{MEMBERS_KEY}.overlayCount: {overlay_count!r} is not a count")
    if not any(overlay):
        return MembersHead(count, buckets, tuple(chunks))
    return MembersHead(count, buckets, tuple(chunks), tuple(overlay), overlay_count)


def without_manifest(value: Mapping[str, Any]) -> dict[str, Any]:
    """The head as a plain GlobalNetworkSet document (no nets), for validation."""
    return {k: v for k, v in value.items() if k != MEMBERS_KEY}


class JoinedTexts(Sequence[str]):
    """A stored chunk's nets held as one newline-joined text: the agent keeps every
    stored chunk (to diff its next version), and a million nets as a million string
    objects cost ~70 MiB, as one text per chunk ~13 MiB. Splitting it back is one C
    call (``texts``), made when the chunk is parsed."""

    __slots__ = ("_len", "_text")

    def __init__(self, texts: list[str]) -> None:
        self._text = "\n".join(texts)
        self._len = len(texts)

    def __len__(self) -> int:
        return self._len

    def texts(self) -> list[str]:
        return self._text.split("\n") if self._len else []

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts())

    def __getitem__(self, index: Any) -> Any:
        return self.texts()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JoinedTexts):
            return self._len == other._len and self._text == other._text
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JoinedTexts({self._len} texts)"


JOIN_MIN = 16  # fewer nets are kept as they came


def compact_chunk(value: Any) -> Any:
    """A stored chunk document as a reader keeps it: its ``nets`` one ``JoinedTexts``
    when they are many texts with no newline (anything else is kept as it came and
    judged by ``parse_chunk``)."""
    if not isinstance(value, dict):
        return value
    nets = value.get("nets")
    if (not isinstance(nets, list) or len(nets) < JOIN_MIN or set(map(type, nets)) != {str}
            or any("\n" in n for n in nets)):
        return value
    return {**value, "nets": JoinedTexts(nets)}


def parse_chunk(value: Mapping[str, Any]) -> ChunkDoc:
    if value.get("kind") != CHUNK_KIND or value.get("apiVersion") != CHUNK_API_VERSION:
        raise MembersFormatError(f"not a {CHUNK_API_VERSION} {CHUNK_KIND} document")
    set_name, index, nets = value.get("set"), value.get("index"), value.get("nets")
    if not isinstance(set_name, str) or not set_name:
        raise MembersFormatError(f"set: {set_name!r} is not a set name")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise MembersFormatError(f"index: {index!r} is not a bucket index")
    if not isinstance(nets, (list, JoinedTexts)):
        raise MembersFormatError(f"nets: must be a list, not {type(nets).__name__}")
    overlay = value.get("overlay", False)
    if overlay is not False and overlay is not True:
        raise MembersFormatError(f"overlay: {overlay!r} is not true or false")
    removed = value.get("removed", [])
    if not isinstance(removed, list) or (removed and not overlay):
        raise MembersFormatError("removed: must be a list, and only in an overlay chunk")
    return ChunkDoc(set_name, index, nets, overlay, tuple(removed))  # the stored list itself: read, never changed
