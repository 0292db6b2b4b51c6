"""Turning a stored head value back into a document.

A head key holds either the document's JSON or a manifest naming a generation
of shards; reads, commit results (the deleted value) and watch events all
resolve it the same way, so the decoding and the paged shard read live here,
once, for all three.
"""

from __future__ import annotations

from typing import Any

from etcd3aio._protobuf import RangeRequest

from seawall.datastore import etcd_keys as ek
from seawall.datastore.etcd.connection import EtcdConnection
from seawall.datastore.interface import DatastoreError

_SHARD_PAGE_BYTES = 16 * 1024 * 1024  # one shard range response at most this big


class EtcdDocuments(EtcdConnection):
    """Head-value decoding and shard assembly (shared by reads, writes and watch)."""

    def _decode(self, data: bytes, what: str) -> Any:
        try:
            return ek.decode_document(data)
        except ValueError as exc:
            raise DatastoreError(f"{what}: stored value is not JSON: {exc}") from None

    async def _fetch_shards(self, kind: str, name: str, manifest: ek.Manifest, revision: int) -> dict[str, Any]:
        """The document a manifest names, read at ``revision`` (page by page)."""
        start = self.layout.generation_prefix(kind, name, manifest.generation)
        end = ek.range_end(start)
        page = max(1, _SHARD_PAGE_BYTES // max(1, self.shard_size))
        shards: dict[int, bytes] = {}
        key = start
        while True:
            resp = await self._rpc(
                self._kv.Range,
                RangeRequest(key=key, range_end=end, revision=revision, limit=page),
                timeout=self.timeout * 4,
            )
            for kv in resp.kvs:
                parsed = self.layout.parse_shard_key(kv.key)
                if parsed is not None:
                    shards[parsed[3]] = kv.value
            if not resp.more or not resp.kvs:
                break
            key = resp.kvs[-1].key + b"\x00"
        try:
            return ek.assemble(manifest, shards)
        except ek.ShardError as exc:
            raise DatastoreError(f"{kind}({name}) at revision {revision}: {exc}") from None

    async def _resolve(self, kind: str, name: str, data: bytes, revision: int) -> dict[str, Any]:
        """The document stored as ``data`` at a head key, shards read at ``revision``."""
        value = self._decode(data, f"{kind}({name})")
        try:
            manifest = ek.parse_manifest(value)
        except ek.ShardError as exc:
            raise DatastoreError(f"{kind}({name}): {exc}") from None
        if manifest is not None:
            return await self._fetch_shards(kind, name, manifest, revision)
        if not isinstance(value, dict):
            raise DatastoreError(f"{kind}({name}): stored value is not a JSON object")
        return value
