"""Kernel and libbpf constants the binding passes across (``linux/bpf.h``,
``linux/if_link.h``, ``bpf/libbpf.h``).

Pure numbers, apart from the ctypes code, so callers can name a flag
(``libbpf.XDP_FLAGS_DRV_MODE``) and the layout test can read them alone.
"""

from __future__ import annotations

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
BPF_F_MMAPABLE = 1 << 10  # an array the caller can mmap (5.5+)

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
