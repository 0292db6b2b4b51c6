"""Which XDP attach modes to try on an interface, and why the others are skipped.

Order: offload (NIC hardware) -> native (driver) -> generic (kernel, only when
``genericXDPEnabled``) -> none (the iptables raw tier enforces everything).
Where the kernel reports ``xdp-features`` (netdev generic netlink, Linux 6.3+)
we ask instead of guessing; otherwise we try and record the error. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from seawall.dataplane.mode import Mode, SkippedMode
from seawall.dataplane.xdp.features import NETDEV_XDP_ACT_BASIC, NETDEV_XDP_ACT_HW_OFFLOAD, XDP_MIN_KERNEL, describe_features


@dataclass(frozen=True, slots=True)
class ModePlan:
    """Modes to attempt, best first, and why each better mode is not attempted;
    ``unavailable``: why no XDP mode at all is attempted (None: some may be)."""

    attempts: tuple[Mode, ...]
    skipped: tuple[SkippedMode, ...]
    unavailable: str | None = None


def plan_modes(
    *,
    kernel: tuple[int, int, int],
    features: int | None,
    xdp_enabled: bool,
    generic_enabled: bool,
) -> ModePlan:
    if not xdp_enabled:
        return ModePlan((), (), "XDP disabled (xdpEnabled: false)")
    if kernel < XDP_MIN_KERNEL:
        version = ".".join(map(str, kernel))
        return ModePlan((), (), f"kernel {version} is older than 4.16, the minimum for XDP")
    attempts: list[Mode] = []
    skipped: list[SkippedMode] = []
    shown = ",".join(describe_features(features)) if features else "none"
    if features is None:
        attempts += [Mode.XDP_OFFLOAD, Mode.XDP_NATIVE]
    else:
        if features & NETDEV_XDP_ACT_HW_OFFLOAD:
            attempts.append(Mode.XDP_OFFLOAD)
        else:
            skipped.append((Mode.XDP_OFFLOAD, f"the device does not offer it (xdp-features: {shown})"))
        if features & NETDEV_XDP_ACT_BASIC:
            attempts.append(Mode.XDP_NATIVE)
        else:
            skipped.append((Mode.XDP_NATIVE, f"the driver has no XDP support (xdp-features: {shown})"))
    if generic_enabled:
        attempts.append(Mode.XDP_GENERIC)
    else:
        skipped.append((Mode.XDP_GENERIC, "disabled (FelixConfiguration genericXDPEnabled: false)"))
    return ModePlan(tuple(attempts), tuple(skipped))
