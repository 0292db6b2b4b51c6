"""The flood lab: two network namespaces joined by a veth pair, a generator of
our own on the sending side, and CPU/packet accounting on the receiving side.

    ns "sender" (vA, 198.18.0.1/24)  ==veth==  ns "victim" (vB, 198.18.0.2/24)

The generator is ``bpf/gen.bpf.c`` run with ``BPF_PROG_RUN`` and
``BPF_F_TEST_XDP_LIVE_FRAMES`` (ingress device vA): every run is one 60-byte
UDP frame, ``XDP_TX`` hands it to vA's ``ndo_xdp_xmit``, which puts it into
vB's NAPI ring -- what a NIC driver does with a received frame. GRO is enabled
on vB so that veth runs its NAPI path even when no XDP program is attached
there (the iptables/nft/no-filter contestants). The frames never leave the two
namespaces: vB has no route anywhere but back to vA, and vA's namespace has
no route out.

Inline mode: the generator thread is pinned to one CPU; vB's NAPI poll runs in
softirq on that same CPU, in the generator's own context (after each batch)
or in that CPU's ksoftirqd. Without IRQ_TIME_ACCOUNTING (this kernel) softirq
time is charged to the task it interrupted, so
``schedstat(generator thread) + schedstat(ksoftirqd/CPU)`` is the CPU time of
sending *and* receiving. The generator's own cost is measured in the same run
with the same frames and a program that drops instead of transmitting, and
subtracted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.build import compile_object
from seawall.testing.netns import bpffs, in_netns, ip, netns, run_in, unique_name, veth_pair

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SENDER_ADDR = "198.18.0.1"
VICTIM_ADDR = "198.18.0.2"
LAB_PREFIX = 24
UDP_DPORT = 9  # discard: closed on the victim
UDP_SPORT = 40000
FRAME_LEN = 60
SOURCES = 4096  # must match gen.bpf.c


def build_objects(outdir: Path) -> dict[str, Path]:
    """Compile the generator and the diagnostic touch program (bench/flood/bpf) and the
    floor/LPM programs (bench/bpf); the LPM and touch programs include Seawall's ethernet.h."""
    return {
        "gen": compile_object(HERE / "bpf" / "gen.bpf.c", outdir / "gen.bpf.o"),
        "floor": compile_object(REPO / "bench" / "bpf" / "floor.bpf.c", outdir / "floor.bpf.o"),
        "lpm": compile_object(REPO / "bench" / "bpf" / "lpm.bpf.c", outdir / "lpm.bpf.o"),
        "touch": compile_object(HERE / "bpf" / "touch.bpf.c", outdir / "touch.bpf.o"),
    }


# ---------------------------------------------------------------- frames


def _csum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_header(src: int, dst: str) -> bytes:
    """20-byte IPv4 header of the flood frame with its checksum."""
    payload_len = FRAME_LEN - 14 - 20
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0x4000, 64, 17, 0,
                       struct.pack("!I", src), socket.inet_aton(dst))
    return head[:10] + struct.pack("!H", _csum(head)) + head[12:]


def flood_frame(src: int, dst_mac: bytes, src_mac: bytes, dst: str = VICTIM_ADDR) -> bytes:
    """A 60-byte Ethernet/IPv4/UDP frame from ``src`` (an int) to ``dst``:9, UDP checksum 0."""
    payload_len = FRAME_LEN - 14 - 20 - 8
    udp = struct.pack("!HHHH", UDP_SPORT, UDP_DPORT, 8 + payload_len, 0) + b"\x00" * payload_len
    frame = dst_mac + src_mac + b"\x08\x00" + ip_header(src, dst) + udp
    assert len(frame) == FRAME_LEN
    return frame


# ---------------------------------------------------------------- CPU time


def thread_cpu_ns(tid: int | None = None) -> int:
    """On-CPU ns of one thread (schedstat field 1, includes softirq run in its context)."""
    path = "/proc/thread-self/schedstat" if tid is None else f"/proc/{tid}/schedstat"
    with open(path) as f:
        return int(f.read().split()[0])


def ksoftirqd_pid(cpu: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == f"ksoftirqd/{cpu}":
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no ksoftirqd/{cpu}")


@contextlib.contextmanager
def priority(cpu: int, softirqd: int) -> Iterator[None]:
    """Pin the calling thread to ``cpu``; this thread and ksoftirqd/cpu at nice -20
    (as the lab ran them), restored afterwards."""
    tid = threading.get_native_id()
    old_affinity = os.sched_getaffinity(0)
    old_self = os.getpriority(os.PRIO_PROCESS, tid)
    old_softirqd = os.getpriority(os.PRIO_PROCESS, softirqd)
    os.sched_setaffinity(0, {cpu})
    try:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, -20)
            os.setpriority(os.PRIO_PROCESS, softirqd, -20)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, softirqd, old_softirqd)
            os.setpriority(os.PRIO_PROCESS, tid, old_self)
        os.sched_setaffinity(0, old_affinity)


# ---------------------------------------------------------------- the generator


class Generator:
    """The four generator programs of gen.bpf.c, loaded once (prog fds are not
    bound to a namespace; the run resolves ``ingress_ifindex`` in the calling
    thread's namespace, hence :meth:`Lab.send` runs it inside the sender's)."""

    PROGS = ("gen_tx", "gen_drop", "gen_spread_tx", "gen_spread_drop")

    def __init__(self, obj_path: Path) -> None:
        self.obj = libbpf.BpfObject.open_file(obj_path)
        self.obj.load()
        self.fds = {name: self.obj.program_fd(name) for name in self.PROGS}
        self.sources_fd = self.obj.map_fd("gen_sources")
        self.count_fd = self.obj.map_fd("gen_count")

    def set_sources(self, sources: list[int]) -> None:
        """Round-robin sources of the spread traffic (cycled to 4,096 slots)."""
        if not sources:
            raise ValueError("no sources")
        keys, values = bytearray(), bytearray()
        for i in range(SOURCES):
            src = sources[i % len(sources)]
            check = ip_header(src, VICTIM_ADDR)[10:12]
            keys += struct.pack("<I", i)
            values += struct.pack("!I", src) + check + b"\0\0"
        libbpf.map_update_batch(self.sources_fd, bytes(keys), bytes(values), SOURCES)

    def generated(self) -> int:
        return sum(struct.unpack("<Q", v)[0] for v in libbpf.map_lookup_percpu(self.count_fd, b"\0\0\0\0", 8))

    def close(self) -> None:
        self.obj.close()


@dataclass
class Segment:
    sent: int  # frames generated (the generator's own counter)
    cpu_ns: int  # generator thread + ksoftirqd of its CPU
    wall_s: float


class _Alarm(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM after ``seconds``: BPF_PROG_RUN checks signal_pending() between
    batches and returns EINTR, so a run never exceeds its time bound."""
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- the lab


def ethtool_stats(ns: str, dev: str) -> dict[str, int]:
    out = run_in(ns, ["ethtool", "-S", dev]).stdout
    stats = {}
    for line in out.splitlines()[1:]:
        key, _, value = line.strip().partition(":")
        with contextlib.suppress(ValueError):
            stats[key.strip()] = int(value)
    return stats


def link_stats(ns: str, dev: str) -> dict[str, int]:
    data = json.loads(ip("-s", "-j", "link", "show", "dev", dev, ns=ns).stdout)[0]
    rx, tx = data["stats64"]["rx"], data["stats64"]["tx"]
    return {"rx_packets": rx["packets"], "rx_dropped": rx["dropped"], "tx_packets": tx["packets"],
            "tx_dropped": tx["dropped"]}


def snmp(ns: str) -> dict[str, int]:
    """/proc/net/snmp of a namespace as {"Ip.InReceives": n, ...}."""
    with in_netns(ns), open("/proc/thread-self/net/snmp") as f:
        lines = f.read().splitlines()
    out: dict[str, int] = {}
    for head, values in zip(lines[::2], lines[1::2], strict=True):
        proto, names = head.split(":", 1)
        _, nums = values.split(":", 1)
        for name, value in zip(names.split(), nums.split(), strict=True):
            out[f"{proto}.{name}"] = int(value)
    return out


@dataclass
class Lab:
    sender: str
    victim: str
    va: str
    vb: str
    ifindex_a: int
    ifindex_b: int
    mac_a: bytes
    mac_b: bytes
    bpffs: Path  # a bpffs of our own (Seawall's pins, xdp-filter's pins)
    ref: str  # namespace of the floor reference
    vr: str
    ifindex_ref: int  # vA2, in the sender's namespace: frames sent into it reach vR

    def ref_drops(self) -> int:
        return ethtool_stats(self.ref, self.vr)["rx_queue_0_xdp_drops"]

    def frame(self, src: int) -> bytes:
        return flood_frame(src, self.mac_b, self.mac_a)

    def receiver_packets(self) -> int:
        """Frames that reached vB's NAPI ring (veth counts them all, XDP drops included)."""
        return link_stats(self.victim, self.vb)["rx_packets"]

    def xdp_drops(self) -> int:
        """Frames a native XDP program on vB returned XDP_DROP for (veth's own counter)."""
        return ethtool_stats(self.victim, self.vb)["rx_queue_0_xdp_drops"]

    def segment(self, gen: Generator, prog: str, frame: bytes, *, ifindex: int, packets: int, max_s: float,
                softirqd: int) -> Segment:
        """One BPF_PROG_RUN of up to ``packets`` frames into ``ifindex`` (vA: the
        contestant, vA2: the floor reference), cut off after ``max_s`` seconds."""
        with in_netns(self.sender):
            g0 = gen.generated()
            t_cpu0, s_cpu0 = thread_cpu_ns(), thread_cpu_ns(softirqd)
            start = time.perf_counter()
            try:
                with time_limit(max_s):
                    libbpf.prog_test_run(gen.fds[prog], frame, repeat=packets,
                                         flags=libbpf.BPF_F_TEST_XDP_LIVE_FRAMES, ingress_ifindex=ifindex)
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    raise
            wall = time.perf_counter() - start
            time.sleep(0.005)  # ksoftirqd finishes the last batch before its CPU time is read
            cpu_ns = thread_cpu_ns() - t_cpu0 + thread_cpu_ns(softirqd) - s_cpu0
            sent = gen.generated() - g0
        return Segment(sent, cpu_ns, wall)


def _link(ns: str, dev: str) -> tuple[int, bytes]:
    data = json.loads(ip("-j", "link", "show", "dev", dev, ns=ns).stdout)[0]
    return int(data["ifindex"]), bytes.fromhex(data["address"].replace(":", ""))


@contextlib.contextmanager
def lab(floor_obj: Path) -> Iterator[Lab]:
    """Fresh namespaces: sender (vA, vA2), victim (vB) and ref (vR, with the
    floor program attached natively: the paired reference measured in the same
    rounds as every contestant). Everything in them goes with them."""
    with contextlib.ExitStack() as stack:
        sender = stack.enter_context(netns(unique_name("swfa")))
        victim = stack.enter_context(netns(unique_name("swfb")))
        ref = stack.enter_context(netns(unique_name("swfr")))
        pair = stack.enter_context(veth_pair(sender, victim, addr_a=f"{SENDER_ADDR}/{LAB_PREFIX}",
                                             addr_b=f"{VICTIM_ADDR}/{LAB_PREFIX}"))
        ref_pair = stack.enter_context(veth_pair(sender, ref))
        run_in(victim, ["ethtool", "-K", pair.name_b, "gro", "on"])
        # A host has a route back to a flood's sources (so the no-filter baseline
        # pays for its ICMP port-unreachable replies, as a real host would).
        ip("route", "add", "default", "via", SENDER_ADDR, ns=victim)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="seawall-flood-"))
        fs = stack.enter_context(bpffs(Path(tmp) / "bpffs"))
        ifa, mac_a = _link(sender, pair.name_a)
        ifb, mac_b = _link(victim, pair.name_b)
        ifa2, _ = _link(sender, ref_pair.name_a)
        ifr, _ = _link(ref, ref_pair.name_b)
        with libbpf.BpfObject.open_file(floor_obj) as obj:  # the attachment keeps the program
            obj.load()
            with in_netns(ref):
                libbpf.xdp_attach(ifr, obj.program_fd("floor_drop"), libbpf.XDP_FLAGS_DRV_MODE)
        yield Lab(sender, victim, pair.name_a, pair.name_b, ifa, ifb, mac_a, mac_b, fs,
                  ref, ref_pair.name_b, ifa2)
