"""The reference verdict of the untracked tier: the oracle every dataplane is tested against.

Plain Python with ``ipaddress`` containment, written for clarity, not speed;
the raw renderer and the XDP program must give exactly what this says.

Order of evaluation for a packet on an interface and direction:

1. The interface is unknown, or none of its policies has a rule for this
   direction -> CONTINUE (nothing is rendered for it; the packet goes on).
1b. IPv6 neighbour discovery (ICMPv6 types 133-137 with hop limit 255, as
   RFC 4861 requires) -> CONTINUE in both directions, before any rule: ARP is
   never filtered here, and without this a blocked IPv6 source could never
   resolve the host, so its failsafe ports (and, under ``::/0``, everyone's)
   would not work over IPv6.
2. Failsafe, own ports: ingress ``protocol + dport`` in ``failsafe_in``
   (egress: ``dport`` in ``failsafe_out``), remote address in the entry's net
   if it has one -> FAILSAFE, even from denied sources.
3. Failsafe, replies: ingress ``protocol + sport`` in ``failsafe_out`` (egress:
   ``sport`` in ``failsafe_in``), remote in net -> FAILSAFE *unless any Deny
   rule of the interface's policies for this direction matches the packet on
   its own* (regardless of earlier Allow/Pass/Log). A blocklist therefore stops
   reflection floods from udp/53.
4. Policies in the given order, rules in order; the first match decides:
   Allow -> ALLOW, Deny -> DENY, Pass -> CONTINUE (leave the tier), Log ->
   record and go on. Nothing matched -> CONTINUE.

Rule matching (every present field must hold):
* ``ip_version`` equals the packet's family;
* ``protocol`` equals / ``not_protocol`` differs;
* ``icmp``: the packet is ICMP (v4) / ICMPv6 (v6) and its type (and code, if
  given) is equal; ``not_icmp``: not such an ICMP packet (non-ICMP packets
  pass). A code is only considered together with a type;
* ``nets``: some CIDR contains the address; ``not_nets``: none does;
* ``sets``: the address is in some referenced CidrSet; ``not_sets``: in none;
  a rule that references a set id missing from ``state.sets`` is treated as
  absent (matches nothing) — a dangling reference is invalid input;
* ``ports``: the port is in some range; ``not_ports``: in none. Ports exist
  only for TCP, UDP, SCTP and UDP-Lite packets; a rule with ``ports`` or
  ``not_ports`` never matches any other packet (iptables' multiport needs one
  of these protocols; Calico's validation requires it too).

Pure: no I/O.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from seawall.api.cidr import Cidr
from seawall.policy.model import (
    Action,
    Direction,
    EntityMatch,
    FailsafePort,
    IcmpMatch,
    InterfacePolicy,
    PortRange,
    Rule,
    UntrackedState,
)

PORT_PROTOCOLS: tuple[int, ...] = (6, 17, 132, 136)  # tcp, udp, sctp, udplite
ICMP_PROTOCOL = {4: 1, 6: 58}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    protocol: int
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    hop_limit: int | None = None  # IPv6 hop limit / IPv4 TTL; None = not 255


ND_TYPES = range(133, 138)  # RS, RA, NS, NA, redirect (RFC 4861)
ND_HOP_LIMIT = 255


def is_neighbour_discovery(packet: Packet) -> bool:
    """An IPv6 neighbour-discovery message, which every tier lets through."""
    return (
        packet.protocol == ICMP_PROTOCOL[6]
        and packet.icmp_type in ND_TYPES
        and packet.hop_limit == ND_HOP_LIMIT
        and ":" in packet.src
    )


class Verdict(enum.Enum):
    FAILSAFE = "failsafe"  # accepted by a failsafe rule (stays tracked)
    ALLOW = "allow"  # untracked accept (NOTRACK)
    DENY = "deny"  # dropped
    CONTINUE = "continue"  # not decided here (or Pass): on to the normal stack


RuleRef = tuple[str, int]  # (policy name, rule index in that direction)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    logged_by: tuple[RuleRef, ...] = ()
    decided_by: RuleRef | None = None

    @property
    def logged(self) -> bool:
        return bool(self.logged_by)


@lru_cache(maxsize=4096)
def _net(cidr: Cidr | str) -> Network:
    """A rule net (``Cidr``) or set member (text) as ``ipaddress`` sees it: the
    oracle judges with the standard library, not with the values' own arithmetic."""
    return ipaddress.ip_network(str(cidr), strict=False)


def _in_any(addr: Address, cidrs: object) -> bool:
    return any(addr in _net(c) for c in cidrs)  # type: ignore[attr-defined]


def _has_ports(packet: Packet) -> bool:
    return packet.protocol in PORT_PROTOCOLS


def _port_ok(port: int | None, ports: tuple[PortRange, ...], not_ports: tuple[PortRange, ...]) -> bool:
    if port is None:
        return False
    if ports and not any(port in r for r in ports):
        return False
    return not any(port in r for r in not_ports)


def _entity_matches(
    state: UntrackedState, side: EntityMatch, addr: Address, port: int | None, packet: Packet
) -> bool:
    if side.nets and not _in_any(addr, side.nets):
        return False
    if _in_any(addr, side.not_nets):
        return False
    if side.sets and not any(_in_any(addr, state.sets[s].cidrs) for s in side.sets):
        return False
    if any(_in_any(addr, state.sets[s].cidrs) for s in side.not_sets):
        return False
    if side.ports or side.not_ports:
        if not _has_ports(packet) or not _port_ok(port, side.ports, side.not_ports):
            return False
    return True


def _icmp_is(packet: Packet, family: int, icmp: IcmpMatch) -> bool:
    if packet.protocol != ICMP_PROTOCOL[family]:
        return False
    if icmp.type is None:
        return True
    if packet.icmp_type != icmp.type:
        return False
    return icmp.code is None or packet.icmp_code == icmp.code


def references_missing_set(state: UntrackedState, rule: Rule) -> bool:
    ids = (*rule.source.sets, *rule.source.not_sets, *rule.destination.sets, *rule.destination.not_sets)
    return any(i not in state.sets for i in ids)


def rule_matches(state: UntrackedState, rule: Rule, packet: Packet) -> bool:
    """Whether ``rule``'s match (ignoring its action) holds for ``packet``."""
    src = ipaddress.ip_address(packet.src)
    dst = ipaddress.ip_address(packet.dst)
    family = src.version
    if rule.ip_version is not None and rule.ip_version != family:
        return False
    if rule.protocol is not None and packet.protocol != rule.protocol:
        return False
    if rule.not_protocol is not None and packet.protocol == rule.not_protocol:
        return False
    if rule.icmp is not None and not _icmp_is(packet, family, rule.icmp):
        return False
    if rule.not_icmp is not None and _icmp_is(packet, family, rule.not_icmp):
        return False
    if references_missing_set(state, rule):
        return False
    if not _entity_matches(state, rule.source, src, packet.sport, packet):
        return False
    return _entity_matches(state, rule.destination, dst, packet.dport, packet)


def _failsafe_hit(entries: tuple[FailsafePort, ...], packet: Packet, port: int | None, remote: Address) -> bool:
    if port is None or not _has_ports(packet):
        return False
    return any(
        fp.protocol == packet.protocol and fp.port == port and (fp.net is None or remote in _net(fp.net))
        for fp in entries
    )


def _any_deny_matches(state: UntrackedState, iface: InterfacePolicy, direction: Direction, packet: Packet) -> bool:
    return any(
        rule.action is Action.DENY and rule_matches(state, rule, packet)
        for policy in iface.policies
        for rule in policy.rules(direction)
    )


def has_rules(iface: InterfacePolicy, direction: Direction) -> bool:
    """Whether anything is enforced on ``iface`` in ``direction`` (else nothing is rendered)."""
    return any(policy.rules(direction) for policy in iface.policies)


def decide(
    state: UntrackedState, interface: str, packet: Packet, direction: Direction = Direction.INGRESS
) -> Decision:
    """The full decision: verdict, which Log rules logged, which rule decided."""
    iface = state.interface(interface)
    if iface is None or not has_rules(iface, direction) or is_neighbour_discovery(packet):
        return Decision(Verdict.CONTINUE)
    ingress = direction is Direction.INGRESS
    remote = ipaddress.ip_address(packet.src if ingress else packet.dst)
    own, replies = (state.failsafe_in, state.failsafe_out) if ingress else (state.failsafe_out, state.failsafe_in)
    if _failsafe_hit(own, packet, packet.dport, remote):
        return Decision(Verdict.FAILSAFE)
    if _failsafe_hit(replies, packet, packet.sport, remote) and not _any_deny_matches(
        state, iface, direction, packet
    ):
        return Decision(Verdict.FAILSAFE)
    logged: list[RuleRef] = []
    for policy in iface.policies:
        for index, rule in enumerate(policy.rules(direction)):
            if not rule_matches(state, rule, packet):
                continue
            ref = (policy.name, index)
            if rule.action is Action.LOG:
                logged.append(ref)
                continue
            result = {Action.ALLOW: Verdict.ALLOW, Action.DENY: Verdict.DENY, Action.PASS: Verdict.CONTINUE}
            return Decision(result[rule.action], tuple(logged), ref)
    return Decision(Verdict.CONTINUE, tuple(logged), None)


def verdict(
    state: UntrackedState, interface: str, packet: Packet, direction: Direction = Direction.INGRESS
) -> Verdict:
    """Just the verdict; see ``decide`` for logging and the deciding rule."""
    return decide(state, interface, packet, direction).verdict
