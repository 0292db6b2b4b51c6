"""The raw tier as the agent sees it: one reconcile call per desired state, a
report per interface, and counters per policy rule.

``RawDataplane`` renders an ``UntrackedState`` (pure), has the ``RawDriver``
program it, and keeps the last rendering so that the kernel's per-rule
counters can be read back as "packets and bytes decided by rule N of policy P
in direction D" (the counters of that rule's action lines, both families).
"""

from __future__ import annotations

from seawall.dataplane.iptables import names
from seawall.dataplane.iptables.backend import Runner
from seawall.dataplane.iptables.driver import FAMILIES, RawDriver, RawReport, RuleCounter
from seawall.dataplane.iptables.render import render
from seawall.dataplane.iptables.rendered import RenderedRaw, RuleOrigin
from seawall.dataplane.iptables.report import MODE, RawInterfaceReport
from seawall.dataplane.iptables.ruleset import our_comment
from seawall.dataplane.skipped import summarize
from seawall.policy.model import Direction, InterfacePolicy, UntrackedState


def _set_ids(iface: InterfacePolicy) -> set[str]:
    out: set[str] = set()
    for policy in iface.policies:
        for rule in (*policy.ingress, *policy.egress):
            for side in (rule.source, rule.destination):
                out.update(side.sets)
                out.update(side.not_sets)
    return out


class RawDataplane:
    """Reconcile untracked policy into the raw table of this host (or the namespace the runner enters)."""

    def __init__(self, backend: str = "Auto", *, runner: Runner | None = None) -> None:
        self.driver = RawDriver(backend, runner=runner)
        self.last: RenderedRaw | None = None  # the last rendering, to interpret counters
        self.last_report: RawReport | None = None

    def reconcile(self, state: UntrackedState) -> dict[str, RawInterfaceReport]:
        rendered = render(state)
        report = self.driver.reconcile(rendered)
        self.last, self.last_report = rendered, report
        errors = list(report.errors)
        for fam in FAMILIES:
            errors += report.families[fam].errors
        out: dict[str, RawInterfaceReport] = {}
        for iface in state.interfaces:
            if iface.name in out:
                continue  # duplicate entry: the first one wins, as in the renderer
            ir = RawInterfaceReport(iface.name, MODE, report.backend, report.reason, errors=list(errors))
            ir.ingress_policies = sum(1 for p in iface.policies if p.rules(Direction.INGRESS))
            ir.egress_policies = sum(1 for p in iface.policies if p.rules(Direction.EGRESS))
            for direction in (Direction.INGRESS, Direction.EGRESS):
                chain = names.interface_chain(direction, iface.name)
                fams = [f for f in FAMILIES if chain in rendered.tables[f].chains]
                if fams:
                    ir.chains.append(chain)
                if any(report.families[f].drift_repaired for f in fams):
                    ir.drift_repaired = True
            for set_id in sorted(_set_ids(iface)):
                for fam in FAMILIES:
                    content = rendered.ipsets.get(names.ipset_name(fam, set_id))
                    if content is not None:
                        ir.ipset_members[content.name] = len(content.members)
            ir.programmed = bool(ir.chains) and report.ok
            sinks = [rendered.skipped.get(("failsafe", ""))] if ir.chains else []
            sinks += [rendered.skipped.get(("policy", p.name)) for p in iface.policies]
            sinks += [rendered.skipped.get(("set", set_id)) for set_id in _set_ids(iface)]
            sinks += [report.ipset_skipped.get(name) for name in ir.ipset_members]
            ir.skipped = summarize(*sinks)
            out[iface.name] = ir
        return out

    def origin_counters(self) -> list[tuple[RuleOrigin, RuleCounter]]:
        """Every counter of our chains with the origin of its line (from the last rendering).

        Lines are matched by position when the kernel's chain holds exactly the
        rendered comments, else by comment (only where the comment is unambiguous)."""
        if self.last is None:
            return []
        out: list[tuple[RuleOrigin, RuleCounter]] = []
        for (fam, chain), counters in self.driver.counters().items():
            expected = self.last.line_origins.get((fam, chain))
            table = self.last.tables.get(fam)
            rules = table.chains.get(chain) if table is not None else None
            if expected is not None and rules is not None and len(rules) == len(counters):
                rendered_comments = [our_comment(r) for r in rules]
                if rendered_comments == [c.comment for c in counters]:
                    out.extend(zip(expected, counters, strict=True))
                    continue
            for counter in counters:
                origin = self.last.origins.get(counter.comment) if counter.comment else None
                if origin is not None:
                    out.append((origin, counter))
        return out

    def rule_counters(self) -> dict[tuple[str, str, int], tuple[int, int]]:
        """{(policy, direction, rule index): (packets, bytes)} decided by that rule, both
        families summed; every rendered rule is present (zero if nothing matched)."""
        out: dict[tuple[str, str, int], tuple[int, int]] = {}
        if self.last is None:
            return out
        for origins in self.last.line_origins.values():
            for o in origins:
                if o.role == "action" and o.policy is not None and o.rule_index is not None:
                    out.setdefault((o.policy, o.direction, o.rule_index), (0, 0))
        for o, counter in self.origin_counters():
            if o.role == "action" and o.policy is not None and o.rule_index is not None:
                key = (o.policy, o.direction, o.rule_index)
                packets, nbytes = out.get(key, (0, 0))
                out[key] = (packets + counter.packets, nbytes + counter.bytes)
        return out

    def cleanup(self) -> list[str]:
        """Remove every trace of ours (chains, hook jumps, ipsets); returns errors."""
        self.last = None
        return self.driver.cleanup()
