"""Benchmark: from a GlobalNetworkSet write to packets being dropped, through the agent.

The agent runs for real (`seawall agent` in a network namespace, embedded SQLite
datastore, native XDP on a veth). Each round adds one CIDR to the seed's set
with the same atomic datastore write `seawall apply` ends with, then asks the
attached program itself (BPF_PROG_TEST_RUN on the pinned program, with its live
maps) whether a packet from that CIDR is dropped, every 0.2 ms. Baseline, same
process: the datastore write alone.

Two configurations in the same run: the seed's small set alone, and the same
with a second, resident GlobalNetworkSet of ``--resident`` nets (default 1M,
same label) that the agent enforces all along — the agent's memory (RSS) and
its time to enforce the big set at start-up are recorded too. Writes
bench/results/agent.json and docs/benchmarks/agent.md.

    .venv/bin/python bench/agent_latency.py [--rounds 100] [--resident 1000000]
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
from seawall.datastore import Datastore, SqliteDatastore  # noqa: E402
from seawall.testing import frames as F  # noqa: E402
from seawall.testing.netns import bpffs, netns, unique_name, veth_pair  # noqa: E402

NODE = "bench-node"


def documents(iface: str, nets: list[str]) -> str:
    seed = (REPO / "examples" / "dos-mitigation.yaml").read_text()
    seed = seed.replace("interfaceName: eth0", f"interfaceName: {iface}").replace("node: jasper", f"node: {NODE}")
    return seed.replace('  - "1.2.3.4/32"\n  - "5.6.0.0/16"\n', "".join(f'  - "{n}"\n' for n in nets))


def write(store: Datastore, text: str) -> None:
    """What `seawall apply` does after parsing: plan against the store, one commit."""
    items = load_text(text, "bench")
    current = operations.read_current(store, [i.key for i in items])
    store.commit(operations.plan(operations.Mode.APPLY, items, current).ops)


def start_agent(victim: str, db: Path, fs: Path, run_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """`seawall agent` in the victim namespace, its stderr to ``log``."""
    with open(log, "w") as err:
        return subprocess.Popen(["ip", "netns", "exec", victim, sys.executable, "-m", "seawall", "--datastore", f"sqlite://{db}",
                                 "agent", "--node", NODE, "--bpffs", str(fs), "--run-dir", str(run_dir)],
                                stdout=subprocess.DEVNULL, stderr=err)


def stop_agent(agent: subprocess.Popen[bytes], victim: str, db: Path, fs: Path, run_dir: Path) -> None:
    """Stop it and remove what it installed (`seawall agent --cleanup`)."""
    agent.terminate()
    agent.wait(timeout=30)
    subprocess.run(["ip", "netns", "exec", victim, sys.executable, "-m", "seawall", "--datastore", f"sqlite://{db}",
                    "agent", "--cleanup", "--node", NODE, "--bpffs", str(fs), "--run-dir", str(run_dir)],
                   capture_output=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def resident_set(count: int) -> str:
    nets = "".join(f'  - "{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24"\n' for i in range(count))
    return f"""apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: resident
  labels:
    dos-blacklist: 'true'
spec:
  nets:
{nets}"""


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def raw_members(run_dir: Path) -> dict[str, int]:
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: v for i in status.get("interfaces", []) for k, v in ((i.get("raw") or {}).get("ipsetMembers") or {}).items()}


def run_config(rounds: int, resident: int) -> dict:
    """One agent, ``rounds`` CIDR additions to the seed's set; ``resident`` nets enforced all along."""
    with tempfile.TemporaryDirectory(prefix="seawall-bench-agent-") as tmp, netns() as victim, netns() as other, \
            bpffs(f"/run/seawall-bench-{unique_name('fs')}") as fs, \
            veth_pair(victim, other, addr_a="10.93.0.1/24", addr_b="10.93.0.2/24") as pair:
        db = Path(tmp) / "seawall.db"
        store = SqliteDatastore(db)
        base = ["1.2.3.4/32", "5.6.0.0/16"]
        write(store, documents(pair.name_a, base))
        if resident:
            write(store, resident_set(resident))
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        agent = start_agent(victim, db, fs, run_dir, Path(tmp) / "agent.log")
        try:
            pin = fs / "seawall" / "xdp" / pair.name_a / "prog"
            deadline = time.monotonic() + (300 if resident else 30)
            while not pin.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            prog = libbpf.obj_get(str(pin))
            last = resident - 1
            last_resident = F.udp4(f"{100 + (last >> 16)}.{(last >> 8) & 255}.{last & 255}.9") if resident else None
            while last_resident is not None and libbpf.prog_test_run(prog, last_resident).retval != 1:
                if time.monotonic() > deadline:
                    raise SystemExit("the resident set was not enforced within 300 s:\n" + (Path(tmp) / "agent.log").read_text()[-3000:])
                time.sleep(0.01)
            enforce_s = time.perf_counter() - started
            # Both tiers programmed (the raw tier's first ipset load of a big set takes seconds).
            while sum(raw_members(run_dir).values()) < resident + len(base):
                if time.monotonic() > deadline:
                    raise SystemExit("the raw tier did not program the resident set within 300 s")
                time.sleep(0.05)
            raw_s = time.perf_counter() - started
            time.sleep(0.5)
            latencies, writes = [], []
            nets = list(base)
            for i in range(rounds):
                address = f"10.{100 + i // 250}.{i % 250}.7"
                frame = F.udp4(address)
                assert libbpf.prog_test_run(prog, frame).retval == 2  # passes before the write
                nets.append(f"{address}/32")
                text = documents(pair.name_a, nets)
                start = time.perf_counter()
                write(store, text)
                written = time.perf_counter()
                limit = written + 30
                while libbpf.prog_test_run(prog, frame).retval != 1:
                    if time.perf_counter() > limit:
                        raise SystemExit(f"round {i}: {address} not dropped after 30 s:\n" + (Path(tmp) / "agent.log").read_text()[-3000:])
                    time.sleep(0.0002)
                latencies.append((time.perf_counter() - start) * 1000)
                writes.append((written - start) * 1000)
                time.sleep(0.05)
            memory = memory_kib(agent.pid)
        finally:
            stop_agent(agent, victim, db, fs, run_dir)
            store.close()
    return {
        "resident_nets": resident,
        "write_to_drop_ms": {"p50": round(statistics.median(latencies), 2), "p99": round(percentile(latencies, 0.99), 2),
                             "max": round(max(latencies), 2)},
        "baseline_write_ms": {"p50": round(statistics.median(writes), 2), "p99": round(percentile(writes, 0.99), 2)},
        "agent_rss_mib": round(memory.get("VmRSS", 0) / 1024, 1),
        "agent_peak_rss_mib": round(memory.get("VmHWM", 0) / 1024, 1),
        "start_to_enforced_s": round(enforce_s, 2),
        "start_to_raw_programmed_s": round(raw_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--resident", type=int, default=1_000_000, help="nets in the resident set (0: skip)")
    args = parser.parse_args()
    configs = [run_config(args.rounds, 0)]
    if args.resident:
        configs.append(run_config(args.rounds, args.resident))
    small = configs[0]
    result = {
        "rounds": args.rounds,
        "write_to_drop_ms": small["write_to_drop_ms"],
        "baseline_write_ms": small["baseline_write_ms"],
        "target_ms": 50,
        "configs": configs,
    }
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "agent.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(
        f"| {c['resident_nets']:,} | {c['write_to_drop_ms']['p50']} ms | {c['write_to_drop_ms']['p99']} ms | "
        f"{c['write_to_drop_ms']['max']} ms | {c['baseline_write_ms']['p50']} ms | {c['agent_rss_mib']} MiB | "
        f"{c['agent_peak_rss_mib']} MiB | {c['start_to_enforced_s']} s |"
        for c in configs
    )
    verdicts = "; ".join(
        f"{c['resident_nets']:,} resident: " + ("met" if c["write_to_drop_ms"]["p99"] < 50 else
                                               "met at p50, not at p99" if c["write_to_drop_ms"]["p50"] < 50 else "MISSED")
        for c in configs
    )
    (REPO / "docs" / "benchmarks" / "agent.md").write_text(f"""# Benchmark: apply to drop, through the agent

`seawall agent` in a namespace, embedded SQLite datastore, native XDP on a veth; {args.rounds} rounds
per configuration, each adding one CIDR to the seed's GlobalNetworkSet with the atomic write
`seawall apply` ends with, then probing the attached program (BPF_PROG_TEST_RUN on its pin, live
maps) every 0.2 ms. The second configuration also enforces a resident GlobalNetworkSet (same
label) of the given size all along. Baseline (same process): the datastore write alone.

| resident nets | write → drop p50 | p99 | max | write alone p50 | agent RSS | agent peak RSS | start → resident set enforced |
|---:|---:|---:|---:|---:|---:|---:|---:|
{rows}

Target: 50 ms — {verdicts}.
(`seawall apply` as a command adds its own start-up, ~0.25 s of Python import, before the write.)

Where the time goes with a million-entry set resident: every change to *any* set the rule selects
builds a new union of the selected sets (a 1M-entry `frozenset`), which the XDP driver diffs
against the previous one, and the raw tier (on its own thread, but sharing the interpreter lock)
splits by family and diffs its ipsets — each O(set size) in C, tens of ms each, several hundred
ms together. Unchanged sets cost nothing (the calculation memo keeps their objects). Meeting
50 ms at 1M needs deltas per network set through calc and both tiers (next step).
""")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
