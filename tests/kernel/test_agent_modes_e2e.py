"""`seawall agent` end to end in the configurations test_agent_e2e.py does not
cover: the raw tier alone (xdpEnabled: false), generic XDP on interfaces
without native XDP (macvlan, bridge) and its fallback, the whole recipe's
lifecycle in native mode with the status counters, an earlier Allow rule that
keeps a covering CIDR out of XDP, and the shape of ``seawall status -o json``.

Every test: resources through the real CLI into a fresh SQLite file, the agent
as a subprocess in the protected host's namespace, real UDP datagrams counted
at the receiver, and ``agent --cleanup`` plus namespace removal on the way out
(see ``agent_world``). Waits poll the published status, never fixed sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kernel.agent_world import (
    NODE,
    SET_SELECTOR,
    AgentWorld,
    agent_world,
    deny_from_set,
    felix_config,
    host_endpoint,
    network_set,
    policy,
)

PORT, OTHER_PORT = 8123, 8124
CALICO_FAILSAFE_UDP = 68  # in Calico's default failsafeInboundHostPorts
XDP_ATTACHED_SKB = 2  # `ip -j -d link` "xdp.mode" of a generic-mode attachment


def v4_ipset_members(entry: dict[str, Any]) -> int:
    raw = entry.get("raw") or {}
    return sum(n for name, n in (raw.get("ipsetMembers") or {}).items() if name.startswith("sw4-"))


def raw_programmed(entry: dict[str, Any]) -> bool:
    return entry.get("mode") == "iptables-raw" and bool((entry.get("raw") or {}).get("programmed"))


def xdp_v4(entry: dict[str, Any]) -> int | None:
    return (entry.get("xdpEntries") or {}).get("ipv4")


def recipe(world: AgentWorld, nets: list[str]) -> list[dict[str, Any]]:
    """The Calico page's three resources for the world's protected interface."""
    return [host_endpoint(world.iface, world.host_ip), network_set(nets), deny_from_set()]


# ------------------------------------------------------------------ 1. raw only


def test_raw_tier_alone_when_xdp_is_disabled(tmp_path: Path) -> None:
    host, blocked, allowed, later = "10.91.0.1", "10.91.0.2", "10.91.0.3", "10.91.0.4"
    with agent_world(tmp_path, host_cidr=f"{host}/24", sources=[blocked, allowed, later]) as world:
        world.apply(felix_config(xdpEnabled=False), *recipe(world, [f"{blocked}/32", "5.6.0.0/16"]))
        world.start_agent()
        status = world.wait_for(lambda i: raw_programmed(i) and v4_ipset_members(i) == 2, "raw tier programmed")
        entry = world.interface(status)
        assert "xdpEnabled: false" in entry["reason"], entry["reason"]
        assert entry["xdpEntries"] == {}
        assert world.xdp_attachment() is None and not world.xdp_in_link_text()  # no XDP program on the interface

        received = world.traffic([blocked, allowed], PORT)
        assert received.get(blocked, 0) == 0 and received.get(allowed) == 30, received
        # Failsafe inbound port (Calico's default udp/68) from the blocked source: served.
        assert world.traffic([blocked], CALICO_FAILSAFE_UDP, count=10).get(blocked) == 10

        # Under attack: a CIDR added to the set, then removed again.
        world.apply(network_set([f"{blocked}/32", "5.6.0.0/16", f"{later}/32"]))
        world.wait_for(lambda i: raw_programmed(i) and v4_ipset_members(i) == 3, "the added CIDR in the ipset")
        received = world.traffic([later, allowed], PORT)
        assert received.get(later, 0) == 0 and received.get(allowed) == 30, received
        world.apply(network_set([f"{blocked}/32", "5.6.0.0/16"]))
        world.wait_for(lambda i: raw_programmed(i) and v4_ipset_members(i) == 2, "the CIDR removed from the ipset")
        received = world.traffic([later, blocked], PORT)
        assert received.get(later) == 30 and received.get(blocked, 0) == 0, received

        # The policy deleted: nothing is enforced any more.
        world.delete("globalnetworkpolicy", "dos-mitigation")
        world.wait_for(lambda i: i.get("mode") == "none" and i.get("raw") is None, "no policy on the interface")
        assert world.traffic([blocked], PORT).get(blocked) == 30
        assert world.xdp_attachment() is None


# ------------------------------------------------------------------ 2. generic XDP and its fallback


@pytest.mark.parametrize("topology", ["macvlan", "bridge"])
def test_generic_xdp_on_an_interface_without_native_xdp(tmp_path: Path, topology: str) -> None:
    host, blocked, allowed = "10.96.0.1", "10.96.0.2", "10.96.0.3"
    with agent_world(tmp_path, topology=topology, host_cidr=f"{host}/24", sources=[blocked, allowed]) as world:
        # genericXDPEnabled false (Calico's default, here explicit): no XDP mode at all, raw enforces.
        world.apply(felix_config(genericXDPEnabled=False), *recipe(world, [f"{blocked}/32"]))
        world.start_agent()
        entry = world.interface(world.wait_for(raw_programmed, "raw fallback"))
        assert "native: the driver has no XDP support" in entry["reason"], entry["reason"]
        assert "generic: disabled (FelixConfiguration genericXDPEnabled: false)" in entry["reason"], entry["reason"]
        assert world.xdp_attachment() is None
        received = world.traffic([blocked, allowed], PORT)
        assert received.get(blocked, 0) == 0 and received.get(allowed) == 30, received  # dropped by raw

        # genericXDPEnabled true: the same interface in generic mode, drops counted in XDP.
        world.apply(felix_config(genericXDPEnabled=True))
        entry = world.interface(world.wait_for(lambda i: i.get("mode") == "xdp-generic", "generic mode"))
        assert "native: the driver has no XDP support" in entry["reason"], entry["reason"]
        attachment = world.xdp_attachment()
        assert attachment is not None and attachment["mode"] == XDP_ATTACHED_SKB, attachment
        assert attachment["prog"]["name"] == "seawall_xdp"
        before = entry["counters"]
        received = world.traffic([blocked, allowed], PORT)
        assert received.get(blocked, 0) == 0 and received.get(allowed) == 30, received
        world.wait_for(lambda i: i["counters"]["dropped"] >= before["dropped"] + 30
                       and i["counters"]["passed"] >= before["passed"] + 30, "XDP counted the drops and passes")

        # Back to false: detached again, raw still drops.
        world.apply(felix_config(genericXDPEnabled=False))
        world.wait_for(lambda i: i.get("mode") == "iptables-raw", "raw fallback again")
        assert world.xdp_attachment() is None
        received = world.traffic([blocked, allowed], PORT)
        assert received.get(blocked, 0) == 0 and received.get(allowed) == 30, received


# ------------------------------------------------------------------ 3. native XDP: the whole lifecycle


def test_native_xdp_recipe_lifecycle_and_counters(tmp_path: Path) -> None:
    host, blocked, allowed, later = "10.92.0.1", "10.92.0.2", "10.92.0.3", "10.92.0.4"
    with agent_world(tmp_path, host_cidr=f"{host}/24", sources=[blocked, allowed, later]) as world:
        world.apply(*recipe(world, [f"{blocked}/32"]))
        world.start_agent()
        status = world.wait_for(lambda i: i.get("mode") == "xdp-native" and xdp_v4(i) == 1, "native mode")
        assert world.xdp_attachment() is not None

        # Counters between two reads: a blocked flood moves `dropped`, not `passed`...
        first = world.interface(status)["counters"]
        received = world.traffic([blocked], PORT, count=300, rate=10000)
        assert received.get(blocked, 0) == 0
        second = world.interface(world.wait_for(lambda i: i["counters"]["dropped"] >= first["dropped"] + 300,
                                                "the flood counted as dropped"))["counters"]
        assert second["dropped"] == first["dropped"] + 300
        assert second["passed"] - first["passed"] < 10  # a neighbour solicitation or two, not the flood
        # ... and allowed traffic moves `passed`, not `dropped`.
        assert world.traffic([allowed], PORT, count=100).get(allowed) == 100
        third = world.interface(world.wait_for(lambda i: i["counters"]["passed"] >= second["passed"] + 100,
                                               "the allowed traffic counted as passed"))["counters"]
        assert third["dropped"] == second["dropped"]

        # A second GlobalNetworkSet with the same label: its CIDR is dropped; deleted: it passes again.
        world.apply(network_set([f"{later}/32"], name="dos-extra"))
        world.wait_for(lambda i: xdp_v4(i) == 2, "the second set's CIDR in XDP")
        received = world.traffic([later, allowed], PORT)
        assert received.get(later, 0) == 0 and received.get(allowed) == 30, received
        world.delete("globalnetworkset", "dos-extra")
        world.wait_for(lambda i: xdp_v4(i) == 1, "the second set's CIDR out of XDP")
        received = world.traffic([later, blocked], PORT)
        assert received.get(later) == 30 and received.get(blocked, 0) == 0, received

        # The policy deleted: XDP detached, everything passes; applied again: dropped again.
        world.delete("globalnetworkpolicy", "dos-mitigation")
        world.wait_for(lambda i: i.get("mode") == "none", "no policy on the interface")
        assert world.xdp_attachment() is None
        assert world.traffic([blocked], PORT).get(blocked) == 30
        world.apply(deny_from_set())
        world.wait_for(lambda i: i.get("mode") == "xdp-native" and xdp_v4(i) == 1, "native mode again")
        received = world.traffic([blocked, allowed], PORT)
        assert received.get(blocked, 0) == 0 and received.get(allowed) == 30, received


# ------------------------------------------------------------------ 4. an earlier Allow


def test_an_earlier_allow_keeps_its_traffic_flowing_and_its_cidr_out_of_xdp(tmp_path: Path) -> None:
    # One /16 on the link. The blocklist holds a /24 covering a partner (allowed
    # to PORT by the earlier rule) and an attacker, and a lone /32 elsewhere.
    host, partner, attacker, lone, client = "10.94.0.1", "10.94.5.3", "10.94.5.2", "10.94.7.7", "10.94.0.3"
    covering = "10.94.5.0/24"
    with agent_world(tmp_path, host_cidr=f"{host}/16", sources=[partner, attacker, lone, client]) as world:
        world.apply(
            host_endpoint(world.iface, host), network_set([covering, f"{lone}/32"]),
            policy([
                {"action": "Allow", "protocol": "UDP", "source": {"nets": [f"{partner}/32"]},
                 "destination": {"ports": [PORT]}},
                {"action": "Deny", "source": {"selector": SET_SELECTOR}},
            ], name="partner-then-blocklist", order=10),
        )
        world.start_agent()
        entry = world.interface(world.wait_for(lambda i: i.get("mode") == "xdp-native" and i.get("rules"), "native mode"))
        allow, deny = entry["rules"]
        assert (allow["policy"], allow["index"], allow["action"], allow["inXdp"], allow["xdpCidrs"]) == \
            ("partner-then-blocklist", 0, "Allow", False, 0)
        assert (deny["policy"], deny["index"], deny["action"], deny["xdpCidrs"]) == ("partner-then-blocklist", 1, "Deny", 1)
        assert covering in deny["reason"], deny["reason"]  # the /24 stays out of XDP, and why
        assert "earlier Allow rule (policy partner-then-blocklist, rule 0)" in deny["reason"], deny["reason"]
        assert entry["xdpEntries"] == {"ipv4": 1, "ipv6": 0}  # the lone /32 only

        before = entry["counters"]
        received = world.traffic([partner, attacker, lone, client], PORT, count=40)
        assert received.get(partner) == 40 and received.get(client) == 40, received  # every allowed datagram
        assert received.get(attacker, 0) == 0 and received.get(lone, 0) == 0, received
        after = world.interface(world.wait_for(lambda i: i["counters"]["dropped"] >= before["dropped"] + 40,
                                               "the lone /32 dropped in XDP"))["counters"]
        # Exactly the lone source's datagrams were dropped in XDP: the attacker was dropped by raw.
        assert after["dropped"] == before["dropped"] + 40
        assert after["passed"] >= before["passed"] + 3 * 40

        # The Allow is port-specific: the partner to another port meets the Deny (in raw).
        received = world.traffic([partner, client], OTHER_PORT, count=20)
        assert received.get(partner, 0) == 0 and received.get(client) == 20, received
        final = world.interface(world.wait_for(lambda i: i["counters"]["passed"] >= after["passed"] + 40,
                                               "the partner's datagrams passed XDP"))["counters"]
        assert final["dropped"] == after["dropped"]


# ------------------------------------------------------------------ 5. status shape


def test_status_json_shape(tmp_path: Path) -> None:
    host, blocked, allowed = "10.97.0.1", "10.97.0.2", "10.97.0.3"
    with agent_world(tmp_path, host_cidr=f"{host}/24", sources=[blocked, allowed]) as world:
        world.apply(
            felix_config(failsafeInboundHostPorts=[{"protocol": "UDP", "port": OTHER_PORT}]),
            *recipe(world, [f"{blocked}/32", "2001:db8:bad::/48"]),
            policy([{"action": "Allow", "protocol": "UDP"}], name="tracked-allow", do_not_track=False),
        )
        world.start_agent()
        world.wait_for(lambda i: i.get("mode") == "xdp-native", "native mode")
        received = world.traffic([blocked, allowed], PORT, count=20)
        assert received.get(blocked, 0) == 0 and received.get(allowed) == 20, received
        assert world.traffic([blocked], OTHER_PORT, count=10).get(blocked) == 10  # configured failsafe port
        status = world.wait_for(lambda i: i["counters"]["dropped"] >= 20 and i["counters"]["passed"] >= 20
                                and i["counters"]["failsafe"] >= 10, "counters published")

        assert status["node"] == NODE and status["inSync"] is True
        assert isinstance(status["interfaces"], list) and len(status["interfaces"]) == 1
        entry = status["interfaces"][0]
        assert entry["name"] == world.iface and entry["mode"] == "xdp-native"
        assert isinstance(entry["reason"], str) and entry["reason"].startswith("xdp-native")
        counters = entry["counters"]
        assert {"dropped", "passed", "failsafe"} <= set(counters)
        assert all(isinstance(counters[k], int) and not isinstance(counters[k], bool) for k in ("dropped", "passed", "failsafe"))
        assert counters["dropped"] == 20 and counters["failsafe"] == 10
        assert entry["policies"] == ["dos-mitigation"]  # the tracked policy is not enforced here
        assert entry["xdpEntries"] == {"ipv4": 1, "ipv6": 1}
        [rule] = entry["rules"]
        expected_types = {"policy": str, "index": int, "action": str, "inXdp": bool, "xdpCidrs": int, "reason": str}
        assert set(expected_types) <= set(rule)
        assert all(isinstance(rule[k], t) for k, t in expected_types.items()), rule
        assert (rule["policy"], rule["index"], rule["action"], rule["inXdp"], rule["xdpCidrs"]) == \
            ("dos-mitigation", 0, "Deny", True, 2)
        assert rule["reason"] == "in XDP: 2 CIDRs"

        [not_enforced] = status["notEnforced"]
        assert not_enforced["policy"] == "tracked-allow"
        assert "doNotTrack" in not_enforced["reason"]
