"""One agent per node: exclusive flocks held for the agent's whole life.

Two agents on one node both load and pin a program; the first attach wins, the
last pin wins, and what is left is an orphan. So before anything touches the
kernel the agent takes ``flock(LOCK_EX | LOCK_NB)`` on

* ``<run-dir>/agent.lock`` (a regular file holding the agent's pid), and
* ``<bpffs>/seawall`` itself (bpffs holds no regular files; a directory can be
  flocked all the same; the holder's pid comes from /proc/locks).

The kernel releases a flock when its holder dies, so a lock file left by a
killed agent never blocks: the next agent simply locks it again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from seawall.dataplane.xdp.loader import is_bpffs, seawall_root


class AgentLockError(RuntimeError):
    """Another agent holds one of the locks (the message says which, and its pid)."""


class AgentLock:
    """The held locks; ``release`` (or process exit) gives them up."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self.paths: list[Path] = []

    def take(self, path: Path, *, directory: bool = False) -> None:
        """Lock ``path`` (created if missing) or raise AgentLockError naming the holder."""
        if directory:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd, path, directory=directory)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise AgentLockError(f"cannot lock {path}: {exc.strerror}") from None
            who = f"pid {holder}" if holder else "pid unknown"
            raise AgentLockError(
                f"another seawall agent ({who}) holds {path}; only one agent may run per node "
                "(same --run-dir or --bpffs). Stop it first, or give this one its own --run-dir and --bpffs."
            ) from None
        if not directory:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fds.append(fd)
        self.paths.append(path)

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last fd of the open file drops the flock
        self._fds.clear()
        self.paths.clear()

    def __enter__(self) -> AgentLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_agent(run_dir: Path, bpffs: Path) -> AgentLock:
    """Take both locks, run dir first. The pin directory ``<bpffs>/seawall`` is
    locked when ``bpffs`` is a mounted bpffs; when it is not mounted yet (the
    driver mounts one on first use) another process's mount would hide it, so
    only the run-dir lock applies."""
    lock = AgentLock()
    try:
        lock.take(run_dir / "agent.lock")
        if is_bpffs(bpffs):
            lock.take(seawall_root(bpffs), directory=True)
    except BaseException:
        lock.release()
        raise
    return lock


def _holder(fd: int, path: Path, *, directory: bool) -> int | None:
    """The pid holding the flock: written in the file, else from /proc/locks."""
    if not directory:
        try:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            if text.isdigit():
                return int(text)
        except OSError:
            pass
    try:
        st = os.stat(path)
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 00:2b:5678 0 EOF" (blocked waiters carry "->")
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[2] != "->":
                    dev_ino = fields[5].rsplit(":", 1)
                    if len(dev_ino) == 2 and dev_ino[1].isdigit() and int(dev_ino[1]) == st.st_ino:
                        return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


__all__ = ["AgentLock", "AgentLockError", "lock_agent"]
