"""ctypes mirrors of the C structs and constants the libbpf binding passes across.

Kept apart from ``libbpf.py`` so the layouts can be checked on their own: the
kernel test ``test_struct_layouts_match_headers`` compiles a C program against
the installed headers and compares every ``sizeof``/``offsetof`` with these
classes. A wrong size here is silent memory corruption (libbpf trusts ``sz``),
so the layouts are copied field by field from the header named in each
docstring, for libbpf 1.1.2 (Debian 12) and linux-libc-dev 6.1 uapi.

It also holds the C function prototypes, the frozen result dataclasses and the
exception types, so ``libbpf.py`` is only behaviour.

Opts structs follow libbpf's ``LIBBPF_OPTS`` convention: ``sz`` first, every
other byte zero. ctypes zero-fills new instances, so ``Cls(sz=sizeof(Cls))``
is the Python equivalent of ``LIBBPF_OPTS(cls, name)``.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from ctypes import POINTER, c_char, c_char_p, c_int, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p
from dataclasses import dataclass

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8

# --- enum bpf_map_type (linux/bpf.h) -- only the ones Seawall uses or tests.
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_DEVMAP_HASH = 25

# --- enum bpf_prog_type (linux/bpf.h)
BPF_PROG_TYPE_XDP = 6

# --- map update flags (linux/bpf.h)
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# --- map_flags at creation (linux/bpf.h)
BPF_F_NO_PREALLOC = 1 << 0

# --- BPF_PROG_TEST_RUN flags (linux/bpf.h)
BPF_F_TEST_RUN_ON_CPU = 1 << 0
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1

# --- XDP attach flags (linux/if_link.h)
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
XDP_FLAGS_MODES = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE

# --- IFLA_XDP_ATTACHED values (linux/if_link.h)
XDP_ATTACHED_NONE = 0
XDP_ATTACHED_DRV = 1
XDP_ATTACHED_SKB = 2
XDP_ATTACHED_HW = 3
XDP_ATTACHED_MULTI = 4

# --- XDP verdicts (enum xdp_action, linux/bpf.h)
XDP_ABORTED = 0
XDP_DROP = 1
XDP_PASS = 2
XDP_TX = 3
XDP_REDIRECT = 4

# --- enum libbpf_print_level (bpf/libbpf.h)
LIBBPF_WARN = 0
LIBBPF_INFO = 1
LIBBPF_DEBUG = 2

#: Kernel-internal errno some BPF syscalls leak to userspace (include/linux/errno.h);
#: Python's errno module has no name for it. Batch ops on map types without
#: batch support return it.
ENOTSUPP = 524


class BpfMapBatchOpts(ctypes.Structure):
    """struct bpf_map_batch_opts (bpf/bpf.h): sz, elem_flags, flags -- 24 bytes."""

    _fields_ = [("sz", c_size_t), ("elem_flags", c_uint64), ("flags", c_uint64)]


class BpfMapCreateOpts(ctypes.Structure):
    """struct bpf_map_create_opts (bpf/bpf.h, libbpf 1.1) -- 48 bytes."""

    _fields_ = [
        ("sz", c_size_t),
        ("btf_fd", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("inner_map_fd", c_uint32),
        ("map_flags", c_uint32),
        ("map_extra", c_uint64),
        ("numa_node", c_uint32),
        ("map_ifindex", c_uint32),
    ]


class BpfXdpAttachOpts(ctypes.Structure):
    """struct bpf_xdp_attach_opts (bpf/libbpf.h): sz, int old_prog_fd, then
    ``size_t :0`` which pads to 16 bytes."""

    _fields_ = [("sz", c_size_t), ("old_prog_fd", c_int), ("_pad", c_int)]


class BpfXdpQueryOpts(ctypes.Structure):
    """struct bpf_xdp_query_opts as in libbpf **1.1.2** (bpf/libbpf.h): sz, four
    u32 prog ids, u8 attach_mode, ``size_t :0`` -- 32 bytes. libbpf 1.2 appends
    feature_flags (u64) and 1.3 xdp_zc_max_segs; we must not claim those with sz."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_id", c_uint32),
        ("drv_prog_id", c_uint32),
        ("hw_prog_id", c_uint32),
        ("skb_prog_id", c_uint32),
        ("attach_mode", c_uint8),
        ("_pad", c_uint8 * 7),
    ]


class BpfXdpQueryOptsGuarded(ctypes.Structure):
    """The query opts plus 64 spare zero bytes: a libbpf build that writes past
    ``sz`` (fixed upstream by 92a871ab9fa5 "Use OPTS_SET() in bpf_xdp_query")
    scribbles on our guard instead of the Python heap."""

    _fields_ = [("opts", BpfXdpQueryOpts), ("_guard", c_uint8 * 64)]


class BpfTestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (bpf/bpf.h, libbpf 1.1) -- 80 bytes; ``duration``
    is the kernel's average ns per repetition."""

    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class XdpMd(ctypes.Structure):
    """struct xdp_md (linux/bpf.h) -- the ctx for an XDP test run, 24 bytes.
    For BPF_PROG_TEST_RUN: data = metadata length (0), data_end = frame length,
    data_meta = 0, egress_ifindex = 0."""

    _fields_ = [
        ("data", c_uint32),
        ("data_end", c_uint32),
        ("data_meta", c_uint32),
        ("ingress_ifindex", c_uint32),
        ("rx_queue_index", c_uint32),
        ("egress_ifindex", c_uint32),
    ]


class BpfProgInfo(ctypes.Structure):
    """struct bpf_prog_info (linux/bpf.h, uapi 6.1) -- 232 bytes, 8-aligned.
    The kernel copies min(info_len, its own size), so older/newer kernels work."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("tag", c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64),
        ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64),  # user pointer to __u32[nr_map_ids]
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32),  # bitfield :1 + :31 pad
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32),
        ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64),
        ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64),
        ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32),
        ("line_info", c_uint64),
        ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32),
        ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64),
        ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32),
        ("_pad", c_uint32),
    ]


class BpfMapInfo(ctypes.Structure):
    """struct bpf_map_info (linux/bpf.h, uapi 6.1) -- 88 bytes, 8-aligned."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("_pad", c_uint32),
        ("map_extra", c_uint64),
    ]


#: int (*libbpf_print_fn_t)(enum libbpf_print_level, const char *, va_list).
#: On x86-64 a va_list parameter decays to a pointer (``__va_list_tag[1]``), so
#: it arrives as an opaque c_void_p that only vsnprintf may consume -- once.
LIBBPF_PRINT_FN = ctypes.CFUNCTYPE(c_int, c_int, ctypes.c_char_p, c_void_p)

#: C struct name -> its ctypes mirror, for the layout test.
LAYOUTS: dict[str, type[ctypes.Structure]] = {
    "bpf_map_batch_opts": BpfMapBatchOpts,
    "bpf_map_create_opts": BpfMapCreateOpts,
    "bpf_xdp_attach_opts": BpfXdpAttachOpts,
    "bpf_xdp_query_opts": BpfXdpQueryOpts,
    "bpf_test_run_opts": BpfTestRunOpts,
    "xdp_md": XdpMd,
    "bpf_prog_info": BpfProgInfo,
    "bpf_map_info": BpfMapInfo,
}


# ---------------------------------------------------------------- C prototypes

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


# ---------------------------------------------------------------- Python results


@dataclass(frozen=True)
class ProgInfo:
    """A loaded program, from bpf_obj_get_info_by_fd. ``name`` is truncated to
    15 characters by the kernel; run_cnt/run_time_ns count only while
    kernel.bpf_stats_enabled=1."""

    id: int
    tag: str
    name: str
    type: int
    map_ids: tuple[int, ...]
    xlated_prog_len: int
    run_cnt: int
    run_time_ns: int


@dataclass(frozen=True)
class MapInfo:
    """A map, from bpf_obj_get_info_by_fd."""

    id: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str


@dataclass(frozen=True)
class XdpQuery:
    """What bpf_xdp_query reports for an interface: the attached program id per
    mode (0 = none) and ``attach_mode`` (XDP_ATTACHED_*). ``prog_id`` is the
    single attached program (0 when MULTI: more than one mode in use)."""

    prog_id: int
    drv_prog_id: int
    hw_prog_id: int
    skb_prog_id: int
    attach_mode: int  # XDP_ATTACHED_*


@dataclass(frozen=True)
class TestRunResult:
    """BPF_PROG_TEST_RUN's answer: the verdict, the kernel's average ns per
    repetition (program only, no driver), and the frame as the program left it."""

    __test__ = False  # not a pytest class
    retval: int
    duration_ns: int  # kernel's average per repetition
    data_out: bytes


# ---------------------------------------------------------------- errors


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


__all__ = [n for n in list(globals()) if n[:1].isupper() and not hasattr(ctypes, n)] + ["error"]
