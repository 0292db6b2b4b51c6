"""Calico's FelixConfiguration defaults and the default < node.<name> overlay."""

from __future__ import annotations

from seawall.api import load_text
from seawall.api.felix import (
    DEFAULT_FAILSAFE_INBOUND,
    DEFAULT_FAILSAFE_OUTBOUND,
    EffectiveFelixConfig,
    ProtoPort,
    config_name_for_node,
    effective_config,
)


def _felix(name: str, spec: str):
    text = f"apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {{name: {name}}}\nspec: {spec}"
    return load_text(text, "f.yaml")[0].resource


def test_defaults_are_calicos() -> None:
    config = effective_config(None, None)
    assert config == EffectiveFelixConfig()
    assert (config.xdpEnabled, config.genericXDPEnabled, config.xdpRefreshInterval) == (True, False, 90.0)
    assert (config.iptablesBackend, config.prometheusMetricsEnabled, config.prometheusMetricsPort) == ("Auto", False, 9091)
    assert [f"{p.protocol.lower()}:{p.port}" for p in DEFAULT_FAILSAFE_INBOUND] == [
        "tcp:22", "udp:68", "tcp:179", "tcp:2379", "tcp:2380", "tcp:5473", "tcp:6443", "tcp:6666", "tcp:6667"]
    assert [f"{p.protocol.lower()}:{p.port}" for p in DEFAULT_FAILSAFE_OUTBOUND] == [
        "udp:53", "udp:67", "tcp:179", "tcp:2379", "tcp:2380", "tcp:5473", "tcp:6443", "tcp:6666", "tcp:6667"]


def test_node_overrides_cluster_field_by_field() -> None:
    cluster = _felix("default", "{genericXDPEnabled: true, xdpRefreshInterval: 1m30s, iptablesBackend: NFT}")
    node = _felix(config_name_for_node("jasper"), "{iptablesBackend: Legacy, failsafeInboundHostPorts: [{protocol: TCP, port: 2222}]}")
    config = effective_config(cluster, node)
    assert config.genericXDPEnabled is True
    assert config.xdpRefreshInterval == 90.0
    assert config.iptablesBackend == "Legacy"
    assert config.failsafeInboundHostPorts == (ProtoPort("TCP", 2222),)
    assert config.failsafeOutboundHostPorts == DEFAULT_FAILSAFE_OUTBOUND


def test_empty_failsafe_list_disables_it() -> None:
    config = effective_config(_felix("default", "{failsafeOutboundHostPorts: []}"), None)
    assert config.failsafeOutboundHostPorts == ()
    assert config.failsafeInboundHostPorts == DEFAULT_FAILSAFE_INBOUND
