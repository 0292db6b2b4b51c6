#!/usr/bin/env bash
# The CLI round trip of Calico's "Defend against a DoS attack" recipe on the
# embedded datastore. Usage: examples/demo.sh [DB_PATH] (default /tmp/seawall-demo/seawall.db).
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:-/tmp/seawall-demo/seawall.db}
rm -f "$db" "$db-wal" "$db-shm"
seawall() { .venv/bin/seawall --datastore "sqlite://$db" "$@"; }
step() { printf '\n\033[1m$ seawall %s\033[0m\n' "$*"; seawall "$@"; }

echo "Datastore: sqlite://$db"
step validate -f examples/dos-mitigation.yaml
step apply -f examples/dos-mitigation.yaml
step get hostendpoints -o wide
step get globalnetworkpolicies -o wide
step get globalnetworksets -o wide

echo; echo "# Under attack: add the attackers' CIDRs to the set (one atomic write)."
step apply -f examples/under-attack/under-attack.yaml
step get gns dos-mitigation -o yaml

echo; echo "# Where each rule would run on node jasper's eth0 (10.0.0.1), and why (no agent needed)."
step explain --node jasper --interface eth0=10.0.0.1 --run-dir "$(dirname "$db")/no-agent"

echo; echo "# A bad file is refused as a whole; nothing is written."
if seawall apply -f examples/dos-mitigation.yaml -f tests/data/bad/bad-cidr.yaml; then
  echo "unexpected: the bad file was accepted" >&2; exit 1
fi
step get gns -o wide

echo; echo "Part 1 complete: the CLI round trip."

if [ "$(id -u)" = "0" ]; then
  echo; echo "# Part 2: the recipe under a real flood, in network namespaces."
  .venv/bin/python examples/demo_attack.py
else
  echo "Part 2 (a real flood in network namespaces) needs root; skipped."
fi
