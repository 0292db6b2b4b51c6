"""The exceptions every libbpf call raises, and the ``-errno`` check.

libbpf 1.x int calls return ``-errno``, pointer calls return NULL and set
``errno``. Every failure raises :class:`LibbpfError` (an ``OSError``) with the
C function's name; ENOENT/EEXIST/EPERM failures are also
``FileNotFoundError``/``FileExistsError``/``PermissionError``.
"""

from __future__ import annotations

import errno as _errno
import os

from seawall.dataplane.xdp.libbpf.constants import ENOTSUPP


class LibbpfUnavailable(RuntimeError):
    """libbpf.so.1 is missing or too old; the XDP tier cannot run on this host."""


class LibbpfError(OSError):
    """A libbpf call failed: ``errno`` is the kernel's (or libbpf's) error,
    ``func`` the C function, ``detail`` what it was applied to; batch updates
    set ``done`` to the number of elements written before the failure."""

    done: int | None = None

    def __init__(self, errno: int, func: str, detail: str | None = None) -> None:
        text = "ENOTSUPP (operation not supported)" if errno == ENOTSUPP else os.strerror(errno)
        super().__init__(errno, f"{func}: {text}" + (f" [{detail}]" if detail else ""))
        self.func = func
        self.detail = detail


class LibbpfNotFound(LibbpfError, FileNotFoundError):
    """ENOENT: a pin path, id or map element that does not exist."""


class LibbpfExists(LibbpfError, FileExistsError):
    """EEXIST."""


class LibbpfPermission(LibbpfError, PermissionError):
    """EPERM/EACCES: not root, or missing CAP_BPF/CAP_NET_ADMIN."""


_ERROR_CLASSES = {_errno.ENOENT: LibbpfNotFound, _errno.EEXIST: LibbpfExists,
                  _errno.EPERM: LibbpfPermission, _errno.EACCES: LibbpfPermission}


class LibbpfVerifierError(LibbpfError):
    """The verifier rejected a program (EACCES or EINVAL -- not a permission
    problem); ``detail`` holds the end of the verifier log."""


def _error_class(errno: int) -> type[LibbpfError]:
    return _ERROR_CLASSES.get(errno, LibbpfError)


def error(errno: int, func: str, detail: str | None = None) -> LibbpfError:
    """The exception for ``errno`` from ``func`` (the most specific subclass)."""
    return _error_class(errno)(errno, func, detail)


def _check(func: str, rc: int, detail: str | None = None) -> int:
    if rc < 0:
        raise error(-rc, func, detail)
    return rc
