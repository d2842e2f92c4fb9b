"""The scheduler's one exception hierarchy.

Every error builds its own message, so callers never format them; ``cli.py``
is the only place that turns them into exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickless.config.problems import Problem, as_problem


class SchedulerError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(SchedulerError):
    """One or more configuration problems, collected and raised once.

    ``problems`` holds each problem with its location; ``str()`` of one is
    its line (``FILE:LINE: job 'NAME': field: what is wrong`` or
    ``NAME=value: rule``).
    """

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems = [as_problem(problem) for problem in problems]
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> list[str]:
        return [str(problem) for problem in self.problems]


class StateError(SchedulerError):
    """The state store cannot be opened or used (at start: a configuration problem, exit 2).

    ``location`` is the file, or the PostgreSQL URL without its password.
    """

    def __init__(self, location: str, cause: BaseException | str, *, variable: str = "SCHEDULER_STATE_PATH", hint: str = "") -> None:
        self.location = location
        message = f"{variable}={location!r}: cannot use the state store: {cause}"
        super().__init__(message + (f"; {hint}" if hint else ""))


class StoreUnavailable(SchedulerError):
    """A read or write of a running service's state store failed (the service goes on)."""

    def __init__(self, location: str, cause: BaseException | str) -> None:
        self.location = location
        super().__init__(f"state store {location}: {cause}")


class InstanceLocked(SchedulerError):
    """Another ``scheduler run`` holds the state file (one service per SQLite file)."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        super().__init__(
            f"SCHEDULER_STATE_PATH={path!r} is in use by another scheduler ({holder}): one service per state file; "
            "stop that one, give this one its own SCHEDULER_STATE_PATH, or use SCHEDULER_STATE_URL (PostgreSQL) for replicas"
        )


class UnknownJobError(SchedulerError):
    def __init__(self, name: str, known: list[str], hint: str | None) -> None:
        self.name = name
        message = f"no job named {name!r} (jobs: {', '.join(known) or 'none'})"
        if hint:
            message += f"; did you mean {hint!r}?"
        super().__init__(message)


class RunFailed(SchedulerError):
    """One run of a job did not succeed.

    ``permanent`` says whether trying the same request again could help
    (a 404 will fail again; a 503 may not).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
        error_type: str | None = None,
    ) -> None:
        self.permanent = permanent
        self.attempts = attempts
        self.error_type = error_type
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class HookFailed(SchedulerError):
    """A notification or ping (``notify:``, ``ping:``) was not delivered.

    The message names the receiver by scheme and host only: the path and
    query of such URLs are often secrets (a webhook token, a check's UUID).
    """

    def __init__(self, where: str, cause: str, *, attempts: int = 1) -> None:
        self.attempts = attempts
        super().__init__(f"{where}: {cause} ({attempts} attempt{'s' if attempts != 1 else ''})")
