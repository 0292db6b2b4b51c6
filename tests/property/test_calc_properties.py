"""Invariant 5 for generated worlds: XDP never drops what raw would let through.

For generated snapshots (host endpoints, network sets, doNotTrack policies with
mixed actions, families, sets, nets, exclusions, ports), every packet from any
source inside an interface's XDP CIDRs must get DENY or FAILSAFE from the
reference verdict (FAILSAFE: the XDP program passes failsafe ports itself).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from seawall.calc import NodeInterfaces, Snapshot, compute
from seawall.policy.verdict import Packet, Verdict, verdict

API = "projectcalico.org/v3"
V4 = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.128/25",
      "192.168.0.0/16", "192.168.5.0/24", "172.16.0.0/12"]
V6 = ["::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::5/128", "fd00::/8"]
HOST_IPS = ["10.1.2.3", "10.1.9.9", "192.168.5.5", "2001:db8:1::5", "172.16.3.4"]
GROUPS = ["a", "b", "c"]
IFACES = NodeInterfaces({"lo": ("127.0.0.1/8",), "eth0": ("10.0.0.1/24",), "eth1": ("10.9.0.1/24",)})


def _entity(draw: st.DrawFn, family: int | None, with_ports: bool) -> dict[str, Any]:
    pool = V4 if family == 4 else V6 if family == 6 else []
    out: dict[str, Any] = {}
    if pool and draw(st.booleans()):
        out["nets"] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
    if pool and draw(st.integers(0, 3)) == 0:
        out["notNets"] = draw(st.lists(st.sampled_from(pool[1:]), min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        out["selector"] = draw(st.sampled_from([f"grp == '{g}'" for g in GROUPS] + ["has(grp)", "all()"]))
    if draw(st.integers(0, 4)) == 0:
        out["notSelector"] = f"grp == '{draw(st.sampled_from(GROUPS))}'"
    if with_ports and draw(st.booleans()):
        out["ports"] = draw(st.lists(st.sampled_from([22, 53, 80, "1000:2000"]), min_size=1, max_size=2, unique=True))
    return out


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": draw(st.sampled_from(["Deny", "Deny", "Deny", "Allow", "Pass", "Log"]))}
    family = draw(st.sampled_from([None, 4, 4, 6]))
    if family is not None and draw(st.booleans()):
        rule["ipVersion"] = family
    protocol = draw(st.sampled_from([None, None, None, "TCP", "UDP"]))
    if protocol:
        rule["protocol"] = protocol
    source = _entity(draw, family, protocol is not None)
    if source:
        rule["source"] = source
    if draw(st.integers(0, 4)) == 0:
        rule["destination"] = _entity(draw, family, protocol is not None)
    return rule


@st.composite
def worlds(draw: st.DrawFn) -> list[tuple[str, str, dict[str, Any]]]:
    items: list[tuple[str, str, dict[str, Any]]] = []
    for index in range(draw(st.integers(0, 3))):
        name = f"set{index}"
        nets = draw(st.lists(st.sampled_from(V4 + V6 + ["10.1.2.77", "192.168.5.9/16"]), max_size=4, unique=True))
        items.append(("GlobalNetworkSet", name, {
            "apiVersion": API, "kind": "GlobalNetworkSet",
            "metadata": {"name": name, "labels": {"grp": draw(st.sampled_from(GROUPS))}}, "spec": {"nets": nets},
        }))
    items.append(("HostEndpoint", "local", {
        "apiVersion": API, "kind": "HostEndpoint", "metadata": {"name": "local", "labels": {"apply": "true"}},
        "spec": {"node": "n1", "interfaceName": draw(st.sampled_from(["eth0", "*"])), "expectedIPs": ["10.0.0.1"]},
    }))
    for index in range(draw(st.integers(0, 2))):
        name = f"peer{index}"
        items.append(("HostEndpoint", name, {
            "apiVersion": API, "kind": "HostEndpoint",
            "metadata": {"name": name, "labels": {"grp": draw(st.sampled_from(GROUPS))}},
            "spec": {"node": "n2", "interfaceName": "eth0",
                     "expectedIPs": draw(st.lists(st.sampled_from(HOST_IPS), min_size=1, max_size=2, unique=True))},
        }))
    for index in range(draw(st.integers(1, 3))):
        name = f"pol{index}"
        spec: dict[str, Any] = {
            "selector": draw(st.sampled_from(["apply == 'true'", "", "has(apply)"])),
            "doNotTrack": True, "applyOnForward": True, "types": ["Ingress"],
            "ingress": draw(st.lists(rules(), min_size=1, max_size=4)),
        }
        order = draw(st.sampled_from([None, 1.0, 10.0]))
        if order is not None:
            spec["order"] = order
        items.append(("GlobalNetworkPolicy", name, {
            "apiVersion": API, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": spec,
        }))
    return items


INTERESTING = [ipaddress.ip_network(n, strict=False) for n in [*V4, *V6, *HOST_IPS, "10.1.2.77", "192.168.5.9/16"]]


def _sources(cidr: str, pick: int) -> set[str]:
    """Edges of the CIDR, two arbitrary members, and the edges of every pool net
    inside it (where exclusions and earlier rules start and end)."""
    net = ipaddress.ip_network(cidr)
    size = net.num_addresses
    out = {str(net.network_address + offset) for offset in {0, size - 1, pick % size, (pick * 7919) % size}}
    for inner in INTERESTING:
        if inner.version == net.version and inner.subnet_of(net):  # type: ignore[arg-type]
            out.update((str(inner.network_address), str(inner.broadcast_address)))
    return out


PACKETS = [(6, 40000, 80), (6, 40000, 22), (17, 53, 40000), (17, 5000, 53), (1, None, None), (58, None, None),
           (132, 1, 2), (47, None, None), (6, 1500, 179)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.integers(0, 2**64))
def test_xdp_cidrs_are_always_dropped_by_the_full_rule_list(items: list, pick: int) -> None:
    desired = compute(Snapshot.from_stored(items), "n1", IFACES)
    for block in desired.xdp.interfaces:
        for cidr in block.cidrs:
            for src in _sources(cidr, pick):
                dst = "10.0.0.1" if ipaddress.ip_address(src).version == 4 else "2001:db8:ffff::1"
                for protocol, sport, dport in PACKETS:
                    if ipaddress.ip_address(src).version == 6 and protocol == 1:
                        protocol = 58
                    packet = Packet(src, dst, protocol, sport, dport, 8 if protocol in (1, 58) else None, 0)
                    got = verdict(desired.untracked, block.name, packet)
                    assert got in (Verdict.DENY, Verdict.FAILSAFE), (block.name, cidr, packet, got)
                    if got is Verdict.FAILSAFE:
                        assert (protocol, dport) in block.failsafe


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_compute_is_deterministic_and_order_independent(items: list) -> None:
    first = compute(Snapshot.from_stored(items), "n1", IFACES)
    again = compute(Snapshot.from_stored(list(reversed(items))), "n1", IFACES)
    assert first == again
    for decision in first.decisions:
        assert decision.xdp_cidrs == frozenset(c for r in decision.rules for c in r.cidrs)


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.booleans())
def test_fast_cidr_parser_agrees_with_ipaddress(value: int, length: int, bare: bool) -> None:
    from seawall.api.cidr import parse_cidr

    text = str(ipaddress.IPv4Address(value)) if bare else f"{ipaddress.IPv4Address(value)}/{length}"
    net = ipaddress.ip_network(text, strict=False)
    got = parse_cidr(text)
    assert (got.family, got.start, got.end, got.text) == (
        4, int(net.network_address), int(net.broadcast_address), str(net))
