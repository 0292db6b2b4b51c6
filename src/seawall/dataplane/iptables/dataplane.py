"""The raw tier as the agent sees it: one reconcile call per desired state, a
report per interface, and counters per policy rule.

``RawDataplane`` renders an ``UntrackedState`` (pure), has the ``RawDriver``
program it, and keeps the last rendering so that the kernel's per-rule
counters can be read back as "packets and bytes decided by rule N of policy P
in direction D" (the counters of that rule's action lines, both families).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from seawall.dataplane.iptables import names
from seawall.dataplane.iptables.backend import Runner
from seawall.dataplane.iptables.driver import FAMILIES, RawDriver, RawReport, RuleCounter
from seawall.dataplane.iptables.render import render
from seawall.dataplane.iptables.rendered import RenderedRaw, RuleOrigin
from seawall.dataplane.iptables.report import RawInterfaceReport
from seawall.dataplane.iptables.ruleset import our_comment
from seawall.dataplane.mode import Mode
from seawall.dataplane.skipped import summarize
from seawall.policy.model import Direction, InterfacePolicy, UntrackedState

log = logging.getLogger(__name__)

REPAIR_KINDS = ("rules", "setHeaders", "setContents")


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

    def __init__(self, backend: str = "Auto", *, runner: Runner | None = None, state_file: Path | None = None) -> None:
        self.driver = RawDriver(backend, runner=runner, state_file=state_file)
        self.last: RenderedRaw | None = None  # the last rendering, to interpret counters
        self.last_report: RawReport | None = None
        self.repairs: dict[str, int] = dict.fromkeys(REPAIR_KINDS, 0)  # drift found and repaired, per kind
        self.last_check_s = 0.0  # duration of the last cheap check
        self._state: UntrackedState | None = None  # the state of ``last`` (programmed without error)
        self._reports: dict[str, RawInterfaceReport] = {}

    def reconcile(self, state: UntrackedState, kind: str = "apply") -> dict[str, RawInterfaceReport]:
        """Program ``state``. ``kind``: "apply" (render and reconcile), "check" (the
        state we last programmed: compare the kernel cheaply, reconcile only on
        drift) or "verify" (that state again, with every member of our sets read back)."""
        programmed = self.last is not None and self.last_report is not None and self.last_report.ok \
            and self._state is not None and (state is self._state or state == self._state)
        if kind in ("check", "verify") and programmed and self.last is not None:
            return self._recheck(state, self.last, verify=kind == "verify")
        rendered = render(state)
        report = self.driver.reconcile(rendered, trust_rules=True)  # drift: the CHECK passes
        if any(f.drift_repaired for f in report.families.values()):
            self.repairs["rules"] += 1
        return self._finish(state, rendered, report)

    def _recheck(self, state: UntrackedState, rendered: RenderedRaw, *, verify: bool) -> dict[str, RawInterfaceReport]:
        start = time.perf_counter()
        drift = self.driver.check(rendered)
        self.last_check_s = time.perf_counter() - start
        if not verify and not any(drift.values()):
            return self._reports
        report = self.driver.reconcile(rendered, resync_ipsets=verify)
        if drift["rules"]:
            self.repairs["rules"] += 1
        if drift["setHeaders"]:
            self.repairs["setHeaders"] += 1
        elif verify and report.sets_changed:
            self.repairs["setContents"] += 1
        if any(drift.values()) or report.sets_changed:
            log.warning("iptables raw tier drifted, repaired: %s", "; ".join(
                [*drift["rules"][:5], *(f"ipset {n} header" for n in drift["setHeaders"][:5]),
                 *(f"ipset {n} members" for n in report.sets_changed[:5] if n not in drift["setHeaders"])]))
        return self._finish(state, rendered, report)

    def _finish(self, state: UntrackedState, rendered: RenderedRaw, report: RawReport) -> dict[str, RawInterfaceReport]:
        self.last, self.last_report = rendered, report
        self._state = state if report.ok else None
        self._reports = self._interface_reports(state, rendered, report)
        return self._reports

    def _interface_reports(self, state: UntrackedState, rendered: RenderedRaw,
                           report: RawReport) -> dict[str, RawInterfaceReport]:
        errors = list(report.errors)
        for fam in FAMILIES:
            errors += report.families[fam].errors
        out: dict[str, RawInterfaceReport] = {}
        for iface in state.interfaces:
            if iface.name in out:
                continue  # duplicate entry: the first one wins, as in the renderer
            ir = RawInterfaceReport(iface.name, Mode.RAW, report.backend, report.reason, errors=list(errors))
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
        return [(o, c) for _, o, c in self._family_origin_counters(self.last)]

    def _family_origin_counters(self, last: RenderedRaw | None) -> list[tuple[int, RuleOrigin, RuleCounter]]:
        if last is None:
            return []
        out: list[tuple[int, RuleOrigin, RuleCounter]] = []
        for (fam, chain), counters in self.driver.counters().items():
            expected = last.line_origins.get((fam, chain))
            table = last.tables.get(fam)
            rules = table.chains.get(chain) if table is not None else None
            if expected is not None and rules is not None and len(rules) == len(counters):
                rendered_comments = [our_comment(r) for r in rules]
                if rendered_comments == [c.comment for c in counters]:
                    out.extend((fam, o, c) for o, c in zip(expected, counters, strict=True))
                    continue
            for counter in counters:
                origin = last.origins.get(counter.comment) if counter.comment else None
                if origin is not None:
                    out.append((fam, origin, counter))
        return out

    def rule_counters(self) -> dict[tuple[str, str, int], tuple[int, int]]:
        """{(policy, direction, rule index): (packets, bytes)} decided by that rule, both
        families summed; every rendered rule is present (zero if nothing matched)."""
        return self.read_counters()[0]

    def interface_drops(self) -> dict[str, dict[str, tuple[int, int]]]:
        """{interface: {"ipv4"|"ipv6": (packets, bytes)}} the raw tier dropped there (both
        directions): the counters of the interface chains' one DROP line each."""
        return self.read_counters()[1]

    def read_counters(self) -> tuple[dict[tuple[str, str, int], tuple[int, int]], dict[str, dict[str, tuple[int, int]]]]:
        """``rule_counters`` and ``interface_drops`` from one read of the kernel's counters
        (one ``iptables-save -c -t raw`` per family)."""
        rules: dict[tuple[str, str, int], tuple[int, int]] = {}
        drops: dict[str, dict[str, tuple[int, int]]] = {}
        last = self.last
        if last is None:
            return rules, drops
        for (fam, _), origins in last.line_origins.items():
            for o in origins:
                if o.role == "action" and o.policy is not None and o.rule_index is not None:
                    rules.setdefault((o.policy, o.direction, o.rule_index), (0, 0))
                elif o.role == "drop" and o.interface is not None:
                    drops.setdefault(o.interface, {}).setdefault(f"ipv{fam}", (0, 0))
        for fam, o, counter in self._family_origin_counters(last):
            if o.role == "action" and o.policy is not None and o.rule_index is not None:
                key = (o.policy, o.direction, o.rule_index)
                packets, nbytes = rules.get(key, (0, 0))
                rules[key] = (packets + counter.packets, nbytes + counter.bytes)
            elif o.role == "drop" and o.interface is not None:
                per_family = drops.setdefault(o.interface, {})
                packets, nbytes = per_family.get(f"ipv{fam}", (0, 0))
                per_family[f"ipv{fam}"] = (packets + counter.packets, nbytes + counter.bytes)
        return rules, drops

    def cleanup(self) -> list[str]:
        """Remove every trace of ours (chains, hook jumps, ipsets); returns errors."""
        self.last, self._state = None, None
        return self.driver.cleanup()
