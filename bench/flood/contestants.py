"""The contestants: each installs a blocklist on the victim's veth (vB) and
says how many packets it dropped (its own counter where it has one).

Every ``install`` is a context manager that removes what it created even when
the body raises; the lab's namespaces (deleted afterwards) take anything left.

| name                | what                                                        | drop counter |
|---------------------|-------------------------------------------------------------|--------------|
| seawall-xdp-native  | ``XdpDriver.reconcile`` (as the agent does), native mode    | sw_stats DROP |
| seawall-xdp-generic | the same, then the driver's program re-attached with        | sw_stats DROP |
|                     | XDP_FLAGS_SKB_MODE (veth always offers native, so the        |              |
|                     | driver itself would never choose generic here)               |              |
| seawall-raw         | ``RawDataplane.reconcile`` of an UntrackedState: one         | its rule counter |
|                     | interface, one policy ``Deny`` from the set, Calico's        |              |
|                     | default failsafe ports                                       |              |
| xdp-filter          | ``xdp-filter load vB -m native -p allow -f ipv4``; the        | veth xdp_drops |
|                     | exact addresses written into its pinned filter_ipv4 map      |              |
| lpm-xdp             | bench/bpf/lpm.bpf.c: one LPM-trie lookup, native             | veth xdp_drops |
| ipset-raw           | ``ipset restore`` hash:net + ``iptables -t raw -A PREROUTING  | the rule's counter |
|                     | -m set --match-set NAME src -j DROP`` (Calico's fallback)    |              |
| nft-netdev          | ``nft -f``: netdev table, interval set, ingress chain on vB, | named counter (N <= 10k); |
|                     | priority -500, ``ip saddr @set counter drop``                | vB rx - Ip.InReceives (1M) |
| floor               | bench/bpf/floor.bpf.c: XDP_DROP without looking, native      | veth xdp_drops |
| none                | nothing: the stack drops at the closed UDP port 9            | Udp.NoPorts + IP drops |

Diagnostics only (``flood.py --diagnostics`` or ``--only``): ``floor-touch``
(bpf/touch.bpf.c: the floor plus Seawall's Ethernet parse and a read of the
IPv4 source) and ``seawall-raw-nofailsafe`` (Seawall raw with empty failsafe
port lists).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lab import Lab, link_stats, snmp
from prefixes import Blocklist

from seawall.api.felix import DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND
from seawall.dataplane.iptables.backend import SubprocessRunner
from seawall.dataplane.iptables.dataplane import RawDataplane
from seawall.dataplane.xdp import libbpf
from seawall.dataplane.xdp.driver import XdpDriver
from seawall.policy.model import Action, CidrSet, EntityMatch, FailsafePort, InterfacePolicy, Policy, Rule, UntrackedState
from seawall.policy.xdp import InterfaceBlocklist, XdpDesiredState
from seawall.testing.netns import in_netns, run_in

XDP_FILTER_MAX = 10_000  # max_entries of xdp-filter's filter_ipv4 map
PROTO = {"TCP": 6, "UDP": 17, "SCTP": 132}
FAILSAFE_IN = tuple(FailsafePort(PROTO[p.protocol], p.port) for p in DEFAULT_FAILSAFE_INBOUND)
FAILSAFE_OUT = tuple(FailsafePort(PROTO[p.protocol], p.port) for p in DEFAULT_FAILSAFE_OUTBOUND)
XDP_FAILSAFE = frozenset((f.protocol, f.port) for f in FAILSAFE_IN)


@dataclass
class Installed:
    dropped: Callable[[], int]  # cumulative packets dropped by the contestant
    setup_s: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Contestant:
    name: str
    label: str
    install: Callable[[Lab, Blocklist, dict[str, Path]], contextlib.AbstractContextManager[Installed]]
    not_applicable: Callable[[Blocklist, str], str | None] = lambda bl, traffic: None


# ---------------------------------------------------------------- XDP helpers


def _attach(lab: Lab, prog_fd: int, flags: int) -> None:
    with in_netns(lab.victim):
        libbpf.xdp_attach(lab.ifindex_b, prog_fd, flags)


def _detach(lab: Lab, flags: int) -> None:
    with in_netns(lab.victim), contextlib.suppress(OSError):
        libbpf.xdp_detach(lab.ifindex_b, flags)


@contextlib.contextmanager
def floor(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
    with libbpf.BpfObject.open_file(objs["floor"]) as obj:
        obj.load()
        _attach(lab, obj.program_fd("floor_drop"), libbpf.XDP_FLAGS_DRV_MODE)
        try:
            yield Installed(lab.xdp_drops, 0.0, ["native XDP, XDP_DROP without looking"])
        finally:
            _detach(lab, libbpf.XDP_FLAGS_DRV_MODE)


@contextlib.contextmanager
def floor_touch(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
    with libbpf.BpfObject.open_file(objs["touch"]) as obj:
        obj.load()
        _attach(lab, obj.program_fd("touch_drop"), libbpf.XDP_FLAGS_DRV_MODE)
        try:
            yield Installed(lab.xdp_drops, 0.0, ["native XDP: parse Ethernet, read the IPv4 source, XDP_DROP"])
        finally:
            _detach(lab, libbpf.XDP_FLAGS_DRV_MODE)


@contextlib.contextmanager
def lpm_xdp(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
    with libbpf.BpfObject.open_file(objs["lpm"]) as obj:
        obj.load()
        start = time.perf_counter()
        keys = b"".join(struct.pack("<I", length) + struct.pack("!I", value) for value, length in bl.prefixes)
        libbpf.map_update_batch(obj.map_fd("lpm_v4"), keys, b"\x01\x00\x00\x00" * bl.entries, bl.entries)
        setup = time.perf_counter() - start
        _attach(lab, obj.program_fd("lpm_drop"), libbpf.XDP_FLAGS_DRV_MODE)
        try:
            yield Installed(lab.xdp_drops, setup, ["native XDP, BPF_MAP_TYPE_LPM_TRIE (bench/bpf/lpm.bpf.c)"])
        finally:
            _detach(lab, libbpf.XDP_FLAGS_DRV_MODE)


def _seawall_xdp(generic: bool):
    @contextlib.contextmanager
    def install(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
        driver = XdpDriver(lab.bpffs)
        desired = XdpDesiredState((InterfaceBlocklist(lab.vb, frozenset(bl.cidrs()), XDP_FAILSAFE),))
        try:
            start = time.perf_counter()
            with in_netns(lab.victim):
                report = driver.reconcile(desired)[lab.vb]
            setup = time.perf_counter() - start
            if report.mode != "xdp-native":
                raise RuntimeError(f"Seawall XDP did not attach natively: {report.reason}")
            notes = [f"XdpDriver.reconcile: {report.reason}; {bl.entries:,} CIDRs loaded in {setup:.2f} s"]
            if generic:
                with in_netns(lab.victim):
                    fd = libbpf.prog_fd_by_id(libbpf.xdp_query(lab.ifindex_b).drv_prog_id)
                    try:
                        libbpf.xdp_detach(lab.ifindex_b, libbpf.XDP_FLAGS_DRV_MODE, old_prog_fd=fd)
                        libbpf.xdp_attach(lab.ifindex_b, fd, libbpf.XDP_FLAGS_SKB_MODE)
                    finally:
                        os.close(fd)
                    query = libbpf.xdp_query(lab.ifindex_b)
                if not query.skb_prog_id or query.drv_prog_id:
                    raise RuntimeError(f"generic re-attach failed: {query}")
                notes.append("the driver's program re-attached with XDP_FLAGS_SKB_MODE (generic)")
            yield Installed(lambda: driver.counters(lab.vb).dropped, setup, notes)
        finally:
            with in_netns(lab.victim):
                driver.cleanup()

    return install


# ---------------------------------------------------------------- xdp-filter


def _xdp_filter(lab: Lab, *args: str) -> str:
    """Run xdp-filter in the victim's namespace with our bpffs at /sys/fs/bpf (a
    private mount namespace per call: `ip netns exec` would give it a fresh,
    throw-away bpffs and its pins would vanish with the command)."""
    script = 'mount --bind "$0" /sys/fs/bpf && exec xdp-filter "$@"'
    return run_in(None, ["nsenter", f"--net=/run/netns/{lab.victim}", "unshare", "-m", "sh", "-c", script,
                         str(lab.bpffs), *args]).stdout


@contextlib.contextmanager
def xdp_filter(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
    start = time.perf_counter()
    _xdp_filter(lab, "load", lab.vb, "--mode", "native", "--policy", "allow", "--features", "ipv4")
    try:
        fd = libbpf.obj_get(lab.bpffs / "xdp-filter" / "filter_ipv4")
        try:
            flags = struct.pack("<Q", 1)  # MAP_FLAG_SRC: match the source address
            for host in bl.hosts:
                libbpf.map_update_percpu(fd, struct.pack("!I", host), flags, 8)
        finally:
            os.close(fd)
        setup = time.perf_counter() - start
        with in_netns(lab.victim):
            prog = libbpf.xdp_query(lab.ifindex_b)
        name = "?"
        if prog.drv_prog_id:
            pfd = libbpf.prog_fd_by_id(prog.drv_prog_id)
            try:
                name = libbpf.prog_info(pfd).name
            finally:
                os.close(pfd)
        else:
            raise RuntimeError("xdp-filter is not attached in native mode")
        yield Installed(lab.xdp_drops, setup, [f"xdp-filter 1.3 native, program {name}, {len(bl.hosts):,} exact /32 entries"])
    finally:
        try:
            _xdp_filter(lab, "unload", lab.vb, "--all")
        except Exception:
            _detach(lab, libbpf.XDP_FLAGS_DRV_MODE)


def _xdp_filter_na(bl: Blocklist, traffic: str) -> str | None:
    if bl.entries > XDP_FILTER_MAX:
        return f"n/a: xdp-filter holds at most {XDP_FILTER_MAX:,} exact addresses"
    if bl.entries == 1 and traffic == "spread":
        return "n/a: exact addresses only; the spread sources lie in one /16 (65,536 addresses > 10,000)"
    return None


# ---------------------------------------------------------------- iptables / ipset / nft


def _seawall_raw(failsafe: bool):
    return lambda lab, bl, objs: seawall_raw(lab, bl, objs, failsafe=failsafe)


@contextlib.contextmanager
def seawall_raw(lab: Lab, bl: Blocklist, objs: dict[str, Path], *, failsafe: bool = True) -> Iterator[Installed]:
    dp = RawDataplane("Auto", runner=SubprocessRunner(["ip", "netns", "exec", lab.victim], timeout=600))
    policy = Policy("flood", 10.0, ingress=(Rule(Action.DENY, source=EntityMatch(sets=("blocked",))),))
    state = UntrackedState(
        interfaces=(InterfacePolicy(lab.vb, (policy,)),),
        sets={"blocked": CidrSet("blocked", frozenset(bl.cidrs()))},
        failsafe_in=FAILSAFE_IN if failsafe else (), failsafe_out=FAILSAFE_OUT if failsafe else (),
    )
    try:
        start = time.perf_counter()
        report = dp.reconcile(state)[lab.vb]
        setup = time.perf_counter() - start
        if not report.programmed or report.errors:
            raise RuntimeError(f"RawDataplane did not program {lab.vb}: {report.errors}")

        def dropped() -> int:
            return dp.rule_counters()[("flood", "ingress", 0)][0]

        ports = "Calico's default failsafe ports" if failsafe else "no failsafe ports"
        yield Installed(dropped, setup, [f"RawDataplane (iptables-{report.backend}, {report.backend_reason}); "
                                         f"{ports}; {setup:.2f} s to program"])
    finally:
        dp.cleanup()


IPSET_NAME = "flood-blocklist"


@contextlib.contextmanager
def ipset_raw(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
    hashsize = 1024
    while hashsize < bl.entries:
        hashsize *= 2
    maxelem = max(65536, 2 * bl.entries)
    lines = [f"create {IPSET_NAME} hash:net family inet hashsize {hashsize} maxelem {maxelem}"]
    lines += [f"add {IPSET_NAME} {cidr}" for cidr in bl.cidrs()]
    start = time.perf_counter()
    run_in(lab.victim, ["ipset", "restore"], input="\n".join(lines) + "\n", timeout=600)
    try:
        run_in(lab.victim, ["iptables", "-t", "raw", "-A", "PREROUTING", "-m", "set", "--match-set", IPSET_NAME,
                            "src", "-j", "DROP"])
        setup = time.perf_counter() - start
        version = run_in(None, ["iptables", "--version"]).stdout.strip()

        def dropped() -> int:
            out = run_in(lab.victim, ["iptables", "-t", "raw", "-n", "-v", "-x", "-L", "PREROUTING"]).stdout
            rows = [line.split() for line in out.splitlines() if IPSET_NAME in line]
            return int(rows[0][0])

        try:
            yield Installed(dropped, setup, [f"{version}; ipset hash:net hashsize {hashsize} maxelem {maxelem}"])
        finally:
            run_in(lab.victim, ["iptables", "-t", "raw", "-F", "PREROUTING"], check=False)
    finally:
        run_in(lab.victim, ["ipset", "destroy", IPSET_NAME], check=False)


NFT_TABLE = "floodfilter"
NFT_LIST_LIMIT = 100_000  # above this, nft 1.0.6 takes minutes to list anything in the table


@contextlib.contextmanager
def nft_netdev(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
    with tempfile.NamedTemporaryFile("w", prefix="seawall-flood-", suffix=".nft") as f:
        f.write(f"table netdev {NFT_TABLE} {{\n  counter drops {{ }}\n"
                "  set blocked {\n    type ipv4_addr\n    flags interval\n    elements = { ")
        f.write(", ".join(bl.cidrs()))
        f.write(f" }}\n  }}\n  chain ingress {{\n    type filter hook ingress device \"{lab.vb}\" priority -500; "
                "policy accept;\n    ip saddr @blocked counter name \"drops\" drop\n  }\n}\n")
        f.flush()
        start = time.perf_counter()
        run_in(lab.victim, ["nft", "-f", f.name], timeout=900)
        setup = time.perf_counter() - start
    try:
        version = run_in(None, ["nft", "--version"]).stdout.strip()
        if bl.entries <= NFT_LIST_LIMIT:
            def dropped() -> int:
                out = run_in(lab.victim, ["nft", "list", "counter", "netdev", NFT_TABLE, "drops"]).stdout
                return int(re.search(r"packets (\d+)", out).group(1))
            how = "its named counter"
        else:
            def dropped() -> int:
                # Frames that reached vB minus those that reached IP: what the ingress chain dropped.
                return link_stats(lab.victim, lab.vb)["rx_packets"] - snmp(lab.victim)["Ip.InReceives"]
            how = "vB rx_packets - Ip.InReceives (nft 1.0.6 needs minutes to list a table with a 1M set)"
        yield Installed(dropped, setup, [f"{version}; interval set of {bl.entries:,}; drops counted by {how}; "
                                         f"nft -f took {setup:.1f} s"])
    finally:
        run_in(lab.victim, ["nft", "delete", "table", "netdev", NFT_TABLE], check=False, timeout=900)


@contextlib.contextmanager
def no_filter(lab: Lab, bl: Blocklist, objs: dict[str, Path]) -> Iterator[Installed]:
    def dropped() -> int:
        s = snmp(lab.victim)
        return (s["Udp.NoPorts"] + s["Udp.InErrors"] + s["Ip.InReceives"] - s["Ip.InDelivers"]
                - s["Ip.ForwDatagrams"])

    yield Installed(dropped, 0.0, ["no filter: UDP to closed port 9, the stack drops it (ICMP replies rate-limited)"])


CONTESTANTS = (
    Contestant("seawall-xdp-native", "Seawall XDP, native", _seawall_xdp(False)),
    Contestant("seawall-xdp-generic", "Seawall XDP, generic (skb)", _seawall_xdp(True)),
    Contestant("seawall-raw", "Seawall raw fallback (iptables raw + ipset)", _seawall_raw(True)),
    Contestant("xdp-filter", "xdp-filter (xdp-tools), native, exact /32s", xdp_filter, _xdp_filter_na),
    Contestant("lpm-xdp", "plain LPM-trie XDP, native", lpm_xdp),
    Contestant("ipset-raw", "iptables raw + ipset hash:net", ipset_raw),
    Contestant("nft-netdev", "nftables netdev ingress, interval set", nft_netdev),
    Contestant("floor", "floor: XDP drop without looking", floor),
    Contestant("none", "none: no filter, stack drops", no_filter),
)
# Diagnostics, run only when named with --only (never in the tables' default set).
EXTRA = (
    Contestant("seawall-raw-nofailsafe", "Seawall raw fallback, failsafe port lists empty", _seawall_raw(False)),
    Contestant("floor-touch", "floor + reading the frame (parse, IPv4 source)", floor_touch),
)
BY_NAME = {c.name: c for c in (*CONTESTANTS, *EXTRA)}
