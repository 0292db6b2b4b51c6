"""Network-namespace fixtures for kernel tests and benchmarks (root only).

Plain context managers rather than pytest fixtures so benchmarks and ad-hoc
scripts can use them too. Each one removes what it created on exit, including
when the body raises; links created inside a namespace also vanish with it.
They shell out to iproute2 (``ip``) because that is what an operator would
type, which makes a failing fixture easy to reproduce by hand.

:func:`in_netns` moves only the *calling thread* into a namespace (setns(2)
via ctypes: ``os.setns`` is Python 3.12+). Network-namespace membership is
per thread and the mount namespace is untouched, so inside the block libbpf's
netlink calls (``bpf_xdp_attach``/``query``) and ``socket.if_nametoindex``
see the namespace's interfaces while bpffs paths still resolve on the host.
Sockets keep the namespace they were created in after the block ends, and
threads started inside the block inherit it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seawall.dataplane.xdp.loader import is_bpffs  # re-exported for tests

NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15  # usable characters in an interface name
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


class FixtureError(RuntimeError):
    """An ``ip``/``mount`` command failed; the message carries its stderr."""


def unique_name(prefix: str = "sw") -> str:
    """``prefix`` + 6 random hex digits, short enough for an interface name."""
    name = f"{prefix}{secrets.token_hex(3)}"
    if len(name) > IFNAMSIZ:
        raise ValueError(f"{name!r} is longer than {IFNAMSIZ} characters (IFNAMSIZ)")
    return name


def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise FixtureError(f"{' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``ip [-n ns] args...``."""
    return _run(["ip", *(["-n", ns] if ns else []), *args], check=check)


def run_in(ns: str | None, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` inside ``ns`` (``ip netns exec``); defaults: check, text, captured output."""
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    return subprocess.run([*(["ip", "netns", "exec", ns] if ns else []), *cmd], **kw)


@contextlib.contextmanager
def netns(name: str | None = None) -> Iterator[str]:
    """A fresh network namespace (``ip netns add``) with ``lo`` up; deleted on exit."""
    name = name or unique_name("swns")
    ip("netns", "add", name)
    try:
        ip("link", "set", "lo", "up", ns=name)
        yield name
    finally:
        ip("netns", "del", name, check=False)


def _add_addr(ns: str | None, dev: str, cidr: str) -> None:
    """Add an address before the link goes up. IPv6: ``nodad`` on the address
    and accept_dad=0 on the link, so neither it nor the link-local address
    sits "tentative" (unusable) for a second or more."""
    if ipaddress.ip_interface(cidr).version == 6:
        with in_netns(ns) if ns else contextlib.nullcontext():
            Path(f"/proc/sys/net/ipv6/conf/{dev}/accept_dad").write_text("0")  # resolved in the thread's netns
        ip("addr", "add", cidr, "dev", dev, "nodad", ns=ns)
    else:
        ip("addr", "add", cidr, "dev", dev, ns=ns)


def _del_link(ns: str | None, dev: str) -> None:
    if ns is None or (NETNS_DIR / ns).exists():  # a deleted netns took its links with it
        ip("link", "del", dev, ns=ns, check=False)


@dataclass(frozen=True)
class VethPair:
    ns_a: str | None
    name_a: str
    ns_b: str | None
    name_b: str


@contextlib.contextmanager
def veth_pair(ns_a: str | None, ns_b: str | None, *, addr_a: str | None = None, addr_b: str | None = None,
              name_a: str | None = None, name_b: str | None = None) -> Iterator[VethPair]:
    """A veth pair with end A in ``ns_a`` and end B in ``ns_b`` (None: the
    current namespace), both up, with optional CIDR addresses (IPv6 ``nodad``,
    so they are usable at once). Deleting either end removes the pair."""
    pair = VethPair(ns_a, name_a or unique_name("swva"), ns_b, name_b or unique_name("swvb"))
    # Created in the current namespace under unique names, then moved: avoids
    # needing a name for "the current namespace" in `ip link add ... netns`.
    ip("link", "add", pair.name_a, "type", "veth", "peer", "name", pair.name_b)
    try:
        for ns, dev, addr in ((ns_a, pair.name_a, addr_a), (ns_b, pair.name_b, addr_b)):
            if ns:
                ip("link", "set", dev, "netns", ns)
            if addr:
                _add_addr(ns, dev, addr)
            ip("link", "set", dev, "up", ns=ns)
        yield pair
    finally:
        _del_link(ns_a, pair.name_a)
        _del_link(ns_b, pair.name_b)
        _del_link(None, pair.name_a)  # if the move itself failed


@contextlib.contextmanager
def _link(ns: str | None, name: str, kind: list[str], addr: str | None) -> Iterator[str]:
    """``ip link add NAME <kind…>``, address, up; deleted on exit even on failure."""
    ip("link", "add", name, *kind, ns=ns)
    try:
        if addr:
            _add_addr(ns, name, addr)
        ip("link", "set", name, "up", ns=ns)
        yield name
    finally:
        _del_link(ns, name)


def bridge(ns: str | None, name: str | None = None, *, addr: str | None = None) -> contextlib.AbstractContextManager[str]:
    """A Linux bridge (no native XDP: generic mode only), up."""
    return _link(ns, name or unique_name("swbr"), ["type", "bridge"], addr)


def macvlan(ns: str | None, parent: str, name: str | None = None, *, mode: str = "bridge",
            addr: str | None = None) -> contextlib.AbstractContextManager[str]:
    """A macvlan on ``parent`` (both in ``ns``), up."""
    return _link(ns, name or unique_name("swmv"), ["link", parent, "type", "macvlan", "mode", mode], addr)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


def current_netns_inode() -> int:
    """Inode of the calling thread's network namespace (compare with ``netns_inode``)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def netns_inode(name: str) -> int:
    return os.stat(NETNS_DIR / name).st_ino


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with the calling thread inside ``/run/netns/<name>``,
    restoring the original namespace afterwards (even on error)."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target, name)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(original, "original namespace")
    finally:
        os.close(original)


@contextlib.contextmanager
def bpffs(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A bpffs at ``path`` (created and mounted unless one is already there);
    what this call mounted or created is unmounted/removed on exit, and with
    it every pin below (pins are not references: attached or fd-held objects
    live on)."""
    where = Path(path)
    created = not where.exists()
    where.mkdir(parents=True, exist_ok=True)
    mounted = False
    try:
        if not is_bpffs(where):
            _run(["mount", "-t", "bpf", "bpffs", str(where)])
            mounted = True
        yield where
    finally:
        if mounted:
            _run(["umount", str(where)], check=False)
        if created:
            with contextlib.suppress(OSError):
                where.rmdir()


def stale_namespaces(prefix: str = "swns") -> list[str]:
    """Namespaces left behind by a killed test run (for manual clean-up)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def require_netns() -> str | None:
    """None if this process can create namespaces, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        result = _run(["ip", "netns", "list"], check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` unavailable: {exc}"
    if result.returncode != 0:
        return f"`ip netns list` failed: {result.stderr.strip()}"
    return None


__all__ = [
    "FixtureError", "VethPair", "bpffs", "bridge", "current_netns_inode", "in_netns", "ip", "is_bpffs",
    "macvlan", "netns", "netns_inode", "require_netns", "run_in", "stale_namespaces", "unique_name",
    "veth_pair",
]
