"""The service: an APScheduler BlockingScheduler with grace, signals and shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_SCHEDULER_STARTED, JobSubmissionEvent, SchedulerEvent
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler import __version__
from scheduler.execution.run import Outcome, RunExecutor, iso
from scheduler.ops.health import HealthTracker
from scheduler.execution.http import HttpClient
from scheduler.inflight import InFlight, InFlightRun
from scheduler.ops.metrics import Metrics
from scheduler.timing.planning import Plan, plan_jobs
from scheduler.execution.executor import FireTimeExecutor
from scheduler.config.settings import Settings
from scheduler.config.spec import JobSpec
from scheduler.state.store import BackgroundRecorder, RunRecord, StateStore

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Loader = Callable[[], list[JobSpec]]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


def _nominal(plan: Plan, fire_time: datetime) -> datetime:
    """The slot a fire time stands for: the plan's first run may be a catch-up
    of an earlier slot (fired off the grid); every later one is on the grid."""
    if fire_time == plan.first_fire and plan.first_nominal is not None:
        return plan.first_nominal
    return plan.trigger.nominal_for(fire_time)


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
        self.recorder = BackgroundRecorder(store)
        self.plans: dict[str, Plan] = {}
        self.start: datetime | None = None  # when the startup grace ends
        self.stopping = threading.Event()
        self.inflight = InFlight()
        # Threads are created only when needed, so headroom costs nothing: with
        # max_instances=1 and at least one worker per job, no run ever waits
        # for a worker (a 30-minute job never delays a 1-minute one), and a
        # reload that adds jobs still fits.
        self.workers = max(32, 2 * len(self.jobs))
        self.http = HttpClient(settings.api_url, settings.token, self.workers, stopping=self.stopping, clock=clock)
        self.runs = RunExecutor(self.http, clock)
        self.health = HealthTracker(self, store.job_states())
        self.scheduler = BlockingScheduler(
            executors={"default": FireTimeExecutor(self.workers)},
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
        nominal = _nominal(plan, fire_time)
        following = trigger.nominal_after(max(nominal, fire_time))
        deadline = trigger.fire_time(following) if following else None
        self.inflight.begin(InFlightRun(name, nominal, self.clock()))
        self.metrics.started(name)
        try:
            outcome = self.runs.run(spec, nominal, deadline)
        finally:
            self.inflight.end(name)
        self.metrics.finished(outcome)
        self.health.finished(outcome)
        self.recorder.submit(RunRecord(
            job=name, scheduled_for=nominal, outcome=outcome.outcome, started_at=outcome.started_at,
            finished_at=outcome.started_at + timedelta(seconds=outcome.duration_seconds), status=outcome.status,
            error_type=outcome.error_type, attempts=outcome.attempts, duration_s=outcome.duration_seconds,
            error=outcome.error,
        ))
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
                extra={"job": run.job, "scheduled_for": iso(run.scheduled_for), "outcome": "abandoned_at_shutdown"},
            )
            self.recorder.submit(RunRecord(run.job, run.scheduled_for, "abandoned_at_shutdown", started_at=run.started_at))
        self.recorder.close()
        if not abandoned:
            self.http.close()
        logger.info("scheduler stopped (%d run(s) abandoned)", len(abandoned))
        return abandoned

    # -- reload ---------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read jobs.yaml: apply it if valid, else log every problem and keep running as before."""
        from scheduler.reload import apply_reload

        return apply_reload(self)

    # -- events and signals -------------------------------------------------
    def _on_started(self, _event: SchedulerEvent) -> None:
        if self.stopping.is_set():
            self.scheduler.shutdown(wait=False)

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        plan = self.plans.get(event.job_id)
        fire_time = event.scheduled_run_times[-1]
        scheduled = _nominal(plan, fire_time) if plan else fire_time
        previous = self.inflight.get(event.job_id)
        self.metrics.skipped(event.job_id)
        self.recorder.submit(RunRecord(event.job_id, scheduled, "skipped_in_flight"))
        fields = {"job": event.job_id, "scheduled_for": iso(scheduled), "outcome": "skipped_in_flight"}
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
