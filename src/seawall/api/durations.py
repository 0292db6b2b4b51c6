"""Go ``time.Duration`` strings ("90s", "1m30s", "500ms"), as FelixConfiguration uses."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError on bad syntax or a negative value."""
    if text == "0":
        return 0.0
    if not _WHOLE.fullmatch(text):
        raise ValueError("invalid duration: expected a Go duration such as '90s', '1m30s' or '500ms'")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(text))
