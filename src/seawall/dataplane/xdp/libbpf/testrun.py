"""Running a loaded XDP program on a frame in the kernel (``BPF_PROG_TEST_RUN``),
for the verdict tests and the benchmarks."""

from __future__ import annotations

import ctypes
from ctypes import byref, c_char_p, c_void_p, sizeof
from dataclasses import dataclass

from seawall.dataplane.xdp.libbpf.constants import BPF_F_TEST_XDP_LIVE_FRAMES
from seawall.dataplane.xdp.libbpf.errors import _check
from seawall.dataplane.xdp.libbpf.library import lib
from seawall.dataplane.xdp.libbpf.structs import BpfTestRunOpts, XdpMd


@dataclass(frozen=True)
class TestRunResult:
    """BPF_PROG_TEST_RUN's answer: the verdict, the kernel's average ns per
    repetition (program only, no driver), and the frame as the program left it."""

    __test__ = False  # not a pytest class
    retval: int
    duration_ns: int  # kernel's average per repetition
    data_out: bytes


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
