"""Durations as written in jobs.yaml: integer seconds or ``<n>s|m|h|d``."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Ten years: beyond it a value is a typo (milliseconds for seconds, say), and
# date arithmetic would overflow.
MAX_SECONDS = 10 * 365 * 86400
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


class DurationError(ValueError):
    pass


def parse_duration(value: object) -> int:
    """Return whole seconds; raise DurationError saying what is accepted."""
    if isinstance(value, bool):
        raise DurationError(f"must be a duration like 30s, 15m, 4h, 1d or integer seconds, got {value!r}")
    seconds: int | None = None
    if isinstance(value, int):
        if value < 0:
            raise DurationError(f"must not be negative, got {value!r}")
        seconds = value
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds is not None:
        if seconds > MAX_SECONDS:
            raise DurationError(f"must be at most 10 years ({MAX_SECONDS}s), got {value!r}")
        return seconds
    raise DurationError(f"must be a duration like 30s, 15m, 4h, 1d or integer seconds, got {value!r}")


def format_duration(seconds: float) -> str:
    """Shortest exact text for a whole number of seconds: 900 -> '15m'."""
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
