"""The one clock and the one timestamp format.

Stateful code takes a ``Clock`` (so tests can hand it a fixed time); pure
functions take the time as an argument. Timestamps shown to people and
scripts are ISO-8601 in UTC with milliseconds and a ``Z``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, aware, in UTC: the default ``Clock``."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``2026-11-29T11:30:00.000Z``: UTC, milliseconds, a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """The inverse of ``iso`` (and of ``datetime.isoformat``); None stays None."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
