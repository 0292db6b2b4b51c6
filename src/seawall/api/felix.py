"""The effective FelixConfiguration of one node: Calico's defaults, overlaid by
the cluster-wide ``default`` object, overlaid by ``node.<name>``.

Calico stores only what the operator wrote; the defaults below are applied when
the agent reads the configuration, field by field (a field set in
``node.<name>`` wins over ``default``, which wins over the built-in default).
An explicit empty failsafe list (``[]``) disables that list, as in Calico.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from seawall.api.durations import parse_duration
from seawall.api.models import FelixConfiguration, FelixConfigurationSpec


@dataclass(frozen=True, slots=True)
class ProtoPort:
    protocol: str  # "TCP" | "UDP" | "SCTP"
    port: int
    net: str | None = None


def _ports(spec: str) -> tuple[ProtoPort, ...]:
    return tuple(ProtoPort(p.split(":")[0].upper(), int(p.split(":")[1])) for p in spec.split())


# felix/config/config_params.go defaults (see shared/reference/calico-dos-feature.md §3).
DEFAULT_FAILSAFE_INBOUND = _ports("tcp:22 udp:68 tcp:179 tcp:2379 tcp:2380 tcp:5473 tcp:6443 tcp:6666 tcp:6667")
DEFAULT_FAILSAFE_OUTBOUND = _ports("udp:53 udp:67 tcp:179 tcp:2379 tcp:2380 tcp:5473 tcp:6443 tcp:6666 tcp:6667")


@dataclass(frozen=True, slots=True)
class EffectiveFelixConfig:
    xdpEnabled: bool = True
    genericXDPEnabled: bool = False
    xdpRefreshInterval: float = 90.0  # seconds; 0 disables the periodic refresh
    iptablesRefreshInterval: float = 180.0
    iptablesBackend: str = "Auto"
    failsafeInboundHostPorts: tuple[ProtoPort, ...] = DEFAULT_FAILSAFE_INBOUND
    failsafeOutboundHostPorts: tuple[ProtoPort, ...] = DEFAULT_FAILSAFE_OUTBOUND
    prometheusMetricsEnabled: bool = False
    prometheusMetricsPort: int = 9091
    # Felix's own default is false (calico-node manifests turn it on); on here,
    # bound to localhost only, so it exposes nothing beyond the host.
    healthEnabled: bool = True
    healthHost: str = "localhost"
    healthPort: int = 9099
    logSeverityScreen: str = "Info"


def config_name_for_node(node: str) -> str:
    return f"node.{node}"


def effective_config(
    cluster: FelixConfiguration | None, node: FelixConfiguration | None
) -> EffectiveFelixConfig:
    """Defaults < ``default`` < ``node.<name>``, field by field. Inputs are validated resources."""
    values: dict[str, object] = {}
    for layer in (cluster, node):
        if layer is not None:
            values.update(_set_fields(layer.spec))
    return EffectiveFelixConfig(**values)  # type: ignore[arg-type]


def _set_fields(spec: FelixConfigurationSpec) -> dict[str, object]:
    out: dict[str, object] = {}
    for field in fields(EffectiveFelixConfig):
        value = getattr(spec, field.name)
        if value is None:
            continue
        if field.name.endswith("Interval"):
            value = parse_duration(value)
        elif field.name.startswith("failsafe"):
            value = tuple(ProtoPort(p.protocol, p.port, p.net) for p in value)
        out[field.name] = value
    return out


ENFORCED_FIELDS = frozenset(field.name for field in fields(EffectiveFelixConfig))
"""The FelixConfigurationSpec fields Seawall acts on; every other Calico field is stored only."""


def unenforced_fields(spec: FelixConfigurationSpec) -> list[str]:
    """The Calico fields set in ``spec`` that Seawall stores but does not act on, in spec order
    (for ``apply``/``status`` to say so)."""
    return [name for name in type(spec).model_fields if name not in ENFORCED_FIELDS and getattr(spec, name) is not None]
