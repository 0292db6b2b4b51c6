"""Key layout and document sharding for the etcd backend, as pure functions.

Layout (Calico's etcdv3 layout for cluster-scoped resources)::

    <prefix><plural>/<name>                       head key: the resource's JSON document
    <shard_prefix><plural>/<name>/<generation>/<i>  shard i of a sharded document

with ``prefix`` = ``/calico/resources/v3/projectcalico.org/`` and, by default,
``shard_prefix`` = ``/seawall/shards`` + ``prefix``, so shards live outside
Calico's tree and never show up in a Calico (or Seawall) list or watch of
``prefix``.

Kinds Seawall knows map to Calico's plurals (``GlobalNetworkSet`` ->
``globalnetworksets``); any other kind is stored under its own name,
percent-encoded (so the contract suite's kinds ``K``/``A``/``B`` round-trip).
Names are percent-encoded too ('/' and '%' only; Calico names never contain
them, so Calico-valid names are stored verbatim).

Sharding: a document whose JSON encoding is larger than a threshold (etcd
rejects requests over 1.5 MiB; a 1M-CIDR GlobalNetworkSet is ~20 MB) is stored
as a *head* -- a small JSON object with the document's ``apiVersion``, ``kind``
and ``metadata`` (plus an annotation saying where the data is) and a
``seawallShards`` manifest -- and the document's exact JSON bytes cut into
chunks under ``<shard_prefix>.../<generation>/``. The manifest carries the
generation, the chunk count, the total size and the SHA-256 of the bytes, so
a reader can verify what it reassembled. A document that itself has a
top-level ``seawallShards`` key is always sharded, so a head with that key is
always a manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from seawall.datastore.errors import DatastoreError

DEFAULT_PREFIX = "/calico/resources/v3/projectcalico.org/"
SHARD_ROOT = "/seawall/shards"
MANIFEST_KEY = "seawallShards"
SHARD_ANNOTATION = "seawall.io/shards"
MANIFEST_VERSION = 1

#: etcd's own default --max-request-bytes is 1.5 MiB; stay well below it.
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
#: room for keys, compares and protobuf framing in a request carrying a chunk.
REQUEST_OVERHEAD_BYTES = 8 * 1024
#: the head's metadata copy is dropped if it is larger than this.
MAX_HEAD_METADATA_BYTES = 64 * 1024

#: Seawall's kinds and Calico's plurals (the same as ``seawall.api.kinds``;
#: duplicated so this module stays free of the API models -- a unit test checks).
PLURALS: dict[str, str] = {
    "HostEndpoint": "hostendpoints",
    "GlobalNetworkSet": "globalnetworksets",
    "GlobalNetworkPolicy": "globalnetworkpolicies",
    "FelixConfiguration": "felixconfigurations",
}
KINDS_BY_PLURAL: dict[str, str] = {plural: kind for kind, plural in PLURALS.items()}

_GENERATION_RE = re.compile(r"^[0-9a-f]{24}$")
_SHARD_INDEX_DIGITS = 8


class ShardError(DatastoreError):
    """A sharded document could not be reassembled (missing or corrupt shards)."""


# ------------------------------------------------------------------ encoding


def _quote(text: str) -> str:
    """Percent-encode only '%' and '/' (the key separator): every name Calico
    accepts is stored verbatim."""
    return text.replace("%", "%25").replace("/", "%2F")


def encode_kind(kind: str) -> str:
    """The key segment of a kind: Calico's plural, else the kind percent-encoded
    (a kind spelled like a known plural gets its first character encoded, so
    decoding stays unambiguous)."""
    if not kind:
        raise ValueError("kind must not be empty")
    plural = PLURALS.get(kind)
    if plural is not None:
        return plural
    segment = _quote(kind)
    if segment in KINDS_BY_PLURAL:
        segment = f"%{ord(segment[0]):02X}{segment[1:]}"
    return segment


def decode_kind(segment: str) -> str:
    kind = KINDS_BY_PLURAL.get(segment)
    if kind is not None:
        return kind
    return urllib.parse.unquote(segment, encoding="utf-8", errors="strict")


def encode_name(name: str) -> str:
    if not name:
        raise ValueError("name must not be empty")
    return _quote(name)


def decode_name(segment: str) -> str:
    return urllib.parse.unquote(segment, encoding="utf-8", errors="strict")


def range_end(prefix: bytes) -> bytes:
    """etcd's exclusive end of the key range starting with ``prefix``."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\x00"


def _normalise_prefix(prefix: str) -> str:
    if not prefix.startswith("/"):
        raise ValueError(f"key prefix must start with '/': {prefix!r}")
    return prefix if prefix.endswith("/") else prefix + "/"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Where heads and shards live. All keys are UTF-8 bytes."""

    prefix: str = DEFAULT_PREFIX
    shard_prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", _normalise_prefix(self.prefix))
        shard = self.shard_prefix or SHARD_ROOT + self.prefix
        object.__setattr__(self, "shard_prefix", _normalise_prefix(shard))
        a, b = self.prefix.encode(), self.shard_prefix.encode()
        if a.startswith(b) or b.startswith(a):
            raise ValueError(
                f"shard prefix {self.shard_prefix!r} must not overlap the resource prefix {self.prefix!r}"
            )

    # heads

    def head_key(self, kind: str, name: str) -> bytes:
        return f"{self.prefix}{encode_kind(kind)}/{encode_name(name)}".encode()

    def resources_prefix(self, kind: str | None = None) -> bytes:
        """Prefix of all heads (``kind`` None) or of one kind's heads."""
        if kind is None:
            return self.prefix.encode()
        return f"{self.prefix}{encode_kind(kind)}/".encode()

    def parse_head_key(self, key: bytes) -> tuple[str, str] | None:
        """(kind, name) of a head key, or None for a key that is not one (outside
        the prefix, namespaced, empty segments, bad encoding)."""
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text.startswith(self.prefix):
            return None
        parts = text[len(self.prefix):].split("/")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            return None
        try:
            return decode_kind(parts[0]), decode_name(parts[1])
        except UnicodeDecodeError:
            return None

    # shards

    def shards_prefix(self, kind: str, name: str) -> bytes:
        """Prefix of every shard generation of one resource."""
        return f"{self.shard_prefix}{encode_kind(kind)}/{encode_name(name)}/".encode()

    def generation_prefix(self, kind: str, name: str, generation: str) -> bytes:
        check_generation(generation)
        return self.shards_prefix(kind, name) + f"{generation}/".encode()

    def shard_key(self, kind: str, name: str, generation: str, index: int) -> bytes:
        if not 0 <= index < 10**_SHARD_INDEX_DIGITS:
            raise ValueError(f"shard index out of range: {index}")
        return self.generation_prefix(kind, name, generation) + f"{index:0{_SHARD_INDEX_DIGITS}d}".encode()

    def generation_range(self, kind: str, name: str, generation: str) -> tuple[bytes, bytes]:
        """Key range ``[start, end)`` of one generation's shards."""
        start = self.generation_prefix(kind, name, generation)
        return start, range_end(start)

    def shards_range(self, kind: str, name: str) -> tuple[bytes, bytes]:
        """Key range ``[start, end)`` of every shard generation of one resource."""
        start = self.shards_prefix(kind, name)
        return start, range_end(start)

    def parse_shard_key(self, key: bytes) -> tuple[str, str, str, int] | None:
        """(kind, name, generation, index) of a shard key, else None."""
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text.startswith(self.shard_prefix):
            return None
        parts = text[len(self.shard_prefix):].split("/")
        if len(parts) != 4 or not _GENERATION_RE.match(parts[2]) or not (parts[3].isascii() and parts[3].isdigit()):
            return None
        try:
            return decode_kind(parts[0]), decode_name(parts[1]), parts[2], int(parts[3])
        except UnicodeDecodeError:
            return None


# ------------------------------------------------------------ generations


def new_generation(now_ns: int, random_bits: int) -> str:
    """A generation id: 16 hex digits of wall-clock ns + 8 random hex digits
    (sortable by time, unique across concurrent writers)."""
    return f"{now_ns & (2**64 - 1):016x}{random_bits & (2**32 - 1):08x}"


def check_generation(generation: str) -> str:
    if not _GENERATION_RE.match(generation):
        raise ValueError(f"bad shard generation id {generation!r}")
    return generation


def generation_time_ns(generation: str) -> int:
    return int(check_generation(generation)[:16], 16)


# ---------------------------------------------------------------- documents


def encode_document(value: dict[str, Any]) -> bytes:
    """The stored form of a document: compact UTF-8 JSON (as Calico writes it)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode_document(data: bytes) -> Any:
    return json.loads(data)


def must_shard(value: dict[str, Any], encoded_size: int, threshold: int) -> bool:
    """Whether a document has to be stored sharded."""
    return encoded_size > threshold or MANIFEST_KEY in value


def chunk_size_for(max_request_bytes: int, requested: int | None = None) -> int:
    """Bytes of document per shard: ``requested`` capped so that one shard put
    always fits in one request of ``max_request_bytes``."""
    cap = max_request_bytes - REQUEST_OVERHEAD_BYTES
    if cap < 1:
        raise ValueError(f"max_request_bytes {max_request_bytes} is too small")
    size = cap if requested is None else min(requested, cap)
    if size < 1:
        raise ValueError(f"shard size must be >= 1, got {requested}")
    return size


def split(data: bytes, chunk_size: int) -> list[bytes]:
    """``data`` cut into chunks of ``chunk_size`` bytes (at least one chunk)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]


@dataclass(frozen=True, slots=True)
class Manifest:
    generation: str
    count: int
    size: int
    sha256: str

    def to_json(self, key_prefix: str) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "generation": self.generation,
            "count": self.count,
            "size": self.size,
            "sha256": self.sha256,
            "keyPrefix": key_prefix,
        }


def make_manifest(generation: str, data: bytes, chunks: list[bytes]) -> Manifest:
    return Manifest(check_generation(generation), len(chunks), len(data), hashlib.sha256(data).hexdigest())


def make_head(value: dict[str, Any], manifest: Manifest, key_prefix: str) -> dict[str, Any]:
    """The small document stored at the head key of a sharded resource: what a
    Calico tool reading the key sees (``apiVersion``/``kind``/``metadata`` with
    an annotation, no ``spec``) plus the manifest."""
    head: dict[str, Any] = {}
    for field in ("apiVersion", "kind"):
        if isinstance(value.get(field), str):
            head[field] = value[field]
    metadata = value.get("metadata")
    if isinstance(metadata, dict) and len(encode_document(metadata)) <= MAX_HEAD_METADATA_BYTES:
        meta = dict(metadata)
        annotations = meta.get("annotations")
        annotations = dict(annotations) if isinstance(annotations, dict) else {}
        annotations[SHARD_ANNOTATION] = (
            f"document of {manifest.size} bytes stored by Seawall in {manifest.count} shards "
            f"under {key_prefix}"
        )
        meta["annotations"] = annotations
        head["metadata"] = meta
    head[MANIFEST_KEY] = manifest.to_json(key_prefix)
    return head


def parse_manifest(head: Any) -> Manifest | None:
    """The manifest of a head document, or None for a plain document."""
    if not isinstance(head, dict) or MANIFEST_KEY not in head:
        return None
    m = head[MANIFEST_KEY]
    try:
        manifest = Manifest(
            check_generation(str(m["generation"])), int(m["count"]), int(m["size"]), str(m["sha256"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ShardError(f"malformed shard manifest: {exc}") from exc
    if manifest.count < 1 or manifest.size < 0:
        raise ShardError(f"malformed shard manifest: {m!r}")
    return manifest


def assemble(manifest: Manifest, shards: dict[int, bytes]) -> dict[str, Any]:
    """Reassemble and verify a sharded document from ``{index: chunk}``."""
    missing = [i for i in range(manifest.count) if i not in shards]
    if missing:
        raise ShardError(
            f"generation {manifest.generation}: {len(missing)} of {manifest.count} shards missing "
            f"(first: {missing[0]})"
        )
    data = b"".join(shards[i] for i in range(manifest.count))
    if len(data) != manifest.size or hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise ShardError(f"generation {manifest.generation}: shards do not match the manifest checksum")
    value = decode_document(data)
    if not isinstance(value, dict):
        raise ShardError(f"generation {manifest.generation}: document is not a JSON object")
    return value


# ------------------------------------------------------------------ planning


PLAIN = "plain"  # the document itself at the head key
IN_TXN = "in-txn"  # sharded; the shards are written by the commit transaction itself
PREWRITTEN = "prewritten"  # sharded; shards written by earlier requests, the txn swaps the head

#: a head of a sharded document is at most this big (metadata copy + manifest).
HEAD_ESTIMATE_BYTES = MAX_HEAD_METADATA_BYTES + 1024


def plan_placements(
    sizes: list[int | None],
    forced: list[bool],
    *,
    threshold: int,
    chunk_size: int,
    max_request_bytes: int,
    key_bytes: int = 256,
) -> list[str | None]:
    """Where each op of one commit puts its document. ``sizes[i]`` is the encoded
    document size of a Create/Update, None for a Delete (placement None).

    Documents over ``threshold`` (or ``forced``) are sharded; if the plain ones
    together do not fit in one request, the largest are sharded too. Sharded
    documents whose shards still fit (smallest first) go into the commit
    transaction itself (one revision, nothing to clean up on failure); the
    rest are pre-written. The caller checks the exact request size and
    demotes IN_TXN to PREWRITTEN if the estimate was short."""
    if len(sizes) != len(forced):
        raise ValueError("sizes and forced differ in length")
    budget = max_request_bytes - REQUEST_OVERHEAD_BYTES
    placements: list[str | None] = []
    for size, force in zip(sizes, forced, strict=True):
        if size is None:
            placements.append(None)
        else:
            placements.append(IN_TXN if force or size > threshold else PLAIN)

    def head_cost(i: int) -> int:
        size = sizes[i]
        if size is None:
            return 2 * key_bytes
        if placements[i] == PLAIN:
            return size + 2 * key_bytes
        return min(size, HEAD_ESTIMATE_BYTES) + 3 * key_bytes

    heads = sum(head_cost(i) for i in range(len(sizes)))
    while heads > budget:
        plain = [i for i, p in enumerate(placements) if p == PLAIN]
        if not plain:
            break  # nothing left to shard; the caller's exact check reports it
        largest = max(plain, key=lambda i: sizes[i] or 0)
        before = head_cost(largest)
        placements[largest] = IN_TXN
        heads += head_cost(largest) - before
        if head_cost(largest) >= before:
            break
    remaining = budget - heads
    sharded = sorted((i for i, p in enumerate(placements) if p == IN_TXN), key=lambda i: sizes[i] or 0)
    for i in sharded:
        size = sizes[i] or 0
        chunks = max(1, -(-size // chunk_size))
        cost = size + chunks * (key_bytes + 16)
        if cost <= remaining:
            remaining -= cost
        else:
            placements[i] = PREWRITTEN
    return placements
