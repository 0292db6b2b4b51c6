"""ctypes mirrors of the C structs the libbpf binding passes across.

Kept on their own so the layouts can be checked alone: the kernel test
``test_struct_layouts_match_headers`` compiles a C program against the
installed headers and compares every ``sizeof``/``offsetof`` with these
classes (``LAYOUTS``). A wrong size here is silent memory corruption (libbpf
trusts ``sz``), so the layouts are copied field by field from the header named
in each docstring, for libbpf 1.1.2 (Debian 12) and linux-libc-dev 6.1 uapi.

Opts structs follow libbpf's ``LIBBPF_OPTS`` convention: ``sz`` first, every
other byte zero. ctypes zero-fills new instances, so ``Cls(sz=sizeof(Cls))``
is the Python equivalent of ``LIBBPF_OPTS(cls, name)``.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char, c_int, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p

from seawall.dataplane.xdp.libbpf.constants import BPF_OBJ_NAME_LEN, BPF_TAG_SIZE


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
