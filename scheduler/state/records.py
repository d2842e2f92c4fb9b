"""What the state store keeps: one record per run, and each job's standing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scheduler.execution.events import RowId as RowId  # re-exported: the store's in-flight row references
from scheduler.execution.events import RowRef as RowRef
from scheduler.execution.events import row_id as row_id
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
    retry: bool = False  # the one retry of an interrupted run (same slot, same Idempotency-Key)
    replica: str | None = None  # the process that ran it (host:pid:tag)
    lease_until: datetime | None = None  # an in-flight row (outcome running) written by the background writer

    @classmethod
    def of(cls, outcome: Outcome, *, retry: bool = False, replica: str | None = None) -> RunRecord:
        """The record of a run that started and ended."""
        return cls(
            retry=retry, replica=replica,
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


class ClaimStatus(StrEnum):
    """What the store said when a run asked to start."""

    WON = "won"  # this process runs it
    TAKEN = "taken"  # another process claimed this slot already: it runs (or ran) there
    IN_FLIGHT = "in_flight"  # this process holds the slot, but a run of the job is in flight: skipped
    PAUSED = "paused"  # the job is paused (``scheduler pause``): the slot is not fired, and not claimed


@dataclass(frozen=True)
class InFlightRun:
    """A run in flight, as the store knows it: which slot, since when, where."""

    job: str
    scheduled_for: datetime
    started_at: datetime
    replica: str | None = None
    retry: bool = False


@dataclass(frozen=True)
class PausedJob:
    """A job paused with ``scheduler pause``: since when, and by whom (``user@host``)."""

    job: str
    paused_at: datetime
    paused_by: str


@dataclass(frozen=True)
class LastResult:
    """How a job's last run that ended ok or failed ended: a failure streak's state."""

    outcome: str
    scheduled_for: datetime


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    run_id: RowId = None  # the in-flight row, when WON (a RowRef: the background writer adds it)
    holder: InFlightRun | None = None  # the run in flight, when IN_FLIGHT
    paused: PausedJob | None = None  # the pause, when PAUSED
    previous: LastResult | None = None  # when WON: the job's last ok or failed run, as the store knows it


@dataclass(frozen=True)
class Interrupted:
    """A run found in flight whose process died: closed as interrupted, maybe retried once."""

    job: str
    scheduled_for: datetime
    started_at: datetime | None
    replica: str | None
    was_retry: bool
