"""docs/benchmarks.md and docs/benchmarks/flood-*.png from the flood results.

The page shows the last full run (bench/flood/results/full.json) when there is
one, then the last quick run (quick.json, what `make bench` produces); the
plots come from the full run if there is one, else from the quick run.
"""

from __future__ import annotations

import json
from pathlib import Path

ORDER = ("seawall-xdp-native", "seawall-xdp-generic", "seawall-raw", "xdp-filter", "lpm-xdp", "ipset-raw",
         "nft-netdev", "floor", "none")
LABELS = {
    "seawall-xdp-native": "Seawall XDP, native",
    "seawall-xdp-generic": "Seawall XDP, generic (skb)",
    "seawall-raw": "Seawall raw fallback (iptables raw + ipset)",
    "xdp-filter": "xdp-filter, native (exact /32s)",
    "lpm-xdp": "plain LPM-trie XDP, native",
    "ipset-raw": "iptables raw + ipset hash:net",
    "nft-netdev": "nft netdev ingress, interval set",
    "floor": "floor: XDP drop, no lookup",
    "none": "none: no filter (stack drops)",
}
OTHER_PAGES = (
    ("benchmarks/xdp.md", "XDP lookup cost per packet (BPF_PROG_TEST_RUN, IPv4 and IPv6, up to 1M entries)"),
    ("benchmarks/apply.md", "applying a large GlobalNetworkSet (`seawall apply`)"),
    ("benchmarks/raw.md", "programming the iptables raw tier with 1M CIDRs"),
    ("benchmarks/agent.md", "datastore write to XDP drop through the agent"),
    ("benchmarks/cluster.md", "convergence across three nodes with etcd"),
)


def _rows(result: dict) -> dict[tuple[str, int, str], dict]:
    return {(r["contestant"], r["entries"], r["traffic"]): r for r in result["rows"]}


def _na(result: dict) -> dict[tuple[str, int, str], str]:
    out = {(r["contestant"], r["entries"], r["traffic"]): r["reason"] for r in result.get("not_applicable", [])}
    for e in result.get("errors", []):
        for traffic in e["traffic"].split(","):
            out[(e["contestant"], e["entries"], traffic)] = f"error: {e['error']}"
    return out


def _fmt_n(n: int) -> str:
    return f"{n:,}"


def table(result: dict, traffic: str) -> list[str]:
    rows, na = _rows(result), _na(result)
    entries = sorted({r["entries"] for r in result["rows"] if r["traffic"] == traffic}
                     | {k[1] for k in na if k[2] == traffic})
    if not entries:
        return []
    lines = [
        "| N | contestant | ns/pkt, median [min–max] | × floor row | × paired floor, median [min–max] | "
        "Mpps per core (1000/ns), median [min–max] | drop ratio (min rep) | frames sent (lost at the veth ring) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in entries:
        floor = rows.get(("floor", n, traffic))
        for name in ORDER:
            key = (name, n, traffic)
            if key in rows:
                r = rows[key]
                vs_floor = f"{r['ns_per_pkt'] / floor['ns_per_pkt']:.2f}" if floor else "–"
                lines.append(
                    f"| {_fmt_n(n)} | {LABELS[name]} | **{r['ns_per_pkt']:.0f}** [{r['ns_min']:.0f}–{r['ns_max']:.0f}] | "
                    f"{vs_floor} | {r['ratio_to_paired_floor']:.2f} [{r['ratio_to_paired_floor_min']:.2f}–"
                    f"{r['ratio_to_paired_floor_max']:.2f}] | {r['mpps']:.2f} [{r['mpps_min']:.2f}–{r['mpps_max']:.2f}] | "
                    f"{r['drop_ratio']:.4f} ({r['drop_ratio_min']:.4f}) | {r['sent']:,}"
                    + (f" ({r['lost_at_veth']:,})" if r.get("lost_at_veth") else "") + " |")
            elif key in na:
                lines.append(f"| {_fmt_n(n)} | {LABELS[name]} | {na[key]} | | | | | |")
    return lines


def _ratio_line(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def targets(result: dict) -> list[str]:
    rows = _rows(result)
    out: list[str] = []
    cells = sorted({(r["entries"], r["traffic"]) for r in result["rows"]}, key=lambda c: (c[1], c[0]))
    for n, traffic in cells:
        sw = rows.get(("seawall-xdp-native", n, traffic))
        floor = rows.get(("floor", n, traffic))
        if not sw:
            continue
        limit = 1.15 if traffic == "single" else 1.5
        parts = []
        if floor:
            row_ratio = sw["ns_per_pkt"] / floor["ns_per_pkt"]
            parts.append(f"Seawall XDP native / floor = **{sw['ratio_to_paired_floor']:.2f}×** paired "
                         f"({row_ratio:.2f}× row to row; {sw['ns_per_pkt'] - floor['ns_per_pkt']:+.0f} ns) – target ≤ {limit}: "
                         f"{_ratio_line(sw['ratio_to_paired_floor'] <= limit)}")
        for peer in ("ipset-raw", "nft-netdev"):
            p = rows.get((peer, n, traffic))
            if p:
                x = p["ns_per_pkt"] / sw["ns_per_pkt"]
                parts.append(f"{x:.1f}× cheaper than {peer} (≥ 4: {_ratio_line(x >= 4)})")
        lpm = rows.get(("lpm-xdp", n, traffic))
        none = rows.get(("none", n, traffic))
        if lpm:
            x = lpm["ns_per_pkt"] / sw["ns_per_pkt"]
            extra = f" (target at 1M spread > 10: {_ratio_line(x > 10)})" if n == 1_000_000 and traffic == "spread" else ""
            parts.append(f"lpm-xdp costs {x:.1f}× Seawall{extra}")
        if none:
            x = none["ns_per_pkt"] / sw["ns_per_pkt"]
            extra = f" (cheaper than no filter: {_ratio_line(x > 1)})" if n == 1_000_000 and traffic == "spread" else ""
            parts.append(f"no filter costs {x:.1f}× Seawall{extra}")
        raw, ipset = rows.get(("seawall-raw", n, traffic)), rows.get(("ipset-raw", n, traffic))
        if raw and ipset:
            x = raw["ns_per_pkt"] / ipset["ns_per_pkt"]
            overlap = raw["ns_min"] <= ipset["ns_max"]
            verdict = "met" if x <= 1.0 else ("within the spread of the repetitions" if overlap else "**MISSED**")
            parts.append(f"seawall-raw / ipset-raw = {x:.2f} ({raw['ns_per_pkt']:.0f} vs {ipset['ns_per_pkt']:.0f} ns; "
                         f"no worse: {verdict})")
        out.append(f"- N = {n:,}, {traffic}: " + "; ".join(parts))
    return out


def analysis(result: dict) -> list[str]:
    """Why the targets that were missed were missed: the increments of this run, and what the code does."""
    rows = _rows(result)
    lines: list[str] = []
    for traffic in ("single", "spread"):
        inc = [(n, rows[("seawall-xdp-native", n, traffic)]["ns_per_pkt"] - rows[("floor", n, traffic)]["ns_per_pkt"],
                rows[("seawall-xdp-native", n, traffic)]["ratio_to_paired_floor"])
               for n in sorted({r["entries"] for r in result["rows"]})
               if ("seawall-xdp-native", n, traffic) in rows and ("floor", n, traffic) in rows]
        if inc:
            lines.append(f"- Seawall XDP native over the floor, `{traffic}`: " + ", ".join(
                f"N = {n:,}: {d:+.0f} ns ({x:.2f}× paired)" for n, d, x in inc) + ".")
    raw = []
    for (name, n, traffic), r in rows.items():
        if name == "seawall-raw" and ("ipset-raw", n, traffic) in rows:
            raw.append(r["ns_per_pkt"] - rows[("ipset-raw", n, traffic)]["ns_per_pkt"])
    if raw:
        lines.append(f"- Seawall raw over ipset-raw: {min(raw):+.0f} to {max(raw):+.0f} ns per packet.")
    lines += ["", ANALYSIS]
    return lines


DIAG_LABELS = {**LABELS, "floor-touch": "floor + reading the frame (Ethernet parse, IPv4 source)",
               "seawall-raw-nofailsafe": "Seawall raw fallback, failsafe port lists empty"}


def diagnostics(result: dict) -> list[str]:
    plan = result["plan"]
    lines = ["### Diagnostics (`bench/flood/flood.py --diagnostics`)", "",
             f"{result['when']}, {plan['reps']} repetitions × {plan['rounds']} rounds, same method; two contestants "
             "that exist only to explain the others: *floor-touch* (the floor plus reading the frame as Seawall "
             "does: Ethernet/VLAN parse and the IPv4 source) and *Seawall raw with empty failsafe port lists*.", "",
             "| N | traffic | contestant | ns/pkt, median [min–max] | × paired floor, median [min–max] |",
             "|---:|---|---|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['entries']:,} | {r['traffic']} | {DIAG_LABELS.get(r['contestant'], r['contestant'])} | "
                     f"{r['ns_per_pkt']:.0f} [{r['ns_min']:.0f}–{r['ns_max']:.0f}] | {r['ratio_to_paired_floor']:.2f} "
                     f"[{r['ratio_to_paired_floor_min']:.2f}–{r['ratio_to_paired_floor_max']:.2f}] |")
    return lines + [""]


def machine_table(result: dict) -> list[str]:
    m = result["machine"]
    keys = (("kernel", "kernel"), ("kernel_config", "kernel config"), ("os", "OS"), ("cpu_model", "CPU"),
            ("cpu_family_model", "CPU id"), ("cpu_mhz", "CPU MHz (reported)"), ("cache", "cache (reported)"),
            ("cpus", "vCPUs"), ("hypervisor", "virtual machine"), ("memory", "memory"), ("clang", "clang"),
            ("libbpf", "libbpf"), ("xdp-tools", "xdp-tools"), ("iptables", "iptables"), ("ipset", "ipset"),
            ("nft", "nftables"), ("python", "Python"), ("measured_cpu", "CPU used for generator + receiver"),
            ("loadavg_at_start", "load average at start"))
    lines = ["| | |", "|---|---|"]
    lines += [f"| {label} | {m[k]} |" for k, label in keys if k in m]
    return lines


def section(result: dict, title: str, *, explain: bool) -> list[str]:
    plan = result["plan"]
    lines = [f"### {title}", "",
             f"{result['when']}, `{result['mode']}` mode, {result['wall_s']:.0f} s wall time for the whole run; "
             f"{plan['reps']} repetitions per cell, each {plan['rounds']} rounds of (generator alone, contestant, "
             f"paired floor); a contestant segment is ~{plan['contestant_segment_cpu_s']} s of CPU.", ""]
    bl = result.get("blocklists", {})
    if bl:
        lines.append("Blocklists (prefix lengths after rejecting overlaps): " + "; ".join(
            f"N = {int(n):,}: " + ", ".join(f"{k} {v:,}" for k, v in info["lengths"].items()) for n, info in bl.items()) + ".")
        lines.append("")
    for traffic, what in (("single", "one source"), ("spread", "4,096 sources across the blocklist")):
        t = table(result, traffic)
        if t:
            lines += [f"**Traffic `{traffic}`** ({what}):", "", *t, ""]
    unaccounted = sum(abs(r.get("unaccounted", 0)) for r in result["rows"])
    passed = [r for r in result["rows"] if r.get("passed", 0) > 0.001 * r["delivered"]]
    lines.append(f"Accounting: {sum(r['sent'] for r in result['rows']):,} frames sent in all; "
                 + ("every one was delivered to vB or counted as lost at its ring (unaccounted: 0)"
                    if unaccounted == 0 else f"**{unaccounted:,} frames unaccounted for**")
                 + "; " + ("no contestant let more than 0.1 % of the delivered flood through." if not passed else
                           "let more than 0.1 % through: " + ", ".join(f"{r['contestant']} N={r['entries']:,} {r['traffic']}"
                                                                       for r in passed) + "."))
    lines.append("")
    tl = targets(result)
    if tl:
        lines += ["Targets, from this run:", "", *tl, ""]
        if explain:
            lines += [*analysis(result), ""]
    if result.get("errors"):
        lines += ["Errors:", ""] + [f"- {e['contestant']} N={e['entries']:,} {e['traffic']}: {e['error']}"
                                    for e in result["errors"]] + [""]
    notes = {}
    for r in sorted(result["rows"], key=lambda r: -r["entries"]):  # the largest N says most
        if r.get("notes"):
            notes.setdefault(r["contestant"], "; ".join(r["notes"]))
    if notes:
        lines += ["How each contestant was set up in this run:", ""]
        lines += [f"- `{name}`: {notes[name]}" for name in ORDER if name in notes] + [""]
    return lines


METHOD = """\
- **Lab** (`bench/flood/lab.py`): namespaces *sender* and *victim* joined by a veth pair
  (vA 198.18.0.1 → vB 198.18.0.2), plus a second pair from *sender* to *ref* whose receiver runs
  the floor program (the paired floor, below). GRO is on for vB, so veth takes its NAPI path
  for redirected frames even when no XDP program is attached there. The victim has a default
  route back to vA (a real host has one), so the no-filter baseline pays for its rate-limited ICMP
  port-unreachable replies. Frames never leave the namespaces.
- **Generator** (`bench/flood/bpf/gen.bpf.c`): `BPF_PROG_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`
  on vA; the program returns `XDP_TX`, so each 60-byte UDP frame (to 198.18.0.2:9, a closed port)
  goes through vA's `ndo_xdp_xmit` into vB's ring, as a driver hands received frames to XDP.
  `spread` rewrites the source address round robin over 4,096 sources (and writes the IPv4
  checksum precomputed for each). Every run is bounded in frames (`repeat`) and in seconds
  (SIGALRM: the kernel stops the run between batches); the generator counts its frames itself.
- **CPU** (inline mode, as the lab that preceded this bench): the generator thread is pinned to one
  CPU at nice −20 (its autogroup too), vB's NAPI poll runs in softirq on the same CPU (in the
  generator's context or that CPU's ksoftirqd, also at nice −20). The kernel has no
  IRQ_TIME_ACCOUNTING, so softirq time is charged to the task it interrupts:
  `/proc/<tid>/schedstat` of the generator + ksoftirqd is the CPU time of sending *and* receiving.
- **Generator subtracted**: each repetition runs K rounds of three segments: (1) the generator alone
  (same frames, program returns `XDP_DROP`), (2) the contestant, (3) the paired floor. A round's ns/pkt
  = CPU of (2) per frame − the generator's ns/frame from (1) of the same round (per frame delivered
  to vB); a repetition's figure is the median of its rounds; a cell's, the median of its repetitions
  (with their min–max). The ns/pkt therefore includes veth's hand-off (what a NIC driver's rx path
  would cost), not the generator.
- **Paired floor**: (3) is the floor measured within the same second as the contestant. This VM's
  speed drifts by ±25 % over seconds (the same generator-only run costs 30–52 ns), so the ratio
  contestant / paired floor is steadier than a ratio between rows measured minutes apart; both are shown.
- **Mpps** = 1000 / ns per packet: what one core spent only on receiving would drop. (Wall-clock rates
  are not reported: every `BPF_PROG_RUN` call spends ~20 ms off CPU in set-up/tear-down, and on this shared
  VM the CPU is not ours alone.) `mpps_inline` in the JSON is sender + receiver on one core.
- **Drop ratio** = packets the contestant's own counter dropped / frames delivered to vB. Every frame
  sent is accounted for in the JSON: `sent` (the generator's own counter) = `delivered` (vA's
  `tx_queue_0_xdp_xmit`) + `lost_at_veth` (`tx_queue_0_xdp_xmit_errors`: vB's 256-slot ring was full,
  which happens when the receive work was deferred to ksoftirqd while the generator kept sending);
  `delivered` = `dropped` + `passed` (what the contestant let through); `unaccounted` = sent − delivered
  − lost. The table shows lost frames next to the frames sent.
  Counters: Seawall XDP `sw_stats` DROP; xdp-filter, lpm-xdp and floor veth's `rx_queue_0_xdp_drops`;
  Seawall raw and ipset-raw their rule's packet counter; nft its named counter (N ≤ 10,000), at 1M
  vB rx_packets − `Ip.InReceives` (nft 1.0.6 takes minutes to list a table holding a 1M set); none:
  `Udp.NoPorts` + `Udp.InErrors` + (`Ip.InReceives` − `Ip.InDelivers`).
- **Blocklists** (`bench/flood/prefixes.py`): N non-overlapping random IPv4 prefixes, lengths drawn
  /16../32 (1:1:1:3:1:5 for /16,/20,/22,/24,/28,/32; overlapping draws rejected), outside special-use
  space. N = 1 is one /16. The `single` source is the host of a /32 entry (N = 1: a host in the /16):
  the longest match, the deepest lookup for an LPM trie. `spread` uses one host in each of 4,096 prefixes
  drawn at random from the whole list (N = 1: 4,096 hosts in the /16). xdp-filter gets the N
  representative hosts as exact addresses (the sources are among them); it holds at most 10,000, so
  it has no row at 1M (and none for N = 1 spread: a /16 is 65,536 addresses); such cells are listed
  under `not_applicable` in the JSON, not as rows.
- **Contestants** (`bench/flood/contestants.py`): Seawall XDP native through `XdpDriver.reconcile`
  (as the agent), with Calico's default inbound failsafe ports; Seawall XDP generic: the same, then
  the driver's own program detached and re-attached with `XDP_FLAGS_SKB_MODE` (veth always offers
  native XDP, so the driver would never pick generic on it); Seawall raw: `RawDataplane.reconcile`
  of one interface policy denying the set, default failsafe ports; the peers as their users would
  type them (table notes below)."""

ANALYSIS = """\
Why the missed targets are missed (what the code does per packet; the numbers are in the tables
above and in the diagnostics below):

- **XDP native within 1.15× / 1.5× of the floor.** The floor returns `XDP_DROP` without reading
  the frame; on this Xeon it costs only ~30–55 ns including veth's hand-off (the lab's EPYC: ~72 ns),
  so 1.15× leaves ~5–8 ns. Reading the frame is not the problem: *floor-touch* (the floor plus
  Seawall's Ethernet parse and a read of the IPv4 source) stays within ~0.95–1.15× of the floor,
  the frame being in the cache. Seawall's program adds, for every dropped packet, the failsafe-port
  test (array lookup + bitmap), the config lookup (active slot, hit sampling), the DIR-24-8 level-1
  array read, for a /25–/32 entry a level-2 hash lookup (the `single` source is a /32: the longest
  path), the per-CPU `sw_stats` update and `bpf_get_prandom_u32` for hit sampling (one drop in 16
  also updates the per-CPU LRU `sw_hits`): four to five map lookups and two helper calls, ~20–40 ns
  here. N = 1 (one /16: no level-2 lookup) costs about as much, so it is this fixed work, not the
  size of the table, that separates Seawall from the floor. The BPF_PROG_TEST_RUN micro-benchmark
  ([xdp.md](benchmarks/xdp.md)) shows the same (~31 ns against the floor's 8 ns for a /32 hit);
  xdp-filter (two hash lookups and a counter) lands at a similar ratio. Meeting 1.15× would take a
  program doing about one cached load per packet: no per-packet statistics or sampling, failsafe
  and table in one lookup.
- **Spread sources.** 4,096 sources read 4,096 different level-1 words (the array is 4 MiB),
  level-2 bitmaps (32 B each in a hash map; ~575,000 of them at 1M) and LRU hit-counter entries:
  cache and, under nested paging, TLB misses. Seawall stays several times cheaper than the LPM trie
  (a chain of dependent misses) and than no filter, but it is memory-bound too, hence above 1.5× the
  floor; and the LPM trie on this CPU (~1 µs per packet at 1M spread) is not as slow as on the
  lab's EPYC (~1.7 µs), so ">10× cheaper than the LPM trie" is missed as well.
- **≥ 4× cheaper than ipset-raw at 1M spread.** ipset's hash:net does one hash probe per prefix
  length present (6 here) and, on this CPU, stays at ~0.5–0.6 µs even spread; Seawall's memory-bound
  ~150 ns is then a little under 4× cheaper.
- **Seawall raw no worse than ipset-raw.** The hand-written peer is one rule (`-m set ... -j DROP`).
  Seawall's raw tier renders Calico's structure: every packet of the interface walks the
  `sw-PREROUTING` dispatch, a mark reset, the failsafe chain (9 inbound destination ports and 9
  source ports of outbound failsafes, a rule each), three mark tests and only then the policy
  chain's set match; iptables-nft gives every rule a counter. That is ~27 rule evaluations against
  one. With the failsafe lists emptied (diagnostics) the gap roughly halves; the rest is the
  dispatch and mark rules. Matching the peer would take the set match first (or the failsafe ports
  in one set lookup) and fewer rules per packet."""

CAVEATS = """\
- veth, not a NIC: no DMA, no rx-ring refill, no interrupts. The XDP rows' increments over the
  floor are the transferable part; absolute Mpps will differ on hardware.
- Inline mode keeps the frame hot in the cache of the one core doing both sides: optimistic for
  data access, but the same for every contestant.
- The VM is shared (2 vCPUs, other work running, unknown neighbours on the host); its speed moves
  by up to ±25 % over seconds. Compare ratios within one run, preferably the paired ones.
- Spread traffic at 1M defeats the CPU caches and, with nested paging, the TLB: every lookup
  structure becomes memory-bound."""


def plot(result: dict, docs: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = _rows(result)
    for traffic in ("single", "spread"):
        entries = sorted({r["entries"] for r in result["rows"] if r["traffic"] == traffic})
        if not entries:
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        for name in ORDER:
            pts = [rows[(name, n, traffic)] for n in entries if (name, n, traffic) in rows]
            if not pts:
                continue
            xs = [p["entries"] for p in pts]
            ys = [p["ns_per_pkt"] for p in pts]
            err = [[p["ns_per_pkt"] - p["ns_min"] for p in pts], [p["ns_max"] - p["ns_per_pkt"] for p in pts]]
            style = "-" if name.startswith("seawall") else "--"
            ax.errorbar(xs, ys, yerr=err, fmt=style, marker="o", capsize=3, label=LABELS[name],
                        linewidth=2.5 if name == "seawall-xdp-native" else 1.2)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_yscale("log")
        ax.set_xticks(entries)
        ax.set_xticklabels([f"{n:,}" for n in entries])
        ax.set_xlabel("blocked CIDRs (N)")
        ax.set_ylabel("CPU ns per dropped packet, receiving side (log)")
        ax.set_title(f"Flood, traffic '{traffic}' ({result['mode']} run, median and min–max of "
                     f"{result['plan']['reps']} reps)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = docs / "benchmarks" / f"flood-{traffic}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path.name)
    return written


def write_docs(archive: Path, docs: Path) -> Path:
    runs = {}
    for mode in ("full", "quick"):
        path = archive / f"{mode}.json"
        if path.exists():
            runs[mode] = json.loads(path.read_text())
    main = runs.get("full") or runs.get("quick")
    if main is None:
        raise FileNotFoundError(f"no flood results in {archive}")
    plots = plot(main, docs)
    lines = [
        "# Benchmarks", "",
        "Every benchmark runs with `make`: `make bench` is the quick flood test below (under five minutes), "
        "`make bench-full` the full one, and `make bench-all` runs every benchmark of the project. "
        "The other pages:", "",
        *[f"- [{title}]({page})" for page, title in OTHER_PAGES], "",
        "## Flood test: dropping a flood from a blocklist, against the peers", "",
        "A 60-byte UDP flood from blocked sources hits one veth; each contestant drops it from a "
        "blocklist of N CIDRs. Figures: CPU nanoseconds per dropped packet on the receiving side (the "
        "generator's own cost measured in the same run and subtracted), packets per second per core, and "
        "the drop ratio. Code: `bench/flood/` (`flood.py` runs it); raw results: `bench/results/flood.json` "
        "(the last quick or full run) and `bench/flood/results/{quick,full,diagnostics}.json` (the last of each kind).", "",
        "### Machine", "", *machine_table(main), "",
        "### Method", "", METHOD, "",
    ]
    if "full" in runs:
        lines += section(runs["full"], "Results: full run (`make bench-full`)", explain=True)
    if plots:
        lines += ["Plots (" + ("full" if "full" in runs else "quick") + " run; log scales, bars = min–max):", ""]
        lines += [f"![ns per packet against N, {p}](benchmarks/{p})" for p in plots] + [""]
    if "quick" in runs:
        lines += section(runs["quick"], "Results: quick run (`make bench`)", explain="full" not in runs)
    diag = archive / "diagnostics.json"
    if diag.exists():
        lines += diagnostics(json.loads(diag.read_text()))
    lines += ["### Caveats", "", CAVEATS, ""]
    page = docs / "benchmarks.md"
    page.write_text("\n".join(lines))
    return page
