"""Opening and loading an ELF object (:class:`BpfObject`), and bpffs pins.

Programs and maps of an object are reached by name; their fds belong to the
object and die with it, so callers :func:`dup_fd` what they keep and pin what
must outlive the process (:func:`obj_pin`, :func:`obj_get`).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import weakref

from seawall.dataplane.xdp.libbpf.errors import LibbpfError, _check, error
from seawall.dataplane.xdp.libbpf.library import _call, lib


def _enc(name: str | os.PathLike[str]) -> bytes:
    return os.fsencode(name)


class BpfObject:
    """An opened (then loaded) ELF object. fds from ``program_fd``/``map_fd``
    belong to the object and die with :meth:`close`; :func:`dup_fd` them to keep."""

    def __init__(self, ptr: int, path: str) -> None:
        self._ptr: int | None = ptr
        self.path = path
        self._finalizer = weakref.finalize(self, lib().bpf_object__close, ptr)

    @classmethod
    def open_file(cls, path: str | os.PathLike[str]) -> BpfObject:
        ptr = lib().bpf_object__open_file(_enc(path), None)
        if not ptr:
            raise error(ctypes.get_errno() or _errno.EINVAL, "bpf_object__open_file", os.fspath(path))
        return cls(ptr, os.fspath(path))

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the object (and its fds; pinned or attached things survive)."""
        self._ptr = None
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def _obj(self) -> int:
        if self._ptr is None:
            raise ValueError(f"BpfObject {self.path} is closed")
        return self._ptr

    def _iter(self, nxt: str, name_fn: str) -> list[str]:
        names: list[str] = []
        cur = None
        for _ in range(1 << 16):  # bounded walk of the object's list
            cur = getattr(lib(), nxt)(self._obj(), cur)
            if not cur:
                return names
            names.append(getattr(lib(), name_fn)(cur).decode())
        raise RuntimeError(f"{nxt}: list does not terminate")

    def map_names(self) -> list[str]:
        """All maps, including libbpf's internal ones (``.rodata``, ``.bss``...)."""
        return self._iter("bpf_object__next_map", "bpf_map__name")

    def program_names(self) -> list[str]:
        return self._iter("bpf_object__next_program", "bpf_program__name")

    def _map(self, name: str) -> int:
        ptr = lib().bpf_object__find_map_by_name(self._obj(), name.encode())
        if not ptr:
            raise error(_errno.ENOENT, "bpf_object__find_map_by_name", f"no map {name!r}; have {self.map_names()}")
        return ptr

    def _prog(self, name: str) -> int:
        ptr = lib().bpf_object__find_program_by_name(self._obj(), name.encode())
        if not ptr:
            raise error(_errno.ENOENT, "bpf_object__find_program_by_name",
                        f"no program {name!r}; have {self.program_names()}")
        return ptr

    def reuse_map_fd(self, map_name: str, fd: int) -> None:
        """Before load: use the existing map behind ``fd`` (libbpf dups it) instead
        of creating one, so a reloaded program shares a pinned map."""
        _check("bpf_map__reuse_fd", lib().bpf_map__reuse_fd(self._map(map_name), fd), map_name)

    def set_map_max_entries(self, map_name: str, n: int) -> None:
        """Before load: resize a map (EBUSY after load)."""
        _check("bpf_map__set_max_entries", lib().bpf_map__set_max_entries(self._map(map_name), n), map_name)

    def map_type(self, name: str) -> int:
        return int(lib().bpf_map__type(self._map(name)))

    def map_key_size(self, name: str) -> int:
        return int(lib().bpf_map__key_size(self._map(name)))

    def map_value_size(self, name: str) -> int:
        return int(lib().bpf_map__value_size(self._map(name)))

    def load(self) -> None:
        """Create maps and verify/load programs. A verifier rejection raises
        :class:`LibbpfVerifierError` (EACCES/EINVAL) with the log in ``detail``."""
        _call("bpf_object__load", self.path, self._obj())

    def program_fd(self, name: str) -> int:
        return self._fd("bpf_program__fd", self._prog(name), name)

    def map_fd(self, name: str) -> int:
        return self._fd("bpf_map__fd", self._map(name), name)

    def _fd(self, func: str, ptr: int, name: str) -> int:
        # Before load, bpf_map__fd returns a bare -1 (read as EPERM) and
        # bpf_program__fd -ENOENT: report both as "not loaded".
        fd = int(getattr(lib(), func)(ptr))
        if fd < 0:
            raise LibbpfError(_errno.EBADF, func, f"{name}: object not loaded")
        return fd


def dup_fd(fd: int) -> int:
    """A caller-owned (close-on-exec) duplicate of an object-owned fd."""
    return os.dup(fd)


def obj_pin(fd: int, path: str | os.PathLike[str]) -> None:
    _check("bpf_obj_pin", lib().bpf_obj_pin(fd, _enc(path)), os.fspath(path))


def obj_get(path: str | os.PathLike[str]) -> int:
    """A new fd for a pinned object; ``LibbpfNotFound`` if nothing is pinned there."""
    return _check("bpf_obj_get", lib().bpf_obj_get(_enc(path)), os.fspath(path))
