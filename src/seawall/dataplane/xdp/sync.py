"""Map synchronisation: bring one program's maps to the desired blocklist.

Small changes go in as single writes to the active slot, bigger ones as one
batched pass over the touched /24s; many (more than ``bulk_threshold`` and an
eighth of the set) through a double-buffered bulk replace (fill the inactive
slot, flip, empty the old one). A hash map that is full (E2BIG) means the set
outgrew the maps: ``update`` returns None and the caller grows the program.
``verify`` reads the active slot back and rewrites it if someone edited it;
``adopt`` keeps a re-opened program's maps when they already hold the set.
Only ``XdpKernel`` map operations: no attach, no pins.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterable

from seawall.dataplane.xdp.kernel import Program, XdpKernel
from seawall.dataplane.xdp.report import HitReport
from seawall.dataplane.xdp.tables import BlocklistTables
from seawall.policy.netset import NetSet

#: A change bigger than ``bulk_threshold`` and than 1/REBUILD_FRACTION of the set is
#: a rebuild into the inactive slot; a smaller one (a feed's 30,000 against a million)
#: goes in place, every touched /24 recomputed once and written in batches.
REBUILD_FRACTION = 8
#: Up to this many changes, one CIDR at a time (each add/remove its own writes).
SINGLE_WRITES_MAX = 64

DRIFT_REPAIRED = "blocklist maps differed from the desired set (edited by someone else); rewritten"


class MapSync:
    def __init__(self, kernel: XdpKernel, *, bulk_threshold: int, hit_shift: int) -> None:
        self.kernel = kernel
        self.bulk_threshold = bulk_threshold
        self.hit_shift = hit_shift

    def fill_fresh(self, program: Program, tables: BlocklistTables) -> None:
        """Fill a just-loaded program (both slots empty) before anything attaches it."""
        self.kernel.replace(program, tables.compile(), inactive_known_empty=True, fresh=True)

    def prime(self, program: Program, tables: BlocklistTables, failsafe: Iterable[tuple[int, int]]) -> None:
        """Fill a just-loaded replacement completely (set, failsafe, hit sampling) before it takes over."""
        self.fill_fresh(program, tables)
        self.kernel.set_failsafe(program, failsafe)
        self.kernel.set_hit_shift(program, self.hit_shift)

    def adopt(self, program: Program, tables: BlocklistTables) -> bool:
        """An adopted or re-opened program's maps (unknown to this process): kept
        as they are when the active slot already holds the set (a restart: read
        back, not rebuilt; the inactive slot emptied if anything is left in it),
        else rewritten. Whether they were kept."""
        compiled = tables.compile()
        active = self.kernel.active_slot(program)
        if self.kernel.holds(program, active, compiled):
            self.kernel.clear_slot(program, 1 - active)
            return True
        self.kernel.replace(program, compiled, inactive_known_empty=False)
        return False

    def _rebuilds(self, changes: int, want: NetSet) -> bool:
        """Is a change this big written as a double-buffered bulk replace?"""
        return changes > self.bulk_threshold and changes > len(want) // REBUILD_FRACTION

    def update(self, program: Program, tables: BlocklistTables, have: NetSet,
               want: NetSet) -> BlocklistTables | None:
        """Bring the active slot from ``have`` to ``want``: single writes for a
        few changes, a double-buffered bulk replace for many. Returns the table
        model now in the kernel (``tables`` itself, or a fresh one after a bulk
        replace), or None when a hash map is full (E2BIG): grow the program."""
        if want is have:
            return tables
        at_least = sum(want.one_sided(have))
        added, removed = (frozenset(), frozenset()) if self._rebuilds(at_least, want) else want.changes_from(have)
        if not added and not removed and not at_least:
            return tables
        try:
            changes = max(len(added) + len(removed), at_least)
            if self._rebuilds(changes, want):
                old_keys = tables.hash_keys()
                fresh = BlocklistTables.from_cidrs(want)
                self.kernel.replace(program, fresh.compile(), inactive_known_empty=True, old_keys=old_keys)
                return fresh
            if changes > SINGLE_WRITES_MAX:
                self.kernel.apply(program, tables.apply_changes(sorted(added), sorted(removed)))
                return tables
            for cidr in sorted(added):
                self.kernel.apply(program, tables.add(cidr))
            for cidr in sorted(removed):
                self.kernel.apply(program, tables.remove(cidr))
        except OSError as exc:
            if exc.errno != errno.E2BIG:
                raise
            return None
        return tables

    def verify(self, program: Program, tables: BlocklistTables) -> list[str]:
        """Compare the active slot with what it must hold; rewrite it if edited."""
        compiled = tables.compile()
        if self.kernel.holds(program, self.kernel.active_slot(program), compiled):
            return []
        self.kernel.replace(program, compiled, inactive_known_empty=True)
        return [DRIFT_REPAIRED]

    def set_failsafe(self, program: Program, ports: Iterable[tuple[int, int]]) -> bool:
        return self.kernel.set_failsafe(program, ports)

    def ensure_hit_shift(self, program: Program) -> None:
        if self.kernel.hit_shift(program) != self.hit_shift:
            self.kernel.set_hit_shift(program, self.hit_shift)

    def too_small(self, program: Program, tables: BlocklistTables) -> bool:
        have = self.kernel.capacities(program)
        return any(n > have[kind] for kind, n in tables.hash_counts().items())

    def hit_counts(self, program: Program, tables: BlocklistTables) -> HitReport:
        """Sampled drops per source attributed to the longest blocked CIDR that covers it."""
        per_cidr: dict[str, int] = {}
        attributed = 0
        for key, packets in self.kernel.hits(program).items():
            address = ipaddress.IPv6Address(key)
            mapped = address.ipv4_mapped
            family, value = (4, int(mapped)) if mapped is not None else (6, int(address))
            cidr = tables.longest_match(family, value)
            if cidr is not None:
                per_cidr[cidr] = per_cidr.get(cidr, 0) + packets
                attributed += packets
        total = self.kernel.counters(program).dropped
        return HitReport(per_cidr, max(0, total - attributed), total, 1 << self.kernel.hit_shift(program))

