"""Prometheus metrics of the agent, served from a snapshot the loop publishes.

Why a snapshot: a scrape runs on the HTTP server's thread and must never touch
the kernel (BPF maps, ``iptables-save``) or race the loop. The loop builds a
``MetricsSnapshot`` (immutable) about once a second from what it has already
read and swaps it in; ``SnapshotCollector`` turns the latest one into metric
families. Apart from the histogram of reconcile durations, which the loop
observes directly, everything here is a pure function of the snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from seawall.agent.status import AgentStatus, Unparsed, Verdicts
from seawall.dataplane.mode import Mode
from seawall.dataplane.skipped import Skipped

VERDICTS = ("dropped", "passed", "failsafe")
TIERS = ("xdp", "raw")
MODES = tuple(m.value for m in Mode)
#: Reconciles take from ~1 ms (nothing changed) to seconds (a million-entry set).
APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class InterfaceSample:
    """One interface: its mode, XDP counters per verdict, and set sizes per tier."""

    name: str
    mode: str
    packets: Mapping[str, int] = field(default_factory=dict)  # verdict -> packets (XDP only)
    bytes: Mapping[str, int] = field(default_factory=dict)  # verdict -> bytes (XDP only)
    xdp_entries: Mapping[str, int] = field(default_factory=dict)  # "ipv4" | "ipv6" -> CIDRs in the maps
    ipset_members: Mapping[str, int] = field(default_factory=dict)  # ipset name -> members
    skipped: Mapping[str, int] = field(default_factory=dict)  # tier -> values it skipped as not CIDRs
    #: "ipv4" | "ipv6" -> (packets, bytes) dropped by the iptables raw tier (its DROP lines' counters)
    raw_dropped: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    interfaces: tuple[InterfaceSample, ...] = ()
    #: {(policy, direction, rule index): (packets, bytes)}, from ``RawDataplane.rule_counters``
    raw_rules: Mapping[tuple[str, str, int], tuple[int, int]] = field(default_factory=dict)
    in_sync: bool = False
    revision: int = 0
    invalid: int = 0
    #: drift the raw tier repaired, per kind ("rules", "setHeaders", "setContents")
    raw_repairs: Mapping[str, int] = field(default_factory=dict)


def ipset_family(name: str) -> str:
    """``sw4-…`` / ``sw6-…`` (and their temporary ``sw4t-``/``sw6t-``) → "ipv4" / "ipv6"."""
    return "ipv6" if name.startswith("sw6") else "ipv4"


def _verdicts(value: Mapping[str, int] | Verdicts) -> dict[str, int]:
    return {"dropped": value.dropped, "passed": value.passed, "failsafe": value.failsafe} \
        if isinstance(value, Verdicts) else dict(value)


def snapshot_from_status(status: AgentStatus,
                         xdp_counters: Mapping[str, tuple[Mapping[str, int] | Verdicts, Mapping[str, int] | Verdicts]],
                         raw_rules: Mapping[tuple[str, str, int], tuple[int, int]]) -> MetricsSnapshot:
    """Build a snapshot from the agent's status plus the counters it read.

    ``xdp_counters``: interface -> (packets per verdict, bytes per verdict), only
    for interfaces with an XDP program of ours."""
    samples = []
    for entry in status.interfaces:
        packets, octets = xdp_counters.get(entry.name, ({}, {}))
        raw_families = entry.raw_counters.families if entry.raw_counters is not None else {}
        samples.append(InterfaceSample(
            name=entry.name, mode="none" if entry.mode is None else str(entry.mode),
            packets=_verdicts(packets), bytes=_verdicts(octets), xdp_entries=dict(entry.xdp_entries),
            ipset_members=dict(entry.raw.ipset_members) if entry.raw is not None else {},
            skipped={tier: _skipped_count(entry.skipped.get(tier)) for tier in TIERS},
            raw_dropped={fam: (d.dropped, d.dropped_bytes) for fam, d in raw_families.items()},
        ))
    return MetricsSnapshot(
        interfaces=tuple(samples), raw_rules=dict(raw_rules), in_sync=status.in_sync,
        revision=status.revision or 0, invalid=len(status.invalid or ()),
        raw_repairs=dict(status.raw_repairs or {}),
    )


def _skipped_count(skipped: Skipped | Unparsed | None) -> int:
    return skipped.count if isinstance(skipped, Skipped) else 0


def families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    """The metric families of one snapshot (pure)."""
    packets = CounterMetricFamily("seawall_packets", "Packets seen by the XDP program, by verdict.",
                                  labels=["interface", "mode", "verdict"])
    octets = CounterMetricFamily("seawall_bytes", "Bytes seen by the XDP program, by verdict.",
                                 labels=["interface", "mode", "verdict"])
    entries = GaugeMetricFamily("seawall_set_entries", "Blocked CIDRs programmed per interface, family and tier "
                                "(xdp: map entries; raw: ipset members).", labels=["interface", "family", "tier"])
    for s in snapshot.interfaces:
        for verdict in VERDICTS:
            if verdict in s.packets:
                packets.add_metric([s.name, s.mode, verdict], s.packets[verdict])
            if verdict in s.bytes:
                octets.add_metric([s.name, s.mode, verdict], s.bytes[verdict])
        for fam, n in sorted(s.xdp_entries.items()):
            entries.add_metric([s.name, fam, "xdp"], n)
        raw_by_family: dict[str, int] = {}
        for set_name, n in s.ipset_members.items():
            raw_by_family[ipset_family(set_name)] = raw_by_family.get(ipset_family(set_name), 0) + n
        for fam, n in sorted(raw_by_family.items()):
            entries.add_metric([s.name, fam, "raw"], n)
    yield packets
    yield octets
    yield entries

    dropped = CounterMetricFamily("seawall_dropped_packets", "Packets dropped per interface by each tier (xdp: the XDP "
                                  "program; raw: the iptables raw table, per family).",
                                  labels=["interface", "mode", "tier", "family"])
    dropped_bytes = CounterMetricFamily("seawall_dropped_bytes", "Bytes dropped per interface by each tier.",
                                        labels=["interface", "mode", "tier", "family"])
    for s in snapshot.interfaces:
        if "dropped" in s.packets:
            dropped.add_metric([s.name, s.mode, "xdp", "all"], s.packets["dropped"])
            dropped_bytes.add_metric([s.name, s.mode, "xdp", "all"], s.bytes.get("dropped", 0))
        for fam, (n_packets, n_bytes) in sorted(s.raw_dropped.items()):
            dropped.add_metric([s.name, s.mode, "raw", fam], n_packets)
            dropped_bytes.add_metric([s.name, s.mode, "raw", fam], n_bytes)
    yield dropped
    yield dropped_bytes
    repairs = CounterMetricFamily("seawall_raw_repairs", "Drift of the iptables raw tier found and repaired, by kind "
                                  "(rules: our chains or jumps; setHeaders: an ipset missing or its entry count "
                                  "changed; setContents: members edited, found by the full refresh).", labels=["kind"])
    for kind in ("rules", "setHeaders", "setContents"):
        repairs.add_metric([kind], snapshot.raw_repairs.get(kind, 0))
    yield repairs

    skipped = GaugeMetricFamily("seawall_dataplane_skipped_values", "Values a dataplane tier skipped on an interface "
                                "because they are not CIDRs (they slipped past validation; see seawall status).",
                                labels=["interface", "tier"])
    for s in snapshot.interfaces:
        for tier in TIERS:
            skipped.add_metric([s.name, tier], s.skipped.get(tier, 0))
    yield skipped

    rule_packets = CounterMetricFamily("seawall_raw_rule_packets", "Packets decided by one rule of an untracked "
                                       "policy in the iptables raw table (both families).",
                                       labels=["policy", "direction", "rule"])
    rule_bytes = CounterMetricFamily("seawall_raw_rule_bytes", "Bytes decided by one rule of an untracked "
                                     "policy in the iptables raw table (both families).",
                                     labels=["policy", "direction", "rule"])
    for (policy, direction, index), (n_packets, n_bytes) in sorted(snapshot.raw_rules.items()):
        rule_packets.add_metric([policy, direction, str(index)], n_packets)
        rule_bytes.add_metric([policy, direction, str(index)], n_bytes)
    yield rule_packets
    yield rule_bytes

    modes = GaugeMetricFamily("seawall_interfaces", "Protected interfaces by enforcement mode.", labels=["mode"])
    for mode in MODES:
        modes.add_metric([mode], sum(1 for s in snapshot.interfaces if s.mode == mode))
    yield modes
    yield GaugeMetricFamily("seawall_in_sync", "1 when the agent has read the whole datastore (else 0).",
                            value=1 if snapshot.in_sync else 0)
    yield GaugeMetricFamily("seawall_datastore_revision", "Datastore revision the agent has seen.", value=snapshot.revision)
    yield GaugeMetricFamily("seawall_invalid_resources", "Stored resources that fail validation (ignored or kept "
                            "at their last valid version).", value=snapshot.invalid)


class SnapshotCollector(Collector):
    """Yields the families of whatever snapshot ``source`` returns at scrape time."""

    def __init__(self, source: Callable[[], MetricsSnapshot]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        return families(self.source())


class AgentMetrics:
    """The agent's own registry (never the global one): snapshot families, the
    reconcile-duration histogram and a failure counter."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._snapshot = MetricsSnapshot()
        self.registry.register(SnapshotCollector(self.snapshot))
        self.apply_seconds = Histogram("seawall_apply_seconds", "Duration of one reconcile: calculation and the "
                                       "XDP tier (what a datastore change waits for before XDP drops).",
                                       buckets=APPLY_BUCKETS, registry=self.registry)
        self.raw_apply_seconds = Histogram("seawall_raw_apply_seconds", "Duration of one reconcile of the iptables raw "
                                           "tier (its own thread).", buckets=APPLY_BUCKETS, registry=self.registry)
        # the periodic drift checks (every few seconds, a few ms each) apart, so that
        # seawall_raw_apply_seconds keeps describing reconciles
        self.raw_check_seconds = Histogram("seawall_raw_check_seconds", "Duration of one periodic drift check of the "
                                           "iptables raw tier (chains and ipset headers compared; a reconcile only on "
                                           "drift).", buckets=APPLY_BUCKETS, registry=self.registry)
        self.reconcile_failures = Counter("seawall_reconcile_failures", "Reconciles that raised or that the iptables "
                                          "raw tier reported errors for.", registry=self.registry)

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return self._snapshot

    def publish(self, snapshot: MetricsSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type) for a scrape; OpenMetrics if the scraper asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
