"""Where an interface's untracked policy is enforced: one value, ranked.

``Mode`` is what every report, the status, the metrics and ``seawall status``
speak; its order is the preference (offload beats native beats generic beats
the iptables raw tier; ``none``: no doNotTrack policy applies). A mode that was
not used travels as a ``(Mode, reason)`` pair, never as a string to be parsed.
Pure.
"""

from __future__ import annotations

import enum


class Mode(str, enum.Enum):
    XDP_OFFLOAD = "xdp-offload"
    XDP_NATIVE = "xdp-native"
    XDP_GENERIC = "xdp-generic"
    RAW = "iptables-raw"
    NONE = "none"

    def __str__(self) -> str:
        return self.value

    @property
    def in_xdp(self) -> bool:
        return self in XDP_MODES

    @property
    def short(self) -> str:
        """``offload`` / ``native`` / ``generic`` for the XDP modes, else the value."""
        return self.value.removeprefix("xdp-")

    @property
    def rank(self) -> int:
        """0 is the best (fastest) mode."""
        return _RANK[self]

    def better_than(self, other: Mode) -> bool:
        return self.rank < other.rank


XDP_MODES = (Mode.XDP_OFFLOAD, Mode.XDP_NATIVE, Mode.XDP_GENERIC)
_RANK = {mode: rank for rank, mode in enumerate(Mode)}

#: A mode that was not attempted or failed, and why (``"native: attach failed (...)"`` when shown).
SkippedMode = tuple[Mode, str]


def describe_skipped(skipped: tuple[SkippedMode, ...] | list[SkippedMode]) -> list[str]:
    """``short: reason`` per pair, as the status shows them."""
    return [f"{mode.short}: {reason}" for mode, reason in skipped]
