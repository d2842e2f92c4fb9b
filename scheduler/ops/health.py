"""What /healthz reports: each job's last outcome and next run, and whether all is well.

Unhealthy (503) when the scheduler is not running, or when a job has not
succeeded for longer than 2 x its period + its timeout (its period being the
longest gap between its runs, so a weekday cron is not flagged on Monday).
A paused job (``scheduler pause``) is never judged: its silence is wanted,
and once resumed it is judged from the resume on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from scheduler.config.spec import JobSpec
from scheduler.execution.events import RunEvent, RunFinished
from scheduler.execution.run import Outcome
from scheduler.state.records import JobState
from scheduler.timing.triggers import gap_range_seconds
from tickless.clock import Clock, iso


class ScheduleView(Protocol):
    """What health needs to see of the scheduler, and nothing more."""

    @property
    def running(self) -> bool: ...

    @property
    def jobs(self) -> Mapping[str, JobSpec]: ...

    def next_run(self, name: str) -> datetime | None: ...

    def store_status(self) -> dict[str, object]:
        """``{"location", "ok", ...}``: whether the state store answers."""
        ...


@dataclass(frozen=True)
class Health:
    healthy: bool
    body: dict[str, object]


@dataclass
class _Last:
    outcome: str | None = None
    run_at: datetime | None = None
    success_at: datetime | None = None


class HealthTracker:
    """Keeps each job's last outcome (a run listener) and judges health from it."""

    def __init__(self, schedule: ScheduleView, states: Mapping[str, JobState], clock: Clock) -> None:
        self.schedule = schedule
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._last = {
            name: _Last(state.last_outcome, state.last_nominal, state.last_success_at) for name, state in states.items()
        }
        self._periods: dict[str, float] = {}
        self._scheduled: dict[str, datetime] = {}
        self._paused: set[str] = set()

    def scheduled(self, name: str) -> None:
        """A job was (re)scheduled: silence before now is not its fault."""
        with self._lock:
            self._scheduled[name] = self.clock()

    def set_paused(self, name: str, paused: bool) -> None:
        """A job was paused or resumed; a resumed one is judged from now on, like a rescheduled one."""
        with self._lock:
            if paused:
                self._paused.add(name)
                return
            self._paused.discard(name)
            self._scheduled[name] = self.clock()

    def on_event(self, event: RunEvent) -> None:
        if isinstance(event, RunFinished):
            self.finished(event.outcome)

    def finished(self, outcome: Outcome) -> None:
        with self._lock:
            last = self._last.setdefault(outcome.job, _Last())
            last.outcome, last.run_at = outcome.outcome, outcome.started_at
            if outcome.ok:
                last.success_at = outcome.started_at

    def _allowed_silence(self, spec: JobSpec) -> float:
        key = f"{spec.name}:{spec.schedule.text}:{spec.schedule.timezone}"
        if key not in self._periods:
            self._periods[key] = gap_range_seconds(spec.schedule, self.clock())[1]
        return 2 * self._periods[key] + spec.timeout_seconds

    def check(self) -> Health:
        schedule = self.schedule
        now = self.clock()
        problems: list[str] = []
        if not schedule.running:
            problems.append("the scheduler is not running")
        store = schedule.store_status()
        if not store.get("ok", True):
            problems.append(f"the state store {store.get('location')} is failing since {store.get('failing_since')}: {store.get('error')}")
        jobs = []
        for name, spec in sorted(schedule.jobs.items()):
            with self._lock:
                last = self._last.get(name, _Last())
                scheduled = self._scheduled.get(name, self.started_at)
                paused = name in self._paused
            since = max(last.success_at, scheduled) if last.success_at else scheduled
            silent = (now - since).total_seconds()
            allowed = self._allowed_silence(spec)
            if silent > allowed and not paused:
                what = "succeeded" if last.success_at else "succeeded since start"
                problems.append(f"job {name} has not {what} for {silent:.0f}s (allowed {allowed:.0f}s)")
            next_run = schedule.next_run(name)
            jobs.append({
                "name": name,
                "last_outcome": last.outcome,
                "last_run_at": iso(last.run_at) if last.run_at else None,
                "last_success_at": iso(last.success_at) if last.success_at else None,
                "next_run": iso(next_run) if next_run and not paused else None,  # a paused job's slots do not fire
                "paused": paused,
            })
        body: dict[str, object] = {
            "status": "unhealthy" if problems else "ok", "problems": problems, "state_store": store, "jobs": jobs,
        }
        return Health(healthy=not problems, body=body)
