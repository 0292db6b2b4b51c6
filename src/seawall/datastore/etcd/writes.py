"""The write side of the etcd backend: ``commit`` (and ``compact``).

A commit is one etcd transaction with per-op compares; documents too big for
it are sharded, their shards either inside the transaction or pre-written
under a fresh generation before the head swap (see docs/design/etcd.md). This
module plans the placements, builds the transaction, pre-writes and cleans up
shards, and turns the response into results or the first op's error.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from etcd3aio._protobuf import (
    CompactionRequest,
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RequestOp,
    TxnRequest,
)

from seawall.datastore import etcd_keys as ek
from seawall.datastore.etcd.connection import _CompactedRead
from seawall.datastore.etcd.documents import EtcdDocuments
from seawall.datastore.interface import (
    AlreadyExists,
    Conflict,
    Create,
    DatastoreError,
    Delete,
    KeyValue,
    NotFound,
    Op,
    Update,
)

log = logging.getLogger("seawall.datastore.etcd")  # one logger for the whole backend

_COMMIT_ATTEMPTS = 5  # a concurrent writer may clean up our pre-written shards: retry


@dataclass(slots=True)
class _Write:
    """One op of a commit, prepared."""

    op: Op
    key: bytes
    data: bytes | None = None  # encoded document (Create/Update)
    forced: bool = False
    placement: str | None = None
    generation: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    head: bytes | None = None  # what goes to the head key
    manifest: ek.Manifest | None = None
    # indexes into the success responses
    existing: set[str] = field(default_factory=set)  # shard generations found before the txn
    put_index: int = -1
    delete_index: int = -1
    shards_delete_indexes: list[int] = field(default_factory=list)


class EtcdWrites(EtcdDocuments):
    """``commit`` and ``compact``."""

    def commit(self, ops: Sequence[Op]) -> builtins.list[KeyValue]:
        if not ops:
            return []
        seen: set[tuple[str, str]] = set()
        writes: list[_Write] = []
        for op in ops:
            if not isinstance(op, (Create, Update, Delete)):
                raise TypeError(f"not a datastore op: {op!r}")
            if (op.kind, op.name) in seen:
                raise ValueError(f"{op.kind}({op.name}) appears twice in one commit")
            seen.add((op.kind, op.name))
            w = _Write(op, self.layout.head_key(op.kind, op.name))
            if not isinstance(op, Delete):
                if not isinstance(op.value, dict):
                    raise TypeError(f"{op.kind}({op.name}): value must be a dict")
                w.data = ek.encode_document(op.value)
                w.forced = ek.MANIFEST_KEY in op.value
            writes.append(w)
        total = sum(len(w.data or b"") for w in writes)
        requests = 3 + total // max(1, self.shard_size)
        return self._call(self._commit(writes), timeout=(self.timeout + 1) * (requests + 2) * 2)

    def _plan(self, writes: builtins.list[_Write]) -> None:
        placements = ek.plan_placements(
            [None if w.data is None else len(w.data) for w in writes],
            [w.forced for w in writes],
            threshold=self.shard_threshold,
            chunk_size=self.shard_size,
            max_request_bytes=self.max_request_bytes,
            key_bytes=max(len(w.key) for w in writes) + 64,
        )
        for w, placement in zip(writes, placements, strict=True):
            self._place(w, placement)

    def _place(self, w: _Write, placement: str | None) -> None:
        w.placement = placement
        w.generation, w.chunks, w.manifest = None, [], None
        if placement is None:
            return
        assert w.data is not None
        if placement == ek.PLAIN:
            w.head = w.data
            return
        op = w.op
        assert isinstance(op, (Create, Update))
        w.generation = ek.new_generation(time.time_ns(), secrets.randbits(32))
        w.chunks = ek.split(w.data, self.shard_size)
        w.manifest = ek.make_manifest(w.generation, w.data, w.chunks)
        prefix = self.layout.generation_prefix(op.kind, op.name, w.generation).decode()
        w.head = ek.encode_document(ek.make_head(op.value, w.manifest, prefix))

    def _shard_keys(self, w: _Write) -> builtins.list[bytes]:
        assert w.generation is not None
        return [
            self.layout.shard_key(w.op.kind, w.op.name, w.generation, i) for i in range(len(w.chunks))
        ]

    def _build_txn(self, writes: builtins.list[_Write]) -> TxnRequest:
        compare: list[Compare] = []
        success: list[RequestOp] = []
        failure: list[RequestOp] = []
        for w in writes:
            op = w.op
            if isinstance(op, Create):
                compare.append(Compare(result=Compare.EQUAL, target=Compare.CREATE, key=w.key, create_revision=0))
            else:
                compare.append(Compare(result=Compare.GREATER, target=Compare.CREATE, key=w.key, create_revision=0))
                if op.expected_revision is not None:
                    compare.append(
                        Compare(result=Compare.EQUAL, target=Compare.MOD, key=w.key, mod_revision=op.expected_revision)
                    )
            if w.placement == ek.PREWRITTEN:
                # The shards must still be there. A concurrent writer deletes a
                # generation it found (as stale) with one delete-range, so if any
                # of ours is gone, the first one (written first) is gone too.
                keys = self._shard_keys(w)
                for key in dict.fromkeys((keys[0], keys[-1])):
                    compare.append(Compare(result=Compare.GREATER, target=Compare.CREATE, key=key, create_revision=0))
            failure.append(RequestOp(request_range=RangeRequest(key=w.key, keys_only=True)))
            stale = sorted(w.existing - {w.generation})
            if isinstance(op, Delete):
                w.delete_index = len(success)
                success.append(RequestOp(request_delete_range=DeleteRangeRequest(key=w.key, prev_kv=True)))
                w.shards_delete_indexes = []
                for generation in stale:
                    start, end = self.layout.generation_range(op.kind, op.name, generation)
                    w.shards_delete_indexes.append(len(success))
                    success.append(
                        RequestOp(request_delete_range=DeleteRangeRequest(key=start, range_end=end, prev_kv=True))
                    )
                continue
            w.put_index = len(success)
            success.append(RequestOp(request_put=PutRequest(key=w.key, value=w.head, prev_kv=True)))
            if w.placement == ek.IN_TXN:
                for key, chunk in zip(self._shard_keys(w), w.chunks, strict=True):
                    success.append(RequestOp(request_put=PutRequest(key=key, value=chunk)))
            # the previous generation and crash leftovers of this resource
            for generation in stale:
                start, end = self.layout.generation_range(op.kind, op.name, generation)
                success.append(RequestOp(request_delete_range=DeleteRangeRequest(key=start, range_end=end)))
        return TxnRequest(compare=compare, success=success, failure=failure)

    async def _prewrite(self, w: _Write) -> None:
        """Store a generation's shards with plain puts, batched under the request
        limit. Nothing references them yet, so these writes are invisible."""
        budget = self.max_request_bytes - ek.REQUEST_OVERHEAD_BYTES
        batch: list[RequestOp] = []
        size = 0
        for key, chunk in zip(self._shard_keys(w), w.chunks, strict=True):
            cost = len(key) + len(chunk) + 16
            if batch and (size + cost > budget or len(batch) >= self.max_txn_ops):
                await self._rpc(self._kv.Txn, TxnRequest(success=batch), timeout=self.timeout * 4)
                batch, size = [], 0
            batch.append(RequestOp(request_put=PutRequest(key=key, value=chunk)))
            size += cost
        if batch:
            # fresh, unique keys: repeating these puts is harmless, so they retry like reads
            await self._rpc(self._kv.Txn, TxnRequest(success=batch), timeout=self.timeout * 4)

    async def _existing_generations(self, writes: builtins.list[_Write]) -> None:
        """Which shard generations each resource has (keys only, reads in txns of
        at most ``max_txn_ops``): the commit deletes the stale ones in its txn."""
        for i in range(0, len(writes), self.max_txn_ops):
            batch = writes[i : i + self.max_txn_ops]
            reads = []
            for w in batch:
                start, end = self.layout.shards_range(w.op.kind, w.op.name)
                reads.append(RequestOp(request_range=RangeRequest(key=start, range_end=end, keys_only=True)))
            resp = await self._rpc(self._kv.Txn, TxnRequest(success=reads))
            for w, r in zip(batch, resp.responses, strict=True):
                w.existing = set()
                for kv in r.response_range.kvs:
                    parsed = self.layout.parse_shard_key(kv.key)
                    if parsed is not None:
                        w.existing.add(parsed[2])

    async def _discard(self, writes: builtins.list[_Write]) -> None:
        """Best effort: delete pre-written generations of a commit that certainly failed."""
        for w in writes:
            if w.placement == ek.PREWRITTEN and w.generation is not None:
                start = self.layout.generation_prefix(w.op.kind, w.op.name, w.generation)
                with contextlib.suppress(DatastoreError):
                    await self._rpc(
                        self._kv.DeleteRange, DeleteRangeRequest(key=start, range_end=ek.range_end(start)), write=True
                    )

    async def _commit(self, writes: builtins.list[_Write]) -> builtins.list[KeyValue]:
        for _attempt in range(_COMMIT_ATTEMPTS):
            await self._existing_generations(writes)
            self._plan(writes)
            txn = self._build_txn(writes)
            while (too_big := txn.ByteSize() > self.max_request_bytes) or self._too_many_ops(txn):
                in_txn = [w for w in writes if w.placement == ek.IN_TXN]
                plain = [w for w in writes if w.placement == ek.PLAIN]
                if in_txn:
                    if too_big:
                        self._place(max(in_txn, key=lambda w: len(w.data or b"")), ek.PREWRITTEN)
                    else:
                        self._place(max(in_txn, key=lambda w: len(w.chunks)), ek.PREWRITTEN)
                elif plain and too_big:
                    self._place(max(plain, key=lambda w: len(w.data or b"")), ek.PREWRITTEN)
                else:
                    raise DatastoreError(
                        f"a commit of {len(writes)} resources does not fit in one etcd transaction "
                        f"({self.max_request_bytes} bytes, {self.max_txn_ops} operations; etcd's "
                        "--max-request-bytes / --max-txn-ops); split it into smaller commits"
                    )
                txn = self._build_txn(writes)
            prewritten = [w for w in writes if w.placement == ek.PREWRITTEN]
            for w in prewritten:
                await self._prewrite(w)
            if prewritten and self._after_shards_written is not None:
                self._after_shards_written()
            resp = await self._rpc(self._kv.Txn, txn, write=True, timeout=self.timeout * 4)
            if resp.succeeded:
                return await self._results(writes, resp)
            error = self._failed_op(writes, resp)
            await self._discard(writes)
            if error is not None:
                raise error
            log.info("commit: pre-written shards were replaced by a concurrent writer; retrying")
        raise DatastoreError(f"commit gave up after {_COMMIT_ATTEMPTS} attempts: concurrent writers of the same resources")

    def _too_many_ops(self, txn: TxnRequest) -> bool:
        limit = self.max_txn_ops
        return len(txn.compare) > limit or len(txn.success) > limit or len(txn.failure) > limit

    @staticmethod
    def _failed_op(writes: builtins.list[_Write], resp: Any) -> DatastoreError | None:
        """The error of the first op whose precondition failed (None: only shard
        compares failed)."""
        for w, r in zip(writes, resp.responses, strict=True):
            op = w.op
            kvs = r.response_range.kvs
            if isinstance(op, Create):
                if kvs:
                    return AlreadyExists(op.kind, op.name)
                continue
            if not kvs:
                return NotFound(op.kind, op.name)
            if op.expected_revision is not None and kvs[0].mod_revision != op.expected_revision:
                return Conflict(op.kind, op.name, op.expected_revision, kvs[0].mod_revision)
        return None

    async def _results(self, writes: builtins.list[_Write], resp: Any) -> builtins.list[KeyValue]:
        rev = int(resp.header.revision)
        results: list[KeyValue] = []
        for w in writes:
            op = w.op
            if isinstance(op, Delete):
                deleted = resp.responses[w.delete_index].response_delete_range
                prev = deleted.prev_kvs[0]
                value = self._decode(prev.value, f"{op.kind}({op.name})")
                manifest = ek.parse_manifest(value)
                if manifest is not None:
                    shards: dict[int, bytes] = {}
                    for index in w.shards_delete_indexes:
                        for kv in resp.responses[index].response_delete_range.prev_kvs:
                            parsed = self.layout.parse_shard_key(kv.key)
                            if parsed is not None and parsed[2] == manifest.generation:
                                shards[parsed[3]] = kv.value
                    try:
                        if len(shards) == manifest.count:
                            value = ek.assemble(manifest, shards)
                        else:
                            # sharded by a concurrent writer after our pre-read: the
                            # value is still in history (its shards stay as garbage
                            # until the next write of this resource)
                            value = await self._fetch_shards(op.kind, op.name, manifest, rev - 1)
                    except ek.ShardError as exc:
                        raise DatastoreError(f"{op.kind}({op.name}) deleted, but its value: {exc}") from None
                results.append(KeyValue(op.kind, op.name, value, prev.create_revision, prev.mod_revision))
            else:
                put = resp.responses[w.put_index].response_put
                created = put.prev_kv.create_revision if put.HasField("prev_kv") else rev
                results.append(KeyValue(op.kind, op.name, op.value, created, rev))
        return results

    # ------------------------------------------------------------ compaction

    def compact(self, revision: int) -> None:
        """Discard history before ``revision``. At or below what is already
        compacted: no-op; beyond the current revision: ValueError."""
        try:
            self._call(self._rpc(self._kv.Compact, CompactionRequest(revision=revision), write=True))
        except _CompactedRead:
            return  # already compacted at least that far
        except DatastoreError as exc:
            if "future revision" in str(exc):
                raise ValueError(f"cannot compact to revision {revision}: {exc}") from None
            raise
