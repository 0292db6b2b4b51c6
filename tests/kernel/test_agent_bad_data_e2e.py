"""`seawall agent` end to end with a look-alike CIDR written straight into the
datastore (not through ``seawall apply``): one bad net must not stop the
reconcile. The good /32 of the same set stays dropped in XDP, a second set
keeps being enforced, the status names the bad value, and the agent lives.

Whichever layer catches the value (the API validation keeps the set's last
valid version; the calculation drops the one entry), the outcome asserted here
is the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seawall.datastore import SqliteDatastore, Update
from tests.kernel.agent_world import agent_world, deny_from_set, host_endpoint, network_set

pytestmark = pytest.mark.kernel

PORT = 8131


def _xdp_v4(entry: dict[str, Any]) -> int | None:
    return (entry.get("xdpEntries") or {}).get("ipv4")


def test_one_bad_net_in_the_datastore_does_not_stop_enforcement(tmp_path: Path) -> None:
    host, blocked, other, allowed = "10.93.0.1", "10.93.0.2", "10.93.0.3", "10.93.0.4"
    with agent_world(tmp_path, host_cidr=f"{host}/24", sources=[blocked, other, allowed]) as world:
        world.apply(host_endpoint(world.iface, world.host_ip), network_set([f"{blocked}/32"]),
                    network_set([f"{other}/32"], name="second-set"), deny_from_set())
        world.start_agent()
        world.wait_for(lambda i: i.get("mode", "").startswith("xdp-") and _xdp_v4(i) == 2, "both sets in XDP")

        # Another tool writes a look-alike CIDR next to the good /32, bypassing `seawall apply`.
        bad = "1.2.3.4/\u0663"  # ARABIC-INDIC DIGIT THREE
        store = SqliteDatastore(str(world.db).removeprefix("sqlite://"))
        try:
            store.commit([Update("GlobalNetworkSet", "dos-mitigation", network_set([bad, f"{blocked}/32"]))])
        finally:
            store.close()

        def reported(status: dict[str, Any]) -> bool:
            text = json.dumps([status.get("warnings", []), status.get("invalid", [])], ensure_ascii=False)
            return "dos-mitigation" in text and ("\\u0663" in text or bad in text or "\u0663" in text)

        status: dict[str, Any] = {}
        for _ in range(100):  # each wait_for polls; the bad write lands within a few reconciles
            status = world.wait_for(lambda i: _xdp_v4(i) == 2, "still in sync after the bad write")
            if reported(status):
                break
        assert reported(status), json.dumps(status, indent=1, ensure_ascii=False)
        # The calculation (or validation) caught the value, so no dataplane tier ever saw it:
        # nothing is reported as skipped by a tier (the tier-level reports are unit-tested in
        # tests/unit/test_dataplane_skipped.py), and the status carries the (empty) field.
        for entry in status["interfaces"]:
            assert entry.get("skipped") == {}, json.dumps(entry, indent=1, ensure_ascii=False)

        received = world.traffic([blocked, other, allowed], PORT)
        assert received.get(blocked, 0) == 0 and received.get(other, 0) == 0 and received.get(allowed) == 30, received
        assert world.counters().get("dropped", 0) >= 60 or world.interface().get("mode", "").startswith("xdp-")
        assert world.agent is not None and world.agent.poll() is None, world.agent_log()
