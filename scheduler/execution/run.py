"""One run of one job: the HTTP call or the in-process callable, timed and logged.

Shared by the service and ``scheduler fire``, so both behave and log the same.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from scheduler.config.spec import CallTarget, JobSpec
from scheduler.errors import RunFailed
from scheduler.execution.http import HttpClient
from tickless.clock import Clock, iso, utc_now

logger = logging.getLogger("scheduler.runs")


class RunOutcome(StrEnum):
    """How a run ended, as logged, stored and counted."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED_IN_FLIGHT = "skipped_in_flight"  # its slot came while the previous run was in flight
    ABANDONED_AT_SHUTDOWN = "abandoned_at_shutdown"  # still running when shutdown stopped waiting
    RUNNING = "running"  # in flight: recorded when a run starts, completed when it ends
    INTERRUPTED = "interrupted"  # was in flight when its process died (found at the next start or lease expiry)


@dataclass(frozen=True)
class Outcome:
    """The result of one run that started (ok or failed)."""

    job: str
    outcome: RunOutcome
    scheduled_for: datetime
    started_at: datetime
    lateness_seconds: float
    duration_seconds: float
    status: int | None = None
    attempts: int = 1
    error: str | None = None
    error_type: str | None = None  # the exception's type when there is no HTTP status

    @property
    def ok(self) -> bool:
        return self.outcome == RunOutcome.OK

    def summary(self) -> str:
        detail = f"HTTP {self.status}" if self.status is not None and self.ok else (self.error or "")
        parts = [part for part in (detail, f"{self.attempts} attempts" if self.attempts > 1 else "") if part]
        parts.append(f"{self.duration_seconds:.3f}s")
        return f"{self.job}: {self.outcome} ({', '.join(parts)})"


class JobRunner:
    """Performs one run of a job and says how it went; never raises for the run's own failure."""

    def __init__(self, http: HttpClient | None, clock: Clock = utc_now) -> None:
        self.http = http
        self.clock = clock
        # Per job, the error text whose traceback was logged last: a job failing the
        # same way every minute logs its traceback once, not once a minute.
        self._traced: dict[str, str] = {}

    def run(self, spec: JobSpec, scheduled_for: datetime, deadline: datetime | None, fire_time: datetime | None = None) -> Outcome:
        """One run of the slot ``scheduled_for``, planned to fire at ``fire_time`` (its nominal time
        plus jitter, or a catch-up's place in the spread). Lateness is measured from the planned
        fire time, so intended jitter is not counted as lateness."""
        started_at = self.clock()
        started = time.monotonic()
        lateness = (started_at - (fire_time or scheduled_for)).total_seconds()
        fields = {"job": spec.name, "scheduled_for": iso(scheduled_for), "lateness_s": round(lateness, 6)}
        if fire_time is not None:
            fields["fire_time"] = iso(fire_time)
        logger.info(
            "run start: job=%s scheduled_for=%s lateness=%.3fs",
            spec.name, fields["scheduled_for"], lateness, extra=fields,
        )
        status: int | None = None
        attempts = 1
        error: str | None = None
        error_type: str | None = None
        try:
            if isinstance(spec.target, CallTarget):
                self._call(spec, spec.target)
            else:
                assert self.http is not None, "HTTP jobs need an HttpClient"
                result = self.http.call(
                    spec.name, spec.target, timeout=spec.timeout_seconds, retry=spec.retry,
                    scheduled_for=scheduled_for, deadline=deadline,
                    on_retry=lambda number, why, wait: logger.warning(
                        "run retry: job=%s attempt=%d failed (%s); next try in %.1fs",
                        spec.name, number, why, wait, extra={**fields, "attempt": number},
                    ),
                )
                status, attempts = result.status, result.attempts
        except RunFailed as exc:
            status, attempts, error, error_type = exc.status, exc.attempts, str(exc), exc.error_type
        except Exception as exc:  # a callable's own failure is that run's outcome
            error, error_type = f"{type(exc).__name__}: {exc}"[:400], type(exc).__name__
            if self._traced.get(spec.name) != error:
                self._traced[spec.name] = error
                logger.exception("job %s raised %s (traceback logged once per new error; the same error again logs "
                                 "only the run end line)", spec.name, error_type, extra=fields)
        duration = time.monotonic() - started
        if error is None:
            self._traced.pop(spec.name, None)  # after a success, the next failure's traceback is new again
        if error is None and isinstance(spec.target, CallTarget) and duration > spec.timeout_seconds:
            error, error_type = f"ran {duration:.1f}s, over its {spec.timeout_seconds}s timeout", "Timeout"
        outcome = Outcome(
            job=spec.name, outcome=RunOutcome.FAILED if error else RunOutcome.OK, scheduled_for=scheduled_for,
            started_at=started_at, lateness_seconds=lateness, duration_seconds=duration,
            status=status, attempts=attempts, error=error, error_type=error_type,
        )
        end_fields = {
            **fields, "duration_s": round(duration, 6), "outcome": outcome.outcome,
            "status": status, "attempts": attempts, "error": error,
        }
        logger.log(
            logging.INFO if outcome.ok else logging.ERROR,
            "run end: job=%s scheduled_for=%s lateness=%.3fs duration=%.3fs outcome=%s%s",
            spec.name, fields["scheduled_for"], lateness, duration, outcome.outcome,
            ("" if status is None else f" status={status}") if outcome.ok else f" attempts={attempts} error={error}",
            extra=end_fields,
        )
        return outcome

    @staticmethod
    def _call(spec: JobSpec, target: CallTarget) -> None:
        # A Python callable cannot be interrupted from outside; say so loudly
        # when it overruns instead of pretending a timeout was enforced.
        watchdog = threading.Timer(
            spec.timeout_seconds,
            lambda: logger.warning(
                "job %s is still running after its %ss timeout (a callable cannot be interrupted)",
                spec.name, spec.timeout_seconds,
            ),
        )
        watchdog.daemon = True
        watchdog.start()
        try:
            target.function(**target.kwargs)
        finally:
            watchdog.cancel()
