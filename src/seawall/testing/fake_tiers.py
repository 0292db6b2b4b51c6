"""In-memory stand-ins for what the agent is given: a dataplane tier and a link
reader. They record every call, so unit tests can drive the agent loop and the
tier worker (``seawall.agent.worker``) without root or a kernel. Not for
production; the real ones are built in ``seawall.agent.entry``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seawall.agent.links import LinkTable
from seawall.calc.snapshot import NodeInterfaces
from seawall.dataplane.tier import PassKind, TierReport
from seawall.policy.desired import DesiredState


@dataclass
class FakeTier:
    """A tier whose part of the state is ``part(desired)`` (default: the XDP part).

    ``fail``: None, "raise" (the pass raises) or "report" (it returns an error);
    ``reports(desired)`` builds the per-interface reports; ``drift`` makes the
    next CHECK find something (a changed report) instead of returning the last ones."""

    name: str = "fake"
    part: Callable[[DesiredState], object] = lambda desired: desired.xdp
    reports: Callable[[DesiredState], dict[str, Any]] = lambda desired: {}
    fail: str | None = None
    message: str = "exploded"  # what a failing pass raises or reports
    drift: bool = False
    passes: list[tuple[PassKind, DesiredState]] = field(default_factory=list)
    counter_reads: int = 0
    counter_threads: set[str] = field(default_factory=set)
    cleaned: bool = False
    closed: bool = False
    block: threading.Event | None = None  # set by the test to let a pass finish
    counts: Callable[[], Any] = dict  # what ``counters`` returns (the real tier's type, when the agent reads it)
    _last: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enforced(self, desired: DesiredState) -> object:
        return self.part(desired)

    def reconcile(self, desired: DesiredState, *, verify: PassKind = PassKind.APPLY) -> TierReport[Any]:
        with self._lock:
            self.passes.append((verify, desired))
        if self.block is not None:
            self.block.wait(10)
        if self.fail == "raise":
            raise RuntimeError(self.message)
        if verify is PassKind.CHECK and not self.drift:
            return TierReport(self._last)
        self.drift = False
        self._last = self.reports(desired)
        return TierReport(self._last, self.message if self.fail == "report" else None)

    def counters(self) -> Any:
        self.counter_reads += 1
        self.counter_threads.add(threading.current_thread().name)
        return self.counts()

    def cleanup(self) -> list[str]:
        self.cleaned = True
        return []

    def close(self) -> None:
        self.closed = True

    def kinds(self) -> list[PassKind]:
        with self._lock:
            return [kind for kind, _ in self.passes]


@dataclass
class FakeLinks:
    """The node's links, set by the test; ``set_links`` calls ``on_change`` as netlink would."""

    table: LinkTable = field(default_factory=lambda: LinkTable(NodeInterfaces({"eth0": ("192.0.2.1/24",)}), {"eth0": 2}))
    on_change: Callable[[], None] = lambda: None
    started: bool = False
    closed: bool = False

    def start(self) -> None:
        self.started = True

    def current(self) -> LinkTable:
        return self.table

    def close(self) -> None:
        self.closed = True

    def set_links(self, table: LinkTable) -> None:
        self.table = table
        self.on_change()
