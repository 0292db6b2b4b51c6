"""The etcd backend's ``watch``: our own loop on the raw Watch stream.

Separate from the unary reads and writes because it is a long-lived producer
(on the loop thread) feeding a consumer (the caller's thread) through a queue,
and because resuming a dropped stream correctly -- from the revision after the
last delivered event, detecting compaction, a changed cluster id or a revision
going backwards, and giving up after ``reconnect_window`` -- is its own
problem. ``_watch_loop`` reads as: connect/resume, read the stream, and on a
failure decide whether to renew the token, back off and reconnect, or raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from etcd3aio._protobuf import WatchCreateRequest, WatchRequest

from seawall.datastore import etcd_keys as ek
from seawall.datastore.etcd.connection import _CompactedRead
from seawall.datastore.etcd.documents import EtcdDocuments
from seawall.datastore.interface import (
    DatastoreError,
    DatastoreUnavailable,
    EventType,
    RevisionCompacted,
    WatchEvent,
)

log = logging.getLogger("seawall.datastore.etcd")  # one logger for the whole backend

_WATCH_POLL_S = 0.05  # the consumer checks ``stop`` this often
# stream failures worth reconnecting for (None: the server ended the stream)
_TRANSIENT_CODES = (
    None, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED,
)


class _StreamEnded(Exception):
    """The server closed a watch stream (treated as a dropped connection)."""


@dataclass(slots=True)
class _WatchState:
    """What one watch carries from one stream to the next."""

    key: bytes  # the watched range
    range_end: bytes
    next_rev: int  # every event before it has been delivered
    seen_rev: int = 0  # the newest revision an event (of any kind) was seen at
    cluster_id: int | None = None
    lost_since: float | None = None  # loop time the stream was lost at (None: connected)
    backoff: float = 0.05
    renewed: bool = False  # the auth token was renewed since the last successful connect
    prev: bool = True  # decode each event's previous value (``watch(prev=...)``)


class EtcdWatch(EtcdDocuments):
    """``watch``: a queue-fed iterator over a resuming Watch stream."""

    def watch(
        self,
        start_revision: int,
        *,
        kinds: Sequence[str] | None = None,
        stop: threading.Event | None = None,
        prev: bool = True,
    ) -> Iterator[WatchEvent]:
        """Events with revision >= ``start_revision`` (etcd replays history), then
        live ones until ``stop`` is set or the handle is closed."""
        if start_revision < 1:
            raise ValueError(f"start_revision must be >= 1, got {start_revision}")
        if self._closed.is_set():
            raise DatastoreUnavailable(f"{self!r} is closed")
        return self._watch(start_revision, None if kinds is None else frozenset(kinds), stop, prev)

    def _watch(
        self, start_revision: int, kinds: frozenset[str] | None, stop: threading.Event | None, prev: bool = True
    ) -> Iterator[WatchEvent]:
        q: queue.Queue[Any] = queue.Queue(maxsize=self._watch_queue_size)
        cancelled = threading.Event()
        fut = asyncio.run_coroutine_threadsafe(self._watch_producer(start_revision, kinds, q, cancelled, prev), self._loop)
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
        prev: bool = True,
    ) -> None:
        try:
            await self._watch_loop(start_revision, kinds, q, cancelled, prev)
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
        prev: bool = True,
    ) -> None:
        start = self.layout.resources_prefix(None)
        st = _WatchState(start, ek.range_end(start), start_revision, prev=prev)
        while not cancelled.is_set():
            call = None
            try:
                call = self._watch_stub.Watch(metadata=await self._metadata())
                await self._watch_resume(call, st)
                await self._watch_stream(call, st, kinds, q, cancelled)
            except (grpc.aio.AioRpcError, _StreamEnded) as exc:
                if not await self._watch_stream_lost(exc, st, cancelled):
                    return
            except DatastoreUnavailable as exc:
                # e.g. re-authentication while etcd is down
                if self._watch_lost_too_long(st):
                    raise
                log.info("etcd watch: %s; retrying", exc)
                await self._watch_back_off(st)
            finally:
                if call is not None:
                    call.cancel()

    async def _watch_resume(self, call: Any, st: _WatchState) -> None:
        """Ask a new stream for every event from ``st.next_rev`` on."""
        await call.write(
            WatchRequest(
                create_request=WatchCreateRequest(
                    key=st.key, range_end=st.range_end, start_revision=st.next_rev, prev_kv=True
                )
            )
        )

    async def _watch_stream(
        self,
        call: Any,
        st: _WatchState,
        kinds: frozenset[str] | None,
        q: queue.Queue[Any],
        cancelled: threading.Event,
    ) -> None:
        """Read one stream until it fails: always raises (``_StreamEnded`` at EOF)."""
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise _StreamEnded()
            self._watch_check_cluster(resp.header, st)
            if resp.compact_revision:
                raise RevisionCompacted(st.next_rev, resp.compact_revision - 1)
            if resp.canceled:
                raise DatastoreError(f"etcd canceled the watch: {resp.cancel_reason or 'no reason given'}")
            if resp.created:
                self._watch_created(resp.header, st)
                continue
            if not resp.events:
                continue  # progress notification
            await self._watch_deliver(resp.events, st, kinds, q, cancelled)

    @staticmethod
    def _watch_check_cluster(header: Any, st: _WatchState) -> None:
        """Remember the first cluster id seen; a different one later means relist."""
        if header.cluster_id:
            if st.cluster_id is None:
                st.cluster_id = header.cluster_id
            elif header.cluster_id != st.cluster_id:
                raise DatastoreError(
                    f"etcd cluster id changed ({st.cluster_id:x} -> {header.cluster_id:x}) "
                    "while watching; relist"
                )

    @staticmethod
    def _watch_created(header: Any, st: _WatchState) -> None:
        """A stream is (re)established: reset the back-off; a revision below one
        already seen means etcd was restored from a backup (relist)."""
        st.lost_since, st.backoff, st.renewed = None, 0.05, False
        if header.revision and header.revision < st.seen_rev:
            raise DatastoreError(
                f"etcd revision went backwards ({header.revision} < {st.seen_rev}: "
                "restored from a backup?); relist"
            )

    async def _watch_deliver(
        self,
        events: Any,
        st: _WatchState,
        kinds: frozenset[str] | None,
        q: queue.Queue[Any],
        cancelled: threading.Event,
    ) -> None:
        """Decode and queue one response's events, then advance the resume point.
        etcd never splits a revision across responses (no ``fragment`` asked), so the
        last event of a revision decoded from this response completes it."""
        decoded = [e for e in [await self._event(ev, kinds, st.next_rev, st.prev) for ev in events] if e is not None]
        for i, event in enumerate(decoded):
            if i + 1 < len(decoded) and decoded[i + 1].revision == event.revision:
                event = dataclasses.replace(event, complete=False)
            await self._push(q, event, cancelled)
        st.seen_rev = max(st.seen_rev, events[-1].kv.mod_revision)
        st.next_rev = max(st.next_rev, st.seen_rev + 1)

    async def _watch_stream_lost(
        self, exc: grpc.aio.AioRpcError | _StreamEnded, st: _WatchState, cancelled: threading.Event
    ) -> bool:
        """A failed or ended stream: False to stop (we cancelled it), True to
        reconnect (after renewing the token, or after a back-off); raises when
        the failure is not transient or has lasted beyond ``reconnect_window``."""
        code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
        if code == grpc.StatusCode.CANCELLED and cancelled.is_set():
            return False
        if code == grpc.StatusCode.UNAUTHENTICATED and self._username and not st.renewed:
            st.renewed = True
            self._token = None
            return True
        if code not in _TRANSIENT_CODES:
            assert isinstance(exc, grpc.aio.AioRpcError)
            raise self._map_error(exc) from None
        now = asyncio.get_running_loop().time()
        if st.lost_since is None:
            st.lost_since = now
            log.info("etcd watch stream lost (%s); resuming from revision %d", code, st.next_rev)
        if now - st.lost_since > self.reconnect_window:
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else "stream closed"
            raise DatastoreUnavailable(
                f"etcd {','.join(self.endpoints)} unreachable for {now - st.lost_since:.1f} s "
                f"while watching from revision {st.next_rev}: {detail}"
            ) from None
        await self._watch_back_off(st)
        return True

    def _watch_lost_too_long(self, st: _WatchState) -> bool:
        """Start the outage clock if it is not running; whether it has passed
        ``reconnect_window``."""
        now = asyncio.get_running_loop().time()
        st.lost_since = st.lost_since if st.lost_since is not None else now
        return now - st.lost_since > self.reconnect_window

    @staticmethod
    async def _watch_back_off(st: _WatchState) -> None:
        """Wait before reconnecting: 50 ms, doubling up to 0.5 s."""
        await asyncio.sleep(st.backoff)
        st.backoff = min(st.backoff * 2, 0.5)

    async def _event(self, ev: Any, kinds: frozenset[str] | None, next_rev: int, want_prev: bool = True) -> WatchEvent | None:
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
            prev = await self._resolve(kind, name, ev.prev_kv.value, rev - 1) if has_prev and want_prev else None
        except _CompactedRead:
            raise RevisionCompacted(next_rev, rev - 1) from None
        return WatchEvent(EventType.DELETE if is_delete else EventType.PUT, kind, name, rev, value, prev)
