"""JobRunner and Metrics details of issue 11: callable tracebacks, lateness from the planned fire time, metrics at start."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.config.spec import CallTarget, JobSpec, Schedule, ScheduleKind
from scheduler.execution.run import JobRunner
from scheduler.ops.metrics import Metrics

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
ERRORS: list[str] = []


def failing() -> None:
    raise RuntimeError(ERRORS[-1])


def call_job(name: str = "report") -> JobSpec:
    return JobSpec(name=name, line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=60),
                   target=CallTarget("tests:failing", failing))


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info and record.name == "scheduler.runs"]


def test_a_callables_traceback_is_logged_at_error_once_per_new_error_text(caplog: pytest.LogCaptureFixture) -> None:
    runner, spec = JobRunner(None), call_job()
    caplog.set_level(logging.INFO)
    for text in ("kaboom", "kaboom", "kaboom", "other failure", "other failure"):
        ERRORS.append(text)
        assert runner.run(spec, T0, None).error == f"RuntimeError: {text}"
    logged = tracebacks(caplog)
    assert [record.levelno for record in logged] == [logging.ERROR, logging.ERROR]
    assert ["kaboom" in str(record.exc_info[1]) for record in logged if record.exc_info] == [True, False]
    assert "in failing" in caplog.text  # the frame that raised is in the log
    # Every failure still has its one-line run end.
    assert sum("run end: job=report" in record.getMessage() for record in caplog.records) == 5


def test_after_a_success_the_same_error_is_traced_again(caplog: pytest.LogCaptureFixture) -> None:
    state = {"fail": True}

    def flaky() -> None:
        if state["fail"]:
            raise RuntimeError("kaboom")

    spec = JobSpec(name="flaky", line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=60),
                   target=CallTarget("tests:flaky", flaky))
    runner = JobRunner(None)
    caplog.set_level(logging.INFO)
    for fail in (True, True, False, True):
        state["fail"] = fail
        runner.run(spec, T0, None)
    assert len(tracebacks(caplog)) == 2


def test_lateness_is_measured_from_the_planned_fire_time_not_the_nominal_time(caplog: pytest.LogCaptureFixture) -> None:
    def clock() -> datetime:  # nominal 10:00:00, jittered fire time 10:00:40, started at 10:00:40.25
        return T0 + timedelta(seconds=40.25)

    spec = JobSpec(name="jittered", line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=60),
                   target=CallTarget("tests:ok", lambda: None))
    caplog.set_level(logging.INFO)
    outcome = JobRunner(None, clock).run(spec, T0, None, fire_time=T0 + timedelta(seconds=40))
    assert outcome.lateness_seconds == pytest.approx(0.25)
    assert outcome.scheduled_for == T0
    start_line = next(r for r in caplog.records if r.getMessage().startswith("run start: job=jittered"))
    assert "lateness=0.250s" in start_line.getMessage()
    assert start_line.fire_time == "2026-03-10T10:00:40.000Z"  # type: ignore[attr-defined]
    # Without a fire time (scheduler fire), lateness is from the nominal time, as before.
    assert JobRunner(None, clock).run(spec, T0, None).lateness_seconds == pytest.approx(40.25)


def test_metrics_are_restored_from_the_store_at_start() -> None:
    metrics = Metrics()
    success = T0 - timedelta(minutes=3)
    metrics.restore(["a", "b"], {"a": success, "b": None, "removed": T0})
    sample = metrics.registry.get_sample_value
    assert sample("tickless_last_success_timestamp_seconds", {"job": "a"}) == success.timestamp()
    assert sample("tickless_last_success_timestamp_seconds", {"job": "b"}) is None
    assert sample("tickless_last_success_timestamp_seconds", {"job": "removed"}) is None
    for job in ("a", "b"):
        assert sample("tickless_runs_total", {"job": job, "outcome": "ok"}) == 0
        assert sample("tickless_runs_total", {"job": job, "outcome": "failed"}) == 0


def test_a_job_that_never_succeeded_has_no_last_success_series() -> None:
    from scheduler.execution.run import Outcome, RunOutcome

    metrics = Metrics()
    metrics.started("a")
    metrics.finished(Outcome("a", RunOutcome.FAILED, T0, T0, 0.0, 0.5, error="HTTP 503"))
    sample = metrics.registry.get_sample_value
    assert sample("tickless_last_success_timestamp_seconds", {"job": "a"}) is None
    assert sample("tickless_runs_total", {"job": "a", "outcome": "failed"}) == 1
    assert sample("tickless_runs_in_flight", {"job": "a"}) == 0
    metrics.started("a")
    metrics.finished(Outcome("a", RunOutcome.OK, T0, T0, 0.0, 0.5, status=200))
    assert sample("tickless_last_success_timestamp_seconds", {"job": "a"}) == T0.timestamp() + 0.5
