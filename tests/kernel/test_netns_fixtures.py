"""The namespace fixtures themselves: they create what they promise, traffic
flows over a veth pair (IPv4 and IPv6, no DAD wait), in_netns moves only the
calling thread and always comes back, and nothing is left behind -- also when
the body raises."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from seawall.dataplane.xdp import libbpf as L
from seawall.testing.netns import (
    NETNS_DIR,
    bpffs,
    bridge,
    current_netns_inode,
    in_netns,
    ip,
    is_bpffs,
    macvlan,
    netns,
    netns_inode,
    run_in,
    unique_name,
    veth_pair,
)


class Boom(Exception):
    pass


def _link_exists(dev: str, ns: str | None = None) -> bool:
    return ip("link", "show", "dev", dev, ns=ns, check=False).returncode == 0


def _link_json(dev: str, ns: str | None) -> dict:
    return json.loads(ip("-d", "-j", "link", "show", "dev", dev, ns=ns).stdout)[0]


def test_unique_name() -> None:
    names = {unique_name("swva") for _ in range(200)}
    assert len(names) == 200
    assert all(n.startswith("swva") and len(n) == 10 for n in names)
    assert len(unique_name("abcdefghi")) == 15  # exactly IFNAMSIZ - 1
    with pytest.raises(ValueError):
        unique_name("abcdefghij")


def test_netns_created_and_removed_even_on_error() -> None:
    with netns() as ns:
        assert (NETNS_DIR / ns).exists()
        assert "UP" in _link_json("lo", ns)["flags"]
    assert not (NETNS_DIR / ns).exists()
    with pytest.raises(Boom), netns() as ns2:
        raise Boom
    assert not (NETNS_DIR / ns2).exists()


def _udp_roundtrip(ns_tx: str, ns_rx: str, family: int, dst: str) -> bytes:
    """Send one datagram from a socket made in ns_tx to one made in ns_rx."""
    with in_netns(ns_rx):
        rx = socket.socket(family, socket.SOCK_DGRAM)
    with in_netns(ns_tx):
        tx = socket.socket(family, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind((dst, 0))
        rx.settimeout(5)
        payload = secrets.token_bytes(8)
        tx.sendto(payload, rx.getsockname()[:2])
        return payload if rx.recv(64) == payload else b""


def test_veth_pair_between_namespaces_ipv4_and_ipv6() -> None:
    with netns() as a, netns() as b:
        with veth_pair(a, b, addr_a="10.77.0.1/24", addr_b="10.77.0.2/24") as v4, \
                veth_pair(a, b, addr_a="fd00:77::1/64", addr_b="fd00:77::2/64") as v6:
            assert _link_exists(v4.name_a, a) and _link_exists(v4.name_b, b)
            assert not _link_exists(v4.name_a)  # moved out of the host namespace
            for ns, dev in ((a, v4.name_a), (b, v4.name_b), (a, v6.name_a), (b, v6.name_b)):
                assert "UP" in _link_json(dev, ns)["flags"]
            assert "tentative" not in ip("-6", "addr", "show", "dev", v6.name_b, ns=b).stdout  # no DAD wait
            assert _udp_roundtrip(a, b, socket.AF_INET, "10.77.0.2")
            assert _udp_roundtrip(a, b, socket.AF_INET6, "fd00:77::2")
        assert not _link_exists(v4.name_a, a) and not _link_exists(v6.name_b, b)


def test_veth_with_host_end_removed_even_on_error() -> None:
    with netns() as ns:
        with pytest.raises(Boom), veth_pair(None, ns) as pair:
            assert _link_exists(pair.name_a) and _link_exists(pair.name_b, ns)
            raise Boom
        assert not _link_exists(pair.name_a) and not _link_exists(pair.name_b, ns)


def test_bridge_and_macvlan() -> None:
    with netns() as ns, veth_pair(ns, ns) as pair:
        with bridge(ns, addr="10.78.0.1/24") as br, macvlan(ns, pair.name_a, addr="fd00:78::1/64") as mv:
            assert _link_json(br, ns)["linkinfo"]["info_kind"] == "bridge"
            info = _link_json(mv, ns)
            assert info["linkinfo"]["info_kind"] == "macvlan" and info["link"] == pair.name_a
            assert "UP" in info["flags"]
        assert not _link_exists(br, ns) and not _link_exists(mv, ns)
        with pytest.raises(Boom), bridge(ns) as br2:
            raise Boom
        assert not _link_exists(br2, ns)


def test_run_in() -> None:
    with netns() as ns, veth_pair(ns, ns) as pair:
        names = {link["ifname"] for link in json.loads(run_in(ns, ["ip", "-j", "link"]).stdout)}
        assert names == {"lo", pair.name_a, pair.name_b}
        with pytest.raises(subprocess.CalledProcessError):
            run_in(ns, ["false"])
        assert run_in(ns, ["false"], check=False).returncode == 1


def test_in_netns_enters_restores_and_is_per_thread() -> None:
    host = current_netns_inode()
    seen: list[int] = []
    go = threading.Event()

    def report() -> None:
        go.wait(10)
        seen.append(current_netns_inode())

    with netns() as ns, veth_pair(ns, ns) as pair:
        existing = threading.Thread(target=report)
        existing.start()
        with in_netns(ns):
            assert current_netns_inode() == netns_inode(ns) != host
            assert socket.if_nametoindex(pair.name_a) > 0
            spawned = threading.Thread(target=report)
            spawned.start()
            go.set()
            existing.join(10)
            spawned.join(10)
        assert current_netns_inode() == host
        # setns moved only the calling thread; a thread started inside inherits the namespace
        assert sorted(seen) == sorted([host, netns_inode(ns)])
        with pytest.raises(OSError):
            socket.if_nametoindex(pair.name_a)
        with pytest.raises(Boom), in_netns(ns):
            raise Boom
        assert current_netns_inode() == host
    with pytest.raises(FileNotFoundError), in_netns("sw-no-such-netns"):
        pass
    assert current_netns_inode() == host


def test_bpffs_mount_pin_and_unmount() -> None:
    where = Path("/run") / f"seawall-test-{secrets.token_hex(4)}"
    fd = L.map_create(L.BPF_MAP_TYPE_ARRAY, "sw_test_pin", 4, 4, 1)
    try:
        with bpffs(where) as path:
            assert path == where and is_bpffs(where)
            L.obj_pin(fd, where / "m")
            with bpffs(where) as again:  # already a bpffs: used as is, not unmounted
                assert again == where
            assert is_bpffs(where) and (where / "m").exists()
            with netns() as other, in_netns(other):
                pinned = L.obj_get(where / "m")  # bpffs stays the host's inside a netns
                os.close(pinned)
        assert not is_bpffs(where) and not where.exists()
        with pytest.raises(Boom), bpffs(where):
            raise Boom
        assert not is_bpffs(where) and not where.exists()
    finally:
        os.close(fd)

