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
    """The state store cannot be opened or used."""

    def __init__(self, path: object, cause: BaseException) -> None:
        self.path = path
        super().__init__(f"SCHEDULER_STATE_PATH={str(path)!r}: cannot use the state store: {cause}")


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
