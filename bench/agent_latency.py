"""Benchmark: from a GlobalNetworkSet write to packets being dropped, through the agent.

The agent runs for real (`seawall agent` in a network namespace, embedded SQLite
datastore, native XDP on a veth). Each round adds one CIDR to the seed's set
with the same atomic datastore write `seawall apply` ends with, then asks the
attached program itself (BPF_PROG_TEST_RUN on the pinned program, with its live
maps) whether a packet from that CIDR is dropped, every 0.2 ms. Baseline, same
process: the datastore write alone. Writes bench/results/agent.json and
docs/benchmarks/agent.md.

    .venv/bin/python bench/agent_latency.py [--rounds 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from seawall.api import load_text  # noqa: E402
from seawall.cli import operations  # noqa: E402
from seawall.dataplane.xdp import libbpf  # noqa: E402
from seawall.datastore import SqliteDatastore  # noqa: E402
from seawall.testing import frames as F  # noqa: E402
from seawall.testing.netns import bpffs, netns, unique_name, veth_pair  # noqa: E402

NODE = "bench-node"


def documents(iface: str, nets: list[str]) -> str:
    seed = (REPO / "examples" / "dos-mitigation.yaml").read_text()
    seed = seed.replace("interfaceName: eth0", f"interfaceName: {iface}").replace("node: jasper", f"node: {NODE}")
    return seed.replace('  - "1.2.3.4/32"\n  - "5.6.0.0/16"\n', "".join(f'  - "{n}"\n' for n in nets))


def write(store: SqliteDatastore, text: str) -> None:
    """What `seawall apply` does after parsing: plan against the store, one commit."""
    items = load_text(text, "bench")
    current = operations.read_current(store, [i.key for i in items])
    store.commit(operations.plan(operations.Mode.APPLY, items, current).ops)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seawall-bench-agent-") as tmp, netns() as victim, netns() as other, \
            bpffs(f"/run/seawall-bench-{unique_name('fs')}") as fs, \
            veth_pair(victim, other, addr_a="10.93.0.1/24", addr_b="10.93.0.2/24") as pair:
        db = Path(tmp) / "seawall.db"
        store = SqliteDatastore(db)
        base = ["1.2.3.4/32", "5.6.0.0/16"]
        write(store, documents(pair.name_a, base))
        agent = subprocess.Popen(["ip", "netns", "exec", victim, sys.executable, "-m", "seawall", "--datastore", f"sqlite://{db}",
                                  "agent", "--node", NODE, "--bpffs", str(fs), "--run-dir", str(Path(tmp) / "run")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pin = fs / "seawall" / "xdp" / pair.name_a / "prog"
            deadline = time.monotonic() + 30
            while not pin.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            prog = libbpf.obj_get(str(pin))
            time.sleep(0.5)
            latencies, writes = [], []
            nets = list(base)
            for i in range(args.rounds):
                address = f"10.{100 + i // 250}.{i % 250}.7"
                frame = F.udp4(address)
                assert libbpf.prog_test_run(prog, frame).retval == 2  # passes before the write
                nets.append(f"{address}/32")
                text = documents(pair.name_a, nets)
                start = time.perf_counter()
                write(store, text)
                written = time.perf_counter()
                limit = written + 5
                while libbpf.prog_test_run(prog, frame).retval != 1:
                    if time.perf_counter() > limit:
                        raise SystemExit(f"round {i}: {address} not dropped after 5 s")
                    time.sleep(0.0002)
                latencies.append((time.perf_counter() - start) * 1000)
                writes.append((written - start) * 1000)
                time.sleep(0.05)
        finally:
            agent.terminate()
            agent.wait(timeout=15)
            subprocess.run(["ip", "netns", "exec", victim, sys.executable, "-m", "seawall", "--datastore", f"sqlite://{db}",
                            "agent", "--cleanup", "--node", NODE, "--bpffs", str(fs), "--run-dir", str(Path(tmp) / "run")],
                           capture_output=True)
            store.close()
    result = {
        "rounds": args.rounds,
        "write_to_drop_ms": {"p50": round(statistics.median(latencies), 2), "p99": round(percentile(latencies, 0.99), 2),
                             "max": round(max(latencies), 2)},
        "baseline_write_ms": {"p50": round(statistics.median(writes), 2), "p99": round(percentile(writes, 0.99), 2)},
        "target_ms": 50,
    }
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "agent.json").write_text(json.dumps(result, indent=2) + "\n")
    w, b = result["write_to_drop_ms"], result["baseline_write_ms"]
    (REPO / "docs" / "benchmarks" / "agent.md").write_text(f"""# Benchmark: apply to drop, through the agent

`seawall agent` in a namespace, embedded SQLite datastore, native XDP on a veth; {args.rounds} rounds,
each adding one CIDR to the seed's GlobalNetworkSet with the atomic write `seawall apply` ends with,
then probing the attached program (BPF_PROG_TEST_RUN on its pin, live maps) every 0.2 ms.

| | p50 | p99 | max |
|---|---:|---:|---:|
| datastore write → packets from the CIDR dropped | {w['p50']} ms | {w['p99']} ms | {w['max']} ms |
| baseline (same process): the datastore write alone | {b['p50']} ms | {b['p99']} ms | |

Target: 50 ms — {'met' if w['p99'] < 50 else ('met at p50, not at p99' if w['p50'] < 50 else 'MISSED')}.
(`seawall apply` as a command adds its own start-up, ~0.25 s of Python import, before the write.)
""")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
