"""Ask the kernel what XDP an interface supports, instead of guessing.

Linux 6.3 added the ``netdev`` generic-netlink family: ``NETDEV_CMD_DEV_GET``
answers with ``NETDEV_A_DEV_XDP_FEATURES``, a u64 of ``NETDEV_XDP_ACT_*`` bits
(``Documentation/netlink/specs/netdev.yaml``). A driver that advertises
``BASIC`` has native XDP; ``HW_OFFLOAD`` means offload; 0 means only generic
(SKB) mode will work. On older kernels the family is absent and
:func:`xdp_features` returns None: the caller must probe by attaching
(Cilium's approach).

Namespaces: with ``netns="name"`` the netlink socket is created inside
``/run/netns/name`` by pyroute2 (a short-lived helper process enters the
namespace, opens the socket and passes its fd back; the namespace is never
created as a side effect). Without it, the socket lives in the calling
thread's namespace, so code already inside ``seawall.testing.netns.in_netns``
also gets that namespace's answer.

libbpf 1.1's ``bpf_xdp_query`` does not read this attribute (1.2+ does, as
``feature_flags``), which is why this module talks netlink itself.
"""

from __future__ import annotations

import errno
import os
import re
import socket

from pyroute2.netlink import NLM_F_REQUEST, genlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket

#: No XDP below this kernel (xdp_md.ingress_ifindex and full LPM; peers-and-numbers §4.9).
XDP_MIN_KERNEL = (4, 16, 0)
#: First kernel with the netdev family's xdp-features.
XDP_FEATURES_KERNEL = (6, 3, 0)

NETDEV_FAMILY_NAME = "netdev"
NETDEV_FAMILY_VERSION = 1
NETDEV_CMD_DEV_GET = 1

# enum netdev_xdp_act (include/uapi/linux/netdev.h)
NETDEV_XDP_ACT_BASIC = 1
NETDEV_XDP_ACT_REDIRECT = 2
NETDEV_XDP_ACT_NDO_XMIT = 4
NETDEV_XDP_ACT_XSK_ZEROCOPY = 8
NETDEV_XDP_ACT_HW_OFFLOAD = 16
NETDEV_XDP_ACT_RX_SG = 32
NETDEV_XDP_ACT_NDO_XMIT_SG = 64

#: Bit -> the name netdev.yaml gives it (what ``ynl``/``xdp-loader features`` print).
FEATURE_NAMES: dict[int, str] = {
    NETDEV_XDP_ACT_BASIC: "basic",
    NETDEV_XDP_ACT_REDIRECT: "redirect",
    NETDEV_XDP_ACT_NDO_XMIT: "ndo-xmit",
    NETDEV_XDP_ACT_XSK_ZEROCOPY: "xsk-zerocopy",
    NETDEV_XDP_ACT_HW_OFFLOAD: "hw-offload",
    NETDEV_XDP_ACT_RX_SG: "rx-sg",
    NETDEV_XDP_ACT_NDO_XMIT_SG: "ndo-xmit-sg",
}


class netdevmsg(genlmsg):  # noqa: N801  (pyroute2's naming convention for message classes)
    """The netdev family's message (attribute set "dev", netdev.yaml). pyroute2
    0.9 ships no class for it."""

    prefix = "NETDEV_A_DEV_"
    nla_map = (
        ("NETDEV_A_DEV_UNSPEC", "none"),
        ("NETDEV_A_DEV_IFINDEX", "uint32"),
        ("NETDEV_A_DEV_PAD", "none"),
        ("NETDEV_A_DEV_XDP_FEATURES", "uint64"),
        ("NETDEV_A_DEV_XDP_ZC_MAX_SEGS", "uint32"),
        ("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES", "uint64"),
        ("NETDEV_A_DEV_XSK_FEATURES", "uint64"),
    )


def kernel_version(release: str | None = None) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of the running kernel (or of ``release``),
    ignoring distro suffixes: "6.18.44-fc-v657" -> (6, 18, 44)."""
    text = release if release is not None else os.uname().release
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise ValueError(f"unrecognised kernel release {text!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def describe_features(mask: int) -> list[str]:
    """Names of the set bits, lowest first; unknown bits as ``bit<N>``."""
    names = []
    for bit in range(64):
        if mask & (1 << bit):
            names.append(FEATURE_NAMES.get(1 << bit, f"bit{bit}"))
    return names


def _socket(netns: str | None) -> GenericNetlinkSocket:
    if netns is None:
        return GenericNetlinkSocket()
    if not os.path.exists(os.path.join("/run/netns", netns)):
        raise FileNotFoundError(errno.ENOENT, "no such network namespace", netns)
    return GenericNetlinkSocket(netns=netns, flags=0)  # flags=0: never create the netns


def _no_device(ifindex: int | str, netns: str | None) -> OSError:
    where = f" in netns {netns}" if netns else ""
    return OSError(errno.ENODEV, f"no network interface {ifindex}{where}")


def xdp_features(ifindex: int, netns: str | None = None) -> int | None:
    """The interface's ``NETDEV_XDP_ACT_*`` mask, or None when the kernel has no
    netdev family (before 6.3). Raises ``OSError(ENODEV)`` for an unknown
    ifindex."""
    sock = _socket(netns)
    try:
        try:
            sock.bind(NETDEV_FAMILY_NAME, netdevmsg)
        except NetlinkError as exc:
            if exc.code in (errno.ENOENT, errno.ENOTSUP):
                return None
            raise
        msg = netdevmsg()
        msg["cmd"] = NETDEV_CMD_DEV_GET
        msg["version"] = NETDEV_FAMILY_VERSION
        msg["attrs"] = [("NETDEV_A_DEV_IFINDEX", ifindex)]
        try:
            replies = list(sock.nlm_request(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST))
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                raise _no_device(ifindex, netns) from exc
            raise
    finally:
        sock.close()
    for reply in replies:
        if reply.get_attr("NETDEV_A_DEV_IFINDEX") == ifindex:
            return int(reply.get_attr("NETDEV_A_DEV_XDP_FEATURES") or 0)
    raise _no_device(ifindex, netns)


def ifindex(name: str, netns: str | None = None) -> int:
    """The interface's index in ``netns`` (default: the calling thread's
    namespace). Raises ``OSError(ENODEV)`` if there is no such interface."""
    if netns is None:
        try:
            return socket.if_nametoindex(name)
        except OSError as exc:
            raise _no_device(name, None) from exc
    from pyroute2 import IPRoute

    if not os.path.exists(os.path.join("/run/netns", netns)):
        raise FileNotFoundError(errno.ENOENT, "no such network namespace", netns)
    with IPRoute(netns=netns, flags=0) as ipr:
        found = ipr.link_lookup(ifname=name)
    if not found:
        raise _no_device(name, netns)
    return int(found[0])
