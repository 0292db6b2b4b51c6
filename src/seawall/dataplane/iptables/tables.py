"""Program our chains in the raw table with one ``iptables-restore --noflush`` per family.

Why ``--noflush`` with every chain of ours declared: declaring a chain in that
mode flushes just that chain, so the whole change (refill our chains, fix the
hook jumps, drop stale chains) is one atomic commit and nobody else's rules
are read, rewritten or reordered. Drift detection reads ``iptables-save -t
raw -c`` back: each of our rules carries an ``sw:<hash>`` comment, so a rule
deleted by hand, an extra one, a missing or misplaced hook all show up as a
difference, and the table is reprogrammed.
"""

from __future__ import annotations

from seawall.dataplane.iptables.backend import Backend, CommandError, Runner, binaries
from seawall.dataplane.iptables.rendered import TableContent
from seawall.dataplane.iptables.ruleset import (
    TABLE,
    SavedRule,
    SavedTable,
    TablePlan,
    cleanup_script,
    is_our_chain,
    parse_save,
    plan_table,
)


class Tables:
    """Our part of the raw table of both families, through one backend's binaries."""

    def __init__(self, runner: Runner, backend: Backend) -> None:
        self.runner = runner
        self.backend = backend
        self._wait: dict[str, bool] = {}
        # family -> (content we programmed, the kernel's spelling of our chains right after)
        self._known: dict[int, tuple[TableContent, dict[str, list[str]]]] = {}

    def save(self, family: int, *, counters: bool = False) -> SavedTable | None:
        argv = [binaries(self.backend, family)["save"], "-t", TABLE, *(["-c"] if counters else [])]
        return parse_save(self.runner(argv, None))

    def restore(self, family: int, script: str) -> None:
        name = binaries(self.backend, family)["restore"]
        if name not in self._wait:
            try:
                self._wait[name] = "--wait" in self.runner([name, "--help"], None)
            except CommandError as exc:
                self._wait[name] = "--wait" in exc.stderr
        self.runner([name, "--noflush", *(["--wait", "10"] if self._wait[name] else [])], script)

    def sync(self, table: TableContent) -> TablePlan:
        """Make our part of the raw table equal ``table``; raises CommandError."""
        family = table.family
        known = self._known.get(family)
        saved = self.save(family)
        plan = plan_table(table, saved, known[1] if known and known[0] == table else None)
        if plan.script is not None:
            self._known.pop(family, None)
            self.restore(family, plan.script)
            saved = self.save(family)
        if saved is not None:
            self._known[family] = (table, {c: [r.args for r in saved.chains.get(c, [])] for c in table.chains})
        return plan

    def drifted(self, table: TableContent) -> list[str]:
        """The cheap check: one ``iptables-save -t raw`` compared with what we programmed
        (our chains, their rules and the kernel's spelling of them, our hook jumps);
        the differences, empty when the kernel holds exactly ``table``. Writes nothing."""
        known = self._known.get(table.family)
        plan = plan_table(table, self.save(table.family), known[1] if known and known[0] == table else None)
        return plan.differences

    def counters(self, family: int) -> dict[str, list[SavedRule]]:
        saved = self.save(family, counters=True)
        if saved is None:
            return {}
        return {c: rules for c, rules in saved.chains.items() if is_our_chain(c)}

    def cleanup(self, family: int) -> bool:
        """Remove every trace of ours in this family's raw table; True if something was removed."""
        self._known.pop(family, None)
        script = cleanup_script(self.save(family))
        if script is None:
            return False
        self.restore(family, script)
        return True
