"""The ctypes libbpf binding against the real kernel: load, pin, maps, info,
BPF_PROG_TEST_RUN, netlink XDP attach/replace/detach in a namespace, and the
kernel's xdp-features answer. Timings are printed (``-s``) and recorded as
junit properties."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seawall.dataplane.xdp import features as F, libbpf as L
from seawall.dataplane.xdp.libbpf.structs import LAYOUTS
from seawall.testing.netns import VethPair, bridge, in_netns, ip, macvlan, netns, veth_pair

u32 = struct.Struct("<I").pack
FRAME = bytes.fromhex("ffffffffffff020000000001 0800".replace(" ", "")) + bytes(50)  # 64-byte Ethernet frame
REPO_SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def loaded(tiny_xdp_object: Path) -> Iterator[L.BpfObject]:
    with L.BpfObject.open_file(tiny_xdp_object) as obj:
        obj.load()
        yield obj


@pytest.fixture
def veth_ns() -> Iterator[tuple[str, VethPair]]:
    with netns() as ns, veth_pair(ns, ns) as pair:
        yield ns, pair


def _possible_cpus() -> int:
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    return sum(int(b) - int(a) + 1 if "-" in part else 1
               for part in text.split(",") for a, _, b in [part.partition("-")] if part) if text else 1


def test_struct_layouts_match_headers(tmp_path: Path) -> None:
    """Every ctypes struct is field-for-field the C struct of the installed headers."""
    lines = []
    for cname, cls in LAYOUTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof(struct {cname}));')
        for field, *_ in cls._fields_:
            if not field.startswith("_") and field != "gpl_compatible":  # bitfield: no offsetof
                lines.append(f'printf("{cname}.{field} %zu\\n", offsetof(struct {cname}, {field}));')
    src = tmp_path / "layout.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include <bpf/libbpf.h>\n#include <bpf/bpf.h>\n"
                   "#include <linux/bpf.h>\nint main(void) {\n" + "\n".join(lines) + "\nreturn 0; }\n")
    subprocess.run(["clang", "-o", str(tmp_path / "layout"), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "layout")], check=True, capture_output=True, text=True).stdout  # runs: (built)
    c_layout = {k: int(v) for k, v in (line.split() for line in out.splitlines())}
    for cname, cls in LAYOUTS.items():
        # Ours may be a prefix of a newer header's struct (libbpf/kernel honour sz), never bigger.
        assert ctypes.sizeof(cls) <= c_layout[cname], cname
        for field, *_ in cls._fields_:
            if f"{cname}.{field}" in c_layout:
                assert getattr(cls, field).offset == c_layout[f"{cname}.{field}"], f"{cname}.{field}"
    assert ctypes.sizeof(L.BpfXdpQueryOpts) == c_layout["bpf_xdp_query_opts"] == 32  # libbpf 1.1.2
    assert ctypes.sizeof(L.BpfTestRunOpts) == c_layout["bpf_test_run_opts"] == 80


def test_open_load_names_and_info(loaded: L.BpfObject) -> None:
    assert {"verdict", "blocked", "hits", "odd", "big"} <= set(loaded.map_names())
    assert loaded.program_names() == ["xdp_toggle", "xdp_pass_too"]
    assert (loaded.map_type("hits"), loaded.map_key_size("odd"), loaded.map_value_size("odd")) == (
        L.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 12)
    prog_fd = loaded.program_fd("xdp_toggle")
    info = L.prog_info(prog_fd)
    assert (info.type, info.name, len(info.tag)) == (L.BPF_PROG_TYPE_XDP, "xdp_toggle", 16)
    used = {L.map_info(loaded.map_fd(m)).id for m in ("verdict", "hits")}
    assert set(info.map_ids) == used  # only the maps the program references
    shown = subprocess.run(["bpftool", "prog", "show", "id", str(info.id)], capture_output=True, text=True)
    if shown.returncode == 0:
        assert f"tag {info.tag}" in shown.stdout
    mi = L.map_info(loaded.map_fd("verdict"))
    assert (mi.type, mi.key_size, mi.value_size, mi.max_entries, mi.name) == (L.BPF_MAP_TYPE_ARRAY, 4, 4, 1, "verdict")
    with pytest.raises(L.LibbpfError) as exc:
        L.prog_info(loaded.map_fd("verdict"))  # a map fd would otherwise "succeed" with map data
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError):
        loaded.map_fd("no_such_map")
    with pytest.raises(L.LibbpfError) as exc:
        loaded.set_map_max_entries("big", 10)  # too late: already loaded
    assert exc.value.errno == errno.EBUSY
    dup = L.dup_fd(prog_fd)
    loaded.close()
    with pytest.raises(ValueError):
        loaded.program_fd("xdp_toggle")
    assert L.prog_info(dup).id == info.id  # the dup keeps the program alive past close()
    os.close(dup)


def test_map_element_ops(loaded: L.BpfObject) -> None:
    fd = loaded.map_fd("blocked")
    assert L.map_lookup(fd, u32(1), 8) is None
    for k in (1, 2, 3):
        L.map_update(fd, u32(k), struct.pack("<Q", k * 10))
    assert L.map_lookup(fd, u32(2), 8) == struct.pack("<Q", 20)
    with pytest.raises(FileExistsError):
        L.map_update(fd, u32(2), bytes(8), L.BPF_NOEXIST)
    with pytest.raises(FileNotFoundError):
        L.map_update(fd, u32(9), bytes(8), L.BPF_EXIST)
    L.map_update(fd, u32(2), struct.pack("<Q", 99), L.BPF_EXIST)
    assert sorted(L.map_keys(fd, 4)) == [u32(1), u32(2), u32(3)]
    first = L.map_next_key(fd, None, 4)
    assert first in (u32(1), u32(2), u32(3))
    assert L.map_dump(fd, 4, 8)[u32(2)] == struct.pack("<Q", 99)
    assert L.map_delete(fd, u32(2)) is True
    assert L.map_delete(fd, u32(2)) is False
    assert sorted(L.map_keys(fd, 4)) == [u32(1), u32(3)]


def test_batch_update_100k_into_hash_and_partial_progress(tiny_xdp_object: Path, record_property) -> None:
    n = 100_000
    with L.BpfObject.open_file(tiny_xdp_object) as obj:
        obj.set_map_max_entries("big", n)
        obj.load()
        fd = obj.map_fd("big")
        assert L.map_info(fd).max_entries == n
        keys, values = struct.pack(f"<{n}I", *range(n)), struct.pack(f"<{n}I", *range(0, 3 * n, 3))
        t0 = time.perf_counter()
        L.map_update_batch(fd, keys, values, n)
        elapsed = time.perf_counter() - t0
        record_property("batch_update_100k_hash_s", elapsed)
        print(f"\nbatch update of {n} u32->u32 into a HASH: {elapsed * 1e3:.1f} ms")
        assert L.map_lookup(fd, u32(0), 4) == u32(0) and L.map_lookup(fd, u32(n - 1), 4) == u32(3 * (n - 1))
        dump = L.map_dump(fd, 4, 4)
        assert len(dump) == n and dump[u32(777)] == u32(2331)
        # Map full: the kernel applies the first element, stops at the second (E2BIG) and says so.
        with pytest.raises(L.LibbpfError) as exc:
            L.map_update_batch(fd, u32(5) + u32(n), u32(1) + u32(1), 2)
        assert (exc.value.errno, exc.value.done) == (errno.E2BIG, 1)
        assert L.map_lookup(fd, u32(5), 4) == u32(1)
        with pytest.raises(FileExistsError) as exc2:
            L.map_update_batch(fd, u32(7), u32(0), 1, L.BPF_NOEXIST)
        assert exc2.value.done == 0
        # Deleting with absent keys in the middle: they are stepped over.
        t0 = time.perf_counter()
        deleted = L.map_delete_batch(fd, keys[:40] + u32(n + 5) + keys[40:], n + 1)
        record_property("batch_delete_100k_hash_s", time.perf_counter() - t0)
        assert deleted == n and L.map_dump(fd, 4, 4) == {}
        with pytest.raises(ValueError):
            L.map_update_batch(fd, b"\0" * 7, b"\0" * 8, 2)  # 7 bytes cannot be 2 keys


def test_batch_falls_back_per_element_where_unsupported() -> None:
    """DEVMAP_HASH has no batch ops: the kernel answers ENOTSUPP (524)."""
    fd = L.map_create(L.BPF_MAP_TYPE_DEVMAP_HASH, "sw_test_dh", 4, 4, 64)
    try:
        raw = L.lib().bpf_map_update_batch(fd, u32(1), u32(1), ctypes.byref(ctypes.c_uint32(1)),
                                           ctypes.byref(L.BpfMapBatchOpts(sz=24)))
        assert raw == -L.ENOTSUPP
        lo = socket.if_nametoindex("lo")
        n = 50
        L.map_update_batch(fd, struct.pack(f"<{n}I", *range(n)), u32(lo) * n, n)
        assert L.map_dump(fd, 4, 4) == {u32(i): u32(lo) for i in range(n)}  # dump falls back too
        assert L.map_delete_batch(fd, struct.pack(f"<{n + 1}I", *range(n + 1)), n + 1) == n
        assert list(L.map_keys(fd, 4)) == []
    finally:
        os.close(fd)


def test_percpu_lookup_and_rounding(loaded: L.BpfObject) -> None:
    ncpu = L.num_possible_cpus()
    assert ncpu == _possible_cpus()
    hits, prog = loaded.map_fd("hits"), loaded.program_fd("xdp_toggle")
    L.map_update_percpu(hits, u32(0), bytes(8), 8)
    L.prog_test_run(prog, FRAME, repeat=1000)
    values = L.map_lookup_percpu(hits, u32(0), 8)
    assert len(values) == ncpu and sum(struct.unpack("<Q", v)[0] for v in values) == 1000
    odd = loaded.map_fd("odd")  # 12-byte values live in 16-byte per-CPU slots
    per_cpu = [struct.pack("<3I", c, c + 100, c + 200) for c in range(ncpu)]
    L.map_update_percpu(odd, u32(1), per_cpu, 12)
    assert L.map_lookup_percpu(odd, u32(1), 12) == per_cpu
    assert L.map_lookup_percpu(odd, u32(2), 12) == []


def test_prog_test_run(loaded: L.BpfObject, record_property) -> None:
    prog, verdict = loaded.program_fd("xdp_toggle"), loaded.map_fd("verdict")
    once = L.prog_test_run(prog, FRAME)
    assert (once.retval, once.data_out) == (L.XDP_PASS, FRAME)
    L.map_update(verdict, u32(0), u32(1))
    many = L.prog_test_run(prog, FRAME, repeat=100_000)
    assert many.retval == L.XDP_DROP
    assert 0 < many.duration_ns < 10_000  # average per run
    record_property("prog_test_run_ns", many.duration_ns)
    print(f"\ntiny XDP program: {many.duration_ns} ns per run (repeat=100000), {once.duration_ns} ns at repeat=1")
    assert L.prog_test_run(prog, FRAME, ingress_ifindex=socket.if_nametoindex("lo")).retval == L.XDP_DROP
    with pytest.raises(L.LibbpfError) as exc:
        L.prog_test_run(prog, FRAME, data_out_size=10)
    assert exc.value.errno == errno.ENOSPC
    with pytest.raises(L.LibbpfError) as exc:
        L.prog_test_run(prog, FRAME[:10])  # shorter than an Ethernet header
    assert exc.value.errno == errno.EINVAL
    if F.kernel_version() >= (5, 18, 0):  # live frames: run `repeat` real frames (dropped here)
        hits = loaded.map_fd("hits")
        L.map_update_percpu(hits, u32(0), bytes(8), 8)
        live = L.prog_test_run(prog, FRAME, repeat=64, flags=L.BPF_F_TEST_XDP_LIVE_FRAMES)
        assert live.data_out == b""
        assert sum(struct.unpack("<Q", v)[0] for v in L.map_lookup_percpu(hits, u32(0), 8)) == 64


def test_pin_obj_get_and_reuse_map_fd(tiny_xdp_object: Path, test_bpffs: Path) -> None:
    with L.BpfObject.open_file(tiny_xdp_object) as obj:
        obj.load()
        L.obj_pin(obj.program_fd("xdp_toggle"), test_bpffs / "prog")
        L.obj_pin(obj.map_fd("verdict"), test_bpffs / "verdict")
        with pytest.raises(FileExistsError):
            L.obj_pin(obj.map_fd("verdict"), test_bpffs / "verdict")
        prog_id = L.prog_info(obj.program_fd("xdp_toggle")).id
        map_id, hits_id = L.map_info(obj.map_fd("verdict")).id, L.map_info(obj.map_fd("hits")).id
    prog_fd, map_fd = L.obj_get(test_bpffs / "prog"), L.obj_get(test_bpffs / "verdict")
    try:
        assert L.prog_info(prog_fd).id == prog_id and L.map_info(map_fd).id == map_id  # pins outlive the object
        with pytest.raises(FileNotFoundError) as exc:
            L.obj_get(test_bpffs / "absent")
        assert isinstance(exc.value, L.LibbpfError) and exc.value.errno == errno.ENOENT
        L.map_update(map_fd, u32(0), u32(1))
        with L.BpfObject.open_file(tiny_xdp_object) as again:
            again.reuse_map_fd("verdict", map_fd)
            again.load()
            assert L.map_info(again.map_fd("verdict")).id == map_id  # shared
            assert L.map_info(again.map_fd("hits")).id != hits_id  # fresh
            assert L.prog_test_run(again.program_fd("xdp_toggle"), FRAME).retval == L.XDP_DROP
        by_id = L.prog_fd_by_id(prog_id)
        assert L.prog_info(by_id).id == prog_id
        os.close(by_id)
        os.close(L.map_fd_by_id(map_id))
        with pytest.raises(FileNotFoundError):
            L.prog_fd_by_id(2**31 - 1)
    finally:
        os.close(prog_fd)
        os.close(map_fd)


def test_verifier_rejection_and_print_routing(bad_xdp_object: Path, tiny_xdp_object: Path) -> None:
    with L.BpfObject.open_file(bad_xdp_object) as bad, pytest.raises(L.LibbpfVerifierError) as exc:
        bad.load()
    assert exc.value.errno in (errno.EACCES, errno.EINVAL) and not isinstance(exc.value, PermissionError)
    assert "invalid access to packet" in (exc.value.detail or "")
    seen: list[tuple[int, str]] = []
    try:
        L.set_print(lambda level, msg: seen.append((level, msg)), max_level=L.LIBBPF_DEBUG)
        with L.BpfObject.open_file(tiny_xdp_object) as obj:
            obj.load()
        assert any(level == L.LIBBPF_DEBUG for level, _ in seen)
        seen.clear()
        L.set_print(None)
        with L.BpfObject.open_file(tiny_xdp_object) as obj:
            obj.load()
        assert seen == []
    finally:
        L.set_print(L.log_to_python)


def _iproute_xdp(ns: str, dev: str) -> str:
    return ip("-d", "link", "show", "dev", dev, ns=ns).stdout


def test_xdp_native_attach_replace_detach_on_veth(loaded: L.BpfObject, veth_ns: tuple[str, VethPair]) -> None:
    ns, pair = veth_ns
    p1, p2 = loaded.program_fd("xdp_toggle"), loaded.program_fd("xdp_pass_too")
    id1, id2 = L.prog_info(p1).id, L.prog_info(p2).id
    with in_netns(ns):
        idx = socket.if_nametoindex(pair.name_a)
        assert L.xdp_query(idx) == L.XdpQuery(0, 0, 0, 0, L.XDP_ATTACHED_NONE)
        L.xdp_attach(idx, p1, L.XDP_FLAGS_DRV_MODE | L.XDP_FLAGS_UPDATE_IF_NOEXIST)
        assert L.xdp_query(idx) == L.XdpQuery(id1, id1, 0, 0, L.XDP_ATTACHED_DRV)
        assert f"prog/xdp id {id1}" in _iproute_xdp(ns, pair.name_a)  # iproute2 agrees
        with pytest.raises(L.LibbpfError) as exc:
            L.xdp_attach(idx, p2, L.XDP_FLAGS_DRV_MODE | L.XDP_FLAGS_UPDATE_IF_NOEXIST)
        assert exc.value.errno == errno.EBUSY and "already attached" in (exc.value.detail or "")
        with pytest.raises(FileExistsError):  # generic and native cannot coexist
            L.xdp_attach(idx, p2, L.XDP_FLAGS_SKB_MODE)
        with pytest.raises(FileExistsError):  # REPLACE with the wrong expected program
            L.xdp_attach(idx, p1, L.XDP_FLAGS_DRV_MODE, old_prog_fd=p2)
        L.xdp_attach(idx, p2, L.XDP_FLAGS_DRV_MODE, old_prog_fd=p1)
        assert L.xdp_query(idx).drv_prog_id == id2
        with pytest.raises(FileExistsError):
            L.xdp_detach(idx, L.XDP_FLAGS_DRV_MODE, old_prog_fd=p1)
        L.xdp_detach(idx, L.XDP_FLAGS_DRV_MODE, old_prog_fd=p2)
        assert L.xdp_query(idx).attach_mode == L.XDP_ATTACHED_NONE
        with pytest.raises(L.LibbpfError) as exc:
            L.xdp_attach(idx, p1, L.XDP_FLAGS_HW_MODE)  # veth has ndo_bpf but no offload
        assert exc.value.errno == errno.EINVAL
        with pytest.raises(L.LibbpfError) as exc:
            L.xdp_query(10_000)  # libbpf alone would answer "nothing attached"
        assert exc.value.errno == errno.ENODEV
    with pytest.raises(L.LibbpfError) as exc:  # back in the host: that ifindex means nothing here
        L.xdp_attach(idx + 10_000, p1, L.XDP_FLAGS_SKB_MODE)
    assert exc.value.errno == errno.ENODEV


def test_xdp_generic_only_on_bridge_and_macvlan(loaded: L.BpfObject, veth_ns: tuple[str, VethPair]) -> None:
    ns, pair = veth_ns
    prog = loaded.program_fd("xdp_toggle")
    prog_id = L.prog_info(prog).id
    with bridge(ns) as br, macvlan(ns, pair.name_b) as mv, in_netns(ns):
        for dev in (br, mv):
            idx = socket.if_nametoindex(dev)
            with pytest.raises(L.LibbpfError) as exc:
                L.xdp_attach(idx, prog, L.XDP_FLAGS_DRV_MODE)
            assert exc.value.errno == errno.EOPNOTSUPP, dev
            print(f"\nnative XDP on {dev}: errno {exc.value.errno} ({exc.value.detail})")
            L.xdp_attach(idx, prog, L.XDP_FLAGS_SKB_MODE)
            assert L.xdp_query(idx) == L.XdpQuery(prog_id, 0, 0, prog_id, L.XDP_ATTACHED_SKB)
            L.xdp_detach(idx, L.XDP_FLAGS_SKB_MODE)
            assert L.xdp_query(idx).prog_id == 0


def test_xdp_features(veth_ns: tuple[str, VethPair]) -> None:
    ns, pair = veth_ns
    with bridge(ns) as br:
        veth_idx, br_idx = F.ifindex(pair.name_a, ns), F.ifindex(br, ns)
        veth = F.xdp_features(veth_idx, ns)
        if F.kernel_version() < F.XDP_FEATURES_KERNEL:
            assert veth is None
            return
        assert veth and veth & F.NETDEV_XDP_ACT_BASIC, F.describe_features(veth or 0)
        assert "basic" in F.describe_features(veth)
        assert not (F.xdp_features(br_idx, ns) or 0) & F.NETDEV_XDP_ACT_BASIC
        with in_netns(ns):  # without netns=: the calling thread's namespace answers
            assert F.xdp_features(veth_idx) == veth
            assert F.ifindex(pair.name_a) == veth_idx
        with pytest.raises(OSError) as exc:
            F.xdp_features(veth_idx + 10_000, ns)
        assert exc.value.errno == errno.ENODEV
        with pytest.raises(OSError):
            F.ifindex("swnosuchdev", ns)
        with pytest.raises(FileNotFoundError):
            F.xdp_features(1, "sw-no-such-netns")
    assert not Path("/run/netns/sw-no-such-netns").exists()  # not created as a side effect
    assert F.describe_features(1 | 4 | 128) == ["basic", "ndo-xmit", "bit7"]
    assert F.kernel_version("6.18.44-fc-v657") == (6, 18, 44) and F.kernel_version("5.4") == (5, 4, 0)
    assert F.kernel_version() >= F.XDP_MIN_KERNEL


ATTACH_AND_EXIT = """
import socket, sys
from seawall.dataplane.xdp import libbpf as L
from seawall.testing.netns import in_netns
obj = L.BpfObject.open_file(sys.argv[1])
obj.load()
fd = obj.program_fd("xdp_toggle")
with in_netns(sys.argv[2]):
    L.xdp_attach(socket.if_nametoindex(sys.argv[3]), fd, L.XDP_FLAGS_DRV_MODE)
print(L.prog_info(fd).id)
"""


def test_attachment_outlives_the_attaching_process(tiny_xdp_object: Path, veth_ns: tuple[str, VethPair]) -> None:
    ns, pair = veth_ns
    env = {**os.environ, "PYTHONPATH": str(REPO_SRC)}
    done = subprocess.run([sys.executable, "-c", ATTACH_AND_EXIT, str(tiny_xdp_object), ns, pair.name_a],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    prog_id = int(done.stdout.strip())
    with in_netns(ns):
        idx = socket.if_nametoindex(pair.name_a)
        assert L.xdp_query(idx) == L.XdpQuery(prog_id, prog_id, 0, 0, L.XDP_ATTACHED_DRV)
        fd = L.prog_fd_by_id(prog_id)  # the attachment alone keeps the program loaded
        try:
            assert L.prog_info(fd).name == "xdp_toggle"
            assert L.prog_test_run(fd, FRAME).retval == L.XDP_PASS
            L.xdp_detach(idx, L.XDP_FLAGS_DRV_MODE, old_prog_fd=fd)
        finally:
            os.close(fd)
        assert L.xdp_query(idx).prog_id == 0
