"""Link and address events from netlink: the agent reconciles the moment an
interface appears, goes away, is re-created or changes address.

A thread listens on a netlink socket bound to RTMGRP_LINK | RTMGRP_IPV4_IFADDR
| RTMGRP_IPV6_IFADDR. Any message (or an overrun, ENOBUFS: events were lost)
means "look again": the pending messages are drained (link deletions counted,
see ``LinkTable.generation``) and the links re-read with
one pyroute2 dump (``read_links``), so the table never depends on applying
individual events in order. The dump is compared with the last one published —
names, addresses *and ifindexes*, so a link re-created under the same name and
MAC is a change — and only a difference calls ``on_change`` (link up/down,
statistics and the like do not wake the agent). A slow re-read every
``resync_s`` is the safety net. The socket is bound before the first dump, so
nothing that happens after ``start`` returns is missed.

The notification socket is a plain ``AF_NETLINK`` socket rather than
``IPRoute().bind()``: with pyroute2 0.9 the sync ``IPRoute`` sits on an asyncio
transport that buffers messages internally, so ``select`` on its fileno can
miss events that are already read; a kernel socket we drain ourselves cannot.
The dumps go through pyroute2.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from seawall.agent.links import LinkTable, read_links

log = logging.getLogger("seawall.agent.links")

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
RTM_DELLINK = 17
NLMSG_HDRLEN = 16
RESYNC_S = 5.0  # re-read even without events (safety net)
RCVBUF = 4 << 20


class LinkWatcher:
    """``current()`` is the node's link table, kept up to date by netlink events;
    ``on_change()`` is called (from the watcher's thread) whenever it changes."""

    def __init__(self, on_change: Callable[[], None] = lambda: None, *, resync_s: float = RESYNC_S) -> None:
        self.on_change = on_change  # the agent sets it before ``start``
        self.resync_s = resync_s
        self.events = 0  # netlink messages seen (tests, debugging)
        self.changes = 0  # table changes published
        self._table: LinkTable | None = None
        self._generation = 0  # RTM_DELLINK messages seen (see LinkTable.generation)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------ API

    def start(self) -> None:
        """Bind, read the table once, start the thread (idempotent). A netlink
        socket that cannot be opened leaves the watcher polling every ``resync_s``."""
        if self._thread is not None:
            return
        if self._sock is None:
            self._open()
        if self._wake_r < 0:
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._refresh(notify=False)
        self._thread = threading.Thread(target=self._run, name="seawall-links", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 socket.NETLINK_ROUTE)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                sock.bind((0, GROUPS))
            except OSError:
                sock.close()
                raise
            self._sock = sock
        except OSError as exc:
            log.warning("netlink link events unavailable (%s); re-reading the links every %.0f s", exc, self.resync_s)

    def current(self) -> LinkTable:
        """The latest table (read now if the watcher is not running)."""
        with self._lock:
            table = self._table
        if table is None or self._thread is None:
            table = read_links(generation=self._generation)
            with self._lock:
                self._table = table
        return table

    def close(self) -> None:
        self._stop.set()
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ------------------------------------------------------------ thread

    def _run(self) -> None:
        next_resync = time.monotonic() + self.resync_s
        while not self._stop.is_set():
            readers = [self._wake_r] + ([self._sock] if self._sock is not None else [])
            timeout = max(0.0, next_resync - time.monotonic())
            try:
                ready, _, _ = select.select(readers, [], [], timeout)
            except OSError as exc:  # pragma: no cover - EINTR is retried by Python
                log.warning("netlink watch: select failed: %s", exc)
                ready = []
            if self._stop.is_set():
                return
            dirty = not ready  # the resync timer expired
            if self._sock is not None and self._sock in ready:
                dirty = self._drain() or dirty
            if dirty:
                try:
                    self._refresh(notify=True)
                except Exception:  # noqa: BLE001 - the watcher outlives one failed dump
                    log.exception("re-reading the links failed; retrying in %.0f s", self.resync_s)
                next_resync = time.monotonic() + self.resync_s

    def _drain(self) -> bool:
        """Read every pending message; True if there were any (or some were lost)."""
        assert self._sock is not None
        got = False
        for _ in range(10_000):  # bounded: a storm is re-read once per batch
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # overrun: events were lost, the dump catches up
                    got = True
                    continue
                raise
            if data:
                got = True
                self._count(data)
        return got

    def _count(self, data: bytes) -> None:
        """Count the messages of one datagram, and the link deletions among them."""
        offset = 0
        for _ in range(len(data) // NLMSG_HDRLEN):  # bounded by the datagram's size
            if offset + NLMSG_HDRLEN > len(data):
                break
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < NLMSG_HDRLEN:
                break
            self.events += 1
            if kind == RTM_DELLINK:
                self._generation += 1
            offset += (length + 3) & ~3

    def _refresh(self, *, notify: bool) -> None:
        table = read_links(generation=self._generation)
        with self._lock:
            changed = table != self._table
            self._table = table
        if changed and notify:
            self.changes += 1
            log.debug("links changed: %s", dict(table.ifindex))
            self.on_change()


__all__ = ["GROUPS", "LinkWatcher"]
