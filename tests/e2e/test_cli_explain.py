"""``seawall explain``, ``status`` and ``teardown`` as real subprocesses on real SQLite files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SEED
from tests.e2e.conftest import Seawall

pytestmark = pytest.mark.e2e

TRACKED = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: tracked
spec:
  selector: all()
  types: [Ingress]
  ingress:
  - action: Deny
    source:
      nets: [9.9.9.0/24]
"""


def _explain(seawall: Seawall, run_dir: Path, *args: str) -> dict:
    result = seawall("explain", "--node", "jasper", "--run-dir", str(run_dir), "-o", "json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_explain_seed_recipe_on_a_named_interface(seawall: Seawall, tmp_path: Path) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    data = _explain(seawall, tmp_path / "run", "--interface", "eth0=10.0.0.1")
    assert data["node"] == "jasper" and data["revision"] >= 1
    (iface,) = data["interfaces"]
    assert (iface["name"], iface["hostEndpoint"], iface["policies"]) == ("eth0", "production-host", ["dos-mitigation"])
    assert iface["agentMode"] is None and iface["xdpCidrs"] == 2
    (rule,) = iface["rules"]
    assert rule["action"] == "Deny" and rule["enforcedAt"] == "XDP + raw" and rule["reason"] == "in XDP: 2 CIDRs"
    (use,) = rule["sets"]
    assert use["selector"] == 'dos-blacklist == "true"' and use["setId"].startswith("s:")
    assert (use["members"], use["inXdp"], use["rawOnly"]) == (2, 2, 0)
    assert use["xdpExamples"] == ["1.2.3.4/32", "5.6.0.0/16"]
    assert "tcp:22" in data["failsafeInbound"]
    assert data["unmatchedHostEndpoints"] == [] and data["notEnforced"] == []
    text = seawall("explain", "--node", "jasper", "--run-dir", str(tmp_path / "run"), "--interface", "eth0=10.0.0.1")
    assert text.code == 0, text.err
    assert "interface eth0  host endpoint production-host" in text.out
    assert "XDP + raw — in XDP: 2 CIDRs" in text.out


def test_explain_reports_an_unmatched_host_endpoint_and_a_tracked_policy(seawall: Seawall, tmp_path: Path) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    applied = seawall("apply", "-f", "-", stdin=TRACKED)
    assert applied.code == 0, applied.err
    assert "stored, but this version of Seawall enforces only doNotTrack policy" in applied.err
    data = _explain(seawall, tmp_path / "run", "--interface", "lo")  # a real interface; the HEP wants eth0
    assert data["interfaces"] == [] and data["unprotectedInterfaces"] == ["lo"]
    assert any("production-host" in w and "'eth0' does not exist" in w for w in data["unmatchedHostEndpoints"])
    assert [e["policy"] for e in data["notEnforced"]] == ["tracked"]


def test_explain_uses_the_agents_mode(seawall: Seawall, tmp_path: Path) -> None:
    assert seawall("apply", "-f", str(SEED)).code == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"node": "jasper", "inSync": True, "interfaces": [
        {"name": "eth0", "mode": "iptables-raw", "reason": "no XDP mode available: native: not supported",
         "counters": {"dropped": 0, "passed": 0, "failsafe": 0}}]}))
    (iface,) = _explain(seawall, run, "--interface", "eth0=10.0.0.1")["interfaces"]
    assert iface["agentMode"] == "iptables-raw" and iface["rules"][0]["enforcedAt"] == "raw only"
    assert "no rule runs in XDP here" in iface["note"] and "native: not supported" in iface["note"]


def test_explain_rejects_a_bad_interface_address(seawall: Seawall, tmp_path: Path) -> None:
    result = seawall("explain", "--node", "jasper", "--run-dir", str(tmp_path), "--interface", "eth0=nope")
    assert result.code == 1 and "'nope' is not an IP address" in result.err


def test_status_without_agent_is_a_clear_error(seawall: Seawall, tmp_path: Path) -> None:
    result = seawall("status", "--run-dir", str(tmp_path / "run"))
    assert result.code == 1
    assert f"no agent status at {tmp_path / 'run'}/status.json" in result.err


def test_status_table_and_json(seawall: Seawall, tmp_path: Path) -> None:
    status = {"node": "jasper", "inSync": True, "revision": 3, "interfaces": [
        {"name": "eth0", "hostEndpoint": "production-host", "mode": "xdp-native", "reason": "xdp-native (the fastest mode)",
         "policies": ["dos-mitigation"], "xdpEntries": {"ipv4": 2, "ipv6": 0},
         "counters": {"dropped": 5, "passed": 6, "failsafe": 7}, "futureField": {"a": 1}}],
        "notEnforced": [], "warnings": [], "invalid": []}
    (tmp_path / "status.json").write_text(json.dumps(status))
    table = seawall("status", "--run-dir", str(tmp_path))
    assert table.code == 0, table.err
    row = next(line for line in table.out.splitlines() if line.startswith("eth0 "))
    assert row.split() == ["eth0", "production-host", "xdp-native", "dos-mitigation", "2/0", "-", "5", "6", "7"]
    assert "futureField: a=1" in table.out
    # --bpffs with nothing pinned: the file's counters stay
    out = seawall("status", "--run-dir", str(tmp_path), "--bpffs", str(tmp_path / "nobpf"), "-o", "json")
    assert out.code == 0, out.err
    assert json.loads(out.out) == status


def _in_fresh_netns(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a throw-away network namespace when root (so the raw-table
    clean-up cannot touch this host's own chains), else directly."""
    cmd = [sys.executable, "-m", "seawall", *args]
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    from seawall.testing.netns import netns

    with netns() as ns:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["teardown"], ["agent", "--cleanup"]])
def test_teardown_on_nothing_is_a_successful_no_op(tmp_path: Path, command: list[str]) -> None:
    run, bpf = tmp_path / "run", tmp_path / "bpf"
    run.mkdir()
    bpf.mkdir()
    (run / "status.json").write_text("{}")
    # an unreachable datastore does not matter: tearing down needs none
    result = _in_fresh_netns(["--datastore", "etcd://127.0.0.1:1", *command, "--bpffs", str(bpf), "--run-dir", str(run)])
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stdout
    assert not (run / "status.json").exists()
    assert list(bpf.iterdir()) == []
    again = _in_fresh_netns(["teardown", "--bpffs", str(bpf), "--run-dir", str(run)])
    assert again.returncode == 0, again.stderr
