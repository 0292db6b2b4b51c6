"""Benchmark: Seawall's XDP blocklist lookup cost against the floor and an LPM trie.

Per-packet cost is measured with BPF_PROG_TEST_RUN (the kernel runs the program
``repeat`` times on one frame and reports the mean ns per run), for IPv4 and
IPv6, a blocked source (hit) and an allowed one (miss), at 0 .. 1,000,000
entries. In the same process, side by side:

* floor  -- a program that drops without looking (the framework's own cost);
* lpm    -- the kernel's standard structure: the same parsing, then one
            BPF_MAP_TYPE_LPM_TRIE lookup (what Calico and Cilium use);
* seawall -- ``blocklist.bpf.c`` with its flat-cost tables.

Also: time to load 1,000,000 CIDRs (parse + compile + batch writes + slot flip)
and the latency of one CIDR update until a packet sees it.

    .venv/bin/python bench/xdp.py           # quick (make bench-xdp), < 2 min
    .venv/bin/python bench/xdp.py --full    # more rounds and repeats

Writes bench/results/xdp.json, docs/benchmarks/xdp.json, docs/benchmarks/xdp.md
and docs/benchmarks/xdp.png.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import random
import statistics  # noqa: F401 - median used by measure_update
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from seawall.dataplane.xdp import libbpf  # noqa: E402
from seawall.dataplane.xdp.build import compile_object, object_path  # noqa: E402
from seawall.dataplane.xdp.loader import capacity_for  # noqa: E402
from seawall.dataplane.xdp.maps import DEFAULT_HIT_SHIFT, MAP_NAMES, SLOT_NAMES, TABLE_MAPS, BlocklistMaps  # noqa: E402
from seawall.dataplane.xdp.tables import HASH_KINDS, BlocklistTables, MapKind  # noqa: E402
from seawall.testing import frames as F  # noqa: E402

RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "benchmarks"
SIZES = (0, 1, 10_000, 100_000, 1_000_000)
MISS_V4 = "100.64.0.1"  # shared address space: never generated
MISS_V6 = "fc00::1"  # unique local: never generated


PROBES = {4: "198.18.7.9/32", 6: "2001:db8:bad:1::/64"}  # in every set; never generated otherwise
EXTRA_PROBES = {4: "198.19.1.0/24", 6: "2001:db8:bad:2::7/128"}


def random_prefixes(family: int, count: int, rng: random.Random) -> list[str]:
    """Random prefixes with realistic lengths: IPv4 /16../32 (mostly long) outside
    198.18.0.0/15; IPv6 /29../128 inside 4,096 provider /32s of 2000::/4."""
    out = []
    firsts = [n for n in range(1, 224) if n not in (10, 100, 127, 198)]
    providers = [(0x2 << 28) | rng.getrandbits(28) for _ in range(4096)]
    providers = [p for p in providers if p != 0x20010DB8]
    for _ in range(count):
        if family == 4:
            length = rng.choice((16, 20, 22, 24, 24, 24, 28, 32, 32, 32, 32, 32))
            value = (rng.choice(firsts) << 24) | rng.getrandbits(24)
            out.append(str(ipaddress.IPv4Network((value, length), strict=False)))
        else:
            length = rng.choice((29, 32, 44, 48, 48, 56, 64, 64, 128, 128, 128))
            value = (rng.choice(providers) << 96) | rng.getrandbits(96)
            out.append(str(ipaddress.IPv6Network((value, length), strict=False)))
    return out


def hit_address(prefix: str) -> str:
    net = ipaddress.ip_network(prefix)
    return str(net.network_address + (net.num_addresses // 2))


def frame_for(address: str) -> bytes:
    return F.udp6(address, dport=9) if ":" in address else F.udp4(address, dport=9)


class Loaded:
    """A loaded (not attached) program and its map fds."""

    def __init__(self, path: Path, prog: str, *, max_entries: dict[str, int] | None = None) -> None:
        self.obj = libbpf.BpfObject.open_file(str(path))
        for name, size in (max_entries or {}).items():
            self.obj.set_map_max_entries(name, size)
        self.obj.load()
        self.fd = self.obj.program_fd(prog)

    def ns_per_packet(self, frame: bytes, *, repeat: int, rounds: int, expect: int) -> float:
        """The fastest of ``rounds`` runs of ``repeat`` packets: the program's cost
        with the least disturbance from the rest of the (shared, 2-vCPU) machine.
        Medians on this VM jump by ~25 ns between runs; minima are stable."""
        samples = []
        for _ in range(rounds):
            result = libbpf.prog_test_run(self.fd, frame, repeat=repeat)
            if result.retval != expect:
                raise SystemExit(f"unexpected verdict {result.retval} (wanted {expect})")
            samples.append(result.duration_ns)
        return float(min(samples))

    def close(self) -> None:
        self.obj.close()


def load_lpm(lpm: Loaded, family: int, prefixes: list[str]) -> None:
    fd = lpm.obj.map_fd("lpm_v4" if family == 4 else "lpm_v6")
    keys = bytearray()
    for prefix in prefixes:
        net = ipaddress.ip_network(prefix)
        keys += struct.pack("<I", net.prefixlen) + net.network_address.packed
    count = len(prefixes)
    if count:
        libbpf.map_update_batch(fd, bytes(keys), b"\x01\x00\x00\x00" * count, count)


def clear_lpm(lpm: Loaded, family: int) -> None:
    fd = lpm.obj.map_fd("lpm_v4" if family == 4 else "lpm_v6")
    size = 8 if family == 4 else 20
    keys = b"".join(libbpf.map_keys(fd, size))
    if keys:
        libbpf.map_delete_batch(fd, keys, len(keys) // size)


def measure(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(20261126)
    with tempfile.TemporaryDirectory(prefix="seawall-bench-xdp-") as tmp:
        floor = Loaded(compile_object(REPO / "bench/bpf/floor.bpf.c", Path(tmp) / "floor.o"), "floor_drop")
        lpm = Loaded(compile_object(REPO / "bench/bpf/lpm.bpf.c", Path(tmp) / "lpm.o"), "lpm_drop")
        # Sized as the driver would size them for the largest set measured here.
        need = {MapKind.V4L2: max(SIZES), MapKind.V6MID: 4 * max(SIZES), MapKind.V6L64: max(SIZES),
                MapKind.V6X: max(SIZES), MapKind.V6LONG: 1}
        sizes = {f"{TABLE_MAPS[kind]}_{slot}": capacity_for(need[kind]) for kind in HASH_KINDS for slot in SLOT_NAMES}
        seawall = Loaded(object_path(), "seawall_xdp", max_entries=sizes)
        maps = BlocklistMaps({name: libbpf.dup_fd(seawall.obj.map_fd(name)) for name in MAP_NAMES})
        maps.set_hit_shift(DEFAULT_HIT_SHIFT)  # as the driver runs it
        rows: list[dict[str, object]] = []
        extra_rows: list[dict[str, object]] = []
        load_times: dict[str, float] = {}
        update_ms = None
        for family in (4, 6):
            pool = random_prefixes(family, max(SIZES), rng)
            for size in SIZES:
                # The same probe prefixes are in every set (from 1 entry on), so
                # rows differ only in how many other entries the set holds.
                prefixes = ([PROBES[family], EXTRA_PROBES[family]] + pool)[:size]
                maps.replace(BlocklistTables().compile(), inactive_known_empty=False)  # start empty
                start = time.perf_counter()
                tables = BlocklistTables.from_cidrs(prefixes)
                maps.replace(tables.compile(), inactive_known_empty=True, old_keys=BlocklistTables().hash_keys())
                if size == max(SIZES):  # parse + compile + batch writes + slot flip
                    load_times[f"ipv{family}"] = time.perf_counter() - start
                    print(f"load 1M ipv{family}: {load_times[f'ipv{family}']:.2f} s", flush=True)
                clear_lpm(lpm, family)
                load_lpm(lpm, family, prefixes)
                probes = [(True, PROBES[family], rows)] if size else []
                if size >= 2:
                    probes.append((True, EXTRA_PROBES[family], extra_rows))
                probes.append((False, None, rows))
                for hit, probe, target in probes:
                    address = hit_address(probe) if hit else (MISS_V4 if family == 4 else MISS_V6)
                    frame = frame_for(address)
                    verdict = 1 if hit else 2
                    row = {
                        "family": f"ipv{family}", "entries": size, "hit": hit,
                        "probe": f"/{probe.split('/')[1]}" if probe else "miss",
                        "seawall_ns": seawall.ns_per_packet(frame, repeat=args.repeat, rounds=args.rounds, expect=verdict),
                        "floor_ns": floor.ns_per_packet(frame, repeat=args.repeat, rounds=args.rounds, expect=1),
                        "lpm_ns": lpm.ns_per_packet(frame, repeat=args.repeat, rounds=args.rounds, expect=verdict),
                    }
                    target.append(row)
                    print(json.dumps(row), flush=True)
            if family == 4:
                update_ms = measure_update(seawall, maps, tables, rng)
                print(f"single update visible: {update_ms:.3f} ms", flush=True)
        floor.close()
        lpm.close()
        maps.close()
        seawall.close()
    return {
        "benchmark": "xdp",
        "mode": "full" if args.full else "quick",
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}, "
                   f"pinned to CPU {max(os.sched_getaffinity(0))}",
        "repeat": args.repeat, "rounds": args.rounds,
        "rows": rows,
        "extra_rows": extra_rows,
        "load_1m_s": load_times["ipv4"],
        "load_1m_ipv6_s": load_times["ipv6"],
        "update_ms": update_ms,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def measure_update(program: Loaded, maps: BlocklistMaps, tables: BlocklistTables, rng: random.Random) -> float:
    """Median ms from 'add this CIDR' until a packet from it is dropped (1M entries loaded)."""
    samples = []
    for i in range(200):
        address = f"100.{64 + (i >> 8) % 64}.{i & 255}.{rng.randrange(1, 255)}"
        frame = frame_for(address)
        start = time.perf_counter()
        maps.apply(tables.add(f"{address}/32"))
        result = libbpf.prog_test_run(program.fd, frame)
        samples.append((time.perf_counter() - start) * 1000)
        if result.retval != 1:
            raise SystemExit(f"update of {address} not visible")
        maps.apply(tables.remove(f"{address}/32"))
    return float(statistics.median(samples))


def render(results: dict[str, object]) -> str:
    rows = results["rows"]
    lines = [
        "# Benchmark: XDP blocklist cost per packet",
        "",
        f"{results['machine']}; BPF_PROG_TEST_RUN, fastest of {results['rounds']} rounds of {results['repeat']:,} runs "
        f"({results['mode']} mode). One frame (60-byte UDP) per row, so caches are warm: this is the program's "
        "own cost. *floor* drops without looking; *lpm* is the same parsing plus one LPM-trie lookup. "
        f"Hits come from the same probe prefix in every set (IPv4 {PROBES[4]}, IPv6 {PROBES[6]}); "
        "the other entries are random (IPv4 /16../32, IPv6 /29../128 in 4,096 provider /32s).",
        "",
        "| family | entries | source | seawall ns | floor ns | lpm ns | seawall − floor | seawall / own 1-entry | seawall / lpm |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = {(r["family"], r["hit"]): r["seawall_ns"] for r in rows if r["entries"] == 1}
    base.update({(r["family"], False): r["seawall_ns"] for r in rows if r["entries"] == 1 and not r["hit"]})
    for r in rows:
        own = base.get((r["family"], r["hit"]))
        lines.append(
            f"| {r['family']} | {r['entries']:,} | {'hit' if r['hit'] else 'miss'} | {r['seawall_ns']:.0f} | {r['floor_ns']:.0f} | "
            f"{r['lpm_ns']:.0f} | {r['seawall_ns'] - r['floor_ns']:.0f} | {r['seawall_ns'] / own:.2f} | "
            f"{r['seawall_ns'] / r['lpm_ns']:.2f} |"
            if own else
            f"| {r['family']} | {r['entries']:,} | {'hit' if r['hit'] else 'miss'} | {r['seawall_ns']:.0f} | {r['floor_ns']:.0f} | "
            f"{r['lpm_ns']:.0f} | {r['seawall_ns'] - r['floor_ns']:.0f} | – | {r['seawall_ns'] / r['lpm_ns']:.2f} |"
        )
    lines += ["", "Other prefix lengths in the same sets (IPv4 /24: one array access; IPv6 /128: exact match under its /64):", "",
              "| family | entries | probe | seawall ns | floor ns | lpm ns |", "|---|---:|---|---:|---:|---:|"]
    for r in results.get("extra_rows", []):
        lines.append(f"| {r['family']} | {r['entries']:,} | {r['probe']} | {r['seawall_ns']:.0f} | "
                     f"{r['floor_ns']:.0f} | {r['lpm_ns']:.0f} |")
    lines += ["", "Targets at 1,000,000 entries:", ""]
    for r in rows:
        if r["entries"] == 1_000_000:
            own = base[(r["family"], r["hit"])]
            flat = r["seawall_ns"] / own
            vs_lpm = r["seawall_ns"] / r["lpm_ns"]
            lines.append(
                f"- {r['family']} {'hit' if r['hit'] else 'miss'}: {flat:.2f}× own 1-entry cost (target ≤ 1.25: "
                f"{'met' if flat <= 1.25 else 'MISSED'}), {vs_lpm:.2f}× the LPM trie (target ≤ 0.5: "
                f"{'met' if vs_lpm <= 0.5 else 'MISSED'}), {r['seawall_ns'] - r['floor_ns']:.0f} ns above the floor"
            )
    load = results["load_1m_s"]
    lines += [
        f"- load 1,000,000 IPv4 CIDRs: {load:.2f} s (target < 3 s: {'met' if load < 3 else 'MISSED'}); "
        f"1,000,000 IPv6 CIDRs: {results['load_1m_ipv6_s']:.2f} s",
        f"- one CIDR added until a packet is dropped: {results['update_ms']:.3f} ms median "
        f"(target < 1 ms: {'met' if results['update_ms'] < 1 else 'MISSED'})",
        "",
        "![ns per packet by entries](xdp.png)",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, family in zip(axes, ("ipv4", "ipv6"), strict=True):
        for hit, style in ((True, "-"), (False, "--")):
            rows = [r for r in results["rows"] if r["family"] == family and r["hit"] == hit and r["entries"] > 0]
            xs = [r["entries"] for r in rows]
            label = "hit" if hit else "miss"
            ax.plot(xs, [r["seawall_ns"] for r in rows], style, marker="o", color="tab:blue", label=f"seawall ({label})")
            ax.plot(xs, [r["lpm_ns"] for r in rows], style, marker="s", color="tab:orange", label=f"LPM trie ({label})")
            ax.plot(xs, [r["floor_ns"] for r in rows], style, color="grey", label=f"floor ({label})")
        ax.set_xscale("log")
        ax.set_title(family)
        ax.set_xlabel("blocked CIDRs")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("ns per packet (BPF_PROG_TEST_RUN, fastest round)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def pin_to_one_cpu() -> None:
    """Run on the last CPU at the highest priority we may, as the flood lab did:
    the kernel times BPF_PROG_TEST_RUN on the CPU it runs on."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    try:
        os.nice(-20)
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="more rounds and repeats")
    args = parser.parse_args()
    pin_to_one_cpu()
    args.repeat = 1_000_000 if args.full else 300_000
    args.rounds = 15 if args.full else 9
    results = measure(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    (RESULTS / "xdp.json").write_text(text)
    (DOCS / "xdp.json").write_text(text)
    (DOCS / "xdp.md").write_text(render(results))
    plot(results, DOCS / "xdp.png")
    print(render(results))


if __name__ == "__main__":
    main()
