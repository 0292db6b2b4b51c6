"""Real UDP traffic between test namespaces, counted at both ends.

Sender and receiver are small Python processes started with ``ip netns exec``,
so packets cross real interfaces (veth, bridges) and meet the real XDP program
and netfilter. Every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_SENDER = r"""
import socket, sys, time
sources, dst, port, count, rate = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
family = socket.AF_INET6 if ":" in dst else socket.AF_INET
socks = []
for src in sources:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((src, 0))
    socks.append(s)
deadline = time.monotonic() + 60
sent = 0
start = time.monotonic()
for i in range(count):
    for s in socks:
        s.sendto(b"seawall-test-%d" % i, (dst, port))
        sent += 1
    if rate > 0:
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    if time.monotonic() > deadline:
        break
print(sent)
"""

_RECEIVER = r"""
import json, select, socket, sys, time
bind, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
family = socket.AF_INET6 if ":" in bind else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((bind, port))
print("ready", flush=True)
counts = {}
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.05)
    if sys.stdin in r:
        break
    if s in r:
        while True:
            try:
                _, addr = s.recvfrom(2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            counts[addr[0]] = counts.get(addr[0], 0) + 1
print(json.dumps(counts), flush=True)
"""


def _python_in(ns: str, script: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", script, *args]


def send_udp(ns: str, sources: list[str], dst: str, port: int, count: int, *, rate: float = 0.0, timeout: float = 90) -> int:
    """Send ``count`` datagrams from each source address (round robin); returns how many were sent."""
    result = subprocess.run(
        _python_in(ns, _SENDER, ",".join(sources), dst, str(port), str(count), str(rate)),
        capture_output=True, text=True, timeout=timeout, check=True,
    )
    return int(result.stdout.strip())


@contextmanager
def start_udp_sender(ns: str, sources: list[str], dst: str, port: int, count: int, *, rate: float = 0.0) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        _python_in(ns, _SENDER, ",".join(sources), dst, str(port), str(count), str(rate)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@dataclass
class UdpReceiver:
    proc: subprocess.Popen[str]
    counts: dict[str, int] | None = None

    def stop(self) -> dict[str, int]:
        """Stop and return datagrams received per source address."""
        if self.counts is None:
            out, _ = self.proc.communicate(input="stop\n", timeout=30)
            self.counts = json.loads(out.strip().splitlines()[-1])
        return self.counts


@contextmanager
def udp_receiver(ns: str, bind: str, port: int, *, limit_s: float = 120) -> Iterator[UdpReceiver]:
    proc = subprocess.Popen(
        _python_in(ns, _RECEIVER, bind, str(port), str(limit_s)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    receiver = UdpReceiver(proc)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"UDP receiver did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        yield receiver
    finally:
        if receiver.counts is None and proc.poll() is None:
            try:
                receiver.stop()
            except Exception:  # noqa: BLE001 - cleanup must not mask the test's error
                proc.kill()
        proc.wait(timeout=10)


def wait_until(predicate: Callable[[], object], *, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
