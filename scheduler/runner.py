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
from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler import __version__
from scheduler.execution import Outcome, RunExecutor, iso
from scheduler.http import HttpClient
from scheduler.inflight import InFlight, InFlightRun
from scheduler.pool import FireTimeExecutor
from scheduler.settings import Settings
from scheduler.spec import JobSpec
from scheduler.triggers import NonDriftingTrigger, build_trigger

logger = logging.getLogger("scheduler.runner")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def plan(jobs: list[JobSpec], settings: Settings, now: datetime) -> dict[str, NonDriftingTrigger]:
    """The trigger of every enabled job for a service whose grace starts at ``now``."""
    start = now + timedelta(seconds=settings.startup_grace_seconds)
    return {spec.name: build_trigger(spec, start, settings.jitter_seed) for spec in jobs if spec.enabled}


class Service:
    def __init__(self, settings: Settings, jobs: list[JobSpec], *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.jobs = {spec.name: spec for spec in jobs if spec.enabled}
        self.disabled = [spec.name for spec in jobs if not spec.enabled]
        self.stopping = threading.Event()
        self.inflight = InFlight()
        self.triggers: dict[str, NonDriftingTrigger] = {}
        # One worker per job: with max_instances=1 no run ever waits for a
        # worker, so a 30-minute job never delays a 1-minute one.
        self.workers = max(1, len(self.jobs))
        self.http = HttpClient(settings.api_url, settings.token, self.workers, stopping=self.stopping, clock=clock)
        self.runs = RunExecutor(self.http, clock)
        self.scheduler = BlockingScheduler(
            executors={"default": FireTimeExecutor(self.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        self._signals = 0

    # -- running ----------------------------------------------------------
    def run(self) -> list[InFlightRun]:
        """Block until a signal; return the runs abandoned at shutdown."""
        now = self.clock()
        start = now + timedelta(seconds=self.settings.startup_grace_seconds)
        self.triggers = plan(list(self.jobs.values()), self.settings, now)
        for name, trigger in self.triggers.items():
            # The first run is fixed here, against the planned start: left to
            # APScheduler it would be computed a few microseconds later and an
            # interval job would lose its run at the very start of its grid.
            self.scheduler.add_job(
                self._run_job, trigger, args=[name], id=name, name=name,
                next_run_time=trigger.get_next_fire_time(None, start),
            )
        self._log_start(now)
        threading.Thread(target=self._probe, name="probe", daemon=True).start()
        self._install_signal_handlers()
        if not self.stopping.is_set():
            self.scheduler.start()  # returns once shutdown() has been called
        return self._drain()

    def request_stop(self) -> None:
        """Stop firing new runs; safe from any thread."""
        self.stopping.set()
        try:
            self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass  # not started yet: _on_started or run() sees the flag

    def _run_job(self, name: str, fire_time: datetime | None = None) -> Outcome:
        # FireTimeExecutor always passes fire_time; the default only satisfies
        # APScheduler's check of the job's arguments when it is added.
        assert fire_time is not None
        spec = self.jobs[name]
        trigger = self.triggers[name]
        nominal = trigger.nominal_for(fire_time)
        following = trigger.nominal_after(nominal)
        deadline = trigger.fire_time(following) if following else None
        self.inflight.begin(InFlightRun(name, nominal, self.clock()))
        try:
            return self.runs.run(spec, nominal, deadline)
        finally:
            self.inflight.end(name)

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
        if not abandoned:
            self.http.close()
        logger.info("scheduler stopped (%d run(s) abandoned)", len(abandoned))
        return abandoned

    # -- events and signals -------------------------------------------------
    def _on_started(self, _event: SchedulerEvent) -> None:
        if self.stopping.is_set():
            self.scheduler.shutdown(wait=False)

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        trigger = self.triggers.get(event.job_id)
        fire_time = event.scheduled_run_times[-1]
        scheduled = trigger.nominal_for(fire_time) if trigger else fire_time
        previous = self.inflight.get(event.job_id)
        if previous is None:
            logger.warning("run skipped: job=%s scheduled_for=%s: the previous run is still in flight", event.job_id, iso(scheduled))
            return
        logger.warning(
            "run skipped: job=%s scheduled_for=%s: the previous run (scheduled for %s) has been in flight since %s (%.1fs)",
            event.job_id, iso(scheduled), iso(previous.scheduled_for), iso(previous.started_at),
            (self.clock() - previous.started_at).total_seconds(),
            extra={"job": event.job_id, "scheduled_for": iso(scheduled), "outcome": "skipped_in_flight"},
        )

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals > 1:
            logger.warning("%s again: not waiting for runs in flight", name)
            self.inflight.release()
            return
        logger.info("%s received: no new runs will start", name)
        # The handler may interrupt the scheduler while it holds its locks;
        # shutting it down from another thread cannot deadlock on them.
        threading.Thread(target=self.request_stop, name="stop", daemon=True).start()

    # -- start-up reporting -------------------------------------------------------
    def _log_start(self, now: datetime) -> None:
        settings = self.settings
        logger.info(
            "tickless %s: %d job(s) from %s (%d disabled), API_URL=%s, auth=%s, %d worker threads",
            __version__, len(self.jobs), settings.config_path, len(self.disabled),
            settings.api_url, settings.auth, self.workers,
        )
        seed_source = (
            "from SCHEDULER_JITTER_SEED" if settings.jitter_seed_from_env
            else "drawn at start; set SCHEDULER_JITTER_SEED to reproduce"
        )
        logger.info("jitter seed %d (%s)", settings.jitter_seed, seed_source)
        for warning in settings.warnings:
            logger.warning("%s", warning)
        start = now + timedelta(seconds=settings.startup_grace_seconds)
        for name, trigger in self.triggers.items():
            first = trigger.get_next_fire_time(None, start)
            logger.info("job %s: %s, first run at %s", name, self.jobs[name].schedule.text, iso(first) if first else "never")
        if settings.startup_grace_seconds:
            logger.info("startup grace: nothing runs before %s (%ss)", iso(start), settings.startup_grace_seconds)

    def _probe(self) -> None:
        answered, line = self.http.probe()
        logger.log(logging.INFO if answered else logging.WARNING, "%s", line)
