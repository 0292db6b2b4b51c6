"""Benchmark: ``seawall apply`` of a GlobalNetworkSet with up to 1,000,000 nets.

Target (issue 2): a 1M-net set applies in under 10 s on this machine, with the
peak memory reported. Each size is measured as a real ``seawall apply``
subprocess on a fresh SQLite file (create), then again with one more CIDR
(update: the attack response), in YAML and in JSON. The baseline, run in the
same process, is the same command with a 1-net set: the fixed cost of starting
Python and opening the store, which every row includes.

Writes docs/benchmarks/apply.json, the table in docs/benchmarks/apply.md and
the plot docs/benchmarks/apply.png.

    .venv/bin/python bench/apply_million.py [--sizes 1,10000,100000,1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "benchmarks"


def nets(count: int, extra: int = 0) -> list[str]:
    """Distinct IPv4 /32s and /24s, as a real blocklist would mix them."""
    out = []
    for i in range(count + extra):
        a, b, c = 11 + (i >> 16) % 200, (i >> 8) & 255, i & 255
        out.append(f"{a}.{b}.{c}.0/24" if i % 4 == 0 else f"{a}.{b}.{c}.{1 + i % 250}/32")
    return out


def write_input(path: Path, fmt: str, count: int, extra: int = 0) -> None:
    items = nets(count, extra)
    if fmt == "json":
        doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
               "metadata": {"name": "blocklist", "labels": {"dos-blacklist": "true"}},
               "spec": {"nets": items}}
        path.write_text(json.dumps(doc))
        return
    head = ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: blocklist\n"
            "  labels:\n    dos-blacklist: 'true'\nspec:\n  nets:\n")
    path.write_text(head + "".join(f"  - {n}\n" for n in items))


def run_apply(db: Path, path: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one ``seawall apply`` subprocess."""
    cmd = [sys.executable, "-m", "seawall", "--datastore", f"sqlite://{db}", "apply", "-f", str(path)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0 or "Successfully applied" not in out.read():
            raise SystemExit(f"apply failed ({proc.returncode}): {err.read()}")
    return elapsed, usage.ru_maxrss


def measure(size: int, fmt: str, repeat: int, work: Path) -> dict[str, object]:
    src = work / f"set-{size}.{fmt}"
    upd = work / f"set-{size}-plus1.{fmt}"
    write_input(src, fmt, size)
    write_input(upd, fmt, size, extra=1)
    creates, updates, rss = [], [], []
    for attempt in range(repeat):
        db = work / f"db-{size}-{fmt}-{attempt}" / "seawall.db"
        seconds, peak = run_apply(db, src)
        creates.append(seconds)
        rss.append(peak)
        seconds, peak = run_apply(db, upd)
        updates.append(seconds)
        rss.append(peak)
    return {
        "nets": size, "format": fmt, "input_bytes": src.stat().st_size,
        "create_s": statistics.median(creates), "update_s": statistics.median(updates),
        "create_all_s": creates, "update_all_s": updates, "peak_rss_mib": max(rss) / 1024,
    }


def render_markdown(results: dict[str, object]) -> str:
    rows = results["rows"]
    base = results["baseline_s"]
    lines = [
        "# Benchmark: applying a large GlobalNetworkSet",
        "",
        f"Machine: {results['machine']}. Median of {results['repeat']} runs, each a real `seawall apply` "
        "subprocess on a fresh SQLite file. *create* = first apply; *update* = re-apply with one CIDR "
        "more (the attack response). Baseline (same process): the same command on a 1-net set, "
        f"**{base:.3f} s** — interpreter start-up and store open, included in every row.",
        "",
        "| nets | format | input | create (s) | update (s) | update − baseline (s) | peak RSS (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['nets']:,} | {row['format']} | {row['input_bytes'] / 1e6:.1f} MB | {row['create_s']:.2f} | "
            f"{row['update_s']:.2f} | {row['update_s'] - base:.2f} | {row['peak_rss_mib']:.0f} |"
        )
    million = [r for r in rows if r["nets"] == 1_000_000]
    if million:
        worst = max(max(r["create_all_s"] + r["update_all_s"]) for r in million)
        verdict = "meets" if worst < 10 else "MISSES"
        lines += ["", f"Target: 1,000,000 nets in under 10 s — slowest 1M run {worst:.2f} s: {verdict} the target."]
    lines += ["", "![apply time by set size](apply.png)", ""]
    return "\n".join(lines)


def plot(results: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for fmt in ("yaml", "json"):
        rows = [r for r in results["rows"] if r["format"] == fmt]
        ax.plot([r["nets"] for r in rows], [r["create_s"] for r in rows], marker="o", label=f"create ({fmt})")
        ax.plot([r["nets"] for r in rows], [r["update_s"] for r in rows], marker="x", linestyle="--", label=f"update ({fmt})")
    ax.axhline(results["baseline_s"], color="grey", linestyle=":", label="baseline (1 net)")
    ax.axhline(10, color="red", linestyle="-.", label="target 10 s")
    ax.set_xscale("log")
    ax.set_xlabel("nets in the GlobalNetworkSet")
    ax.set_ylabel("seconds (median)")
    ax.set_title("seawall apply of one GlobalNetworkSet")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="seawall-bench-") as tmp:
        work = Path(tmp)
        baseline = measure(1, "yaml", args.repeat, work)
        rows = [measure(size, fmt, args.repeat, work) for size in sizes for fmt in ("yaml", "json")]
    results = {
        "benchmark": "apply_million",
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}, Python {platform.python_version()}",
        "repeat": args.repeat,
        "baseline_s": baseline["update_s"],
        "rows": rows,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "apply.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "apply.md").write_text(render_markdown(results))
    plot(results, OUT / "apply.png")
    print(render_markdown(results))


if __name__ == "__main__":
    main()
