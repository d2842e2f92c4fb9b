"""Environment variables read with one set of rules and one wording.

Messages follow what operators already know from the polling scheduler the
project replaces: ``NAME='' must be a positive integer (seconds)``,
``NAME=-5 must be > 0 (seconds)``.
"""

from __future__ import annotations

from collections.abc import Mapping

from tickless.config.durations import MAX_SECONDS
from tickless.config.problems import Problems


def check_seconds(name: str, raw: str, *, allow_zero: bool) -> int:
    """Validate one seconds variable; raise ValueError with the reference wording."""
    kind = "a non-negative integer" if allow_zero else "a positive integer"
    if raw == "":
        raise ValueError(f"{name}='' must be {kind} (seconds)")
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be {kind} (seconds)") from None
    if allow_zero and value < 0:
        raise ValueError(f"{name}={value} must be >= 0 (seconds)")
    if not allow_zero and value <= 0:
        raise ValueError(f"{name}={value} must be > 0 (seconds)")
    if value > MAX_SECONDS:
        raise ValueError(f"{name}={value} must be <= {MAX_SECONDS} (seconds, 10 years)")
    return value


class EnvReader:
    """Reads variables from one mapping, collecting every problem in ``problems``."""

    def __init__(self, env: Mapping[str, str], problems: Problems | None = None) -> None:
        self.env = env
        self.problems = problems if problems is not None else Problems()

    def seconds(self, name: str, default: int, *, allow_zero: bool) -> int:
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            return check_seconds(name, raw, allow_zero=allow_zero)
        except ValueError as exc:
            self.problems.note(str(exc))
            return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool) -> str:
        raw = self.env.get(name)
        if raw is None:
            return default
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in allowed:
            self.problems.note(f"{name}={raw!r} must be one of: {', '.join(allowed)}")
            return default
        return value

    def positive_int(self, name: str, default: int, *, maximum: int | None = None, meaning: str = "") -> int:
        """A whole number >= 1 (and <= ``maximum``); ``meaning`` is said in the message."""
        raw = self.env.get(name)
        if raw is None:
            return default
        what = f" ({meaning})" if meaning else ""
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if maximum is not None and value is not None and not 1 <= value <= maximum:
            self.problems.note(f"{name}={value} must be between 1 and {maximum}")
            return default
        if value is None or value <= 0:
            self.problems.note(f"{name}={raw!r} must be a positive integer{what}")
            return default
        return value
