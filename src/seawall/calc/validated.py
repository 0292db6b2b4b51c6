"""Stored documents -> validated resources, remembering across calls.

Why a class and not ``Snapshot.from_stored``: (1) a million-net set costs about
a second to validate, so only documents that changed (a different object from
the syncer) are validated again; (2) a resource whose stored data *becomes*
invalid keeps its last valid version, so bad data is reported and never
weakens what is already enforced (an SRE's typo must not open the gate).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from seawall.calc.snapshot import Snapshot

KEPT = "kept the last valid version"
IGNORED = "ignored"


class ValidatedResources:
    def __init__(self) -> None:
        # (kind, name) -> (stored document it was validated from, resource or None, why invalid or None)
        self._cache: dict[tuple[str, str], tuple[dict[str, Any], Any, str | None]] = {}

    def update(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> tuple[Snapshot, list[dict[str, Any]]]:
        """The full current list of stored (kind, name, document) -> the snapshot
        to enforce and the invalid entries ({kind, name, reason, action})."""
        valid, invalid = [], []
        seen = set()
        for kind, name, value in items:
            key = (kind, name)
            seen.add(key)
            cached = self._cache.get(key)
            if cached is None or cached[0] is not value:
                cached = self._validate(key, value, cached)
                self._cache[key] = cached
            _, resource, reason = cached
            if reason is not None:
                invalid.append({"kind": kind, "name": name, "reason": reason,
                                "action": KEPT if resource is not None else IGNORED})
            if resource is not None:
                valid.append(resource)
        for key in set(self._cache) - seen:  # deleted from the datastore
            del self._cache[key]
        return Snapshot.of(valid), invalid

    @staticmethod
    def _validate(key: tuple[str, str], value: dict[str, Any],
                  last: tuple[dict[str, Any], Any, str | None] | None) -> tuple[dict[str, Any], Any, str | None]:
        single = Snapshot.from_stored([(*key, value)])
        if single.invalid:
            return value, (last[1] if last is not None else None), single.invalid[0][2]
        resource = next(iter((*single.hep.values(), *single.gns.values(), *single.gnp.values(), *single.felix.values())))
        return value, resource, None
