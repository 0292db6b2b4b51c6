"""A thin, typed ctypes binding to the system libbpf (``libbpf.so.1``).

Why ctypes over the distro's libbpf instead of bcc or a pip BPF library: the
agent must not need LLVM at runtime or a compiled extension, and the distro
libbpf is the one the kernel's own tooling (bpftool, xdp-tools) is tested with.
Only the calls the XDP dataplane needs are bound, each with its exact C
prototype (``_libbpf_types.PROTOTYPES``), so a wrong argument type fails in
Python, not in the kernel. Minimum: libbpf 1.0 (errno semantics, bpf_xdp_*).

Errors: libbpf 1.x int calls return ``-errno``, pointer calls return NULL and
set ``errno``. Every failure raises :class:`LibbpfError` (an ``OSError``) with
the C function's name; ENOENT/EEXIST/EPERM failures are also
``FileNotFoundError``/``FileExistsError``/``PermissionError``. For load and XDP
attach/detach, libbpf's warnings during the call (verifier log, the kernel's
extack "Kernel error message: ...") become the exception's ``detail``
instead of log noise; a verifier rejection is :class:`LibbpfVerifierError`.

Keys and values are ``bytes`` of exactly the map's key/value size; the kernel
reads ``key_size`` bytes from the pointer, so a short key is not detected here.
Netlink calls (xdp_*) act in the calling thread's network namespace. x86-64
only: the print callback relies on va_list decaying to a pointer.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from ctypes import byref, c_char_p, c_int, c_size_t, c_uint32, c_void_p, sizeof

# Every constant and struct of _libbpf_types is this module's API (``libbpf.XDP_DROP``); the names
# this module and its typed callers use are also imported by name below, so mypy sees them.
from seawall.dataplane.xdp._libbpf_types import *  # noqa: F403
from seawall.dataplane.xdp._libbpf_types import (
    BPF_ANY,
    BPF_F_TEST_XDP_LIVE_FRAMES,
    BPF_MAP_TYPE_HASH as BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH as BPF_MAP_TYPE_LRU_PERCPU_HASH,
    ENOTSUPP,
    LIBBPF_INFO,
    LIBBPF_PRINT_FN,
    LIBBPF_WARN,
    PROTOTYPES,
    XDP_ATTACHED_NONE,
    XDP_FLAGS_DRV_MODE as XDP_FLAGS_DRV_MODE,
    XDP_FLAGS_HW_MODE as XDP_FLAGS_HW_MODE,
    XDP_FLAGS_REPLACE as XDP_FLAGS_REPLACE,
    XDP_FLAGS_SKB_MODE as XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST as XDP_FLAGS_UPDATE_IF_NOEXIST,
    BpfMapBatchOpts,
    BpfMapCreateOpts,
    BpfMapInfo,
    BpfProgInfo,
    BpfTestRunOpts,
    BpfXdpAttachOpts,
    BpfXdpQueryOpts,
    BpfXdpQueryOptsGuarded,
    LibbpfError,
    LibbpfUnavailable,
    LibbpfVerifierError,
    MapInfo,
    ProgInfo,
    TestRunResult,
    XdpMd,
    XdpQuery,
    _error_class,
    error,
)

LIBBPF_SONAME = os.environ.get("SEAWALL_LIBBPF", "libbpf.so.1")
_log = logging.getLogger("seawall.libbpf")


def _check(func: str, rc: int, detail: str | None = None) -> int:
    if rc < 0:
        raise error(-rc, func, detail)
    return rc


# ---------------------------------------------------------------- library & printing

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def lib() -> ctypes.CDLL:
    """The loaded libbpf with every prototype declared (loaded on first use)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is None:
            try:
                handle = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
            except OSError as exc:
                raise LibbpfUnavailable(f"cannot load {LIBBPF_SONAME} (install libbpf1): {exc}") from exc
            for name, (restype, argtypes) in PROTOTYPES.items():
                try:
                    fn = getattr(handle, name)
                except AttributeError as exc:
                    raise LibbpfUnavailable(f"{LIBBPF_SONAME} lacks {name}; libbpf >= 1.0 is required") from exc
                fn.restype, fn.argtypes = restype, argtypes
            handle.libbpf_set_print(_TRAMPOLINE)
            _lib = handle
    return _lib


PrintCallback = Callable[[int, str], None]


class _PrintState(threading.local):
    capture: list[str] | None = None


_print_cb: PrintCallback | None = None
_print_max_level = LIBBPF_INFO
_print_state = _PrintState()
_libc = ctypes.CDLL(None, use_errno=True)
_libc.vsnprintf.restype = c_int
_libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]


def _trampoline(level: int, fmt: bytes | None, ap: int | None) -> int:
    capture = _print_state.capture
    capturing = capture is not None and level == LIBBPF_WARN
    if fmt is None or not (capturing or (_print_cb is not None and level <= _print_max_level)):
        return 0
    try:
        buf = ctypes.create_string_buffer(4096)
        _libc.vsnprintf(buf, len(buf), fmt, ap)  # consumes ap: format exactly once
        msg = buf.value.decode("utf-8", "replace").rstrip("\n")
        if capturing and capture is not None:
            capture.append(msg)
        elif _print_cb is not None:
            _print_cb(level, msg)
    except Exception:  # an exception must never unwind into C
        pass
    return 0


def _call(func: str, detail: str, *args: object) -> int:
    """Call ``func``; its WARN messages (verifier log, the kernel's extack
    "Kernel error message: ...") go into the exception on failure and to the
    print callback on success, never both."""
    prev, _print_state.capture = _print_state.capture, []
    try:
        rc = getattr(lib(), func)(*args)
    finally:
        msgs, _print_state.capture = _print_state.capture or [], prev
    if rc < 0:
        tail = "\n".join(msgs)[-4000:]
        cls = LibbpfVerifierError if "PROG LOAD LOG" in tail else None
        raise (cls or _error_class(-rc))(-rc, func, f"{detail}: {tail}" if tail else detail)
    for msg in msgs:
        if _print_cb is not None:
            _print_cb(LIBBPF_WARN, msg)
    return int(rc)


#: Referenced for the life of the process: libbpf keeps the raw pointer.
_TRAMPOLINE = LIBBPF_PRINT_FN(_trampoline)


def log_to_python(level: int, msg: str) -> None:
    """Default print callback: libbpf levels onto the "seawall.libbpf" logger."""
    _log.log({LIBBPF_WARN: logging.WARNING, LIBBPF_INFO: logging.INFO}.get(level, logging.DEBUG), "%s", msg)


def set_print(callback: PrintCallback | None, *, max_level: int = LIBBPF_INFO) -> None:
    """Route libbpf's messages to ``callback(level, message)``; None silences them.

    Messages more verbose than ``max_level`` are dropped before formatting
    (the default drops LIBBPF_DEBUG, which is hundreds of lines per load).
    The process-wide default is :func:`log_to_python`.
    """
    global _print_cb, _print_max_level
    lib()
    _print_cb, _print_max_level = callback, max_level


_print_cb = log_to_python


# ---------------------------------------------------------------- objects


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


# ---------------------------------------------------------------- pinning, ids, maps


def obj_pin(fd: int, path: str | os.PathLike[str]) -> None:
    _check("bpf_obj_pin", lib().bpf_obj_pin(fd, _enc(path)), os.fspath(path))


def obj_get(path: str | os.PathLike[str]) -> int:
    """A new fd for a pinned object; ``LibbpfNotFound`` if nothing is pinned there."""
    return _check("bpf_obj_get", lib().bpf_obj_get(_enc(path)), os.fspath(path))


def prog_fd_by_id(prog_id: int) -> int:
    return _check("bpf_prog_get_fd_by_id", lib().bpf_prog_get_fd_by_id(prog_id), f"id {prog_id}")


def map_fd_by_id(map_id: int) -> int:
    return _check("bpf_map_get_fd_by_id", lib().bpf_map_get_fd_by_id(map_id), f"id {map_id}")


def map_create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int, *,
               map_flags: int = 0, inner_map_fd: int = 0) -> int:
    """A new caller-owned map fd (e.g. an inner map for map-in-map swaps)."""
    opts = BpfMapCreateOpts(sz=sizeof(BpfMapCreateOpts), map_flags=map_flags, inner_map_fd=inner_map_fd)
    return _check("bpf_map_create", lib().bpf_map_create(
        map_type, name.encode()[:15], key_size, value_size, max_entries, byref(opts)), name)


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    buf = ctypes.create_string_buffer(value_size)
    rc = lib().bpf_map_lookup_elem(fd, key, buf)
    if rc == -_errno.ENOENT:
        return None
    _check("bpf_map_lookup_elem", rc)
    return buf.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    _check("bpf_map_update_elem", lib().bpf_map_update_elem(fd, key, value, flags))


def map_delete(fd: int, key: bytes) -> bool:
    """Delete one element; False if it was absent."""
    rc = lib().bpf_map_delete_elem(fd, key)
    if rc == -_errno.ENOENT:
        return False
    _check("bpf_map_delete_elem", rc)
    return True


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after ``key`` (the first key if None); None at the end. For a
    hash map, a ``key`` that is no longer present restarts from the first key."""
    out = ctypes.create_string_buffer(key_size)
    rc = lib().bpf_map_get_next_key(fd, key, out)
    if rc == -_errno.ENOENT:
        return None
    _check("bpf_map_get_next_key", rc)
    return out.raw


def map_keys(fd: int, key_size: int) -> Iterator[bytes]:
    """Iterate keys; bounded by max_entries so concurrent deletes (which make a
    hash walk restart) cannot loop forever -- keys may then repeat or be missed."""
    key: bytes | None = None
    for _ in range(map_info(fd).max_entries):
        key = map_next_key(fd, key, key_size)
        if key is None:
            return
        yield key


_NO_BATCH = (_errno.EINVAL, ENOTSUPP, _errno.EOPNOTSUPP)


def _addr(buf: bytes) -> int:
    return ctypes.cast(c_char_p(buf), c_void_p).value or 0


def _stride(buf: bytes, count: int, what: str) -> int:
    if count <= 0 or len(buf) % count:
        raise ValueError(f"{what}: {len(buf)} bytes is not {count} equal elements")
    return len(buf) // count


def map_update_batch(fd: int, keys: bytes, values: bytes, count: int, flags: int = BPF_ANY) -> None:
    """Update ``count`` elements (keys/values packed back to back) in as few
    syscalls as the kernel allows (5.6+). The kernel may stop early and report
    how many it did; we resume from there. Map types without batch support
    (EINVAL/ENOTSUPP before any progress) fall back to one update per element.
    On failure the error's ``done`` says how many elements were written."""
    if count == 0:
        return
    keys, values = bytes(keys), bytes(values)
    ks, vs = _stride(keys, count, "keys"), _stride(values, count, "values")
    opts = BpfMapBatchOpts(sz=sizeof(BpfMapBatchOpts), elem_flags=flags)
    done, stalls = 0, 0
    while done < count and stalls < 3:  # every round makes progress or counts as a stall
        n = c_uint32(count - done)
        rc = lib().bpf_map_update_batch(fd, _addr(keys) + done * ks, _addr(values) + done * vs, byref(n), byref(opts))
        # On an up-front rejection the kernel never writes count back, so an
        # error with count unchanged means "none done".
        step = n.value if rc == 0 or n.value < count - done else 0
        if rc < 0 and -rc in _NO_BATCH and done == 0 and step == 0:
            for i in range(count):
                try:
                    map_update(fd, keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs], flags)
                except LibbpfError as exc:
                    exc.done = i
                    raise
            return
        done += step
        stalls = 0 if step else stalls + 1
        if rc < 0 and -rc not in (_errno.EINTR, _errno.EAGAIN):
            failure = error(-rc, "bpf_map_update_batch", f"{done} of {count} elements updated")
            failure.done = done
            raise failure
    if done < count:
        raise error(_errno.EIO, "bpf_map_update_batch", f"no progress after {done} of {count} elements")


def map_delete_batch(fd: int, keys: bytes, count: int) -> int:
    """Delete ``count`` keys; absent keys are skipped (the kernel stops at the
    first ENOENT, we step over it). Returns how many elements were deleted.
    Falls back to per-element deletes like :func:`map_update_batch`."""
    if count == 0:
        return 0
    keys = bytes(keys)
    ks = _stride(keys, count, "keys")
    opts = BpfMapBatchOpts(sz=sizeof(BpfMapBatchOpts))
    pos, deleted = 0, 0
    for _ in range(count + 3):  # each round deletes >= 1 key, skips 1 absent key, or ends
        if pos >= count:
            return deleted
        n = c_uint32(count - pos)
        rc = lib().bpf_map_delete_batch(fd, _addr(keys) + pos * ks, byref(n), byref(opts))
        step = n.value if rc == 0 or n.value < count - pos else 0
        if rc < 0 and -rc in _NO_BATCH and pos == 0 and step == 0:
            return sum(map_delete(fd, keys[i * ks:(i + 1) * ks]) for i in range(count))
        pos, deleted = pos + step, deleted + step
        if rc == -_errno.ENOENT:
            pos += 1  # the key at ``pos`` was absent
        elif rc < 0 and -rc not in (_errno.EINTR, _errno.EAGAIN):
            raise error(-rc, "bpf_map_delete_batch", f"{deleted} deleted, failed at element {pos} of {count}")
        elif rc == 0 and step == 0:
            break
    if pos < count:
        raise error(_errno.EIO, "bpf_map_delete_batch", f"no progress at element {pos} of {count}")
    return deleted


def map_dump(fd: int, key_size: int, value_size: int, *, chunk: int = 4096) -> dict[bytes, bytes]:
    """Every element of a (non-percpu) map, via BPF_MAP_LOOKUP_BATCH (5.6+;
    a hash map answers bucket by bucket, ENOSPC means a bucket outgrew
    ``chunk``) or, where the map type has no batch lookup, key by key."""
    out: dict[bytes, bytes] = {}
    limit = map_info(fd).max_entries
    token_size = max(key_size, 8)  # hash maps use a u32 bucket index, arrays a key
    tok_in, tok_out = ctypes.create_string_buffer(token_size), ctypes.create_string_buffer(token_size)
    opts = BpfMapBatchOpts(sz=sizeof(BpfMapBatchOpts))
    first = True
    for _ in range(limit + 64):  # every round returns >= 1 element, grows chunk, or ends
        keys, vals = ctypes.create_string_buffer(chunk * key_size), ctypes.create_string_buffer(chunk * value_size)
        n = c_uint32(chunk)
        rc = lib().bpf_map_lookup_batch(fd, None if first else tok_in, tok_out, keys, vals, byref(n), byref(opts))
        if rc < 0 and -rc in _NO_BATCH and first:
            return {k: v for k in map_keys(fd, key_size) if (v := map_lookup(fd, k, value_size)) is not None}
        if rc == -_errno.ENOSPC and chunk < limit + 1:
            chunk *= 4
            continue
        if rc < 0 and rc != -_errno.ENOENT:
            raise error(-rc, "bpf_map_lookup_batch", f"after {len(out)} elements")
        got = n.value  # written back on success and on the ENOENT end marker
        kr, vr = keys.raw, vals.raw
        for i in range(got):
            out[kr[i * key_size:(i + 1) * key_size]] = vr[i * value_size:(i + 1) * value_size]
        if rc == -_errno.ENOENT:  # the end (possibly with a last partial batch)
            return out
        ctypes.memmove(tok_in, tok_out, token_size)
        first = False
    raise error(_errno.EIO, "bpf_map_lookup_batch", f"no end after {len(out)} elements")


def num_possible_cpus() -> int:
    return _check("libbpf_num_possible_cpus", lib().libbpf_num_possible_cpus())


def percpu_slot(value_size: int) -> int:
    """Per-CPU stride of a percpu map value: rounded up to 8 bytes."""
    return (value_size + 7) & ~7


def map_lookup_percpu(fd: int, key: bytes, value_size: int) -> list[bytes]:
    """One value per possible CPU; an empty list if the key is absent (a
    percpu hash entry deleted under us reads as "no counts")."""
    slot, ncpu = percpu_slot(value_size), num_possible_cpus()
    raw = map_lookup(fd, key, slot * ncpu)
    return [] if raw is None else [raw[i * slot:i * slot + value_size] for i in range(ncpu)]


def map_update_percpu(fd: int, key: bytes, values: Sequence[bytes] | bytes, value_size: int,
                      flags: int = BPF_ANY) -> None:
    """Set every CPU's value (one ``bytes`` is copied to all CPUs)."""
    slot, ncpu = percpu_slot(value_size), num_possible_cpus()
    per = [values] * ncpu if isinstance(values, bytes) else list(values)
    if len(per) != ncpu or any(len(v) != value_size for v in per):
        raise ValueError(f"need {ncpu} values of {value_size} bytes")
    map_update(fd, key, b"".join(v.ljust(slot, b"\0") for v in per), flags)


# ---------------------------------------------------------------- info


def fd_kind(fd: int) -> str | None:
    """"prog", "map", "link" or None, from /proc/self/fdinfo (the kernel's own label)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            text = f.read()
    except OSError:
        return None
    for kind, marker in (("prog", "prog_tag:"), ("link", "link_type:"), ("map", "map_type:")):
        if marker in text:
            return kind
    return None


def _info(fd: int, info: ctypes.Structure, kind: str) -> None:
    # bpf_obj_get_info_by_fd fills whatever struct matches the fd's type, so a
    # map fd passed as a program would "succeed" with garbage: check first.
    actual = fd_kind(fd)
    if actual != kind:
        raise error(_errno.EBADF if actual is None else _errno.EINVAL, "bpf_obj_get_info_by_fd",
                    f"fd {fd} is {actual or 'not a BPF object'}, expected {kind}")
    size = c_uint32(sizeof(info))
    _check("bpf_obj_get_info_by_fd", lib().bpf_obj_get_info_by_fd(fd, byref(info), byref(size)), f"fd {fd}")


def prog_info(fd: int) -> ProgInfo:
    info = BpfProgInfo()
    _info(fd, info, "prog")
    ids = (c_uint32 * 0)()
    for _ in range(4):  # the map count can change between calls only via a reload; bounded anyway
        want = info.nr_map_ids
        if want <= len(ids):
            break
        ids = (c_uint32 * want)()
        info = BpfProgInfo(nr_map_ids=want, map_ids=ctypes.addressof(ids))
        _info(fd, info, "prog")
    return ProgInfo(id=info.id, tag=bytes(info.tag).hex(), name=info.name.decode(), type=info.type,
                    map_ids=tuple(ids[: min(info.nr_map_ids, len(ids))]),
                    xlated_prog_len=info.xlated_prog_len, run_cnt=info.run_cnt, run_time_ns=info.run_time_ns)


def map_info(fd: int) -> MapInfo:
    info = BpfMapInfo()
    _info(fd, info, "map")
    return MapInfo(id=info.id, type=info.type, key_size=info.key_size, value_size=info.value_size,
                   max_entries=info.max_entries, map_flags=info.map_flags, name=info.name.decode())


# ---------------------------------------------------------------- XDP (netlink attach)


def _attach_opts(old_prog_fd: int | None) -> tuple[BpfXdpAttachOpts, int | None]:
    opts = BpfXdpAttachOpts(sz=sizeof(BpfXdpAttachOpts))
    tmp = None
    if old_prog_fd is not None:
        if old_prog_fd == 0:  # libbpf reads old_prog_fd == 0 as "unset"
            old_prog_fd = tmp = os.dup(0)
        opts.old_prog_fd = old_prog_fd
    return opts, tmp


def xdp_attach(ifindex: int, prog_fd: int, flags: int, *, old_prog_fd: int | None = None) -> None:
    """Attach over netlink (survives this process). With ``old_prog_fd``,
    XDP_FLAGS_REPLACE is implied: EEXIST unless that program is the one attached.
    REPLACE without ``old_prog_fd`` means "only if nothing is attached"."""
    opts, tmp = _attach_opts(old_prog_fd)
    try:
        _call("bpf_xdp_attach", f"ifindex {ifindex} flags {flags:#x}", ifindex, prog_fd, flags, byref(opts))
    finally:
        if tmp is not None:
            os.close(tmp)


def xdp_detach(ifindex: int, flags: int, *, old_prog_fd: int | None = None) -> None:
    """Detach the program in the mode named by ``flags`` (no-op when none);
    with ``old_prog_fd`` only if that program is the one attached."""
    opts, tmp = _attach_opts(old_prog_fd)
    try:
        _call("bpf_xdp_detach", f"ifindex {ifindex} flags {flags:#x}", ifindex, flags, byref(opts))
    finally:
        if tmp is not None:
            os.close(tmp)


def xdp_query(ifindex: int) -> XdpQuery:
    """Programs attached per mode, in the calling thread's network namespace.
    libbpf answers an unknown ifindex with all zeros; we raise ENODEV instead."""
    g = BpfXdpQueryOptsGuarded()
    g.opts.sz = sizeof(BpfXdpQueryOpts)
    _check("bpf_xdp_query", lib().bpf_xdp_query(ifindex, 0, byref(g)), f"ifindex {ifindex}")
    o = g.opts
    if o.attach_mode == XDP_ATTACHED_NONE:
        try:
            socket.if_indextoname(ifindex)  # SIOCGIFNAME, in this thread's netns
        except OSError:
            raise error(_errno.ENODEV, "bpf_xdp_query", f"ifindex {ifindex}") from None
    return XdpQuery(o.prog_id, o.drv_prog_id, o.hw_prog_id, o.skb_prog_id, o.attach_mode)


# ---------------------------------------------------------------- BPF_PROG_TEST_RUN


def prog_test_run(prog_fd: int, data: bytes, *, repeat: int = 1, data_out_size: int | None = None,
                  flags: int = 0, batch_size: int = 0, ingress_ifindex: int | None = None,
                  rx_queue_index: int = 0, cpu: int = 0) -> TestRunResult:
    """Run the program on ``data`` in the kernel. With BPF_F_TEST_XDP_LIVE_FRAMES
    (5.18+) no data is returned and ``repeat`` is the number of frames sent;
    ``ingress_ifindex`` (an xdp_md ctx) names the receiving device (default lo)."""
    live = bool(flags & BPF_F_TEST_XDP_LIVE_FRAMES)
    out = None if live else ctypes.create_string_buffer(data_out_size or len(data) + 512)
    opts = BpfTestRunOpts(sz=sizeof(BpfTestRunOpts), data_in=ctypes.cast(c_char_p(data), c_void_p),
                          data_size_in=len(data), repeat=repeat, flags=flags, cpu=cpu, batch_size=batch_size)
    if out is not None:
        opts.data_out, opts.data_size_out = ctypes.addressof(out), len(out)
    ctx = None
    if ingress_ifindex is not None:
        ctx = XdpMd(data_end=len(data), ingress_ifindex=ingress_ifindex, rx_queue_index=rx_queue_index)
        opts.ctx_in, opts.ctx_size_in = ctypes.addressof(ctx), sizeof(XdpMd)
    _check("bpf_prog_test_run_opts", lib().bpf_prog_test_run_opts(prog_fd, byref(opts)), f"prog fd {prog_fd}")
    return TestRunResult(opts.retval, opts.duration, b"" if out is None else out.raw[: opts.data_size_out])


