"""Named datastore states and their expected calculation output, written by hand.

In the style of Felix's calc_graph_fv_test.go: each state is the full list of
stored (kind, name, document) items the agent's syncer would hold, together with
what ``compute`` must produce for node ``jasper`` with the interfaces ``IFACES``.
Nothing here is computed by the code under test: the expectations are literals
(some states are written as "the seed expectation with these fields changed").

``STATES`` are history-free: their output depends only on the state itself, so
``test_calc_states`` replays them in any order. Every invalid document in them
sits under a (kind, name) that is never valid in any state, so the
keep-last-valid rule of ``ValidatedResources`` never makes them depend on history.
The states whose output *does* depend on history (a valid resource updated to an
invalid document) are in ``BAD_UPDATES`` and replayed in dedicated sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from seawall.calc import NodeInterfaces

API = "projectcalico.org/v3"
NODE = "jasper"
IFACES = NodeInterfaces({"lo": ("127.0.0.1/8",), "eth0": ("10.0.0.1/24",), "eth1": ("192.168.1.5/24",)})

Item = tuple[str, str, dict[str, Any]]

TCP, UDP = 6, 17
# Calico's defaults (felix/config/config_params.go), written out again on purpose.
DEFAULT_FAILSAFE_IN = frozenset({(TCP, 22), (UDP, 68), (TCP, 179), (TCP, 2379), (TCP, 2380), (TCP, 5473),
                                 (TCP, 6443), (TCP, 6666), (TCP, 6667)})
DEFAULT_FAILSAFE_OUT = frozenset({(UDP, 53), (UDP, 67), (TCP, 179), (TCP, 2379), (TCP, 2380), (TCP, 5473),
                                  (TCP, 6443), (TCP, 6666), (TCP, 6667)})

KEPT = "kept the last valid version"
IGNORED = "ignored"


# ------------------------------------------------------------------ documents


def hep(name: str, *, node: str = NODE, iface: str | None = "eth0", ips: list[str] | None = None,
        labels: dict[str, str] | None = None) -> Item:
    spec: dict[str, Any] = {"node": node}
    if iface is not None:
        spec["interfaceName"] = iface
    if ips is not None:
        spec["expectedIPs"] = ips
    meta: dict[str, Any] = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return "HostEndpoint", name, {"apiVersion": API, "kind": "HostEndpoint", "metadata": meta, "spec": spec}


def gns(name: str, nets: list[str], labels: dict[str, str] | None = None) -> Item:
    meta: dict[str, Any] = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return "GlobalNetworkSet", name, {"apiVersion": API, "kind": "GlobalNetworkSet", "metadata": meta,
                                      "spec": {"nets": nets}}


def gnp(name: str, ingress: list[dict[str, Any]], *, order: float | None = None, dnt: bool = True,
        selector: str = "apply-dos-mitigation == 'true'") -> Item:
    spec: dict[str, Any] = {"selector": selector, "types": ["Ingress"], "ingress": ingress}
    if dnt:
        spec.update(doNotTrack=True, applyOnForward=True)
    if order is not None:
        spec["order"] = order
    return "GlobalNetworkPolicy", name, {"apiVersion": API, "kind": "GlobalNetworkPolicy",
                                         "metadata": {"name": name}, "spec": spec}


def felix(name: str, **spec: Any) -> Item:
    return "FelixConfiguration", name, {"apiVersion": API, "kind": "FelixConfiguration",
                                        "metadata": {"name": name}, "spec": spec}


DENY_LIST = "dos-deny-list == 'true'"
DENY_LABEL = {"dos-deny-list": "true"}
DENY_SET = {"action": "Deny", "source": {"selector": DENY_LIST}}

# The Calico documentation's recipe (reference/calico-dos-feature.md).
SEED_HEP = hep("production-host", ips=["10.0.0.1"], labels={"apply-dos-mitigation": "true"})
SEED_GNS = gns("dos-mitigation", ["1.2.3.4/32", "5.6.0.0/16"], DENY_LABEL)
SEED_GNP = gnp("dos-mitigation", [DENY_SET])
SEED = [SEED_HEP, SEED_GNS, SEED_GNP]

BIG_NETS = [f"10.200.{i // 250}.{i % 250}/32" for i in range(1000)]


def without(items: list[Item], *drop: Item) -> list[Item]:
    keys = {(k, n) for k, n, _ in drop}
    return [i for i in items if (i[0], i[1]) not in keys]


def with_(items: list[Item], *put: Item) -> list[Item]:
    """``items`` with ``put`` replacing same-keyed items (or added)."""
    return [*without(items, *put), *put]


# ------------------------------------------------------------------ expectations


@dataclass(frozen=True)
class R:
    """One ingress rule decision: (policy, index) and action, in XDP or not,
    and substrings its reason must contain."""

    policy: str
    index: int
    action: str
    in_xdp: bool
    reason: tuple[str, ...]


def r(policy: str, index: int, action: str, in_xdp: bool, *reason: str) -> R:
    return R(policy, index, action, in_xdp, reason)


@dataclass(frozen=True)
class Expect:
    # Interfaces listed in xdp.interfaces, each with its exact blocklist.
    xdp: dict[str, frozenset[str]] = field(default_factory=dict)
    # Local interfaces with a host endpoint (decisions): interface -> host endpoint.
    owners: dict[str, str] = field(default_factory=dict)
    # Interfaces in untracked.interfaces: interface -> policy names in order.
    policies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # interface -> its ingress rule decisions in order (missing: none).
    rules: dict[str, tuple[R, ...]] = field(default_factory=dict)
    # untracked.sets exactly, keyed by the selector text.
    sets: dict[str, frozenset[str]] = field(default_factory=dict)
    not_enforced: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # one substring per warning, in order
    invalid: frozenset[tuple[str, str, str]] = frozenset()  # (kind, name, action)
    xdp_enabled: bool = True
    generic_enabled: bool = False
    failsafe_in: frozenset[tuple[int, int]] = DEFAULT_FAILSAFE_IN
    failsafe_out: frozenset[tuple[int, int]] = DEFAULT_FAILSAFE_OUT


SEED_CIDRS = frozenset({"1.2.3.4/32", "5.6.0.0/16"})
DENY_2 = r("dos-mitigation", 0, "Deny", True, "in XDP: 2 CIDRs")
SEED_EXPECT = Expect(
    xdp={"eth0": SEED_CIDRS},
    owners={"eth0": "production-host"},
    policies={"eth0": ("dos-mitigation",)},
    rules={"eth0": (DENY_2,)},
    sets={DENY_LIST: SEED_CIDRS},
)
# The seed's HEP and policy without any set selected by the policy.
NO_SET_EXPECT = replace(
    SEED_EXPECT,
    xdp={"eth0": frozenset()},
    rules={"eth0": (r("dos-mitigation", 0, "Deny", False, "not in XDP: no source CIDRs (its sets are empty)"),)},
    sets={DENY_LIST: frozenset()},
)

EARLIER_ALLOW = gnp("allow-partner", [{"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}], order=10)
LATER_ALLOW = gnp("zz-later", [{"action": "Allow", "source": {"nets": ["5.6.7.0/24"]}}])  # no order: last
TRIAGE = gnp("triage", [{"action": "Pass", "source": {"nets": ["1.0.0.0/8"]}}], order=1)
SEED_GNP_WITH_LOG = gnp("dos-mitigation", [{"action": "Log", "source": {"nets": ["5.6.128.0/17"]}}, DENY_SET])
SEED_GNS_V6 = gns("dos-mitigation", ["1.2.3.4/32", "5.6.0.0/16", "2001:db8::/32", "2001:DB8:1::1"], DENY_LABEL)
PEER = hep("peer", node="other", iface="eth0", ips=["192.0.2.7", "2001:db8::7"], labels=DENY_LABEL)
FIRST = gnp("zz-first", [{"action": "Deny", "source": {"nets": ["9.9.0.0/16"]}}], order=100)
SEED_GNP_200 = gnp("dos-mitigation", [DENY_SET], order=200)
FELIX_DEFAULT_OFF = felix("default", xdpEnabled=False)
FELIX_JASPER = felix("node.jasper", xdpEnabled=True, genericXDPEnabled=True,
                     failsafeInboundHostPorts=[{"protocol": "TCP", "port": 2222}, {"protocol": "UDP", "port": 53}],
                     failsafeOutboundHostPorts=[])
FELIX_OTHER = felix("node.other", xdpEnabled=False, genericXDPEnabled=False)
NOT_SELECTOR_GNP = gnp("dos-mitigation", [{"action": "Deny", "source": {"nets": ["5.0.0.0/8", "9.0.0.0/8"],
                                                                        "notSelector": DENY_LIST}}])
PROTOCOL_GNP = gnp("dos-mitigation", [{"action": "Deny", "protocol": "UDP", "source": {"selector": DENY_LIST}}])
# The named-port rule is placed *after* the rule that stays, so rule indexes are
# the same in the stored policy and in the translated one (see the report on
# indexes after a dropped rule in test_calc_states).
NAMED_PORT_GNP = gnp("named", [{"action": "Deny", "source": {"nets": ["7.7.0.0/16"]}},
                               {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}}], order=1)
BROKEN = gns("broken", ["not-a-cidr"], DENY_LABEL)  # never valid in any state
BROKEN_POLICY = gnp("broken-policy", [{"action": "Explode"}])  # never valid in any state

STATES: dict[str, tuple[list[Item], Expect]] = {
    "empty": ([], Expect()),
    "seed": (SEED, SEED_EXPECT),
    "seed-second-set": (
        [*SEED, gns("more-bad", ["7.7.7.0/24"], DENY_LABEL)],
        replace(SEED_EXPECT, xdp={"eth0": SEED_CIDRS | {"7.7.7.0/24"}},
                rules={"eth0": (r("dos-mitigation", 0, "Deny", True, "in XDP: 3 CIDRs"),)},
                sets={DENY_LIST: SEED_CIDRS | {"7.7.7.0/24"}}),
    ),
    "seed-set-unlabelled": (with_(SEED, gns("dos-mitigation", ["1.2.3.4/32", "5.6.0.0/16"], {})), NO_SET_EXPECT),
    "seed-set-other-label": (
        with_(SEED, gns("dos-mitigation", ["1.2.3.4/32", "5.6.0.0/16"], {"dos-deny-list": "false"})), NO_SET_EXPECT),
    "seed-without-set": (without(SEED, SEED_GNS), NO_SET_EXPECT),
    "hep-and-set-only": (
        [SEED_HEP, SEED_GNS],
        replace(SEED_EXPECT, xdp={}, policies={}, rules={}, sets={}),
    ),
    "seed-earlier-allow": (
        [*SEED, EARLIER_ALLOW],
        replace(SEED_EXPECT, xdp={"eth0": frozenset({"1.2.3.4/32"})},
                policies={"eth0": ("allow-partner", "dos-mitigation")},
                rules={"eth0": (
                    r("allow-partner", 0, "Allow", False, "not in XDP: Allow rules are enforced in raw"),
                    r("dos-mitigation", 0, "Deny", True, "in XDP: 1 of 2 CIDRs", "5.6.0.0/16",
                      "an earlier Allow rule (policy allow-partner, rule 0) may match these sources"),
                )}),
    ),
    "seed-later-allow": (
        [*SEED, LATER_ALLOW],
        replace(SEED_EXPECT, policies={"eth0": ("dos-mitigation", "zz-later")},
                rules={"eth0": (DENY_2, r("zz-later", 0, "Allow", False, "not in XDP: Allow rules"))}),
    ),
    "seed-pass-log": (
        [SEED_HEP, SEED_GNS, SEED_GNP_WITH_LOG, TRIAGE],
        replace(SEED_EXPECT, xdp={"eth0": frozenset()},
                policies={"eth0": ("triage", "dos-mitigation")},
                rules={"eth0": (
                    r("triage", 0, "Pass", False, "not in XDP: Pass rules are enforced in raw"),
                    r("dos-mitigation", 0, "Log", False, "not in XDP: Log rules are enforced in raw"),
                    r("dos-mitigation", 1, "Deny", False,
                      "1 CIDR (1.2.3.4/32): an earlier Pass rule (policy triage, rule 0) may match these sources",
                      "1 CIDR (5.6.0.0/16): an earlier Log rule (policy dos-mitigation, rule 0) may match"),
                )}),
    ),
    "seed-ipv6": (
        with_(SEED, SEED_GNS_V6),
        replace(SEED_EXPECT,
                xdp={"eth0": SEED_CIDRS | {"2001:db8::/32", "2001:db8:1::1/128"}},
                rules={"eth0": (r("dos-mitigation", 0, "Deny", True, "in XDP: 4 CIDRs"),)},
                sets={DENY_LIST: SEED_CIDRS | {"2001:db8::/32", "2001:db8:1::1/128"}}),
    ),
    "seed-hep-other-node": (with_(SEED, hep("production-host", node="other", ips=["10.0.0.1"],
                                            labels={"apply-dos-mitigation": "true"})), Expect()),
    "hep-by-expected-ips": (
        with_(SEED, hep("production-host", iface=None, ips=["192.168.1.5"], labels={"apply-dos-mitigation": "true"})),
        replace(SEED_EXPECT, xdp={"eth1": SEED_CIDRS}, owners={"eth1": "production-host"},
                policies={"eth1": ("dos-mitigation",)}, rules={"eth1": (DENY_2,)}),
    ),
    "hep-expected-ips-nowhere": (
        with_(SEED, hep("production-host", iface=None, ips=["203.0.113.1"], labels={"apply-dos-mitigation": "true"})),
        Expect(warnings=("HostEndpoint production-host: no interface of node jasper holds its expectedIPs",)),
    ),
    "hep-missing-interface": (
        with_(SEED, hep("production-host", iface="eth9", ips=["10.0.0.1"], labels={"apply-dos-mitigation": "true"})),
        Expect(warnings=("HostEndpoint production-host: interface 'eth9' does not exist on node jasper",)),
    ),
    "hep-wildcard": (
        with_(SEED, hep("production-host", iface="*", ips=["10.0.0.1"], labels={"apply-dos-mitigation": "true"})),
        replace(SEED_EXPECT, xdp={"eth0": SEED_CIDRS, "eth1": SEED_CIDRS},
                owners={"eth0": "production-host", "eth1": "production-host"},
                policies={"eth0": ("dos-mitigation",), "eth1": ("dos-mitigation",)},
                rules={"eth0": (DENY_2,), "eth1": (DENY_2,)}),
    ),
    "two-policies-by-order": (
        [SEED_HEP, SEED_GNS, SEED_GNP_200, FIRST],
        replace(SEED_EXPECT, xdp={"eth0": SEED_CIDRS | {"9.9.0.0/16"}},
                policies={"eth0": ("zz-first", "dos-mitigation")},
                rules={"eth0": (r("zz-first", 0, "Deny", True, "in XDP: 1 CIDR"), DENY_2)}),
    ),
    "seed-plus-tracked-policy": (
        [*SEED, gnp("tracked-policy", [DENY_SET], dnt=False)],
        replace(SEED_EXPECT, not_enforced=("tracked-policy",)),
    ),
    "tracked-policy-only": (
        [SEED_HEP, SEED_GNS, gnp("dos-mitigation", [DENY_SET], dnt=False)],
        replace(SEED_EXPECT, xdp={}, policies={}, rules={}, sets={}, not_enforced=("dos-mitigation",)),
    ),
    "felix-default-xdp-off": ([*SEED, FELIX_DEFAULT_OFF], replace(SEED_EXPECT, xdp_enabled=False)),
    "felix-node-override": (
        [*SEED, FELIX_DEFAULT_OFF, FELIX_JASPER, FELIX_OTHER],
        replace(SEED_EXPECT, xdp_enabled=True, generic_enabled=True,
                failsafe_in=frozenset({(TCP, 2222), (UDP, 53)}), failsafe_out=frozenset()),
    ),
    "not-selector": (
        [SEED_HEP, SEED_GNS, NOT_SELECTOR_GNP],
        replace(SEED_EXPECT, xdp={"eth0": frozenset({"9.0.0.0/8"})},
                rules={"eth0": (r("dos-mitigation", 0, "Deny", True, "in XDP: 1 of 2 CIDRs",
                                  "1 CIDR (5.0.0.0/8): its notNets/notSelector exclude part of these sources"),)}),
    ),
    "deny-with-protocol": (
        [SEED_HEP, SEED_GNS, PROTOCOL_GNP],
        replace(SEED_EXPECT, xdp={"eth0": frozenset()},
                rules={"eth0": (r("dos-mitigation", 0, "Deny", False, "not in XDP: rule has a protocol"),)}),
    ),
    "named-port": (
        [*SEED, NAMED_PORT_GNP],
        replace(SEED_EXPECT, xdp={"eth0": SEED_CIDRS | {"7.7.0.0/16"}},
                policies={"eth0": ("named", "dos-mitigation")},
                rules={"eth0": (r("named", 0, "Deny", True, "in XDP: 1 CIDR"), DENY_2)},
                warnings=("GlobalNetworkPolicy named: ingress[1]: named ports are not supported; the rule is ignored",)),
    ),
    "selector-selects-hep-ips": (
        [*SEED, PEER],
        replace(SEED_EXPECT, xdp={"eth0": SEED_CIDRS | {"192.0.2.7/32", "2001:db8::7/128"}},
                rules={"eth0": (r("dos-mitigation", 0, "Deny", True, "in XDP: 4 CIDRs"),)},
                sets={DENY_LIST: SEED_CIDRS | {"192.0.2.7/32", "2001:db8::7/128"}}),
    ),
    "seed-big-set": (
        with_(SEED, gns("dos-mitigation", ["1.2.3.4/32", *BIG_NETS], DENY_LABEL)),
        replace(SEED_EXPECT, xdp={"eth0": frozenset({"1.2.3.4/32", *BIG_NETS})},
                rules={"eth0": (r("dos-mitigation", 0, "Deny", True, "in XDP: 1001 CIDRs"),)},
                sets={DENY_LIST: frozenset({"1.2.3.4/32", *BIG_NETS})}),
    ),
    "invalid-alone": ([BROKEN, BROKEN_POLICY], Expect(invalid=frozenset({
        ("GlobalNetworkSet", "broken", IGNORED), ("GlobalNetworkPolicy", "broken-policy", IGNORED)}))),
    "seed-plus-invalid-set": (
        [*SEED, BROKEN],
        replace(SEED_EXPECT, invalid=frozenset({("GlobalNetworkSet", "broken", IGNORED)})),
    ),
}

# ------------------------------------------------------------------ history-dependent states

# The seed's set and policy updated to documents that do not validate.
BAD_SEED_GNS = gns("dos-mitigation", ["1.2.3.4/32", "bogus"], DENY_LABEL)
WORSE_SEED_GNS = gns("dos-mitigation", ["999.0.0.0/8"], DENY_LABEL)  # another invalid version
BAD_SEED_GNP = gnp("dos-mitigation", [{"action": "Explode", "source": {"selector": DENY_LIST}}])

BAD_UPDATES: dict[str, list[Item]] = {
    "seed-bad-set": with_(SEED, BAD_SEED_GNS),
    "seed-worse-set": with_(SEED, WORSE_SEED_GNS),
    "seed-bad-policy": with_(SEED, BAD_SEED_GNP),
}
GNS_KEPT = frozenset({("GlobalNetworkSet", "dos-mitigation", KEPT)})
GNS_IGNORED = frozenset({("GlobalNetworkSet", "dos-mitigation", IGNORED)})
GNP_KEPT = frozenset({("GlobalNetworkPolicy", "dos-mitigation", KEPT)})
GNP_IGNORED = frozenset({("GlobalNetworkPolicy", "dos-mitigation", IGNORED)})
