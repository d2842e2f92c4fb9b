"""The service: an APScheduler BlockingScheduler with grace, signals, reload and shutdown.

The service owns the scheduler, the plans and the jobs. What happens to runs
is published as run events; metrics, health, the history recorder and the
in-flight table listen, and the service calls none of them by name.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_SCHEDULER_STARTED, JobSubmissionEvent, SchedulerEvent
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler import __version__
from scheduler.config.settings import Settings
from scheduler.config.spec import JobSpec
from scheduler.errors import ConfigError
from scheduler.execution.events import RunAbandoned, RunEvent, RunEvents, RunFinished, RunSkipped, RunStarted
from scheduler.execution.executor import FireTimeExecutor
from scheduler.execution.http import HttpClient
from scheduler.execution.run import JobRunner, Outcome, RunOutcome
from scheduler.ops.health import HealthTracker
from scheduler.ops.metrics import Metrics
from scheduler.reload import JobChanges, diff_jobs
from scheduler.state.recorder import BackgroundRecorder
from scheduler.state.store import StateStore
from scheduler.timing.planning import Plan, plan_jobs
from tickless.clock import Clock, iso, utc_now

logger = logging.getLogger("scheduler.runner")  # the names logs have always carried
reload_logger = logging.getLogger("scheduler.reload")

Loader = Callable[[], list[JobSpec]]


def resolve_seed(settings: Settings, store: StateStore | None) -> tuple[int, str]:
    """The jitter seed and where it came from: the environment, the store, or drawn now."""
    if settings.jitter_seed_from_env:
        return settings.jitter_seed, "from SCHEDULER_JITTER_SEED"
    stored = store.jitter_seed() if store else None
    if stored is not None:
        return stored, "from the state store"
    if store is not None and not store.readonly:
        return settings.jitter_seed, "drawn now and kept in the state store"
    return settings.jitter_seed, "drawn now: no state store yet, so jittered and offset times will differ from the service's"


def _nominal(name: str, plan: Plan, fire_time: datetime) -> datetime:
    """The slot a fire time stands for, as the trigger recorded it when it handed
    the fire time out (the plan records its first, which may be a catch-up)."""
    nominal = plan.trigger.nominal_of(fire_time)
    if nominal is None:
        # Only a run submitted by a trigger that a reload has since replaced.
        logger.warning("job %s: no nominal time recorded for the fire time %s; using the fire time", name, iso(fire_time))
        return fire_time
    return nominal


@dataclass(frozen=True)
class InFlightRun:
    job: str
    scheduled_for: datetime
    started_at: datetime


class InFlight:
    """Which runs are in flight right now, and since when (a run listener)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._runs: dict[str, InFlightRun] = {}
        self._released = False

    def on_event(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self.begin(InFlightRun(event.job, event.scheduled_for, event.started_at))
        elif isinstance(event, RunFinished):
            self.end(event.outcome.job)

    def begin(self, run: InFlightRun) -> None:
        with self._changed:
            self._runs[run.job] = run

    def end(self, job: str) -> None:
        with self._changed:
            self._runs.pop(job, None)
            self._changed.notify_all()

    def get(self, job: str) -> InFlightRun | None:
        with self._changed:
            return self._runs.get(job)

    def snapshot(self) -> list[InFlightRun]:
        with self._changed:
            return sorted(self._runs.values(), key=lambda run: run.started_at)

    def release(self) -> None:
        """Stop any wait_idle() at once (a second signal: exit now)."""
        with self._changed:
            self._released = True
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in flight; False if time ran out or release() was called."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._runs and not self._released:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return not self._runs


class Service:
    def __init__(
        self,
        settings: Settings,
        jobs: list[JobSpec],
        store: StateStore,
        *,
        metrics: Metrics | None = None,
        loader: Loader | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        self.loader = loader
        self.clock = clock
        self.jobs = {spec.name: spec for spec in jobs if spec.enabled}
        self.disabled = [spec.name for spec in jobs if not spec.enabled]
        self.seed, self.seed_source = resolve_seed(settings, store)
        store.save_jitter_seed(self.seed)
        self.plans: dict[str, Plan] = {}
        self.start: datetime | None = None  # when the startup grace ends
        self.stopping = threading.Event()
        self.inflight = InFlight()
        self.recorder = BackgroundRecorder(store)
        # Threads are created only when needed, so headroom costs nothing: with
        # max_instances=1 and at least one worker per job, no run ever waits
        # for a worker (a 30-minute job never delays a 1-minute one), and a
        # reload that adds jobs still fits.
        self.workers = max(32, 2 * len(self.jobs))
        self.http = HttpClient(settings.api_url, settings.token, self.workers, stopping=self.stopping, clock=clock)
        self.runs = JobRunner(self.http, clock)
        self.health = HealthTracker(self, store.job_states(), clock)
        self.events = RunEvents()
        # The in-flight table first: a listener that reads it sees the run's own state.
        for listener in (self.inflight, self.metrics, self.health, self.recorder):
            self.events.subscribe(listener.on_event)
        self.scheduler = BlockingScheduler(
            executors={"default": FireTimeExecutor(self.workers, clock)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        self._signals = 0

    @property
    def running(self) -> bool:
        return bool(self.scheduler.state == STATE_RUNNING)

    # -- running ----------------------------------------------------------
    def run(self) -> list[InFlightRun]:
        """Block until a signal; return the runs abandoned at shutdown."""
        now = self.clock()
        start = self.start = now + timedelta(seconds=self.settings.startup_grace_seconds)
        self._schedule(list(self.jobs.values()), start)
        self._log_start(now, start)
        threading.Thread(target=self._probe, name="probe", daemon=True).start()
        self._install_signal_handlers()
        self.metrics.up.set(1)
        if not self.stopping.is_set():
            self.scheduler.start()  # returns once shutdown() has been called
        self.metrics.up.set(0)
        return self._drain()

    def _schedule(self, specs: list[JobSpec], start: datetime) -> None:
        plans = plan_jobs(specs, self.store.job_states(), self.seed, start, self.settings.startup_spread_seconds)
        for name, plan in plans.items():
            self.store.save_grid(name, plan.fingerprint, plan.anchor)
            self.plans[name] = plan
            # The first run is set from the plan: left to APScheduler it would be
            # computed a few microseconds after start and lose the grid's first slot.
            self.scheduler.add_job(
                self._run_job, plan.trigger, args=[name], id=name, name=name,
                next_run_time=plan.first_fire, replace_existing=True,
            )
            self.metrics.next_run.labels(name).set_function(self._next_run_timestamp(name))
            self.health.scheduled(name)

    def _next_run_timestamp(self, name: str) -> Callable[[], float]:
        def read() -> float:
            moment = self.next_run(name)
            return moment.timestamp() if moment else float("nan")
        return read

    def next_run(self, name: str) -> datetime | None:
        job = self.scheduler.get_job(name)
        return job.next_run_time if job else None

    def request_stop(self) -> None:
        """Stop firing new runs; safe from any thread."""
        self.stopping.set()
        try:
            self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass  # not started yet: _on_started or run() sees the flag

    def _run_job(self, name: str, fire_time: datetime | None = None) -> Outcome | None:
        # FireTimeExecutor always passes fire_time; the default only satisfies
        # APScheduler's check of the job's arguments when it is added.
        assert fire_time is not None
        spec, plan = self.jobs.get(name), self.plans.get(name)
        if spec is None or plan is None:
            return None  # removed by a reload after this run was submitted
        trigger = plan.trigger
        nominal = _nominal(name, plan, fire_time)
        following = trigger.following(nominal, fire_time)
        deadline = trigger.fire_time(following) if following else None
        started_at, started = self.clock(), time.monotonic()
        self.events.publish(RunStarted(name, nominal, started_at))
        try:
            outcome = self.runs.run(spec, nominal, deadline)
        except BaseException as exc:
            # A fault of the run path itself, not of the job: the run still ends for
            # every listener (never left in flight), and the executor logs the traceback.
            self.events.publish(RunFinished(Outcome(
                job=name, outcome=RunOutcome.FAILED, scheduled_for=nominal, started_at=started_at,
                lateness_seconds=(started_at - nominal).total_seconds(), duration_seconds=time.monotonic() - started,
                error=f"internal error: {type(exc).__name__}: {exc}"[:400], error_type=type(exc).__name__,
            )))
            raise
        self.events.publish(RunFinished(outcome))
        return outcome

    def _drain(self) -> list[InFlightRun]:
        running = self.inflight.snapshot()
        if running:
            logger.info(
                "shutting down: waiting up to %ss for %d run(s) in flight: %s",
                self.settings.shutdown_timeout_seconds, len(running), ", ".join(run.job for run in running),
            )
        self.inflight.wait_idle(self.settings.shutdown_timeout_seconds)
        abandoned = self.inflight.snapshot()
        now = self.clock()
        for run in abandoned:
            logger.warning(
                "run abandoned at shutdown: job=%s scheduled_for=%s running since %s (%.1fs)",
                run.job, iso(run.scheduled_for), iso(run.started_at), (now - run.started_at).total_seconds(),
                extra={"job": run.job, "scheduled_for": iso(run.scheduled_for), "outcome": RunOutcome.ABANDONED_AT_SHUTDOWN},
            )
            self.events.publish(RunAbandoned(run.job, run.scheduled_for, run.started_at))
        self.recorder.close()
        if not abandoned:
            self.http.close()
        logger.info("scheduler stopped (%d run(s) abandoned)", len(abandoned))
        return abandoned

    # -- reload ---------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read jobs.yaml: apply it if valid, else log every problem and keep running as before."""
        assert self.loader is not None
        try:
            specs = self.loader()
        except ConfigError as exc:
            for problem in exc.problems:
                reload_logger.error("reload rejected: %s", problem)
            reload_logger.error("reload rejected: %d problem(s); still running the previous configuration", len(exc.problems))
            self.metrics.reloads.labels("rejected").inc()
            return False
        self.apply(diff_jobs(self.jobs, specs))
        return True

    def apply(self, changes: JobChanges) -> None:
        """Apply a reload: removed jobs go, added and changed ones are (re)scheduled."""
        for name in changes.removed:
            self.scheduler.remove_job(name)
            del self.jobs[name]
            self.plans.pop(name, None)
            self.metrics.forget(name)
        rescheduled = changes.rescheduled
        for spec in rescheduled:
            self.jobs[spec.name] = spec
        if rescheduled:
            # Unchanged schedules resume their grid from the store; changed ones start a new one.
            # Never earlier than the end of the startup grace, if a reload comes during it.
            now = self.clock()
            self._schedule(rescheduled, max(now, self.start or now))
        self.disabled = changes.disabled
        reload_logger.info("reload applied: %s", changes.summary())
        if len(self.jobs) > self.workers:
            reload_logger.warning("%d jobs now share %d worker threads: restart to give each its own", len(self.jobs), self.workers)
        self.metrics.reloads.labels("applied").inc()

    # -- events and signals -------------------------------------------------
    def _on_started(self, _event: SchedulerEvent) -> None:
        if self.stopping.is_set():
            self.scheduler.shutdown(wait=False)

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        plan = self.plans.get(event.job_id)
        fire_time = event.scheduled_run_times[-1]
        scheduled = _nominal(event.job_id, plan, fire_time) if plan else fire_time
        previous = self.inflight.get(event.job_id)
        self.events.publish(RunSkipped(event.job_id, scheduled))
        fields = {"job": event.job_id, "scheduled_for": iso(scheduled), "outcome": RunOutcome.SKIPPED_IN_FLIGHT}
        if previous is None:
            logger.warning("run skipped: job=%s scheduled_for=%s: the previous run is still in flight",
                           event.job_id, iso(scheduled), extra=fields)
            return
        logger.warning(
            "run skipped: job=%s scheduled_for=%s: the previous run (scheduled for %s) has been in flight since %s (%.1fs)",
            event.job_id, iso(scheduled), iso(previous.scheduled_for), iso(previous.started_at),
            (self.clock() - previous.started_at).total_seconds(), extra=fields,
        )

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        if self.loader is not None:
            signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals > 1:
            logger.warning("%s again: not waiting for runs in flight", name)
            self.inflight.release()
            return
        logger.info("%s received: no new runs will start", name)
        # The handler may interrupt the scheduler while it holds its locks;
        # work done from another thread cannot deadlock on them.
        threading.Thread(target=self.request_stop, name="stop", daemon=True).start()

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        logger.info("SIGHUP received: reloading %s", self.settings.config_path)
        threading.Thread(target=self.reload, name="reload", daemon=True).start()

    # -- start-up reporting -------------------------------------------------------
    def _log_start(self, now: datetime, start: datetime) -> None:
        settings = self.settings
        logger.info(
            "tickless %s: %d job(s) from %s (%d disabled), API_URL=%s, auth=%s, state %s",
            __version__, len(self.jobs), settings.config_path, len(self.disabled),
            settings.api_url, settings.auth, self.store.path,
        )
        logger.info("jitter seed %d (%s)", self.seed, self.seed_source)
        for warning in settings.warnings:
            logger.warning("%s", warning)
        for name, plan in self.plans.items():
            first = iso(plan.first_fire) if plan.first_fire else "never"
            logger.info("job %s: %s, first run at %s (%s)", name, self.jobs[name].schedule.text, first, plan.reason)
        if settings.startup_grace_seconds:
            logger.info("startup grace: nothing runs before %s (%ss)", iso(start), settings.startup_grace_seconds)

    def _probe(self) -> None:
        answered, line = self.http.probe()
        logger.log(logging.INFO if answered else logging.WARNING, "%s", line)
