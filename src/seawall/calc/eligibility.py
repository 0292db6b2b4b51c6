"""Exact XDP eligibility of an interface's ingress rules (DESIGN invariant 5).

A CIDR C goes to XDP only if *every* packet from any source in C is dropped by
the full ordered rule list of the interface:

* some Deny rule R matches every packet from C: R has no protocol/notProtocol,
  no ICMP match, no source ports and no destination constraint at all, its
  ``ip_version`` (if any) is C's family, its source nets and sets each cover C
  entirely (no nets and no sets: R matches every source, C may be ``/0``) and
  its notNets/notSets overlap no part of C;
* no rule before R that is an Allow, Pass or Log (XDP cannot log either) can
  match any packet from C. Conservatively, only source addresses are looked
  at: an earlier rule whose source constraints can overlap C disqualifies C,
  whatever its protocol or ports. Earlier Deny rules never disqualify.

Failsafe ports are checked by the XDP program itself before the blocklist, so
they do not affect eligibility. CIDRs a Deny rule means but that are not
eligible stay in raw only; the raw table always holds every rule anyway.

Candidates are the CIDRs the Deny rule names (its nets, its sets' members);
when a rule has both nets and sets, a candidate from one must be covered by the
other. Pieces of partially overlapping CIDRs are not split out: they stay in
raw (correct, merely slower). Pure.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter

from seawall.api.cidr import Cidr, parse_cidr
from seawall.calc.memo import CalcMemo, NoMemo
from seawall.policy.desired import RuleDecision
from seawall.policy.model import Action, Direction, InterfacePolicy, Rule, UntrackedState
from seawall.policy.netset import NetSet
from seawall.policy.verdict import references_missing_set

RuleRef = tuple[str, int]  # (policy name, ingress rule index)


_ORDER = attrgetter("family", "start", "end")


_ALL = (parse_cidr("0.0.0.0/0"), parse_cidr("::/0"))


@dataclass(frozen=True, slots=True)
class XdpEligibility:
    cidrs: NetSet  # canonical strings
    rules: tuple[RuleDecision, ...]


class _Ranges:
    """A union of CIDRs as merged integer intervals per family, for fast
    overlap / coverage checks against sets of a million entries."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, nets: Iterable[Cidr]) -> None:
        by_family: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for net in nets:
            by_family[net.family].append((net.start, net.end))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for family, spans in by_family.items():
            spans.sort()
            starts: list[int] = []
            ends: list[int] = []
            for low, high in spans:
                if ends and low <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], high)
                else:
                    starts.append(low)
                    ends.append(high)
            self._starts[family] = starts
            self._ends[family] = ends

    def _at(self, net: Cidr, point: int) -> int:
        return bisect_right(self._starts[net.family], point) - 1

    def overlaps(self, net: Cidr) -> bool:
        i = self._at(net, net.end)
        return i >= 0 and self._ends[net.family][i] >= net.start

    def covers(self, net: Cidr) -> bool:
        i = self._at(net, net.start)
        return i >= 0 and self._ends[net.family][i] >= net.end

    def empty(self) -> bool:
        return not (self._starts[4] or self._starts[6])


def _net(text: str) -> Cidr:
    return parse_cidr(text)


class _Index:
    """Parsed nets and interval sets, memoised per set contents (object
    identity, see ``CalcMemo``) so a big set is parsed once per version."""

    def __init__(self, state: UntrackedState, memo: CalcMemo) -> None:
        self.state = state
        self.memo = memo

    def set_nets(self, set_id: str) -> tuple[Cidr, ...]:
        cidrs = self.state.sets[set_id].cidrs
        return self.memo.get("parsed-set", (cidrs,), lambda: tuple(map(_net, cidrs)))

    def ranges(self, nets: tuple[Cidr, ...], sets: tuple[str, ...]) -> _Ranges:
        def build() -> _Ranges:
            members: list[Cidr] = list(nets)
            for set_id in sets:
                members.extend(self.set_nets(set_id))
            return _Ranges(members)

        inputs = tuple(self.state.sets[s].cidrs for s in sets)
        return self.memo.get("ranges", inputs, build, key=(nets, sets))


def _shape_problem(rule: Rule) -> str | None:
    """Why a Deny rule cannot match *every* packet from its sources, or None."""
    if rule.protocol is not None:
        return "rule has a protocol"
    if rule.not_protocol is not None:
        return "rule has notProtocol"
    if rule.icmp is not None or rule.not_icmp is not None:
        return "rule has an ICMP match"
    if rule.source.ports or rule.source.not_ports:
        return "rule has source ports"
    dst = rule.destination
    if dst.ports or dst.not_ports:
        return "rule has destination ports"
    if not dst.empty:
        return "rule has a destination constraint"
    return None


def _may_match_from(index: _Index, rule: Rule, net: Cidr) -> bool:
    """Conservative: could ``rule`` match some packet whose source is in ``net``?"""
    if rule.ip_version is not None and rule.ip_version != net.family:
        return False
    if references_missing_set(index.state, rule):
        return False  # matches nothing (the verdict treats it as absent)
    src = rule.source
    if src.nets and not index.ranges(src.nets, ()).overlaps(net):
        return False
    if src.sets and not index.ranges((), src.sets).overlaps(net):
        return False
    if (src.not_nets or src.not_sets) and index.ranges(src.not_nets, src.not_sets).covers(net):
        return False
    return True


def _candidates(index: _Index, rule: Rule) -> list[Cidr]:
    src = rule.source
    if not src.nets and not src.sets:
        out = list(_ALL)
    elif src.nets and src.sets:
        in_sets = index.ranges((), src.sets)
        in_nets = index.ranges(src.nets, ())
        out = [n for n in src.nets if in_sets.covers(n)]
        out += [n for s in src.sets for n in index.set_nets(s) if in_nets.covers(n)]
    elif src.nets:
        out = list(src.nets)
    else:
        out = [n for s in src.sets for n in index.set_nets(s)]
    if rule.ip_version is not None:
        out = [n for n in out if n.family == rule.ip_version]
    return sorted(set(out), key=_ORDER)


def _plural(n: int) -> str:
    return f"{n} CIDR" if n == 1 else f"{n} CIDRs"


def _all_candidates(state: UntrackedState, rule: Rule) -> NetSet | None:
    """The rule's candidate CIDRs as canonical strings without parsing them, when
    they need no per-CIDR check (sets only or nets only); None otherwise. A single
    set keeps its very ``NetSet`` object, and a union shares its parts' buckets,
    so a change to a million-entry set costs its changed buckets downstream."""
    src = rule.source
    if src.nets and src.sets:
        return None
    if src.sets:
        texts = NetSet.union([state.sets[s].cidrs for s in src.sets])
    elif src.nets:
        texts = NetSet(c.text for c in src.nets)
    else:
        texts = NetSet(n.text for n in _ALL)
    if rule.ip_version is not None:
        texts = texts.family(rule.ip_version)
    return texts


def interface_eligibility(state: UntrackedState, iface: InterfacePolicy, memo: CalcMemo | None = None) -> XdpEligibility:
    """Per ingress rule of ``iface`` (in order across its policies): in XDP or not, and why."""
    memo = memo if memo is not None else NoMemo()
    used = sorted({s for p in iface.policies for r in p.ingress for s in (*r.source.sets, *r.source.not_sets)
                   if s in state.sets})
    inputs = tuple(state.sets[s].cidrs for s in used)
    return memo.get("eligibility", inputs, lambda: _eligibility(state, iface, memo), key=(iface, tuple(used)))


def _eligibility(state: UntrackedState, iface: InterfacePolicy, memo: CalcMemo) -> XdpEligibility:
    index = _Index(state, memo)
    flat = [(p.name, i, r) for p in iface.policies for i, r in p.numbered(Direction.INGRESS)]
    accepted_groups: list[NetSet] = []
    decisions: list[RuleDecision] = []
    for position, (policy, number, rule) in enumerate(flat):

        def decide(in_xdp: bool, reason: str, cidrs: NetSet = NetSet.EMPTY) -> None:
            decisions.append(RuleDecision(policy, number, rule.action.value, in_xdp, cidrs, reason))  # noqa: B023

        if rule.action is not Action.DENY:
            decide(False, f"not in XDP: {rule.action.value} rules are enforced in raw (XDP only drops)")
            continue
        if problem := _shape_problem(rule):
            decide(False, f"not in XDP: {problem}")
            continue
        if references_missing_set(state, rule):
            decide(False, "not in XDP: rule references a set that does not exist (it matches nothing)")
            continue
        earlier = [
            (flat[j][0], flat[j][1], flat[j][2])
            for j in range(position)
            if flat[j][2].action is not Action.DENY
        ]
        has_exclusions = bool(rule.source.not_nets or rule.source.not_sets)
        texts = None if earlier or has_exclusions else _all_candidates(state, rule)
        if texts is not None:  # nothing can disqualify a candidate: all go to XDP
            if not texts:
                decide(False, "not in XDP: no source CIDRs (its sets are empty)")
                continue
            accepted_groups.append(texts)
            decide(True, f"in XDP: {_plural(len(texts))}", texts)
            continue
        candidates = _candidates(index, rule)
        if not candidates:
            decide(False, "not in XDP: no source CIDRs (its sets are empty)")
            continue
        exclusions = index.ranges(rule.source.not_nets, rule.source.not_sets) if has_exclusions else None
        accepted: list[str] = []
        rejected: dict[str, list[str]] = {}
        for net in candidates:
            why: str | None = None
            if exclusions is not None and exclusions.overlaps(net):
                why = "its notNets/notSelector exclude part of these sources"
            else:
                for other_policy, other_index, other in earlier:
                    if _may_match_from(index, other, net):
                        why = (f"an earlier {other.action.value} rule (policy {other_policy}, "
                               f"rule {other_index}) may match these sources")
                        break
            if why is None:
                accepted.append(str(net))
            else:
                rejected.setdefault(why, []).append(str(net))
        accepted_set = NetSet(accepted)
        accepted_groups.append(accepted_set)
        if not rejected:
            decide(True, f"in XDP: {_plural(len(accepted))}", accepted_set)
            continue
        details = "; ".join(
            f"{_plural(len(nets))} ({', '.join(nets[:3])}{', …' if len(nets) > 3 else ''}): {why}"
            for why, nets in rejected.items()
        )
        if accepted:
            decide(True, f"in XDP: {len(accepted)} of {_plural(len(candidates))}; not in XDP: {details}",
                   accepted_set)
        elif len(rejected) == 1:
            decide(False, f"not in XDP: {next(iter(rejected))}")
        else:
            decide(False, f"not in XDP: {details}")
    groups = [g for g in accepted_groups if g]
    xdp = NetSet.union(groups, memo.recall("xdp-union", iface.name))
    memo.keep("xdp-union", iface.name, (tuple(groups), xdp))
    return XdpEligibility(xdp, tuple(decisions))


def xdp_eligibility(state: UntrackedState) -> Mapping[str, XdpEligibility]:
    """``interface_eligibility`` for every interface of ``state``."""
    return {iface.name: interface_eligibility(state, iface) for iface in state.interfaces}
