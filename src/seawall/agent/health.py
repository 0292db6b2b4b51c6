"""Liveness and readiness of the agent, as Felix reports them on ``/liveness``
and ``/readiness`` (healthHost:healthPort).

Why two answers: *alive* means the loop thread still turns (a stuck loop
should be restarted by whatever supervises the agent); *ready* means the
kernel enforces what the datastore holds — in sync, reconciled at least once,
and the last reconcile neither raised nor left the raw tier with errors (XDP
falling back to raw on an interface is by design, not a failure). Pure: the
loop hands over a ``HealthState`` and gets back (HTTP status, JSON body).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The loop ticks every 0.2 s; a reconcile of a million-entry set takes a few seconds.
LIVENESS_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class HealthState:
    last_tick: float  # time.monotonic() of the loop's last turn
    in_sync: bool = False
    reconciled: bool = False  # at least one reconcile has completed
    last_error: str | None = None  # why the last reconcile failed, None if it succeeded


def liveness(state: HealthState, now: float, timeout: float = LIVENESS_TIMEOUT_S) -> tuple[int, dict[str, Any]]:
    age = now - state.last_tick
    if age <= timeout:
        return 200, {"live": True, "reason": f"loop ticked {age:.1f} s ago"}
    return 503, {"live": False, "reason": f"loop has not ticked for {age:.1f} s (limit {timeout:g} s)"}


def readiness(state: HealthState) -> tuple[int, dict[str, Any]]:
    if not state.in_sync:
        return 503, {"ready": False, "reason": "not in sync with the datastore"}
    if state.last_error is not None:
        return 503, {"ready": False, "reason": f"last reconcile failed: {state.last_error}"}
    if not state.reconciled:
        return 503, {"ready": False, "reason": "in sync; the first reconcile has not completed"}
    return 200, {"ready": True, "reason": "in sync and the last reconcile succeeded"}
