"""Prometheus metrics: each instrument, fed by run events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from scheduler.execution.events import RunEvent, RunFinished, RunSkipped, RunStarted
from scheduler.execution.run import Outcome, RunOutcome

_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300)
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800)


@dataclass(frozen=True)
class _JobSeries:
    """One job's series that every run touches, looked up once: ``labels()`` validates and
    locks on each call, six times a run."""

    in_flight: Any
    ok: Any
    failed: Any
    duration: Any
    lateness: Any


class Metrics:
    """Every instrument lives in its own registry (no global state; tests make their own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("tickless_runs", "Runs by outcome", ["job", "outcome"], registry=r)
        self.duration = Histogram("tickless_run_duration_seconds", "Run duration", ["job"], buckets=_DURATION_BUCKETS, registry=r)
        self.lateness = Histogram(
            "tickless_run_lateness_seconds", "Run start minus its planned fire time (nominal time plus jitter)", ["job"],
            buckets=_LATENESS_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("tickless_runs_in_flight", "Runs in flight", ["job"], registry=r)
        self.last_success = Gauge("tickless_last_success_timestamp_seconds", "When the last run succeeded", ["job"], registry=r)
        self.next_run = Gauge("tickless_next_run_timestamp_seconds", "When the next run fires", ["job"], registry=r)
        self.retries = Counter("tickless_retries", "HTTP retries", ["job"], registry=r)
        self.up = Gauge("tickless_scheduler_up", "1 while the scheduler is running", registry=r)
        self.reloads = Counter("tickless_config_reloads", "jobs.yaml reloads by result", ["result"], registry=r)
        self.store_failures = Counter("tickless_state_store_failures", "Failed reads and writes of the state store", registry=r)
        self.store_up = Gauge("tickless_state_store_up", "0 while the state store is failing, else 1", registry=r)
        self.unclaimed = Counter(
            "tickless_runs_unclaimed", "Slots not fired because the shared state store could not be asked", ["job"], registry=r,
        )
        self.interrupted = Counter("tickless_runs_interrupted", "Runs found in flight after their process died", ["job"], registry=r)
        self.config_mismatch = Gauge(
            "tickless_replicas_with_other_config", "Live replicas whose jobs.yaml differs from this one's", registry=r,
        )
        self.paused = Gauge("tickless_job_paused", "1 while the job is paused (scheduler pause), else 0", ["job"], registry=r)
        self.notifications = Counter(
            "tickless_notifications", "Notifications and pings delivered, by kind (notify, ping)", ["job", "kind"], registry=r,
        )
        self.notification_failures = Counter(
            "tickless_notification_failures", "Notifications and pings not delivered, by kind (notify, ping)", ["job", "kind"],
            registry=r,
        )
        self._series: dict[str, _JobSeries] = {}

    def _job(self, job: str) -> _JobSeries:
        series = self._series.get(job)
        if series is None:  # two threads may both build it: the same children either way
            series = self._series[job] = _JobSeries(
                self.in_flight.labels(job), self.runs.labels(job, RunOutcome.OK), self.runs.labels(job, RunOutcome.FAILED),
                self.duration.labels(job), self.lateness.labels(job),
            )
        return series

    def on_event(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self.started(event.job)
        elif isinstance(event, RunFinished):
            self.finished(event.outcome)
        elif isinstance(event, RunSkipped):
            self.skipped(event.job)

    def restore(self, jobs: Iterable[str], last_success: Mapping[str, datetime | None]) -> None:
        """At start, from the state store: each job's last success, and its run counters at 0.

        Counters start at 0, not at the counts of the stored history: a counter that
        came back at its old value after each restart would have its whole history
        counted again by ``increase()``, which reads a drop as a reset. The last success
        is a timestamp, and is what a staleness alert needs.
        """
        for job in jobs:
            for outcome in (RunOutcome.OK, RunOutcome.FAILED):
                self.runs.labels(job, outcome)
            moment = last_success.get(job)
            if moment is not None:
                self.last_success.labels(job).set(moment.timestamp())

    def started(self, job: str) -> None:
        self._job(job).in_flight.inc()

    def finished(self, outcome: Outcome) -> None:
        job = outcome.job
        series = self._job(job)
        series.in_flight.dec()
        if outcome.ok:
            series.ok.inc()
        elif outcome.outcome == RunOutcome.FAILED:
            series.failed.inc()
        else:
            self.runs.labels(job, outcome.outcome).inc()
        series.duration.observe(outcome.duration_seconds)
        series.lateness.observe(max(0.0, outcome.lateness_seconds))
        if outcome.attempts > 1:
            self.retries.labels(job).inc(outcome.attempts - 1)
        if outcome.ok:
            # Looked up here, not with the series: a job that never succeeded has no last-success series.
            self.last_success.labels(job).set(outcome.started_at.timestamp() + outcome.duration_seconds)

    def skipped(self, job: str) -> None:
        self.runs.labels(job, RunOutcome.SKIPPED_IN_FLIGHT).inc()

    def scheduled(self, job: str, moment: datetime | None) -> None:
        if moment is not None:
            self.next_run.labels(job).set(moment.timestamp())

    def forget(self, job: str) -> None:
        # in_flight stays: a run of the removed job may still be going and will decrement it.
        try:
            self.next_run.remove(job)
        except KeyError:
            pass
