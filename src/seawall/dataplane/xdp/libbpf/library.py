"""Loading the system libbpf (``libbpf.so.1``) with every prototype declared,
and routing its print callback.

Only the calls the XDP dataplane needs are bound, each with its exact C
prototype (``PROTOTYPES``), so a wrong argument type fails in Python, not in
the kernel. Minimum: libbpf 1.0 (errno semantics, bpf_xdp_*).

For load and XDP attach/detach (:func:`_call`), libbpf's warnings during the
call (verifier log, the kernel's extack "Kernel error message: ...") become
the exception's ``detail`` instead of log noise; a verifier rejection is
:class:`LibbpfVerifierError`. x86-64 only: the print callback relies on
va_list decaying to a pointer.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable
from ctypes import POINTER, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p

from seawall.dataplane.xdp.libbpf.constants import LIBBPF_INFO, LIBBPF_WARN
from seawall.dataplane.xdp.libbpf.errors import LibbpfUnavailable, LibbpfVerifierError, _error_class
from seawall.dataplane.xdp.libbpf.structs import LIBBPF_PRINT_FN

_P = c_void_p
_U32P = POINTER(c_uint32)
#: C prototypes (bpf/libbpf.h, bpf/bpf.h): name -> (restype, argtypes). Minimum libbpf: 0.7 (bpf_xdp_*), 1.0 for errno semantics.
PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "libbpf_set_print": (_P, [LIBBPF_PRINT_FN]),
    "libbpf_num_possible_cpus": (c_int, []),
    "bpf_object__open_file": (_P, [c_char_p, _P]),
    "bpf_object__load": (c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__find_map_by_name": (_P, [_P, c_char_p]),
    "bpf_object__find_program_by_name": (_P, [_P, c_char_p]),
    "bpf_map__name": (c_char_p, [_P]),
    "bpf_map__fd": (c_int, [_P]),
    "bpf_map__type": (c_int, [_P]),
    "bpf_map__key_size": (c_uint32, [_P]),
    "bpf_map__value_size": (c_uint32, [_P]),
    "bpf_map__reuse_fd": (c_int, [_P, c_int]),
    "bpf_map__set_max_entries": (c_int, [_P, c_uint32]),
    "bpf_program__name": (c_char_p, [_P]),
    "bpf_program__fd": (c_int, [_P]),
    "bpf_obj_pin": (c_int, [c_int, c_char_p]),
    "bpf_obj_get": (c_int, [c_char_p]),
    "bpf_obj_get_info_by_fd": (c_int, [c_int, _P, _U32P]),
    "bpf_prog_get_fd_by_id": (c_int, [c_uint32]),
    "bpf_map_get_fd_by_id": (c_int, [c_uint32]),
    "bpf_map_create": (c_int, [c_int, c_char_p, c_uint32, c_uint32, c_uint32, _P]),
    "bpf_map_lookup_elem": (c_int, [c_int, _P, _P]),
    "bpf_map_update_elem": (c_int, [c_int, _P, _P, c_uint64]),
    "bpf_map_delete_elem": (c_int, [c_int, _P]),
    "bpf_map_get_next_key": (c_int, [c_int, _P, _P]),
    "bpf_map_update_batch": (c_int, [c_int, _P, _P, _U32P, _P]),
    "bpf_map_delete_batch": (c_int, [c_int, _P, _U32P, _P]),
    "bpf_map_lookup_batch": (c_int, [c_int, _P, _P, _P, _P, _U32P, _P]),
    "bpf_xdp_attach": (c_int, [c_int, c_int, c_uint32, _P]),
    "bpf_xdp_detach": (c_int, [c_int, c_uint32, _P]),
    "bpf_xdp_query": (c_int, [c_int, c_int, _P]),
    "bpf_prog_test_run_opts": (c_int, [c_int, _P]),
}


LIBBPF_SONAME = os.environ.get("SEAWALL_LIBBPF", "libbpf.so.1")
_log = logging.getLogger("seawall.libbpf")


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
