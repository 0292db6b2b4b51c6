"""The etcd v3 backend: Calico's key layout, etcd's own revisions.

* Keys: ``/calico/resources/v3/projectcalico.org/<plural>/<name>`` holds the
  resource's JSON document (see :mod:`seawall.datastore.etcd_keys`);
  ``resourceVersion`` is the key's ``mod_revision``; revisions are etcd's
  (global, one per transaction), which is exactly the interface's contract.
* ``commit`` is one etcd transaction: per-op compares (create: create_revision
  == 0; update/delete: the key exists, and mod_revision == expected when
  given). The failure branch reads the op keys, so a failed commit tells in the
  same round trip which op failed and with which revision, and writes nothing.
* Documents too big for one etcd request (etcd rejects > 1.5 MiB; a 1M-CIDR
  GlobalNetworkSet is ~20 MB) are sharded: shards under a fresh *generation*,
  then the head swap (the commit transaction, which also deletes every other
  generation of that resource) is the atomic commit point. Shards that fit go
  into the commit transaction itself. See docs/design/etcd.md.
* ``watch`` is our own loop on the raw Watch stream (prev_kv on): it resumes
  after a dropped connection from the revision after the last event it
  delivered, which etcd replays from history -- or reports as compacted, which
  raises RevisionCompacted. A changed cluster id or a revision going backwards
  raises DatastoreError (relist). etcd unreachable for longer than
  ``reconnect_window`` raises DatastoreUnavailable.

The client is ``etcd3aio`` (grpc.aio + protobuf-7-compatible generated stubs);
we call its stubs directly with our own retry policy, because its service
layer retries non-idempotent Txn calls on UNAVAILABLE and its watch helper
resumes from ``header.revision + 1`` (which can skip events). The interface is
synchronous and thread-safe: every RPC runs on one private event-loop thread
per datastore handle, bridged with ``asyncio.run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import ipaddress
import logging
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from etcd3aio._protobuf import (
    AuthenticateRequest,
    AuthStub,
    CompactionRequest,
    Compare,
    DeleteRangeRequest,
    KVStub,
    PutRequest,
    RangeRequest,
    RequestOp,
    TxnRequest,
    WatchCreateRequest,
    WatchRequest,
    WatchStub,
)

from seawall.datastore import etcd_keys as ek
from seawall.datastore.interface import (
    AlreadyExists,
    Conflict,
    Create,
    Datastore,
    DatastoreError,
    DatastoreUnavailable,
    Delete,
    EventType,
    KeyValue,
    ListResult,
    NotFound,
    Op,
    RevisionCompacted,
    Update,
    WatchEvent,
)
from seawall.datastore.url import redact_url

__all__ = ["DEFAULT_PREFIX", "EtcdDatastore", "normalise_endpoints"]

log = logging.getLogger("seawall.datastore.etcd")

DEFAULT_PREFIX = ek.DEFAULT_PREFIX
T = TypeVar("T")

_COMMIT_ATTEMPTS = 5  # a concurrent writer may clean up our pre-written shards: retry
_READ_ATTEMPTS = 5  # a compaction between a head read and its shard read: retry
_SHARD_PAGE_BYTES = 16 * 1024 * 1024  # one shard range response at most this big
_WATCH_POLL_S = 0.05  # the consumer checks ``stop`` this often


class _CompactedRead(DatastoreError):
    """A read at a revision that has been compacted (retry at a newer one)."""


class _StreamEnded(Exception):
    """The server closed a watch stream (treated as a dropped connection)."""


# ------------------------------------------------------------------ endpoints


def normalise_endpoints(endpoints: Sequence[str] | str) -> tuple[list[str], bool]:
    """``host:port`` list and whether any used ``https://``. Accepts Calico's
    ``http(s)://host:port`` and bare ``host:port``, comma-separated or a list."""
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    result: list[str] = []
    https = False
    for raw in endpoints:
        ep = raw.strip()
        if not ep:
            continue
        lower = ep.lower()
        if lower.startswith("https://"):
            https, ep = True, ep[8:]
        elif lower.startswith("http://"):
            ep = ep[7:]
        ep = ep.rstrip("/")
        if "/" in ep or not ep:
            raise ValueError(redact_url(f"bad etcd endpoint {raw!r}: expected host:port or http(s)://host:port"))
        host, port = _split_host_port(ep)
        result.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not result:
        raise ValueError("no etcd endpoints given")
    return result, https


def _split_host_port(ep: str) -> tuple[str, int]:
    if ep.startswith("["):
        host, sep, rest = ep[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = ep.rpartition(":")
        if not sep:
            host, port_text = ep, ""
    port = int(port_text) if port_text else 2379
    if not host or not 0 < port < 65536:
        raise ValueError(redact_url(f"bad etcd endpoint {ep!r}"))
    return host, port


def _grpc_target(endpoints: list[str]) -> tuple[str, str | None]:
    """A gRPC target for the endpoints and, for several TLS endpoints given by
    name, the name to verify certificates against."""
    if len(endpoints) == 1:
        return f"dns:///{endpoints[0]}", None
    addrs: list[tuple[int, str]] = []
    names: list[str] = []
    for ep in endpoints:
        host, port = _split_host_port(ep)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            names.append(host)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            if not infos:
                raise DatastoreUnavailable(redact_url(f"cannot resolve etcd endpoint {ep!r}")) from None
            ip = ipaddress.ip_address(infos[0][4][0])
        addrs.append((ip.version, f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"))
    versions = {v for v, _ in addrs}
    if len(versions) != 1:
        raise ValueError("etcd endpoints mix IPv4 and IPv6 addresses; use one family")
    scheme = "ipv6" if versions == {6} else "ipv4"
    return f"{scheme}:{','.join(a for _, a in addrs)}", (names[0] if names else None)


def _read_file(path: str | Path | None) -> bytes | None:
    if path is None or path == "":
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DatastoreUnavailable(f"cannot read {path}: {exc.strerror}") from None


# ------------------------------------------------------------------- commit


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


class EtcdDatastore(Datastore):
    """etcd v3 datastore. ``endpoints``: ``host:port`` or ``http(s)://host:port``.

    TLS is used when ``tls`` is true, an endpoint is ``https://``, or a CA or
    client certificate is given (``ca_cert``/``cert``/``key`` are PEM file
    paths). ``username``/``password`` authenticate with etcd's auth (the token
    is renewed when etcd reports it invalid). ``timeout`` bounds each request;
    a read is retried while etcd is unreachable for up to ``retry_window``
    seconds, a write only when it certainly was not sent. Documents larger
    than ``shard_threshold`` bytes of JSON are sharded in chunks of at most
    ``shard_size`` bytes; no request is larger than ``max_request_bytes`` or
    has more than ``max_txn_ops`` operations (etcd's --max-txn-ops, 128 by default)."""

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        shard_prefix: str | None = None,
        ca_cert: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool | None = None,
        tls_server_name: str | None = None,
        timeout: float = 5.0,
        retry_window: float = 1.5,
        reconnect_window: float | None = None,
        shard_threshold: int | None = None,
        shard_size: int | None = None,
        max_request_bytes: int = ek.DEFAULT_MAX_REQUEST_BYTES,
        max_txn_ops: int = 128,
        watch_queue_size: int = 4096,
    ) -> None:
        eps, https = normalise_endpoints(endpoints)
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if (cert is None) != (key is None):
            raise ValueError("a client certificate needs both cert and key")
        if password is not None and not username:
            raise ValueError("an etcd password needs a username")
        self.endpoints = eps
        self.layout = ek.KeyLayout(prefix, shard_prefix or "")
        self.timeout = float(timeout)
        self.retry_window = float(retry_window)
        self.reconnect_window = float(reconnect_window if reconnect_window is not None else max(timeout, 5.0))
        self.max_request_bytes = int(max_request_bytes)
        self.max_txn_ops = int(max_txn_ops)
        self.shard_size = ek.chunk_size_for(self.max_request_bytes, shard_size)
        self.shard_threshold = int(shard_threshold) if shard_threshold is not None else self.shard_size
        if self.shard_threshold < 0:
            raise ValueError("shard_threshold must be >= 0")
        self._ca = _read_file(ca_cert)
        self._cert = _read_file(cert)
        self._key = _read_file(key)
        self.tls = bool(tls) or https or self._ca is not None or self._cert is not None
        self._username = username or None
        self._password = password or ""
        self._tls_server_name = tls_server_name
        self._watch_queue_size = watch_queue_size
        self._token: str | None = None
        self._token_lock: asyncio.Lock | None = None
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        #: test hook: called after pre-written shards are stored, before the head swap
        self._after_shards_written: Callable[[], None] | None = None

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="seawall-etcd-loop", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._setup(), timeout=30)
        except BaseException:
            self._shutdown_loop()
            raise

    def __repr__(self) -> str:
        return f"EtcdDatastore({','.join(self.endpoints)!r}, prefix={self.layout.prefix!r})"

    # -------------------------------------------------------------- plumbing

    async def _setup(self) -> None:
        target, name_override = _grpc_target(self.endpoints)
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # come back quickly after an etcd restart (gRPC's default backoff
            # grows to 120 s, during which every call fails fast)
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.enable_retries", 0),
        ]
        if self.tls:
            server_name = self._tls_server_name or name_override
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            creds = grpc.ssl_channel_credentials(
                root_certificates=self._ca, private_key=self._key, certificate_chain=self._cert
            )
            self._channel = grpc.aio.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._kv = KVStub(self._channel)
        self._watch_stub = WatchStub(self._channel)
        self._auth = AuthStub(self._channel)
        self._token_lock = asyncio.Lock()

    def _call(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and wait for it (bounded)."""
        if self._closed.is_set():
            coro.close()
            raise DatastoreUnavailable(f"{self!r} is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        limit = timeout if timeout is not None else self.timeout * 3 + self.retry_window + 5
        try:
            return fut.result(limit)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise DatastoreUnavailable(f"etcd {','.join(self.endpoints)}: no answer within {limit:.0f} s") from None
        except concurrent.futures.CancelledError:
            raise DatastoreUnavailable(f"{self!r} was closed during the call") from None

    async def _metadata(self) -> tuple[tuple[str, str], ...] | None:
        if self._username is None:
            return None
        assert self._token_lock is not None
        async with self._token_lock:
            if self._token is None:
                try:
                    resp = await self._auth.Authenticate(
                        AuthenticateRequest(name=self._username, password=self._password),
                        timeout=self.timeout,
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        raise self._map_error(exc) from None
                    raise DatastoreUnavailable(
                        f"etcd authentication as {self._username!r} failed: {exc.details()}"
                    ) from None
                self._token = resp.token
            return (("token", self._token),)

    @staticmethod
    def _never_sent(exc: grpc.aio.AioRpcError) -> bool:
        """An UNAVAILABLE that certainly happened before the request reached etcd
        (no connection), or that etcd rejected before applying it."""
        details = (exc.details() or "").lower()
        return any(
            s in details
            for s in (
                "failed to connect", "connection refused", "connections to all backends failing",
                "no address", "etcdserver: no leader",
            )
        )

    def _map_error(self, exc: grpc.aio.AioRpcError, *, write: bool = False) -> DatastoreError:
        code, details = exc.code(), exc.details() or ""
        where = f"etcd {','.join(self.endpoints)}"
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            unknown = write and not self._never_sent(exc)
            suffix = " (the write may or may not have been applied)" if unknown else ""
            return DatastoreUnavailable(f"{where} unavailable: {code.name}: {details}{suffix}")
        if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
            return _CompactedRead(details)
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return DatastoreUnavailable(f"{where}: {code.name.lower().replace('_', ' ')}: {details}")
        if "user name is empty" in details:
            return DatastoreUnavailable(
                f"{where} requires authentication ({details}): set --etcd-username/--etcd-password "
                "or ETCD_USERNAME/ETCD_PASSWORD"
            )
        return DatastoreError(f"{where}: {code.name}: {details}")

    async def _rpc(self, method: Any, request: Any, *, write: bool = False, timeout: float | None = None) -> Any:
        """One unary call with our retry policy: reads retry UNAVAILABLE for up to
        ``retry_window``; writes only if the request certainly was not sent. An
        invalid auth token is renewed once."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.retry_window
        backoff = 0.05
        renewed = False
        while True:
            try:
                return await method(request, metadata=await self._metadata(), timeout=timeout or self.timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and self._username and not renewed:
                    renewed = True
                    self._token = None
                    continue
                if (
                    code == grpc.StatusCode.UNAVAILABLE
                    and (not write or self._never_sent(exc))
                    and loop.time() + backoff < give_up
                ):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 0.4)
                    continue
                raise self._map_error(exc, write=write) from None

    # ------------------------------------------------------------- decoding

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

    # ------------------------------------------------------------------ reads

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

    def list(self, kind: str | None = None) -> ListResult:
        return self._call(self._list(kind), timeout=self.timeout * 12 + 10)

    async def _list(self, kind: str | None) -> ListResult:
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
                items.append((parsed, kv, self._resolve(parsed[0], parsed[1], kv.value, revision)))
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

    # ----------------------------------------------------------------- commit

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

    # ------------------------------------------------------------------ watch

    def watch(
        self,
        start_revision: int,
        *,
        kinds: Sequence[str] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[WatchEvent]:
        """Events with revision >= ``start_revision`` (etcd replays history), then
        live ones until ``stop`` is set or the handle is closed."""
        if start_revision < 1:
            raise ValueError(f"start_revision must be >= 1, got {start_revision}")
        if self._closed.is_set():
            raise DatastoreUnavailable(f"{self!r} is closed")
        return self._watch(start_revision, None if kinds is None else frozenset(kinds), stop)

    def _watch(
        self, start_revision: int, kinds: frozenset[str] | None, stop: threading.Event | None
    ) -> Iterator[WatchEvent]:
        q: queue.Queue[Any] = queue.Queue(maxsize=self._watch_queue_size)
        cancelled = threading.Event()
        fut = asyncio.run_coroutine_threadsafe(self._watch_producer(start_revision, kinds, q, cancelled), self._loop)
        try:
            while True:
                if (stop is not None and stop.is_set()) or self._closed.is_set():
                    return
                try:
                    item = q.get(timeout=_WATCH_POLL_S)
                except queue.Empty:
                    continue
                if isinstance(item, BaseException):
                    raise item
                if stop is not None and stop.is_set():
                    return
                yield item
        finally:
            cancelled.set()
            fut.cancel()

    async def _push(self, q: queue.Queue[Any], item: Any, cancelled: threading.Event) -> None:
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                if cancelled.is_set():
                    raise asyncio.CancelledError from None
                await asyncio.sleep(0.005)  # back-pressure from a slow consumer

    async def _watch_producer(
        self,
        start_revision: int,
        kinds: frozenset[str] | None,
        q: queue.Queue[Any],
        cancelled: threading.Event,
    ) -> None:
        try:
            await self._watch_loop(start_revision, kinds, q, cancelled)
        except asyncio.CancelledError:
            raise
        except DatastoreError as exc:
            with contextlib.suppress(asyncio.CancelledError):
                await self._push(q, exc, cancelled)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer as a DatastoreError
            log.exception("etcd watch failed")
            err = DatastoreError(f"etcd watch failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            with contextlib.suppress(asyncio.CancelledError):
                await self._push(q, err, cancelled)

    async def _watch_loop(
        self,
        start_revision: int,
        kinds: frozenset[str] | None,
        q: queue.Queue[Any],
        cancelled: threading.Event,
    ) -> None:
        loop = asyncio.get_running_loop()
        start = self.layout.resources_prefix(None)
        end = ek.range_end(start)
        next_rev = start_revision  # every event before it has been delivered
        seen_rev = 0  # the newest revision an event (of any kind) was seen at
        cluster_id: int | None = None
        lost_since: float | None = None
        backoff = 0.05
        renewed = False
        while not cancelled.is_set():
            call = None
            try:
                call = self._watch_stub.Watch(metadata=await self._metadata())
                await call.write(
                    WatchRequest(
                        create_request=WatchCreateRequest(
                            key=start, range_end=end, start_revision=next_rev, prev_kv=True
                        )
                    )
                )
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise _StreamEnded()
                    header = resp.header
                    if header.cluster_id:
                        if cluster_id is None:
                            cluster_id = header.cluster_id
                        elif header.cluster_id != cluster_id:
                            raise DatastoreError(
                                f"etcd cluster id changed ({cluster_id:x} -> {header.cluster_id:x}) "
                                "while watching; relist"
                            )
                    if resp.compact_revision:
                        raise RevisionCompacted(next_rev, resp.compact_revision - 1)
                    if resp.canceled:
                        raise DatastoreError(f"etcd canceled the watch: {resp.cancel_reason or 'no reason given'}")
                    if resp.created:
                        lost_since, backoff, renewed = None, 0.05, False
                        if header.revision and header.revision < seen_rev:
                            raise DatastoreError(
                                f"etcd revision went backwards ({header.revision} < {seen_rev}: "
                                "restored from a backup?); relist"
                            )
                        continue
                    if not resp.events:
                        continue  # progress notification
                    for ev in resp.events:
                        event = await self._event(ev, kinds, next_rev)
                        if event is not None:
                            await self._push(q, event, cancelled)
                    seen_rev = max(seen_rev, resp.events[-1].kv.mod_revision)
                    next_rev = max(next_rev, seen_rev + 1)
            except (grpc.aio.AioRpcError, _StreamEnded) as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                if code == grpc.StatusCode.CANCELLED and cancelled.is_set():
                    return
                if code == grpc.StatusCode.UNAUTHENTICATED and self._username and not renewed:
                    renewed = True
                    self._token = None
                    continue
                transient = code in (None, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                                     grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED)
                if not transient:
                    assert isinstance(exc, grpc.aio.AioRpcError)
                    raise self._map_error(exc) from None
                now = loop.time()
                if lost_since is None:
                    lost_since = now
                    log.info("etcd watch stream lost (%s); resuming from revision %d", code, next_rev)
                if now - lost_since > self.reconnect_window:
                    detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else "stream closed"
                    raise DatastoreUnavailable(
                        f"etcd {','.join(self.endpoints)} unreachable for {now - lost_since:.1f} s "
                        f"while watching from revision {next_rev}: {detail}"
                    ) from None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
            except DatastoreUnavailable as exc:
                # e.g. re-authentication while etcd is down
                now = loop.time()
                lost_since = lost_since if lost_since is not None else now
                if now - lost_since > self.reconnect_window:
                    raise
                log.info("etcd watch: %s; retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
            finally:
                if call is not None:
                    call.cancel()

    async def _event(self, ev: Any, kinds: frozenset[str] | None, next_rev: int) -> WatchEvent | None:
        parsed = self.layout.parse_head_key(ev.kv.key)
        if parsed is None:
            return None
        kind, name = parsed
        if kinds is not None and kind not in kinds:
            return None
        rev = int(ev.kv.mod_revision)
        is_delete = ev.type == 1  # mvccpb.Event.DELETE
        has_prev = ev.HasField("prev_kv")
        if not has_prev and (is_delete or ev.kv.version > 1):
            # etcd leaves prev_kv out when rev - 1 is already compacted
            raise RevisionCompacted(next_rev, rev - 1)
        try:
            value = None if is_delete else await self._resolve(kind, name, ev.kv.value, rev)
            # the previous generation's shards are deleted by the same txn: read them at rev - 1
            prev = await self._resolve(kind, name, ev.prev_kv.value, rev - 1) if has_prev else None
        except _CompactedRead:
            raise RevisionCompacted(next_rev, rev - 1) from None
        return WatchEvent(EventType.DELETE if is_delete else EventType.PUT, kind, name, rev, value, prev)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        async def shutdown() -> None:
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()
            channel = getattr(self, "_channel", None)
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close(grace=None)

        if self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._loop.close()
