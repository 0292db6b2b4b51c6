"""A thin, typed ctypes binding to the system libbpf (``libbpf.so.1``).

Why ctypes over the distro's libbpf instead of bcc or a pip BPF library: the
agent must not need LLVM at runtime or a compiled extension, and the distro
libbpf is the one the kernel's own tooling (bpftool, xdp-tools) is tested with.
Only the calls the XDP dataplane needs are bound, each with its exact C
prototype (``library.PROTOTYPES``), so a wrong argument type fails in Python,
not in the kernel. Minimum: libbpf 1.0 (errno semantics, bpf_xdp_*).

This package re-exports the whole binding, so callers write
``from seawall.dataplane.xdp import libbpf`` and ``libbpf.xdp_query(...)``.
One module per job:

* ``constants``: kernel/libbpf numbers (map types, flags, XDP modes/verdicts);
* ``structs``: ctypes mirrors of the C structs (checked against the headers);
* ``errors``: :class:`LibbpfError` and its subclasses, the ``-errno`` check;
* ``library``: loading ``libbpf.so.1``, the prototypes, the print callback;
* ``objects``: :class:`BpfObject` (open/load an ELF object) and bpffs pins;
* ``info``: program/map info and fds by id;
* ``map_ops``: map element, batch and per-CPU operations;
* ``xdp``: XDP attach/detach/query over netlink;
* ``testrun``: ``BPF_PROG_TEST_RUN``.

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

from seawall.dataplane.xdp.libbpf.constants import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NO_PREALLOC,
    BPF_F_TEST_RUN_ON_CPU,
    BPF_F_TEST_XDP_LIVE_FRAMES,
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_ARRAY_OF_MAPS,
    BPF_MAP_TYPE_DEVMAP,
    BPF_MAP_TYPE_DEVMAP_HASH,
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_HASH_OF_MAPS,
    BPF_MAP_TYPE_LPM_TRIE,
    BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_PROG_ARRAY,
    BPF_NOEXIST,
    BPF_OBJ_NAME_LEN,
    BPF_PROG_TYPE_XDP,
    BPF_TAG_SIZE,
    ENOTSUPP,
    LIBBPF_DEBUG,
    LIBBPF_INFO,
    LIBBPF_WARN,
    XDP_ABORTED,
    XDP_ATTACHED_DRV,
    XDP_ATTACHED_HW,
    XDP_ATTACHED_MULTI,
    XDP_ATTACHED_NONE,
    XDP_ATTACHED_SKB,
    XDP_DROP,
    XDP_FLAGS_DRV_MODE,
    XDP_FLAGS_HW_MODE,
    XDP_FLAGS_MODES,
    XDP_FLAGS_REPLACE,
    XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST,
    XDP_PASS,
    XDP_REDIRECT,
    XDP_TX,
)
from seawall.dataplane.xdp.libbpf.errors import (
    LibbpfError,
    LibbpfExists,
    LibbpfNotFound,
    LibbpfPermission,
    LibbpfUnavailable,
    LibbpfVerifierError,
    error,
)
from seawall.dataplane.xdp.libbpf.info import (
    MapInfo,
    ProgInfo,
    fd_kind,
    map_fd_by_id,
    map_info,
    prog_fd_by_id,
    prog_info,
)
from seawall.dataplane.xdp.libbpf.library import (
    LIBBPF_SONAME,
    PROTOTYPES,
    PrintCallback,
    lib,
    log_to_python,
    set_print,
)
from seawall.dataplane.xdp.libbpf.map_ops import (
    map_create,
    map_delete,
    map_delete_batch,
    map_dump,
    map_dump_raw,
    map_keys,
    map_lookup,
    map_lookup_percpu,
    map_mmap,
    map_next_key,
    map_update,
    map_update_batch,
    map_update_percpu,
    num_possible_cpus,
    percpu_slot,
)
from seawall.dataplane.xdp.libbpf.objects import (
    BpfObject,
    dup_fd,
    obj_get,
    obj_pin,
)
from seawall.dataplane.xdp.libbpf.structs import (
    LAYOUTS,
    LIBBPF_PRINT_FN,
    BpfMapBatchOpts,
    BpfMapCreateOpts,
    BpfMapInfo,
    BpfProgInfo,
    BpfTestRunOpts,
    BpfXdpAttachOpts,
    BpfXdpQueryOpts,
    BpfXdpQueryOptsGuarded,
    XdpMd,
)
from seawall.dataplane.xdp.libbpf.testrun import (
    TestRunResult,
    prog_test_run,
)
from seawall.dataplane.xdp.libbpf.xdp import (
    XdpQuery,
    xdp_attach,
    xdp_detach,
    xdp_query,
)

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_F_LOCK",
    "BPF_F_MMAPABLE",
    "BPF_F_NO_PREALLOC",
    "BPF_F_TEST_RUN_ON_CPU",
    "BPF_F_TEST_XDP_LIVE_FRAMES",
    "BPF_MAP_TYPE_ARRAY",
    "BPF_MAP_TYPE_ARRAY_OF_MAPS",
    "BPF_MAP_TYPE_DEVMAP",
    "BPF_MAP_TYPE_DEVMAP_HASH",
    "BPF_MAP_TYPE_HASH",
    "BPF_MAP_TYPE_HASH_OF_MAPS",
    "BPF_MAP_TYPE_LPM_TRIE",
    "BPF_MAP_TYPE_LRU_HASH",
    "BPF_MAP_TYPE_LRU_PERCPU_HASH",
    "BPF_MAP_TYPE_PERCPU_ARRAY",
    "BPF_MAP_TYPE_PERCPU_HASH",
    "BPF_MAP_TYPE_PROG_ARRAY",
    "BPF_NOEXIST",
    "BPF_OBJ_NAME_LEN",
    "BPF_PROG_TYPE_XDP",
    "BPF_TAG_SIZE",
    "BpfMapBatchOpts",
    "BpfMapCreateOpts",
    "BpfMapInfo",
    "BpfObject",
    "BpfProgInfo",
    "BpfTestRunOpts",
    "BpfXdpAttachOpts",
    "BpfXdpQueryOpts",
    "BpfXdpQueryOptsGuarded",
    "ENOTSUPP",
    "LAYOUTS",
    "LIBBPF_DEBUG",
    "LIBBPF_INFO",
    "LIBBPF_PRINT_FN",
    "LIBBPF_SONAME",
    "LIBBPF_WARN",
    "LibbpfError",
    "LibbpfExists",
    "LibbpfNotFound",
    "LibbpfPermission",
    "LibbpfUnavailable",
    "LibbpfVerifierError",
    "MapInfo",
    "PROTOTYPES",
    "PrintCallback",
    "ProgInfo",
    "TestRunResult",
    "XDP_ABORTED",
    "XDP_ATTACHED_DRV",
    "XDP_ATTACHED_HW",
    "XDP_ATTACHED_MULTI",
    "XDP_ATTACHED_NONE",
    "XDP_ATTACHED_SKB",
    "XDP_DROP",
    "XDP_FLAGS_DRV_MODE",
    "XDP_FLAGS_HW_MODE",
    "XDP_FLAGS_MODES",
    "XDP_FLAGS_REPLACE",
    "XDP_FLAGS_SKB_MODE",
    "XDP_FLAGS_UPDATE_IF_NOEXIST",
    "XDP_PASS",
    "XDP_REDIRECT",
    "XDP_TX",
    "XdpMd",
    "XdpQuery",
    "dup_fd",
    "error",
    "fd_kind",
    "lib",
    "log_to_python",
    "map_create",
    "map_delete",
    "map_delete_batch",
    "map_dump",
    "map_dump_raw",
    "map_fd_by_id",
    "map_info",
    "map_keys",
    "map_lookup",
    "map_lookup_percpu",
    "map_mmap",
    "map_next_key",
    "map_update",
    "map_update_batch",
    "map_update_percpu",
    "num_possible_cpus",
    "obj_get",
    "obj_pin",
    "percpu_slot",
    "prog_fd_by_id",
    "prog_info",
    "prog_test_run",
    "set_print",
    "xdp_attach",
    "xdp_detach",
    "xdp_query",
]
