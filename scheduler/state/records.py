"""What the state store keeps: one record per run, and each job's standing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.execution.run import Outcome, RunOutcome


@dataclass(frozen=True)
class RunRecord:
    job: str
    scheduled_for: datetime
    outcome: RunOutcome
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status: int | None = None
    error_type: str | None = None
    attempts: int | None = None
    duration_s: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, outcome: Outcome) -> RunRecord:
        """The record of a run that started and ended."""
        return cls(
            job=outcome.job, scheduled_for=outcome.scheduled_for, outcome=outcome.outcome,
            started_at=outcome.started_at, finished_at=outcome.started_at + timedelta(seconds=outcome.duration_seconds),
            status=outcome.status, error_type=outcome.error_type, attempts=outcome.attempts,
            duration_s=outcome.duration_seconds, error=outcome.error,
        )


@dataclass(frozen=True)
class JobState:
    """What the store remembers of one job between restarts."""

    fingerprint: str  # the schedule it was planned with; a change starts a new grid
    anchor: datetime  # where an interval job's grid starts
    last_nominal: datetime | None  # nominal time of the last run that started
    last_outcome: str | None
    last_success_at: datetime | None
