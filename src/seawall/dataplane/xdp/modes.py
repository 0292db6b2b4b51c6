"""Which XDP attach modes to try on an interface, and why the others are skipped.

Order: offload (NIC hardware) -> native (driver) -> generic (kernel, only when
``genericXDPEnabled``) -> none (the iptables raw tier enforces everything).
Where the kernel reports ``xdp-features`` (netdev generic netlink, Linux 6.3+)
we ask instead of guessing; otherwise we try and record the error. Pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from seawall.dataplane.xdp.features import NETDEV_XDP_ACT_BASIC, NETDEV_XDP_ACT_HW_OFFLOAD, XDP_MIN_KERNEL, describe_features


class XdpMode(str, enum.Enum):
    OFFLOAD = "xdp-offload"
    NATIVE = "xdp-native"
    GENERIC = "xdp-generic"

    @property
    def short(self) -> str:
        return self.value.removeprefix("xdp-")


FALLBACK_MODE = "iptables-raw"


@dataclass(frozen=True, slots=True)
class ModePlan:
    """Modes to attempt, best first, and why each better mode is not attempted."""

    attempts: tuple[XdpMode, ...]
    skipped: tuple[str, ...]


def plan_modes(
    *,
    kernel: tuple[int, int, int],
    features: int | None,
    xdp_enabled: bool,
    generic_enabled: bool,
) -> ModePlan:
    if not xdp_enabled:
        return ModePlan((), ("XDP disabled (xdpEnabled: false)",))
    if kernel < XDP_MIN_KERNEL:
        version = ".".join(map(str, kernel))
        return ModePlan((), (f"kernel {version} is older than 4.16, the minimum for XDP",))
    attempts: list[XdpMode] = []
    skipped: list[str] = []
    shown = ",".join(describe_features(features)) if features else "none"
    if features is None:
        attempts += [XdpMode.OFFLOAD, XdpMode.NATIVE]
    else:
        if features & NETDEV_XDP_ACT_HW_OFFLOAD:
            attempts.append(XdpMode.OFFLOAD)
        else:
            skipped.append(f"offload: the device does not offer it (xdp-features: {shown})")
        if features & NETDEV_XDP_ACT_BASIC:
            attempts.append(XdpMode.NATIVE)
        else:
            skipped.append(f"native: the driver has no XDP support (xdp-features: {shown})")
    if generic_enabled:
        attempts.append(XdpMode.GENERIC)
    else:
        skipped.append("generic: disabled (FelixConfiguration genericXDPEnabled: false)")
    return ModePlan(tuple(attempts), tuple(skipped))
