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

#: A list of strings that may hold a million entries (nets, expectedIPs): the
#: first item of the wrong type ends its validation, so a million bad items
#: cost one error, not a million (each string's meaning is checked in ``validation``).
BigStrings = Annotated[list[str], Field(fail_fast=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OwnerReference(_Strict):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    blockOwnerDeletion: bool | None = None


class ManagedFieldsEntry(_Strict):
    manager: str | None = None
    operation: str | None = None
    apiVersion: str | None = None
    time: str | None = None
    fieldsType: str | None = None
    fieldsV1: dict[str, Any] | None = None
    subresource: str | None = None


class Metadata(_Strict):
    """Kubernetes ObjectMeta, as calicoctl and the Kubernetes API write it.

    Seawall uses name, labels and annotations; the rest is stored and echoed back.
    (``namespace`` is refused by validation: every kind here is cluster-scoped.)"""

    name: str
    generateName: str | None = None
    namespace: str | None = None
    selfLink: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    deletionGracePeriodSeconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ownerReferences: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managedFields: list[ManagedFieldsEntry] | None = None


class ICMPFields(_Strict):
    type: int | None = None
    code: int | None = None


class RuleMetadata(_Strict):
    annotations: dict[str, str] | None = None


class ServiceAccountMatch(_Strict):
    """Calico's ``serviceAccounts``: service accounts by name and/or by label selector."""

    names: list[str] | None = None
    selector: str | None = None


class ServiceMatch(_Strict):
    """Calico's ``services``: the endpoints of one Kubernetes service."""

    name: str | None = None
    namespace: str | None = None


class HTTPPath(_Strict):
    exact: str | None = None
    prefix: str | None = None


class HTTPMatch(_Strict):
    """Calico's ``http`` (application layer policy): methods and paths."""

    methods: list[str] | None = None
    paths: list[HTTPPath] | None = None


class EntityRule(_Strict):
    nets: BigStrings | None = None
    notNets: BigStrings | None = None
    selector: str | None = None
    notSelector: str | None = None
    ports: list[IntOrStr] | None = None
    notPorts: list[IntOrStr] | None = None
    # Calico fields that mean something for Kubernetes workloads; accepted and
    # enforced with Calico's meaning (on host endpoints they normally match nothing).
    namespaceSelector: str | None = None
    serviceAccounts: ServiceAccountMatch | None = None
    services: ServiceMatch | None = None


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
    http: HTTPMatch | None = None


class EndpointPort(_Strict):
    name: str
    protocol: IntOrStr
    port: int


class HostEndpointSpec(_Strict):
    node: str | None = None
    interfaceName: str | None = None
    expectedIPs: BigStrings | None = None
    profiles: list[str] | None = None
    ports: list[EndpointPort] | None = None


class GlobalNetworkSetSpec(_Strict):
    nets: BigStrings | None = None


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
    namespaceSelector: str | None = None
    serviceAccountSelector: str | None = None


class ProtoPort(_Strict):
    protocol: str
    port: int
    net: str | None = None


class HealthTimeoutOverride(_Strict):
    name: str
    timeout: str


class RouteTableRange(_Strict):
    min: int
    max: int


Duration = str
"""A Go ``metav1.Duration`` as Calico serialises it (``"90s"``, ``"1m30s"``)."""


class FelixConfigurationSpec(_Strict):
    """Every field of Calico v3's FelixConfigurationSpec (api/pkg/apis/projectcalico/v3/felixconfig.go).

    The first block is what Seawall enforces (see ``felix.EffectiveFelixConfig``);
    the rest is accepted and stored so that a FelixConfiguration written for
    calico-node applies unchanged, but has no effect here
    (``felix.unenforced_fields`` lists the ones set). A name Calico does not have
    is still refused as an unknown field."""

    # --- enforced by Seawall
    xdpEnabled: bool | None = None
    genericXDPEnabled: bool | None = None
    xdpRefreshInterval: Duration | None = None
    iptablesRefreshInterval: Duration | None = None
    iptablesBackend: str | None = None
    failsafeInboundHostPorts: list[ProtoPort] | None = None
    failsafeOutboundHostPorts: list[ProtoPort] | None = None
    prometheusMetricsEnabled: bool | None = None
    prometheusMetricsPort: int | None = None
    healthEnabled: bool | None = None
    healthHost: str | None = None
    healthPort: int | None = None
    logSeverityScreen: str | None = None

    # --- Calico fields stored but not enforced: dataplane and refresh
    useInternalDataplaneDriver: bool | None = None
    dataplaneDriver: str | None = None
    dataplaneWatchdogTimeout: Duration | None = None
    ipv6Support: bool | None = None
    routeRefreshInterval: Duration | None = None
    interfaceRefreshInterval: Duration | None = None
    iptablesPostWriteCheckInterval: Duration | None = None
    iptablesLockFilePath: str | None = None
    iptablesLockTimeout: Duration | None = None
    iptablesLockProbeInterval: Duration | None = None
    featureDetectOverride: str | None = None
    featureGates: str | None = None
    ipsetsRefreshInterval: Duration | None = None
    maxIpsetSize: int | None = None
    netlinkTimeout: Duration | None = None
    nfNetlinkBufSize: str | None = None
    ipForwarding: str | None = None
    cgroupV2Path: str | None = None
    # iptables / nftables
    chainInsertMode: str | None = None
    defaultEndpointToHostAction: str | None = None
    iptablesFilterAllowAction: str | None = None
    iptablesMangleAllowAction: str | None = None
    iptablesFilterDenyAction: str | None = None
    iptablesMarkMask: int | None = None
    iptablesNATOutgoingInterfaceFilter: str | None = None
    disableConntrackInvalidCheck: bool | None = None
    nftablesMode: str | None = None
    nftablesRefreshInterval: Duration | None = None
    nftablesFilterAllowAction: str | None = None
    nftablesMangleAllowAction: str | None = None
    nftablesFilterDenyAction: str | None = None
    nftablesMarkMask: int | None = None
    # OpenStack metadata, interfaces
    metadataAddr: str | None = None
    metadataPort: int | None = None
    openstackRegion: str | None = None
    interfacePrefix: str | None = None
    interfaceExclude: str | None = None
    mtuIfacePattern: str | None = None
    # logging
    logPrefix: str | None = None
    logFilePath: str | None = None
    logSeverityFile: str | None = None
    logSeveritySys: str | None = None
    logDebugFilenameRegex: str | None = None
    # overlays
    ipipEnabled: bool | None = None
    ipipMTU: int | None = None
    vxlanEnabled: bool | None = None
    vxlanMTU: int | None = None
    vxlanMTUV6: int | None = None
    vxlanPort: int | None = None
    vxlanVNI: int | None = None
    allowVXLANPacketsFromWorkloads: bool | None = None
    allowIPIPPacketsFromWorkloads: bool | None = None
    # status reporting
    reportingInterval: Duration | None = None
    reportingTTL: Duration | None = None
    endpointReportingEnabled: bool | None = None
    endpointReportingDelay: Duration | None = None
    endpointStatusPathPrefix: str | None = None
    policySyncPathPrefix: str | None = None
    # health and metrics
    healthTimeoutOverrides: list[HealthTimeoutOverride] | None = None
    prometheusMetricsHost: str | None = None
    prometheusGoMetricsEnabled: bool | None = None
    prometheusProcessMetricsEnabled: bool | None = None
    prometheusWireGuardMetricsEnabled: bool | None = None
    # usage reporting
    usageReportingEnabled: bool | None = None
    usageReportingInitialDelay: Duration | None = None
    usageReportingInterval: Duration | None = None
    # NAT, routes, addresses
    kubeNodePortRanges: list[IntOrStr] | None = None
    natPortRange: IntOrStr | None = None
    natOutgoingAddress: str | None = None
    natOutgoingExclusions: str | None = None
    deviceRouteSourceAddress: str | None = None
    deviceRouteSourceAddressIPv6: str | None = None
    deviceRouteProtocol: int | None = None
    removeExternalRoutes: bool | None = None
    externalNodesList: list[str] | None = None
    routeSource: str | None = None
    routeTableRange: RouteTableRange | None = None
    routeTableRanges: list[RouteTableRange] | None = None
    routeSyncDisabled: bool | None = None
    programClusterRoutes: str | None = None
    serviceLoopPrevention: str | None = None
    workloadSourceSpoofing: str | None = None
    floatingIPs: str | None = None
    awsSrcDstCheck: str | None = None
    windowsManageFirewallRules: str | None = None
    sidecarAccelerationEnabled: bool | None = None
    # debugging
    debugMemoryProfilePath: str | None = None
    debugDisableLogDropping: bool | None = None
    debugSimulateCalcGraphHangAfter: Duration | None = None
    debugSimulateDataplaneHangAfter: Duration | None = None
    debugSimulateDataplaneApplyDelay: Duration | None = None
    debugHost: str | None = None
    debugPort: int | None = None
    # eBPF dataplane
    bpfEnabled: bool | None = None
    bpfDisableUnprivileged: bool | None = None
    bpfLogLevel: str | None = None
    bpfLogFilters: dict[str, str] | None = None
    bpfCTLBLogFilter: str | None = None
    bpfDataIfacePattern: str | None = None
    bpfL3IfacePattern: str | None = None
    bpfConnectTimeLoadBalancingEnabled: bool | None = None
    bpfConnectTimeLoadBalancing: str | None = None
    bpfHostNetworkedNATWithoutCTLB: str | None = None
    bpfExternalServiceMode: str | None = None
    bpfDSROptoutCIDRs: list[str] | None = None
    bpfExtToServiceConnmark: int | None = None
    bpfKubeProxyIptablesCleanupEnabled: bool | None = None
    bpfKubeProxyMinSyncPeriod: Duration | None = None
    bpfKubeProxyEndpointSlicesEnabled: bool | None = None
    bpfPSNATPorts: IntOrStr | None = None
    bpfMapSizeNATFrontend: int | None = None
    bpfMapSizeNATBackend: int | None = None
    bpfMapSizeNATAffinity: int | None = None
    bpfMapSizeRoute: int | None = None
    bpfMapSizeConntrack: int | None = None
    bpfMapSizePerCpuConntrack: int | None = None
    bpfMapSizeIPSets: int | None = None
    bpfMapSizeIfState: int | None = None
    bpfHostConntrackBypass: bool | None = None
    bpfEnforceRPF: str | None = None
    bpfPolicyDebugEnabled: bool | None = None
    bpfForceTrackPacketsFromIfaces: list[str] | None = None
    bpfDisableGROForIfaces: str | None = None
    bpfExcludeCIDRsFromNAT: list[str] | None = None
    bpfRedirectToPeer: str | None = None
    bpfAttachType: str | None = None
    bpfExportBufferSizeMB: int | None = None
    bpfConntrackLogLevel: str | None = None
    bpfConntrackMode: str | None = None
    bpfConntrackCleanupMode: str | None = None
    bpfConntrackTimeouts: dict[str, str] | None = None
    bpfProfiling: str | None = None
    # WireGuard
    wireguardEnabled: bool | None = None
    wireguardEnabledV6: bool | None = None
    wireguardListeningPort: int | None = None
    wireguardListeningPortV6: int | None = None
    wireguardRoutingRulePriority: int | None = None
    wireguardInterfaceName: str | None = None
    wireguardInterfaceNameV6: str | None = None
    wireguardMTU: int | None = None
    wireguardMTUV6: int | None = None
    wireguardHostEncryptionEnabled: bool | None = None
    wireguardKeepAlive: Duration | None = None
    wireguardThreadingEnabled: bool | None = None
    # transparent proxy
    tproxyMode: str | None = None
    tproxyPort: int | None = None
    tproxyUpstreamConnMark: int | None = None
    # Go runtime
    goGCThreshold: int | None = None
    goMemoryLimitMB: int | None = None
    goMaxProcs: int | None = None
    # flow logs (Goldmane)
    flowLogsFlushInterval: Duration | None = None
    flowLogsCollectorDebugTrace: bool | None = None
    flowLogsGoldmaneServer: str | None = None
    flowLogsLocalReporter: str | None = None
    flowLogsPolicyEvaluationMode: str | None = None


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
