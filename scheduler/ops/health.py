"""What /healthz reports: each job's last outcome and next run, and whether all is well.

Unhealthy (503) when the scheduler is not running, or when a job has not
succeeded for longer than 2 x its period + its timeout (its period being the
longest gap between its runs, so a weekday cron is not flagged on Monday).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.execution.run import Outcome, iso
from scheduler.ops.metrics import Health
from scheduler.config.spec import JobSpec
from scheduler.state.store import JobState
from scheduler.timing.triggers import gap_range_seconds

if TYPE_CHECKING:
    from scheduler.service import Service


@dataclass
class _Last:
    outcome: str | None = None
    run_at: datetime | None = None
    success_at: datetime | None = None


class HealthTracker:
    def __init__(self, service: Service, states: dict[str, JobState]) -> None:
        self.service = service
        self.started_at = service.clock()
        self._lock = threading.Lock()
        self._last = {
            name: _Last(state.last_outcome, state.last_nominal, state.last_success_at) for name, state in states.items()
        }
        self._periods: dict[str, float] = {}
        self._scheduled: dict[str, datetime] = {}

    def scheduled(self, name: str) -> None:
        """A job was (re)scheduled: silence before now is not its fault."""
        with self._lock:
            self._scheduled[name] = self.service.clock()

    def finished(self, outcome: Outcome) -> None:
        with self._lock:
            last = self._last.setdefault(outcome.job, _Last())
            last.outcome, last.run_at = outcome.outcome, outcome.started_at
            if outcome.ok:
                last.success_at = outcome.started_at

    def _allowed_silence(self, spec: JobSpec) -> float:
        key = f"{spec.name}:{spec.schedule.text}:{spec.schedule.timezone}"
        if key not in self._periods:
            self._periods[key] = gap_range_seconds(spec.schedule)[1]
        return 2 * self._periods[key] + spec.timeout_seconds

    def check(self) -> Health:
        service = self.service
        now = service.clock()
        problems: list[str] = []
        if not service.running:
            problems.append("the scheduler is not running")
        jobs = []
        for name, spec in sorted(service.jobs.items()):
            with self._lock:
                last = self._last.get(name, _Last())
                scheduled = self._scheduled.get(name, self.started_at)
            since = max(last.success_at, scheduled) if last.success_at else scheduled
            silent = (now - since).total_seconds()
            allowed = self._allowed_silence(spec)
            if silent > allowed:
                what = "succeeded" if last.success_at else "succeeded since start"
                problems.append(f"job {name} has not {what} for {silent:.0f}s (allowed {allowed:.0f}s)")
            next_run = service.next_run(name)
            jobs.append({
                "name": name,
                "last_outcome": last.outcome,
                "last_run_at": iso(last.run_at) if last.run_at else None,
                "last_success_at": iso(last.success_at) if last.success_at else None,
                "next_run": iso(next_run) if next_run else None,
            })
        body: dict[str, object] = {"status": "unhealthy" if problems else "ok", "problems": problems, "jobs": jobs}
        return Health(healthy=not problems, body=body)
