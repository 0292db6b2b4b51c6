"""The etcd handle's plumbing: the gRPC channel, its event-loop thread, auth
tokens, error mapping and the unary-call retry policy.

Everything else in the backend (reads, writes, watch) is built on
:class:`EtcdConnection`'s ``_call`` (run a coroutine on the loop thread) and
``_rpc`` (one call with our retries), so this is the one place that decides
what is retried and how a gRPC failure surfaces as a :class:`DatastoreError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from etcd3aio._protobuf import AuthenticateRequest, AuthStub, KVStub, WatchStub

from seawall.datastore import etcd_keys as ek
from seawall.datastore.etcd.endpoints import _grpc_target, _read_file, normalise_endpoints
from seawall.datastore.interface import DatastoreError, DatastoreUnavailable

DEFAULT_PREFIX = ek.DEFAULT_PREFIX
T = TypeVar("T")


class _CompactedRead(DatastoreError):
    """A read at a revision that has been compacted (retry at a newer one)."""


class EtcdConnection:
    """One handle's connection state; the constructor is
    :class:`~seawall.datastore.etcd.EtcdDatastore`'s (see there for the arguments)."""

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
