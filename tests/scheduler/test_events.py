"""Run events, the reload diff and the executor's per-run guard, without a service."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.config.spec import HttpTarget, JobSpec, Schedule, ScheduleKind
from scheduler.execution.events import RunEvent, RunEvents, RunFinished, RunSkipped, RunStarted
from scheduler.execution.executor import FireTimeExecutor
from scheduler.execution.run import Outcome, RunOutcome
from scheduler.ops.metrics import Metrics
from scheduler.reload import diff_jobs

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
TARGET = HttpTarget("POST", "http://app/x")


def job(name: str, seconds: int = 60, **changes: object) -> JobSpec:
    spec = JobSpec(name=name, line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=seconds), target=TARGET)
    return replace(spec, **changes)  # type: ignore[arg-type]


def test_every_listener_hears_every_event_even_when_one_raises(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[RunEvent] = []

    def broken(event: RunEvent) -> None:
        raise RuntimeError("listener bug")

    events = RunEvents()
    events.subscribe(broken)
    events.subscribe(heard.append)
    started = RunStarted("a", T0, T0)
    with caplog.at_level(logging.ERROR):
        events.publish(started)
    assert heard == [started]
    assert "listener bug" in caplog.text  # logged with its traceback, not swallowed


def test_metrics_follow_run_events() -> None:
    metrics = Metrics()
    metrics.on_event(RunStarted("a", T0, T0))
    assert metrics.registry.get_sample_value("tickless_runs_in_flight", {"job": "a"}) == 1
    outcome = Outcome("a", RunOutcome.FAILED, T0, T0, 0.0, 0.5, status=500, attempts=3)
    metrics.on_event(RunFinished(outcome))
    metrics.on_event(RunSkipped("a", T0 + timedelta(minutes=1)))
    sample = metrics.registry.get_sample_value
    assert sample("tickless_runs_in_flight", {"job": "a"}) == 0
    assert sample("tickless_runs_total", {"job": "a", "outcome": "failed"}) == 1
    assert sample("tickless_runs_total", {"job": "a", "outcome": "skipped_in_flight"}) == 1
    assert sample("tickless_retries_total", {"job": "a"}) == 2


def test_the_reload_diff_names_added_removed_changed_and_disabled_jobs() -> None:
    running = {"keep": job("keep"), "edit": job("edit", 60), "gone": job("gone")}
    new = [job("keep"), job("edit", 120), job("fresh"), job("off", enabled=False)]
    changes = diff_jobs(running, new)
    assert (changes.added, changes.removed, changes.changed, changes.disabled) == (["fresh"], ["gone"], ["edit"], ["off"])
    assert [spec.name for spec in changes.rescheduled] == ["fresh", "edit"]
    assert changes.unchanged == 1
    assert changes.summary() == "added ['fresh'], removed ['gone'], changed ['edit'], 1 unchanged"


def test_a_job_moved_within_the_file_is_unchanged() -> None:
    changes = diff_jobs({"a": job("a")}, [replace(job("a"), line=40)])
    assert changes.changed == [] and changes.unchanged == 1


def test_the_executor_catches_a_run_that_raises_and_runs_the_next_run_time(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[datetime] = []
    done = threading.Event()
    events: list[JobExecutionEvent] = []

    def func(fire_time: datetime | None = None) -> str:
        assert fire_time is not None
        calls.append(fire_time)
        if len(calls) == 1:
            raise RuntimeError("kaboom")
        return "second ran"

    scheduler = BackgroundScheduler(executors={"default": FireTimeExecutor(2)}, timezone=UTC)

    def listen(event: JobExecutionEvent) -> None:
        events.append(event)
        if len(events) == 2:
            done.set()

    scheduler.add_listener(listen, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)
    scheduler.start(paused=True)
    try:
        apscheduler_job = scheduler.add_job(func, "date", run_date=T0, id="j", misfire_grace_time=None)
        executor = scheduler._lookup_executor("default")
        with caplog.at_level(logging.ERROR):
            executor.submit_job(apscheduler_job, [T0, T0 + timedelta(minutes=1)])
            assert done.wait(10)
    finally:
        scheduler.shutdown()
    assert calls == [T0, T0 + timedelta(minutes=1)]
    assert [event.code for event in events] == [EVENT_JOB_ERROR, EVENT_JOB_EXECUTED]
    assert isinstance(events[0].exception, RuntimeError) and "kaboom" in (events[0].traceback or "") + str(events[0].exception)
    assert events[1].retval == "second ran"
    assert "Traceback" in caplog.text and "kaboom" in caplog.text
