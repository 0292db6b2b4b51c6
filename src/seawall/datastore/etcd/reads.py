"""The read side of the etcd backend: ``get``, ``list`` and ``current_revision``.

Each read is one range request, retried at a newer revision when history is
compacted between the head read and its shard read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from etcd3aio._protobuf import RangeRequest

from seawall.datastore import etcd_keys as ek
from seawall.datastore.etcd.connection import _CompactedRead
from seawall.datastore.etcd.documents import EtcdDocuments
from seawall.datastore.interface import DatastoreError, Keep, KeyValue, ListResult, NotFound

_READ_ATTEMPTS = 5  # a compaction between a head read and its shard read: retry


class EtcdReads(EtcdDocuments):
    """``get``, ``list`` and ``current_revision``."""

    def get(self, kind: str, name: str) -> KeyValue:
        return self._call(self._get(kind, name))

    async def _get(self, kind: str, name: str) -> KeyValue:
        key = self.layout.head_key(kind, name)
        for _attempt in range(_READ_ATTEMPTS):
            resp = await self._rpc(self._kv.Range, RangeRequest(key=key))
            if not resp.kvs:
                raise NotFound(kind, name)
            kv = resp.kvs[0]
            try:
                value = await self._resolve(kind, name, kv.value, resp.header.revision)
            except _CompactedRead:
                continue
            return KeyValue(kind, name, value, kv.create_revision, kv.mod_revision)
        raise DatastoreError(f"{kind}({name}): history compacted under every read; try again")

    def list(self, kind: str | None = None, *, keep: Keep | None = None) -> ListResult:
        return self._call(self._list(kind, keep), timeout=self.timeout * 12 + 10)

    async def _kept(self, kind: str, name: str, data: bytes, revision: int, keep: Keep | None) -> Any:
        value = await self._resolve(kind, name, data, revision)
        return value if keep is None else keep(kind, value)

    async def _list(self, kind: str | None, keep: Keep | None) -> ListResult:
        start = self.layout.resources_prefix(kind)
        end = ek.range_end(start)
        for _attempt in range(_READ_ATTEMPTS):
            resp = await self._rpc(self._kv.Range, RangeRequest(key=start, range_end=end), timeout=self.timeout * 4)
            revision = resp.header.revision
            items: list[tuple[tuple[str, str], Any, Any]] = []
            for kv in resp.kvs:
                parsed = self.layout.parse_head_key(kv.key)
                if parsed is None:
                    continue  # e.g. a namespaced Calico resource under the same prefix
                if kind is not None and parsed[0] != kind:
                    continue
                items.append((parsed, kv, self._kept(parsed[0], parsed[1], kv.value, revision, keep)))
            try:
                values = await asyncio.gather(*(coro for _, _, coro in items))
            except _CompactedRead:
                continue
            result = [
                KeyValue(k, n, value, kv.create_revision, kv.mod_revision)
                for ((k, n), kv, _), value in zip(items, values, strict=True)
            ]
            result.sort(key=lambda item: (item.kind, item.name))
            return ListResult(result, revision)
        raise DatastoreError("list: history compacted under every read; try again")

    def current_revision(self) -> int:
        return self._call(self._current_revision())

    async def _current_revision(self) -> int:
        resp = await self._rpc(self._kv.Range, RangeRequest(key=self.layout.prefix.encode(), keys_only=True, limit=1))
        return int(resp.header.revision)
