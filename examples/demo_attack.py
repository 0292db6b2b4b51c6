"""`make demo`, part 2: the recipe under a real flood, in network namespaces.

A protected host, an attacker inside a blocked CIDR and a legitimate client, on
one veth link. `seawall agent` runs on the protected host with the embedded
datastore; the Calico page's three documents are applied through the CLI; the
attacker floods; the demo shows which mode drops and how much (``seawall status``), why each
rule runs where it does (``seawall explain``), that the client and the failsafe
ports (tcp/22, udp/68) are still served even to the attacker, adds a second
attacker's CIDR under attack, stops the agent (protection stays in place) and
tears everything down with ``seawall teardown``. Exits non-zero if an
expectation fails. Needs root.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seawall.testing.netns import bpffs, ip, netns, unique_name, veth_pair
from seawall.testing.traffic import send_udp, start_udp_sender, udp_receiver, wait_until

HOST, ATTACKER, CLIENT, ATTACKER2 = "10.66.0.1", "10.66.0.66", "10.66.0.10", "10.66.0.99"
PORT, FAILSAFE_PORT = 8080, 68  # udp/68 is in Calico's default inbound failsafe list
SSH_PORT = 22  # tcp/22 too: an operator under attack can still log in
NODE = "demo-node"
failures: list[str] = []


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        failures.append(what)


# A TCP echo server (the "sshd" of the protected host) and a client, as small
# Python processes inside the namespaces: real TCP handshakes across the veth.
_TCP_ECHO = r"""
import json, select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
served = []
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.05)
    if sys.stdin in r:
        break
    if s in r:
        conn, peer = s.accept()
        conn.settimeout(2)
        try:
            conn.sendall(conn.recv(64))
            served.append(peer[0])
        except OSError:
            pass
        conn.close()
print(json.dumps(served), flush=True)
"""
_TCP_CLIENT = r"""
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.settimeout(3)
c.bind((sys.argv[1], 0))
try:
    c.connect((sys.argv[2], int(sys.argv[3])))
    c.sendall(b"SSH-2.0-seawall-demo")
    print(c.recv(64).decode())
except OSError as exc:
    print(f"failed: {exc}")
"""


def tcp_echo_from(host_ns: str, client_ns: str, src: str) -> tuple[str, list[str]]:
    """Connect to HOST:22 from ``src`` and echo a line; returns (reply, peers served)."""
    server = subprocess.Popen(["ip", "netns", "exec", host_ns, sys.executable, "-c", _TCP_ECHO, HOST, str(SSH_PORT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            return "server did not start", []
        reply = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", _TCP_CLIENT, src, HOST,
                                str(SSH_PORT)], capture_output=True, text=True, timeout=30).stdout.strip()
        out, _ = server.communicate("stop\n", timeout=30)
        return reply, json.loads(out.strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def show(title: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a seawall command, print it and its output indented."""
    result = subprocess.run(args, capture_output=True, text=True)
    print(f"  $ {title}")
    for line in (result.stdout + result.stderr).rstrip().splitlines():
        print(f"    {line}")
    return result


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
        agent = subprocess.Popen(["ip", "netns", "exec", host, *cli, "agent",
                                  "--node", NODE, "--bpffs", str(fs), "--run-dir", str(run_dir)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            iface_status = lambda: next((i for i in status().get("interfaces", []) if i["name"] == link.name_a), {})  # noqa: E731
            check(wait_until(lambda: iface_status().get("mode") == "xdp-native", timeout=30), "the agent enforces in XDP native mode")
            print(f"  mode {iface_status().get('mode')}: {iface_status().get('reason')}")

            say("what the agent enforces, and why each rule runs where it does")
            show("seawall status", [*cli, "status", "--run-dir", str(run_dir)])
            explained = show(f"seawall explain --node {NODE}  (on the protected host)",
                             ["ip", "netns", "exec", host, *cli, "explain", "--node", NODE, "--run-dir", str(run_dir)])
            check(explained.returncode == 0 and "XDP + raw" in explained.stdout,
                  "seawall explain: the Deny rule runs in XDP (and raw)")

            say("flood from the attacker, with the client's traffic in the middle of it")
            with udp_receiver(host, HOST, PORT) as rx, udp_receiver(host, HOST, FAILSAFE_PORT) as bootp:
                sent = send_udp(outside, [ATTACKER, CLIENT], HOST, PORT, 20000, rate=20000)
                send_udp(outside, [ATTACKER], HOST, FAILSAFE_PORT, 10, rate=1000)
                time.sleep(1.2)
                got, got_bootp = rx.stop(), bootp.stop()
            counters = iface_status().get("counters", {})
            print(f"  sent {sent} datagrams; host received {got}; XDP counters {counters}")
            check(got.get(ATTACKER, 0) == 0, f"nothing from the attacker reached the service (udp/{PORT} dropped)")
            check(got.get(CLIENT, 0) == sent // 2, "every datagram from the client was served")
            check(counters.get("dropped", 0) >= sent // 2, "XDP counted the drops")
            check(got_bootp.get(ATTACKER, 0) == 10, f"the failsafe port udp/{FAILSAFE_PORT} still answers, even from the attacker")

            say(f"the failsafe port tcp/{SSH_PORT}: a TCP echo from the blocked attacker, during the flood")
            before = iface_status().get("counters", {}).get("failsafe", 0)
            with udp_receiver(host, HOST, PORT) as rx, start_udp_sender(outside, [ATTACKER], HOST, PORT, 200000, rate=20000):
                time.sleep(0.2)
                reply, served = tcp_echo_from(host, outside, ATTACKER)
                got = rx.stop()
            print(f"  {ATTACKER} -> {HOST}:{SSH_PORT}: reply {reply!r}; the host served {served}; "
                  f"udp/{PORT} datagrams received meanwhile: {got}")
            check(reply == "SSH-2.0-seawall-demo" and served == [ATTACKER],
                  f"tcp/{SSH_PORT} still answers the attacker's own address (failsafe)")
            check(got.get(ATTACKER, 0) == 0, f"meanwhile the attacker's udp/{PORT} flood is dropped")
            check(wait_until(lambda: iface_status().get("counters", {}).get("failsafe", 0) > before, timeout=5),
                  "XDP counted the TCP packets as failsafe")
            show("seawall status", [*cli, "status", "--run-dir", str(run_dir)])

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

            say("stop the agent (SIGTERM, as systemd does): protection stays in place")
            agent.terminate()
            agent.wait(timeout=15)
            check(agent.returncode == 0, "the agent stopped cleanly")
            live = lambda: json.loads(subprocess.run(  # noqa: E731
                [*cli, "status", "--run-dir", str(run_dir), "--bpffs", str(fs), "-o", "json"],
                capture_output=True, text=True).stdout or "{}")
            dropped_before = next(i for i in live()["interfaces"] if i["name"] == link.name_a)["counters"]["dropped"]
            with udp_receiver(host, HOST, PORT) as rx:
                send_udp(outside, [ATTACKER, CLIENT], HOST, PORT, 500, rate=5000)
                time.sleep(0.3)
                got = rx.stop()
            check(got.get(ATTACKER, 0) == 0 and got.get(CLIENT, 0) == 500, "with no agent running, the attacker is still dropped")
            show(f"seawall status --bpffs {fs}  (counters read live from the pinned maps)",
                 [*cli, "status", "--run-dir", str(run_dir), "--bpffs", str(fs)])
            dropped_after = next(i for i in live()["interfaces"] if i["name"] == link.name_a)["counters"]["dropped"]
            check(dropped_after >= dropped_before + 500,
                  f"live counters went on counting without the agent (+{dropped_after - dropped_before})")

            say("seawall teardown: remove every program, pin, chain and ipset")
            torn = show("seawall teardown", ["ip", "netns", "exec", host, *cli, "teardown", "--node", NODE,
                                             "--bpffs", str(fs), "--run-dir", str(run_dir)])
            check(torn.returncode == 0 and not (fs / "seawall").exists() and not (run_dir / "status.json").exists(),
                  "teardown removed the pins and the status")
            with udp_receiver(host, HOST, PORT) as rx:
                send_udp(outside, [ATTACKER], HOST, PORT, 50, rate=5000)
                time.sleep(0.3)
                got = rx.stop()
            check(got.get(ATTACKER, 0) == 50, "after teardown the attacker's traffic arrives again (nothing left behind)")
        finally:
            if agent.poll() is None:
                agent.terminate()
                agent.wait(timeout=15)
            subprocess.run(["ip", "netns", "exec", host, *cli, "teardown", "--node", NODE, "--bpffs", str(fs),
                            "--run-dir", str(run_dir)], capture_output=True)
    say("torn down" + ("" if not failures else f" -- {len(failures)} expectation(s) failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
