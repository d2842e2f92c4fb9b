"""What /healthz decides, driven with a fixed clock and a stand-in for the schedule (ScheduleView)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from scheduler.config.spec import HttpTarget, JobSpec, Schedule, ScheduleKind
from scheduler.execution.run import Outcome
from scheduler.ops.health import HealthTracker
from scheduler.state.records import JobState

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
TARGET = HttpTarget("POST", "http://app/x")


@dataclass
class FakeService:
    jobs: dict[str, JobSpec]
    now: datetime = NOW
    running: bool = True
    next_runs: dict[str, datetime] = field(default_factory=dict)
    store: dict[str, object] = field(default_factory=lambda: {"location": "state.sqlite", "ok": True})

    def clock(self) -> datetime:
        return self.now

    def store_status(self) -> dict[str, object]:
        return self.store

    def next_run(self, name: str) -> datetime | None:
        return self.next_runs.get(name)


def minutely() -> JobSpec:
    return JobSpec(name="tick", line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=60), target=TARGET, timeout_seconds=30)


def outcome(ok: bool, at: datetime) -> Outcome:
    return Outcome("tick", "ok" if ok else "failed", at, at, 0.0, 0.1, status=200 if ok else 500)


def test_healthy_while_a_job_succeeds_within_twice_its_period_plus_timeout() -> None:
    service = FakeService({"tick": minutely()}, next_runs={"tick": NOW + timedelta(seconds=60)})
    tracker = HealthTracker(service, {}, service.clock)
    tracker.scheduled("tick")
    tracker.finished(outcome(True, NOW))
    service.now = NOW + timedelta(seconds=149)  # allowed: 2 x 60 + 30
    health = tracker.check()
    assert health.healthy
    assert health.body["jobs"] == [{
        "name": "tick", "last_outcome": "ok", "last_run_at": "2026-03-10T10:00:00.000Z",
        "last_success_at": "2026-03-10T10:00:00.000Z", "next_run": "2026-03-10T10:01:00.000Z", "paused": False,
    }]


def test_unhealthy_when_a_job_stops_succeeding_naming_it() -> None:
    service = FakeService({"tick": minutely()})
    tracker = HealthTracker(service, {}, service.clock)
    tracker.scheduled("tick")
    tracker.finished(outcome(True, NOW))
    tracker.finished(outcome(False, NOW + timedelta(seconds=60)))
    service.now = NOW + timedelta(seconds=151)
    health = tracker.check()
    assert not health.healthy
    assert health.body["problems"] == ["job tick has not succeeded for 151s (allowed 150s)"]


def test_unhealthy_when_the_scheduler_is_not_running() -> None:
    service = FakeService({}, running=False)
    health = HealthTracker(service, {}, service.clock).check()
    assert not health.healthy and health.body["problems"] == ["the scheduler is not running"]


def test_an_old_success_from_before_a_restart_is_not_held_against_the_job() -> None:
    nightly = JobSpec(name="nightly", line=1, schedule=Schedule(ScheduleKind.DAILY, times=(time(3, 0),)), target=TARGET)
    service = FakeService({"nightly": nightly})
    three_days_ago = NOW - timedelta(days=3)
    states = {"nightly": JobState("daily 03:00 tz=UTC", three_days_ago, three_days_ago, "ok", three_days_ago)}
    tracker = HealthTracker(service, states, service.clock)
    tracker.scheduled("nightly")
    assert tracker.check().healthy  # its next slot is tomorrow: silence until then is not its fault
    service.now = NOW + timedelta(days=2, seconds=61)  # 2 x 24 h + 60 s timeout since it was scheduled
    assert not tracker.check().healthy


def test_a_failing_state_store_is_unhealthy_and_named() -> None:
    service = FakeService({}, store={"location": "postgresql://u@db:5432/t", "ok": False,
                                     "failing_since": "2026-03-10T10:00:00.000Z", "error": "connection refused"})
    health = HealthTracker(service, {}, service.clock).check()
    assert not health.healthy
    assert health.body["problems"] == [
        "the state store postgresql://u@db:5432/t is failing since 2026-03-10T10:00:00.000Z: connection refused"
    ]
    assert health.body["state_store"] == service.store
