"""Attaching, detaching and querying XDP programs on an interface (netlink,
via ``bpf_xdp_*``); these act in the calling thread's network namespace."""

from __future__ import annotations

import errno as _errno
import os
import socket
from ctypes import byref, sizeof
from dataclasses import dataclass

from seawall.dataplane.xdp.libbpf.constants import XDP_ATTACHED_NONE
from seawall.dataplane.xdp.libbpf.errors import _check, error
from seawall.dataplane.xdp.libbpf.library import _call, lib
from seawall.dataplane.xdp.libbpf.structs import BpfXdpAttachOpts, BpfXdpQueryOpts, BpfXdpQueryOptsGuarded


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
