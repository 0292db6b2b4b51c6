"""Render untracked policy as raw-table chains and ipsets (pure).

The rendered rules must give, for every packet, exactly the verdict of
``seawall.policy.verdict`` (the contract): FAILSAFE -> ACCEPT (stays tracked),
ALLOW -> NOTRACK + ACCEPT, DENY -> DROP, CONTINUE -> leave raw untouched.

Chains per family (iptables for 4, ip6tables for 6)::

  PREROUTING -> sw-PREROUTING: -i <if> -g sw-fh-<if>     (OUTPUT -> sw-OUTPUT: -o <if> -g sw-th-<if>)
  sw-fh-<if>:
    -j MARK --set-xmark 0/ALL           clear our bits
    (IPv6) -p ipv6-icmp -m icmp6 --icmpv6-type T -m hl --hl-eq 255 -j RETURN, T = 133..137:
                                        neighbour discovery continues (verdict step 1b)
    -j sw-failsafe-in                   own failsafe dports: ACCEPT; reply sports: set FS
    -m mark --mark FS/FS -j sw-di-<p>   per policy with Deny rules: a Deny match clears FS
    -m mark --mark FS/FS -g sw-accept   reply no Deny rule matches: ACCEPT
    -m mark --mark 0/ACC|PASS|DENY -j sw-pi-<p>   per policy, until one accepted, passed or denied
    -m mark --mark DENY/DENY -j DROP    a Deny rule matched: dropped here, so the counter is per interface
    -m mark --mark ACC/ACC -j NOTRACK
    -m mark --mark ACC/ACC -g sw-accept
    -j MARK --set-xmark 0/ALL           unmatched: continue with our bits cleared
  sw-accept: clear our bits, ACCEPT (so no bit of ours leaks to later tables/routing)

Outbound failsafe vs Deny: Calico accepts replies from outbound-failsafe source
ports before any policy, so a blocklisted host can reflect udp/53 floods
through raw. Seawall accepts such a reply only if *no* Deny rule of the
interface matches it on its own. The shared failsafe chain only marks reply
candidates (FS); the interface chain then runs, per policy, a "deny probe"
chain ``sw-di-<p>``/``sw-do-<p>`` holding the matches of that policy's Deny
rules (every one, ignoring Allow/Pass order, as the oracle does) whose action
clears FS; a candidate still marked is accepted before any policy runs.

Matches: one rule line holds at most one ``-p``, ``-s`` and ``-d``. Anything
that is an OR (several nets, several sets, more than 15 multiport slots — a
range counts as 2 — or "not ICMP type T" without a protocol) or that needs a
second ``-s``/``-d`` (several notNets) is built with two scratch bits like
Calico's match blocks: the plain AND part sets bit A; each OR block, reading A,
sets B on any alternative, then A is cleared and the roles swap; each
exclusion, reading the current bit, clears it; the action finally applies when
the current bit is set. Rules with ports but no protocol are rendered once per
port protocol (tcp, udp, sctp, udplite): protocols exclude each other, so at
most one copy acts.

Marks (``Marks``): accept 0x10000, pass 0x20000, scratch 0x40000/0x80000,
failsafe-reply 0x100000, deny 0x200000; all cleared on entry and before every
exit (a dropped packet keeps its deny bit: it goes nowhere). A Deny rule sets
the deny bit and returns; the interface chain drops, so the kernel's counter of
that one DROP line (role "drop") is the raw tier's drops on that interface and
family, while the mark line (role "action") still counts per policy rule.
A rule that references a set id absent from ``state.sets``, or whose
ip_version/CIDRs cannot match the table's family, is skipped in that table.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import re
import weakref
from collections.abc import Iterable, Sequence, Set as AbstractSet
from dataclasses import dataclass, replace
from functools import lru_cache

from seawall.api.cidr import Cidr
from seawall.dataplane.iptables import names
from seawall.dataplane.iptables.rendered import IpSetContent, RenderedRaw, RuleOrigin, TableContent
from seawall.dataplane.iptables.ruleset import hook_rule, our_comment
from seawall.dataplane.skipped import Sink, record, skip
from seawall.policy.model import Action, Direction, EntityMatch, FailsafePort, Policy, PortRange, Rule, UntrackedState
from seawall.policy.netset import NetSet, unparsed_members
from seawall.policy.verdict import ICMP_PROTOCOL, ND_HOP_LIMIT, ND_TYPES, PORT_PROTOCOLS, has_rules, references_missing_set

MULTIPORT_SLOTS = 15
LOG_PREFIX_MAX = 29  # iptables LOG --log-prefix limit
PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}


@dataclass(frozen=True, slots=True)
class Marks:
    accept: int = 0x10000
    pass_: int = 0x20000
    scratch0: int = 0x40000
    scratch1: int = 0x80000
    failsafe: int = 0x100000
    deny: int = 0x200000

    @property
    def all(self) -> int:
        return self.accept | self.pass_ | self.scratch0 | self.scratch1 | self.failsafe | self.deny


DEFAULT_MARKS = Marks()

# A match part: (exclusive key "p"/"s"/"d" or "", text). An alternative is a tuple of parts.
Part = tuple[str, str]
Alt = tuple[Part, ...]


def _hex(v: int) -> str:
    return hex(v)


def _is_mark(bit: int) -> str:
    return f"-m mark --mark {_hex(bit)}/{_hex(bit)}"


def _set_mark(value: int, mask: int) -> str:
    return f"-j MARK --set-xmark {_hex(value)}/{_hex(mask)}"


def _proto(p: int) -> str:
    return PROTOCOL_NAMES.get(p, str(p))


log = logging.getLogger(__name__)


#: Where a skipped value was found: ("set", set id), ("policy", policy name) or ("failsafe", "").
SkipKey = tuple[str, str]


def _valid(cidr: object, sink: Sink | None = None, where: str = "") -> bool:
    """Whether a value is a CIDR the rules may name: a string, ASCII digits, no
    IPv6 zone. Anything else is skipped and logged, never rendered (one bad
    value must not fail the whole table's restore); the calculation drops and
    reports such values before they get here."""
    if isinstance(cidr, str) and cidr.isascii() and "%" not in cidr:
        try:
            ipaddress.ip_network(cidr, strict=False)
            return True
        except ValueError:
            pass
    skip(log, "iptables raw", sink, cidr, f"not a CIDR ({where})" if where else "not a CIDR", "not a CIDR")
    return False


def _merge_ports(ports: Iterable[PortRange]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for low, high in sorted((r.low, r.high) for r in ports):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [(a, b) for a, b in merged]


def port_chunks(ports: Iterable[PortRange]) -> list[str]:
    """multiport lists of at most 15 slots each (a range takes two)."""
    chunks: list[list[str]] = [[]]
    used = 0
    for low, high in _merge_ports(ports):
        text, cost = (str(low), 1) if low == high else (f"{low}:{high}", 2)
        if used + cost > MULTIPORT_SLOTS:
            chunks.append([])
            used = 0
        chunks[-1].append(text)
        used += cost
    return [",".join(c) for c in chunks if c]


@dataclass
class _Match:
    """AND of: ``plain`` parts (one line), OR ``groups``, and ``excludes`` (none may match)."""

    plain: list[Part]
    groups: list[list[Alt]]
    excludes: list[Alt]

    def add(self, alts: Sequence[Alt]) -> None:
        if len(alts) == 1 and self._fits(alts[0]):
            self.plain.extend(p for p in alts[0] if p not in self.plain)
        else:
            self.groups.append(list(alts))

    def add_negation(self, negated: Alt, positive: Alt) -> None:
        if self._fits(negated):
            self.plain.extend(negated)
        else:
            self.excludes.append(positive)

    def _fits(self, alt: Alt) -> bool:
        used = {k: t for k, t in self.plain if k}
        return all(not k or used.get(k, t) == t for k, t in alt)


class _RuleCompiler:
    """Turns one rule into match lines for one table family."""

    def __init__(self, state: UntrackedState, family: int, ipsets: dict[str, IpSetContent],
                 skipped: dict[SkipKey, Sink] | None = None) -> None:
        self.state = state
        self.family = family
        self.ipsets = ipsets
        self.skipped: dict[SkipKey, Sink] = {} if skipped is None else skipped
        self.policy = ""  # the policy whose rules are being compiled (where a skipped net is reported)

    def _sink(self, key: SkipKey) -> Sink:
        return self.skipped.setdefault(key, {})

    def compile(self, rule: Rule) -> list[_Match]:
        """One _Match per protocol copy; [] when the rule cannot match in this family."""
        fam = self.family
        if rule.ip_version is not None and rule.ip_version != fam:
            return []
        if references_missing_set(self.state, rule):
            return []
        for side in (rule.source, rule.destination):
            if side.nets and not any(c.family == fam for c in side.nets):
                return []
        wants_ports = any(s.ports or s.not_ports for s in (rule.source, rule.destination))
        protos: list[int | None]
        if rule.protocol is not None:
            protos = [rule.protocol]
        elif rule.icmp is not None:
            protos = [ICMP_PROTOCOL[fam]]
        elif wants_ports:
            protos = list(PORT_PROTOCOLS)
        else:
            protos = [None]
        if rule.icmp is not None:
            protos = [p for p in protos if p == ICMP_PROTOCOL[fam]]
        if wants_ports:
            protos = [p for p in protos if p in PORT_PROTOCOLS]
        if rule.not_protocol is not None:
            protos = [p for p in protos if p != rule.not_protocol]
        out = []
        for proto in protos:
            m = self._compile_one(rule, proto)
            if m is not None:
                out.append(m)
        return out

    def _compile_one(self, rule: Rule, proto: int | None) -> _Match | None:
        m = _Match([], [], [])
        fam = self.family
        icmp_proto = ICMP_PROTOCOL[fam]
        icmp_mod, icmp_opt = ("-m icmp", "--icmp-type") if fam == 4 else ("-m icmp6", "--icmpv6-type")
        if proto is not None:
            m.add([(("p", f"-p {_proto(proto)}"),)])
        elif rule.not_protocol is not None:
            m.add([(("p", f"! -p {_proto(rule.not_protocol)}"),)])
        is_icmp: Part = ("p", f"-p {_proto(icmp_proto)}")
        if rule.icmp is not None and rule.icmp.type is not None:
            spec = _icmp_spec(rule.icmp.type, rule.icmp.code)
            m.add([(is_icmp, ("", f"{icmp_mod} {icmp_opt} {spec}"))])
        if rule.not_icmp is not None:
            ni = rule.not_icmp
            if proto is None or proto == icmp_proto:
                not_icmp_proto: Alt = (("p", f"! -p {_proto(icmp_proto)}"),)
                if ni.type is None:
                    if proto == icmp_proto:
                        return None
                    m.add([not_icmp_proto])
                else:
                    spec = _icmp_spec(ni.type, ni.code)
                    other_type: Alt = (is_icmp, ("", f"{icmp_mod} ! {icmp_opt} {spec}"))
                    m.add([other_type] if proto == icmp_proto else [not_icmp_proto, other_type])
        for side, flag, direction in ((rule.source, "s", "src"), (rule.destination, "d", "dst")):
            if not self._side(m, side, flag, direction, proto):
                return None
        return m

    def _side(self, m: _Match, side: EntityMatch, flag: str, direction: str, proto: int | None) -> bool:
        fam = self.family
        nets = sorted({c.text for c in side.nets if c.family == fam})
        if side.nets:
            m.add([((flag, f"-{flag} {n}"),) for n in nets])
        for n in sorted({c.text for c in side.not_nets if c.family == fam}):
            m.add_negation(((flag, f"! -{flag} {n}"),), ((flag, f"-{flag} {n}"),))
        if side.sets:
            m.add([(("", f"-m set --match-set {self._ipset(s)} {direction}"),) for s in sorted(set(side.sets))])
        for s in sorted(set(side.not_sets)):
            m.add([(("", f"-m set ! --match-set {self._ipset(s)} {direction}"),)])
        opt = "--sports" if flag == "s" else "--dports"
        if side.ports or side.not_ports:
            assert proto is not None
            p: Part = ("p", f"-p {_proto(proto)}")
            if side.ports:
                m.add([(p, ("", f"-m multiport {opt} {c}")) for c in port_chunks(side.ports)])
            for c in port_chunks(side.not_ports):
                m.add([(p, ("", f"-m multiport ! {opt} {c}"))])
        return True

    def _ipset(self, set_id: str) -> str:
        name = names.ipset_name(self.family, set_id)
        if name not in self.ipsets:
            members, bad = _members_and_skipped(self.state.sets[set_id].cidrs, self.family)
            self.ipsets[name] = IpSetContent(name=name, family="inet" if self.family == 4 else "inet6", members=members)
            if bad:
                sink = self._sink(("set", set_id))
                for value in bad:
                    record(sink, value, f"not a CIDR (set {set_id})")
        return name


def _icmp_spec(type_: int, code: int | None) -> str:
    return str(type_) if code is None else f"{type_}/{code}"


def ipset_members(cidrs: Iterable[str], family: int) -> frozenset[str] | NetSet:
    """The family's CIDRs, normalised; /0 split in two /1s (hash:net cannot hold /0)."""
    return _members_and_skipped(cidrs, family)[0]


def _members_and_skipped(cidrs: Iterable[str], family: int) -> tuple[frozenset[str] | NetSet, tuple[object, ...]]:
    """``ipset_members`` and the values skipped as not CIDRs."""
    if isinstance(cidrs, NetSet):
        return _canonical_members(cidrs, family)
    sink: Sink = {}
    return _members(cidrs, family, sink), tuple(sink)


# bucket id -> the bucket: buckets of UntrackedState sets already seen to hold plain canonical text
_CLEAN_BUCKETS: dict[int, AbstractSet[str]] = {}
_CLEAN_BUCKETS_MAX = 64 * 1024


_V4_LINE = (r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
            r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(?:3[0-2]|[12]?[0-9])")
_V4_LINES = re.compile(rf"(?:{_V4_LINE}\n)*{_V4_LINE}", re.ASCII)


def _suspect(cidrs: NetSet, family: int) -> bool:
    """Does any member need the slow path (for IPv4: anything but plain
    ``a.b.c.d/len``; for IPv6: non-ASCII or a zone)? A set made by a known change
    from one found clean costs what was added; otherwise buckets seen clean before
    are not looked at again, so a new version of a big set costs its changed buckets."""
    parent, added = cidrs.parent(), cidrs.added_since_parent()
    if parent is not None and added is not None and _CLEAN_SETS.get((id(parent), family)) is parent:
        if _clean_members(added, family):
            _remember_clean(cidrs, family)
            return False
        return True
    if len(_CLEAN_BUCKETS) > _CLEAN_BUCKETS_MAX:
        _CLEAN_BUCKETS.clear()
    for bucket in cidrs.buckets():
        if _CLEAN_BUCKETS.get(id(bucket)) is bucket:
            continue
        texts = unparsed_members(bucket) if family == 4 else bucket
        if not texts:
            continue  # parsed as canonical IPv4 when it was made
        if not _clean_texts(texts, family):
            return True
        _CLEAN_BUCKETS[id(bucket)] = bucket
    _remember_clean(cidrs, family)
    return False


# (id of a NetSet, family) -> the set: whole sets found clean (a new version made
# from one of them by a known change is checked by what it added); weak: never what
# keeps an old version of a big set alive
_CLEAN_SETS: weakref.WeakValueDictionary[tuple[int, int], NetSet] = weakref.WeakValueDictionary()


def _remember_clean(cidrs: NetSet, family: int) -> None:
    _CLEAN_SETS[(id(cidrs), family)] = cidrs


def _clean_members(members: Iterable[str], family: int) -> bool:
    """``_clean_texts`` of a set's members; of a ``NetSet``'s IPv4 buckets only what their
    parse did not already find canonical (a packed bucket has no text to check)."""
    if isinstance(members, NetSet) and family == 4:
        members = itertools.chain.from_iterable(map(unparsed_members, members.buckets()))
    return _clean_texts(members, family)


def _clean_texts(texts: Iterable[str], family: int) -> bool:
    text = "\n".join(texts)
    if not text:
        return True
    if family == 4:
        return _V4_LINES.fullmatch(text) is not None
    return text.isascii() and "%" not in text


@lru_cache(maxsize=8)
def _canonical_members(cidrs: NetSet, family: int) -> tuple[NetSet | frozenset[str], tuple[object, ...]]:
    """Memoised for the sets of ``UntrackedState`` (canonical strings, host bits
    masked): the family is told by the text (a bucket view of the set), and a set
    of one family keeps its very object, so an unchanged million-member set costs
    nothing downstream and a changed one what changed (the ipset diff goes by
    bucket). The cache holds a few sets (each can be a million strings: keep it small)."""
    mine = cidrs.family(family)
    whole = "::/0" if family == 6 else "0.0.0.0/0"
    if whole in mine or _suspect(mine, family):
        sink: Sink = {}
        return _members(mine, family, sink), tuple(sink)
    return mine, ()


def _members(cidrs: Iterable[str], family: int, sink: Sink | None = None) -> frozenset[str]:
    out: set[str] = set()
    for c in cidrs:
        if not _valid(c, sink):
            continue
        net = ipaddress.ip_network(c, strict=False)
        if net.version != family:
            continue
        if net.prefixlen == 0:
            out.update(str(s) for s in net.subnets(prefixlen_diff=1))
        else:
            out.add(str(net))
    return frozenset(out)


class _Chain:
    """Collects lines ``(match, target)`` of one chain and finishes them with comments.

    Each line also records its origin: ``self.origin`` at the time it is added,
    with ``role`` replaced when given."""

    def __init__(self, name: str, origin: RuleOrigin) -> None:
        self.name = name
        self.origin = origin
        self.lines: list[tuple[str, str]] = []
        self.line_origins: list[RuleOrigin] = []

    def add(self, match: str, target: str, role: str | None = None) -> None:
        self.lines.append((match.strip(), target.strip()))
        self.line_origins.append(self.origin if role is None else replace(self.origin, role=role))

    def rules(self) -> tuple[str, ...]:
        out = []
        for match, target in self.lines:
            comment = names.rule_comment(self.name, f"{match} {target}".strip())
            out.append(" ".join(x for x in (match, f'-m comment --comment "{comment}"', target) if x))
        return tuple(out)


def _emit(chain: _Chain, m: _Match, targets: Sequence[str], marks: Marks, action_role: str = "action",
          match_role: str = "match") -> None:
    plain = " ".join(t for _, t in m.plain)
    if not m.groups and not m.excludes:
        for target in targets:
            chain.add(plain, target, action_role)
        return
    cur, other = marks.scratch0, marks.scratch1
    both = cur | other
    if plain:
        chain.add("", _set_mark(0, both), match_role)
        chain.add(plain, _set_mark(cur, cur), match_role)
    else:
        chain.add("", _set_mark(cur, both), match_role)
    for alt in m.excludes:
        chain.add(f"{_is_mark(cur)} {' '.join(t for _, t in alt)}", _set_mark(0, cur), match_role)
    for group in m.groups:
        for alt in group:
            chain.add(f"{_is_mark(cur)} {' '.join(t for _, t in alt)}", _set_mark(other, other), match_role)
        chain.add("", _set_mark(0, cur), match_role)
        cur, other = other, cur
    for target in targets:
        chain.add(_is_mark(cur), target, action_role)


def _log_prefix(policy: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._:-" else "_" for c in policy)
    room = LOG_PREFIX_MAX - len("seawall  ")
    return f"seawall {safe[:room]} "


class _TableRenderer:
    def __init__(self, state: UntrackedState, family: int, marks: Marks, ipsets: dict[str, IpSetContent],
                 skipped: dict[SkipKey, Sink] | None = None) -> None:
        self.state = state
        self.family = family
        self.marks = marks
        self.compiler = _RuleCompiler(state, family, ipsets, skipped)
        self.chains: dict[str, tuple[str, ...]] = {}
        self.policy_idents: dict[tuple[Direction, str], Policy] = {}
        self.probes: dict[str, bool] = {}  # deny-probe chain -> whether it has rules
        self.line_origins: dict[str, tuple[RuleOrigin, ...]] = {}  # chain -> origin of each line

    def _store(self, chain: _Chain) -> tuple[str, ...]:
        rules = chain.rules()
        self.chains[chain.name] = rules
        self.line_origins[chain.name] = tuple(chain.line_origins)
        return rules

    def render(self) -> TableContent:
        mk = self.marks
        accept = _Chain(names.ACCEPT_CHAIN, RuleOrigin(None, "any", None, None, "accept"))
        accept.add("", _set_mark(0, mk.all))
        accept.add("", "-j ACCEPT")
        self._store(accept)
        hooks = []
        for direction, builtin, flag in ((Direction.INGRESS, "PREROUTING", "-i"), (Direction.EGRESS, "OUTPUT", "-o")):
            dispatch = _Chain(names.dispatch_chain(direction), RuleOrigin(None, direction.value, None, None, "dispatch"))
            reply_candidates = self._failsafe(direction)
            for iface in self.state.interfaces:
                if not has_rules(iface, direction):
                    continue
                ichain = names.interface_chain(direction, iface.name)
                if ichain in self.chains:
                    continue  # duplicate interface entry: the first one wins, as in the oracle
                dispatch.origin = replace(dispatch.origin, interface=iface.name)
                dispatch.add(f"{flag} {iface.name}", f"-g {ichain}")
                self._interface(ichain, direction, iface.name, iface.policies, reply_candidates)
            self._store(dispatch)
            hooks.append((builtin, dispatch.name))
        return TableContent(family=self.family, chains=dict(self.chains), hooks=tuple(hooks))

    def _failsafe(self, direction: Direction) -> bool:
        """Render the failsafe chain; return whether it can mark reply candidates."""
        mk = self.marks
        ingress = direction is Direction.INGRESS
        own, replies = (
            (self.state.failsafe_in, self.state.failsafe_out)
            if ingress
            else (self.state.failsafe_out, self.state.failsafe_in)
        )
        remote = "-s" if ingress else "-d"
        chain = _Chain(names.failsafe_chain(direction), RuleOrigin(None, direction.value, None, None, "failsafe"))
        for match in self._failsafe_matches(own, "--dports", remote):
            chain.add(match, "-j ACCEPT")
        candidates = False
        for match in self._failsafe_matches(replies, "--sports", remote):
            chain.add(match, _set_mark(mk.failsafe, mk.failsafe))
            candidates = True
        self._store(chain)
        return candidates

    def _failsafe_matches(self, entries: Iterable[FailsafePort], opt: str, remote: str) -> list[str]:
        """One multiport rule per (protocol, remote net) and 15 ports, not one rule
        per port: every packet that is not failsafe walks this chain (Calico's nine
        default inbound ports cost nine rules per packet; grouped, two)."""
        groups: dict[tuple[int, Cidr | None], list[int]] = {}
        for fp in entries:
            usable = fp.net is None or fp.net.family == self.family
            if fp.protocol in PORT_PROTOCOLS and usable:
                groups.setdefault((fp.protocol, fp.net), []).append(fp.port)
        matches = []
        for (protocol, net), ports in groups.items():
            where = f" {remote} {net.text}" if net is not None else ""
            for chunk in port_chunks(PortRange(port, port) for port in ports):
                matches.append(f"-p {_proto(protocol)}{where} -m multiport {opt} {chunk}")
        return matches

    def _policy_ident(self, direction: Direction, policy: Policy) -> str:
        """The policy's name, disambiguated if the same name carries different rules."""
        ident = policy.name
        n = 1
        while (direction, ident) in self.policy_idents and self.policy_idents[(direction, ident)] != policy:
            n += 1
            ident = f"{policy.name}#{n}"
        self.policy_idents[(direction, ident)] = policy
        return ident

    def _interface(
        self, name: str, direction: Direction, ifname: str, policies: Sequence[Policy], reply_candidates: bool
    ) -> tuple[str, ...]:
        mk = self.marks
        base = RuleOrigin(ifname, direction.value, None, None, "interface")
        chain = _Chain(name, base)
        chain.add("", _set_mark(0, mk.all))
        if self.family == 6:  # neighbour discovery is never decided here (verdict step 1b)
            for nd_type in ND_TYPES:
                chain.add(f"-p ipv6-icmp -m icmp6 --icmpv6-type {nd_type} -m hl --hl-eq {ND_HOP_LIMIT}", "-j RETURN", "nd")
        chain.add("", f"-j {names.failsafe_chain(direction)}")
        idents = [(self._policy_ident(direction, p), p) for p in policies if p.rules(direction)]
        if reply_candidates:
            for ident, policy in idents:
                probe = self._deny_probe(direction, ident, policy)
                if probe is not None:
                    chain.origin = replace(base, policy=ident)
                    chain.add(_is_mark(mk.failsafe), f"-j {probe}", "jump")
                    chain.origin = base
            chain.add(_is_mark(mk.failsafe), f"-g {names.ACCEPT_CHAIN}")
        for ident, policy in idents:
            pchain = self._policy(direction, ident, policy)
            chain.origin = replace(base, policy=ident)
            chain.add(f"-m mark --mark 0x0/{_hex(mk.accept | mk.pass_ | mk.deny)}", f"-j {pchain}", "jump")
            chain.origin = base
        chain.add(_is_mark(mk.deny), "-j DROP", "drop")
        chain.add(_is_mark(mk.accept), "-j NOTRACK")
        chain.add(_is_mark(mk.accept), f"-g {names.ACCEPT_CHAIN}")
        chain.add("", _set_mark(0, mk.all))
        return self._store(chain)

    def _deny_probe(self, direction: Direction, ident: str, policy: Policy) -> str | None:
        name = names.deny_probe_chain(direction, ident)
        if name not in self.probes:
            chain = _Chain(name, RuleOrigin(None, direction.value, ident, None, "probe"))
            self.compiler.policy = policy.name
            for index, rule in policy.numbered(direction):
                if rule.action is Action.DENY:
                    chain.origin = replace(chain.origin, rule_index=index)
                    for m in self.compiler.compile(rule):
                        _emit(chain, m, [_set_mark(0, self.marks.failsafe)], self.marks, "probe", "probe-match")
            self.probes[name] = bool(chain.lines)
            if chain.lines:
                self._store(chain)
        return name if self.probes[name] else None

    def _policy(self, direction: Direction, ident: str, policy: Policy) -> str:
        name = names.policy_chain(direction, ident)
        if name in self.chains:
            return name
        mk = self.marks
        chain = _Chain(name, RuleOrigin(None, direction.value, ident, None, "action"))
        self.compiler.policy = policy.name
        for index, rule in policy.numbered(direction):
            chain.origin = replace(chain.origin, rule_index=index)
            matches = self.compiler.compile(rule)
            if rule.action is Action.ALLOW:
                targets = [_set_mark(mk.accept, mk.accept)]
            elif rule.action is Action.PASS:
                targets = [_set_mark(mk.pass_, mk.pass_)]
            elif rule.action is Action.DENY:
                targets = [_set_mark(mk.deny, mk.deny)]
            else:
                targets = [f'-j LOG --log-prefix "{_log_prefix(policy.name)}"']
            for m in matches:
                _emit(chain, m, targets, mk)
                if rule.action in (Action.ALLOW, Action.PASS, Action.DENY):
                    bit = {Action.ALLOW: mk.accept, Action.PASS: mk.pass_, Action.DENY: mk.deny}[rule.action]
                    chain.add(_is_mark(bit), "-j RETURN", "return")
        self._store(chain)
        return name


def render(state: UntrackedState, marks: Marks = DEFAULT_MARKS) -> RenderedRaw:
    """Our raw-table chains for IPv4 and IPv6, and the ipsets they reference."""
    ipsets: dict[str, IpSetContent] = {}
    tables: dict[int, TableContent] = {}
    line_origins: dict[tuple[int, str], tuple[RuleOrigin, ...]] = {}
    by_comment: dict[str, list[RuleOrigin]] = {}
    skipped: dict[SkipKey, Sink] = {}
    for family in (4, 6):
        renderer = _TableRenderer(state, family, marks, ipsets, skipped)
        table = tables[family] = renderer.render()
        for chain, rules in table.chains.items():
            origins = line_origins[(family, chain)] = renderer.line_origins[chain]
            for rule, origin in zip(rules, origins, strict=True):
                comment = our_comment(rule)
                assert comment is not None
                by_comment.setdefault(comment, []).append(origin)
        for builtin, chain in table.hooks:
            direction = "ingress" if chain == names.DISPATCH_INGRESS else "egress"
            comment = our_comment(hook_rule(builtin, chain))
            assert comment is not None
            by_comment.setdefault(comment, []).append(RuleOrigin(None, direction, None, None, "hook"))
    merged = {comment: _merge_origins(found) for comment, found in by_comment.items()}
    return RenderedRaw(tables=tables, ipsets=dict(sorted(ipsets.items())), origins=merged,
                       line_origins=line_origins, skipped={k: dict(v) for k, v in skipped.items() if v})


def _merge_origins(found: Sequence[RuleOrigin]) -> RuleOrigin:
    """One origin for lines sharing a comment: the fields they disagree on become None."""
    first = found[0]
    if all(o == first for o in found):
        return first
    interfaces = {o.interface for o in found}
    directions = {o.direction for o in found}
    policies = {o.policy for o in found}
    indexes = {o.rule_index for o in found}
    roles = {o.role for o in found}
    return RuleOrigin(
        interface=interfaces.pop() if len(interfaces) == 1 else None,
        direction=directions.pop() if len(directions) == 1 else "any",
        policy=policies.pop() if len(policies) == 1 else None,
        rule_index=indexes.pop() if len(indexes) == 1 else None,
        role=roles.pop() if len(roles) == 1 else "mixed",
    )
