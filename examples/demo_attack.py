"""`make demo`, part 2: the recipe under a real flood, in network namespaces.

A protected host, an attacker inside a blocked CIDR and a legitimate client, on
one veth link. `seawall agent` runs on the protected host with the embedded
datastore; the Calico page's three documents are applied through the CLI; the
attacker floods; the demo shows which mode drops and how much, that the client
and a failsafe port (udp/68) are still served, adds a second attacker's CIDR under
attack, and tears everything down. Exits non-zero if an expectation fails.
Needs root.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seawall.testing.netns import bpffs, ip, netns, unique_name, veth_pair
from seawall.testing.traffic import send_udp, udp_receiver, wait_until

HOST, ATTACKER, CLIENT, ATTACKER2 = "10.66.0.1", "10.66.0.66", "10.66.0.10", "10.66.0.99"
PORT, FAILSAFE_PORT = 8080, 68  # udp/68 is in Calico's default inbound failsafe list
NODE = "demo-node"
failures: list[str] = []


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        failures.append(what)


def documents(iface: str, nets: list[str]) -> str:
    seed = (Path(__file__).parent / "dos-mitigation.yaml").read_text()
    seed = seed.replace("interfaceName: eth0", f"interfaceName: {iface}").replace("node: jasper", f"node: {NODE}")
    seed = seed.replace('expectedIPs: ["10.0.0.1"]', f'expectedIPs: ["{HOST}"]')
    return seed.replace('  - "1.2.3.4/32"\n  - "5.6.0.0/16"\n', "".join(f'  - "{n}"\n' for n in nets))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="seawall-demo-") as tmp, netns() as host, netns() as outside, \
            bpffs(f"/run/seawall-demo-{unique_name('fs')}") as fs, \
            veth_pair(host, outside, addr_a=f"{HOST}/24", addr_b=f"{ATTACKER}/24") as link:
        for addr in (CLIENT, ATTACKER2):
            ip("addr", "add", f"{addr}/24", "dev", link.name_b, ns=outside)
        db, run_dir = f"sqlite://{tmp}/seawall.db", Path(tmp) / "run"
        cli = [sys.executable, "-m", "seawall", "--datastore", db]

        def apply(nets: list[str]) -> None:
            result = subprocess.run([*cli, "apply", "-f", "-"], input=documents(link.name_a, nets), capture_output=True, text=True)
            print("  $ seawall apply -f dos-mitigation.yaml\n  " + (result.stdout + result.stderr).strip().replace("\n", "\n  "))
            check(result.returncode == 0, "the page's three documents apply")

        def status() -> dict:
            out = subprocess.run([sys.executable, "-m", "seawall", "status", "--run-dir", str(run_dir), "-o", "json"],
                                 capture_output=True, text=True)
            return json.loads(out.stdout) if out.returncode == 0 else {}

        say(f"protected host {HOST} ({link.name_a}); attacker {ATTACKER}; client {CLIENT}")
        apply([f"{ATTACKER}/32", "5.6.0.0/16"])
        agent = subprocess.Popen(["ip", "netns", "exec", host, *cli, "agent", "--node", NODE, "--bpffs", str(fs), "--run-dir", str(run_dir)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            iface_status = lambda: next((i for i in status().get("interfaces", []) if i["name"] == link.name_a), {})  # noqa: E731
            check(wait_until(lambda: iface_status().get("mode") == "xdp-native", timeout=30), "the agent enforces in XDP native mode")
            print(f"  mode {iface_status().get('mode')}: {iface_status().get('reason')}")

            say("flood from the attacker, with the client's traffic in the middle of it")
            with udp_receiver(host, HOST, PORT) as rx, udp_receiver(host, HOST, FAILSAFE_PORT) as ssh:
                sent = send_udp(outside, [ATTACKER, CLIENT], HOST, PORT, 20000, rate=20000)
                send_udp(outside, [ATTACKER], HOST, FAILSAFE_PORT, 10, rate=1000)
                time.sleep(1.2)
                got, got_ssh = rx.stop(), ssh.stop()
            counters = iface_status().get("counters", {})
            print(f"  sent {sent} datagrams; host received {got}; XDP counters {counters}")
            check(got.get(ATTACKER, 0) == 0, "nothing from the attacker reached the host")
            check(got.get(CLIENT, 0) == sent // 2, "every datagram from the client was served")
            check(counters.get("dropped", 0) >= sent // 2, "XDP counted the drops")
            check(got_ssh.get(ATTACKER, 0) == 10, f"the failsafe port udp/{FAILSAFE_PORT} still answers, even from the attacker")

            say(f"under attack: add the second attacker's CIDR {ATTACKER2}/32 to the set")
            started = time.monotonic()
            apply([f"{ATTACKER}/32", "5.6.0.0/16", f"{ATTACKER2}/32"])
            dropped = wait_until(lambda: send_udp(outside, [ATTACKER2], HOST, PORT, 1) and
                                 iface_status().get("xdpEntries", {}).get("ipv4") == 3, timeout=10)
            print(f"  in XDP after {time.monotonic() - started:.2f} s (apply + agent)")
            with udp_receiver(host, HOST, PORT) as rx:
                send_udp(outside, [ATTACKER2, CLIENT], HOST, PORT, 200, rate=5000)
                time.sleep(0.3)
                got = rx.stop()
            check(dropped and got.get(ATTACKER2, 0) == 0 and got.get(CLIENT, 0) == 200, "the new CIDR is dropped, the client still served")
        finally:
            agent.terminate()
            agent.wait(timeout=15)
            subprocess.run(["ip", "netns", "exec", host, *cli, "agent", "--cleanup", "--node", NODE, "--bpffs", str(fs),
                            "--run-dir", str(run_dir)], capture_output=True)
    say("torn down" + ("" if not failures else f" -- {len(failures)} expectation(s) failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
