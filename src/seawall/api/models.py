"""Pydantic models of the Calico v3 resources Seawall understands.

Field names are Calico's own JSON names (camelCase, ``preDNAT``, ``notICMP``…), so
a document round-trips without alias tables. The models check *structure* only
(types, required fields, unknown fields refused as calicoctl does); Calico's
semantic rules live in ``validation`` where each error gets its exact path.
Optional fields default to None and are omitted on output, so what comes back
from ``get`` is what the user wrote plus Calico's defaulting (``types``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

API_VERSION = "projectcalico.org/v3"


def _int_or_str(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("must be an integer or a string")
    return value


IntOrStr = Annotated[Any, AfterValidator(_int_or_str)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Metadata(_Strict):
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    resourceVersion: str | None = None
    uid: str | None = None
    creationTimestamp: str | None = None


class ICMPFields(_Strict):
    type: int | None = None
    code: int | None = None


class RuleMetadata(_Strict):
    annotations: dict[str, str] | None = None


class EntityRule(_Strict):
    nets: list[str] | None = None
    notNets: list[str] | None = None
    selector: str | None = None
    notSelector: str | None = None
    ports: list[IntOrStr] | None = None
    notPorts: list[IntOrStr] | None = None
    # Calico fields that only mean something for Kubernetes workloads: accepted by
    # the parser so the validator can refuse them with a reason instead of
    # "unknown field".
    namespaceSelector: Any = None
    serviceAccounts: Any = None
    services: Any = None


class Rule(_Strict):
    action: str
    ipVersion: int | None = None
    protocol: IntOrStr | None = None
    notProtocol: IntOrStr | None = None
    icmp: ICMPFields | None = None
    notICMP: ICMPFields | None = None
    source: EntityRule | None = None
    destination: EntityRule | None = None
    metadata: RuleMetadata | None = None
    http: Any = None


class EndpointPort(_Strict):
    name: str
    protocol: IntOrStr
    port: int


class HostEndpointSpec(_Strict):
    node: str | None = None
    interfaceName: str | None = None
    expectedIPs: list[str] | None = None
    profiles: list[str] | None = None
    ports: list[EndpointPort] | None = None


class GlobalNetworkSetSpec(_Strict):
    nets: list[str] | None = None


class GlobalNetworkPolicySpec(_Strict):
    tier: str | None = None
    order: float | None = None
    selector: str | None = None
    types: list[str] | None = None
    ingress: list[Rule] | None = None
    egress: list[Rule] | None = None
    doNotTrack: bool | None = None
    preDNAT: bool | None = None
    applyOnForward: bool | None = None
    performanceHints: list[str] | None = None
    namespaceSelector: Any = None
    serviceAccountSelector: Any = None


class ProtoPort(_Strict):
    protocol: str
    port: int
    net: str | None = None


class FelixConfigurationSpec(_Strict):
    xdpEnabled: bool | None = None
    genericXDPEnabled: bool | None = None
    xdpRefreshInterval: str | None = None
    iptablesRefreshInterval: str | None = None
    iptablesBackend: str | None = None
    failsafeInboundHostPorts: list[ProtoPort] | None = None
    failsafeOutboundHostPorts: list[ProtoPort] | None = None
    prometheusMetricsEnabled: bool | None = None
    prometheusMetricsPort: int | None = None
    healthEnabled: bool | None = None
    healthHost: str | None = None
    healthPort: int | None = None
    logSeverityScreen: str | None = None


class _Resource(_Strict):
    apiVersion: Literal["projectcalico.org/v3"]
    kind: str
    metadata: Metadata


class HostEndpoint(_Resource):
    kind: Literal["HostEndpoint"]
    spec: HostEndpointSpec = Field(default_factory=HostEndpointSpec)


class GlobalNetworkSet(_Resource):
    kind: Literal["GlobalNetworkSet"]
    spec: GlobalNetworkSetSpec = Field(default_factory=GlobalNetworkSetSpec)


class GlobalNetworkPolicy(_Resource):
    kind: Literal["GlobalNetworkPolicy"]
    spec: GlobalNetworkPolicySpec = Field(default_factory=GlobalNetworkPolicySpec)


class FelixConfiguration(_Resource):
    kind: Literal["FelixConfiguration"]
    spec: FelixConfigurationSpec = Field(default_factory=FelixConfigurationSpec)


Resource = HostEndpoint | GlobalNetworkSet | GlobalNetworkPolicy | FelixConfiguration
