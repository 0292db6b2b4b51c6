"""Add and delete ipset members over netlink, thousands per message.

Why not ``ipset restore`` for members: it resolves every member with
``getaddrinfo``, which stats ``/etc/resolv.conf`` each time; a million ``add``
lines cost ~3.5 s on this machine, of which the kernel's own hash inserts are
~0.4 s (``perf``). The kernel takes many elements in one ``IPSET_CMD_ADD`` /
``IPSET_CMD_DEL`` message (an ``IPSET_ATTR_ADT`` list of ``IPSET_ATTR_DATA``,
as ``ipset restore`` itself batches them), and every element of a ``hash:net``
set has the same fixed shape, so the messages are laid out with numpy from the
members' integers, with no per-member Python work for IPv4.

The semantics are ``ipset restore -exist``'s: adding a member that is there, or
deleting one that is not, is no error (no ``NLM_F_EXCL``); any other error stops
at the failing message (the ones before it are applied, as restore's lines are)
and raises ``CommandError``. Set creation, swaps and destruction stay with
``ipset restore`` (``seawall.dataplane.iptables.ipsets``). The socket is the
calling process's network namespace: only for a runner without a prefix.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Collection, Sequence

import numpy as np

from seawall.api.cidr_bulk import v4_rows
from seawall.dataplane.iptables.backend import CommandError
from seawall.policy import bucket_ints
from seawall.policy.netset import NetSet, v4_keys_and_rest

NETLINK_NETFILTER = 12
NFNL_SUBSYS_IPSET = 6
IPSET_PROTOCOL = 7
CMD = {"add": 9, "del": 10}  # IPSET_CMD_ADD, IPSET_CMD_DEL
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NLA_F_NESTED, NLA_F_NET_BYTEORDER = 0x8000, 0x4000
ATTR_PROTOCOL, ATTR_SETNAME, ATTR_DATA, ATTR_ADT, ATTR_LINENO = 1, 2, 7, 8, 9
ATTR_IP, ATTR_CIDR = 1, 3
ATTR_IPADDR_IPV4, ATTR_IPADDR_IPV6 = 1, 2
#: An attribute's length is 16 bits: the element list of one message stays below 64 KiB.
PER_MESSAGE = {4: 2048, 6: 1024}  # x 24 / 36 bytes per element
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("<HH", length, kind) + payload + b"\0" * (-length % 4)


def _element_template(version: int) -> tuple[np.ndarray, int, int]:
    """One element's bytes with the address and prefix left zero, and their offsets."""
    address = b"\0" * (4 if version == 4 else 16)
    ip = _attr(ATTR_IP | NLA_F_NESTED, _attr((ATTR_IPADDR_IPV4 if version == 4 else ATTR_IPADDR_IPV6) | NLA_F_NET_BYTEORDER, address))
    data = _attr(ATTR_DATA | NLA_F_NESTED, ip + _attr(ATTR_CIDR, b"\0"))
    return np.frombuffer(data, np.uint8), 4 + 4 + 4, 4 + len(ip) + 4


def encode_elements(version: int, addresses: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ``IPSET_ATTR_DATA`` of every member, one row each (uint8): IPv4 addresses as
    integers (int64), IPv6 as rows of 16 bytes (uint8, network order)."""
    template, at_address, at_cidr = _element_template(version)
    rows = np.tile(template, (len(lengths), 1))
    if version == 4:
        rows[:, at_address : at_address + 4] = addresses.astype(">u4").view(np.uint8).reshape(-1, 4)
    else:
        rows[:, at_address : at_address + 16] = addresses
    rows[:, at_cidr] = lengths
    return rows


def parse_members(version: int, members: Collection[str]) -> tuple[np.ndarray, np.ndarray]:
    """(addresses, prefix lengths) of canonical CIDR texts of one family (see ``encode_elements``);
    a ``NetSet``'s buckets whose integers are known (``bucket_ints``) are not parsed again."""
    if version == 4 and isinstance(members, NetSet):
        known, rest = v4_keys_and_rest(members)
        if rest:
            raise ValueError(f"not a canonical IPv4 CIDR: {rest[0]!r}")
        return bucket_ints.unpack(known)
    if not isinstance(members, Sequence):
        members = list(members)
    if version == 4:
        ok, addresses, lengths = v4_rows(members)
        if not ok.all():
            bad = members[int(np.flatnonzero(~ok)[0])]
            raise ValueError(f"not a canonical IPv4 CIDR: {bad!r}")
        return addresses, lengths
    packed = bytearray()
    prefixes = []
    for member in members:
        address, _, prefix = member.partition("/")
        packed += socket.inet_pton(socket.AF_INET6, address)
        prefixes.append(int(prefix) if prefix else 128)
    return np.frombuffer(bytes(packed), np.uint8).reshape(-1, 16), np.array(prefixes, np.int64)


def messages(op: str, name: str, version: int, elements: np.ndarray, first_seq: int = 1) -> list[bytes]:
    """The netlink messages that apply ``op`` ("add" or "del") to every element row."""
    # the kernel wants a line number beside an element list (restore's, for its errors)
    head_attrs = (_attr(ATTR_PROTOCOL, bytes([IPSET_PROTOCOL])) + _attr(ATTR_SETNAME, name.encode() + b"\0")
                  + _attr(ATTR_LINENO | NLA_F_NET_BYTEORDER, struct.pack(">I", 0)))
    out = []
    step = PER_MESSAGE[version]
    for seq, first in enumerate(range(0, len(elements), step), start=first_seq):
        body = elements[first : first + step].tobytes()
        adt = struct.pack("<HH", 4 + len(body), ATTR_ADT | NLA_F_NESTED) + body
        payload = struct.pack("<BBH", _FAMILY[version], 0, 0) + head_attrs + adt
        header = struct.pack("<IHHII", 16 + len(payload), (NFNL_SUBSYS_IPSET << 8) | CMD[op], NLM_F_REQUEST | NLM_F_ACK, seq, 0)
        out.append(header + payload)
    return out


class NetlinkMembers:
    """Writes ipset members in this process's network namespace (see the module docstring)."""

    def __call__(self, op: str, name: str, version: int, members: Collection[str]) -> None:
        if not members:
            return
        addresses, lengths = parse_members(version, members)
        batch = messages(op, name, version, encode_elements(version, addresses, lengths))
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.bind((0, 0))
            for seq, message in enumerate(batch, start=1):
                sock.send(message)
                self._ack(sock, seq, op, name)

    @staticmethod
    def _ack(sock: socket.socket, seq: int, op: str, name: str) -> None:
        while True:
            reply = sock.recv(65536)
            offset = 0
            while offset + 16 <= len(reply):
                length, kind, _, reply_seq, _ = struct.unpack_from("<IHHII", reply, offset)
                if kind == NLMSG_ERROR and reply_seq == seq:
                    (code,) = struct.unpack_from("<i", reply, offset + 16)
                    if code:
                        raise CommandError(["ipset", op, name, "(netlink)"], 1, _explain(-code))
                    return
                offset += max(16, (length + 3) & ~3)


def _explain(code: int) -> str:
    if code == errno.ENOENT:
        return "the set does not exist"
    if code < 4096:
        return os.strerror(code)
    known = _IPSET_ERRORS.get(code, "see IPSET_ERR_* in linux/netfilter/ipset/ip_set.h")
    return f"ipset error {code}: {known}"


_IPSET_ERRORS = {4097: "the kernel refused the message (a member of the wrong family for the set?)",
                 4352: "the set is full (maxelem)"}
