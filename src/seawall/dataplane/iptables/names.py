"""Names of everything Seawall owns in the raw table: chains, ipsets, rule comments.

Every name carries a fixed short prefix (``sw-`` chains, ``sw4-``/``sw6-``
ipsets, ``sw:`` comments) so the driver can tell our objects from anyone
else's without the datastore (DESIGN invariant 3). The kernel limits chain
names to 28 characters and ipset names to 31; an identifier that does not fit,
or holds characters we do not want in a chain name, is replaced by ``_`` plus
base64url(SHA-256(identifier)) cut to fit, as Calico's ``GetLengthLimitedID``
does. Everything here is a pure function of its arguments, so names and
comments are stable across restarts and drift is detectable. Pure.
"""

from __future__ import annotations

import base64
import hashlib
import re

from seawall.dataplane.iptables.rendered import CHAIN_PREFIX, COMMENT_PREFIX, IPSET_PREFIX
from seawall.policy.model import Direction

MAX_CHAIN_NAME = 28
MAX_IPSET_NAME = 31

DISPATCH_INGRESS = f"{CHAIN_PREFIX}PREROUTING"  # jumped from raw PREROUTING
DISPATCH_EGRESS = f"{CHAIN_PREFIX}OUTPUT"  # jumped from raw OUTPUT
FAILSAFE_IN = f"{CHAIN_PREFIX}failsafe-in"
FAILSAFE_OUT = f"{CHAIN_PREFIX}failsafe-out"
ACCEPT_CHAIN = f"{CHAIN_PREFIX}accept"  # clears our mark bits, then ACCEPT

_SAFE = re.compile(r"^[A-Za-z0-9.:-][A-Za-z0-9._:-]*$")


def _b64hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def chain_name(kind: str, ident: str) -> str:
    """``sw-<kind>-<ident>``, or ``sw-<kind>-_<hash>`` when that is too long or unsafe.

    Identifiers starting with ``_`` are always hashed so that a literal name can
    never collide with a hashed one.
    """
    prefix = f"{CHAIN_PREFIX}{kind}-"
    if len(prefix) + 2 > MAX_CHAIN_NAME:
        raise ValueError(f"chain kind {kind!r} too long")
    plain = prefix + ident
    if ident and len(plain) <= MAX_CHAIN_NAME and _SAFE.match(ident):
        return plain
    return prefix + "_" + _b64hash(ident)[: MAX_CHAIN_NAME - len(prefix) - 1]


def interface_chain(direction: Direction, ifname: str) -> str:
    """``sw-fh-<if>`` (from host endpoint, ingress) / ``sw-th-<if>`` (egress)."""
    return chain_name("fh" if direction is Direction.INGRESS else "th", ifname)


def policy_chain(direction: Direction, policy_name: str) -> str:
    """``sw-pi-<policy>`` (ingress rules) / ``sw-po-<policy>`` (egress rules)."""
    return chain_name("pi" if direction is Direction.INGRESS else "po", policy_name)


def deny_probe_chain(direction: Direction, policy_name: str) -> str:
    """``sw-di-``/``sw-do-``: the matches of a policy's Deny rules only, used to
    refuse outbound-failsafe replies from denied peers (see render.py)."""
    return chain_name("di" if direction is Direction.INGRESS else "do", policy_name)


def dispatch_chain(direction: Direction) -> str:
    return DISPATCH_INGRESS if direction is Direction.INGRESS else DISPATCH_EGRESS


def failsafe_chain(direction: Direction) -> str:
    return FAILSAFE_IN if direction is Direction.INGRESS else FAILSAFE_OUT


def ipset_name(family: int, set_id: str) -> str:
    """``sw4-<hash>`` / ``sw6-<hash>``, exactly 31 characters."""
    if family not in (4, 6):
        raise ValueError(f"bad family {family}")
    prefix = f"{IPSET_PREFIX}{family}-"
    return prefix + _b64hash(set_id)[: MAX_IPSET_NAME - len(prefix)]


def rule_comment(chain: str, args: str) -> str:
    """``sw:`` + 16 hex digits of SHA-256(chain, args): same rule, same comment."""
    digest = hashlib.sha256(f"{chain}\0{args}".encode()).hexdigest()
    return f"{COMMENT_PREFIX}{digest[:16]}"
