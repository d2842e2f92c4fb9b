"""The service: an APScheduler BlockingScheduler with grace, signals, reload and shutdown.

The service owns the scheduler, the plans and the jobs. What happens to runs
is published as run events; metrics, health, the history recorder and the
in-flight table listen, and the service calls none of them by name.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_SCHEDULER_STARTED, JobSubmissionEvent, SchedulerEvent
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.schedulers.blocking import BlockingScheduler

from scheduler import __version__
from scheduler.config.settings import Settings
from scheduler.config.spec import HttpTarget, JobSpec
from scheduler.errors import ConfigError, StoreUnavailable
from scheduler.execution.events import RunAbandoned, RunEvent, RunEvents, RunFinished, RunSkipped, RunStarted
from scheduler.execution.executor import FireTimeExecutor
from scheduler.execution.http import HookClient, HttpClient
from scheduler.execution.run import JobRunner, Outcome, RunOutcome
from scheduler.ops.health import HealthTracker
from scheduler.ops.liveness import HEARTBEAT_SECONDS, Liveness
from scheduler.ops.logs import redact
from scheduler.ops.metrics import Metrics
from scheduler.ops.notify import Notifier
from scheduler.reload import JobChanges, diff_jobs
from scheduler.state.recorder import BackgroundRecorder
from scheduler.state.records import Claim, ClaimStatus, PausedJob, RowId, RowRef, row_id
from scheduler.state.records import InFlightRun as StoredInFlight
from scheduler.state.sqlite import SqliteStore
from scheduler.state.store import StateStore
from scheduler.timing.planning import Plan, catch_up_seconds, plan_jobs
from tickless.clock import Clock, iso, utc_now

logger = logging.getLogger("scheduler.runner")  # the names logs have always carried
reload_logger = logging.getLogger("scheduler.reload")

# Re-reads the environment and jobs.yaml on SIGHUP: the settings (for a token
# file's new token) and the jobs, or ConfigError with every problem.
Loader = Callable[[], tuple[Settings, list[JobSpec]]]

HEARTBEAT_JOB = "#heartbeat"  # the liveness heartbeat's APScheduler job; '#' is in no job name of jobs.yaml
PAUSE_POLL_SECONDS = 1.0  # how often the service reads which jobs are paused
RETRY_WAIT_SECONDS = 1.0  # at most this long before a retry that found its job in flight asks again


def resolve_seed(settings: Settings, store: StateStore | None) -> tuple[int, str]:
    """The jitter seed and where it came from: the environment, the store, or drawn now."""
    if settings.jitter_seed_from_env:
        return settings.jitter_seed, "from SCHEDULER_JITTER_SEED"
    stored = store.jitter_seed() if store else None
    if stored is not None:
        return stored, "from the state store"
    if store is not None and not getattr(store, "readonly", False):
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
    run_id: RowId = None  # the store's in-flight row, whose lease this process renews
    retry: bool = False


class InFlight:
    """Which runs are in flight right now, and since when (a run listener)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._runs: dict[str, InFlightRun] = {}
        self._released = False

    def on_event(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self.begin(InFlightRun(event.job, event.scheduled_for, event.started_at, event.run_id, event.retry))
        elif isinstance(event, RunFinished):
            self.end(event.outcome.job)

    def begin(self, run: InFlightRun) -> None:
        with self._changed:
            self._runs[run.job] = run

    def take(self, run: InFlightRun) -> InFlightRun | None:
        """Mark ``run`` in flight unless a run of its job is: the one in flight, or None when taken."""
        with self._changed:
            holder = self._runs.get(run.job)
            if holder is None:
                self._runs[run.job] = run
            return holder

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
        config_fingerprint: str = "",
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        self.loader = loader
        self.clock = clock
        self.jobs = {spec.name: spec for spec in jobs if spec.enabled}
        self.disabled = [spec.name for spec in jobs if not spec.enabled]
        self.seed, self.seed_source = resolve_seed(settings, store)
        # Replicas starting together: the first seed stored is everyone's.
        self.seed = store.claim_jitter_seed(self.seed)
        # Who this process is, in claims, in-flight rows and history: host, pid and a tag for pid reuse.
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        # With a shared store (replicas), no run fires without a claim; alone on a file, runs go on.
        self.shared = settings.state_url is not None
        # Alone on a SQLite file (the instance lock is held), no other scheduler claims slots: a run's claim
        # is decided here, from the in-flight table and the paused jobs, and its in-flight row is written by
        # the background writer (docs/operations.md: the window this leaves to `scheduler fire`).
        self.claims_in_memory = not self.shared and isinstance(store, SqliteStore) and not store.readonly
        self._in_flight_elsewhere: dict[str, StoredInFlight] = {}  # `scheduler fire` runs, read with the pauses
        self.config_fingerprint = config_fingerprint
        self._missed_while_store_failed = False
        self._other_configs: list[str] = []
        self._keeper = threading.Event()
        self.plans: dict[str, Plan] = {}
        self.start: datetime | None = None  # when the startup grace ends
        self.stopping = threading.Event()
        self.inflight = InFlight()
        self.recorder = BackgroundRecorder(store, replica=self.replica)
        # Threads are created only when needed, so headroom costs nothing: with
        # max_instances=1 and at least one worker per job, no run ever waits
        # for a worker (a 30-minute job never delays a 1-minute one), and a
        # reload that adds jobs still fits.
        self.workers = max(32, 2 * len(self.jobs))
        self.http = HttpClient(settings.api_url, settings.token, self.workers, stopping=self.stopping, clock=clock)
        self.runs = JobRunner(self.http, clock)
        states = store.job_states()
        self.health = HealthTracker(self, states, clock)
        # Series exist from the start, not only after each job's next run: alerts on staleness keep their data.
        self.metrics.restore(self.jobs, {name: state.last_success_at for name, state in states.items()})
        self.events = RunEvents()
        self.paused: dict[str, PausedJob] = {}  # as read from the store every PAUSE_POLL_SECONDS
        self.notifier = Notifier(self.jobs.get, HookClient(stopping=self.stopping), self.metrics, states=states,
                                 secrets=[settings.token or ""], replica=self.replica)
        # The in-flight table first: a listener that reads it sees the run's own state.
        for listener in (self.inflight, self.metrics, self.health, self.recorder, self.notifier):
            self.events.subscribe(listener.on_event)
        self.scheduler = BlockingScheduler(
            executors={"default": FireTimeExecutor(self.workers, clock)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        store.failures.listeners.append(self.metrics.store_failures.inc)
        self.metrics.store_up.set_function(lambda: 0.0 if store.failures.failing else 1.0)
        self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        self.liveness = Liveness(lambda: self.running, heartbeat_seconds=heartbeat_seconds,
                                 stale_after_seconds=max(6 * heartbeat_seconds, 3.0))
        self._signals = 0
        self._lease = timedelta(seconds=settings.lease_seconds)

    @property
    def running(self) -> bool:
        return bool(self.scheduler.state == STATE_RUNNING)

    # -- running ----------------------------------------------------------
    def run(self) -> list[InFlightRun]:
        """Block until a signal; return the runs abandoned at shutdown."""
        now = self.clock()
        start = self.start = now + timedelta(seconds=self.settings.startup_grace_seconds)
        self._schedule(list(self.jobs.values()), start)
        # Before the start is logged: tests and operators send signals once they see it.
        self._install_signal_handlers()
        # Alone on a file (the instance lock is held), every in-flight row is from a process that died.
        self._close_interrupted(all_rows=not self.shared, retry_at=start)
        self._log_start(now, start)
        self._read_paused()
        # Fired by the loop and run by the worker pool like any job: /livez watches that it keeps running.
        self.scheduler.add_job(
            self.liveness.beat, "interval", seconds=self.liveness.heartbeat_seconds, id=HEARTBEAT_JOB, name=HEARTBEAT_JOB,
            next_run_time=now, misfire_grace_time=None, coalesce=True, max_instances=1,
        )
        threading.Thread(target=self._watch_paused, name="pauses", daemon=True).start()
        threading.Thread(target=self._keep_leases, name="leases", daemon=True).start()
        threading.Thread(target=self._probe, name="probe", daemon=True).start()
        self.metrics.up.set(1)
        if not self.stopping.is_set():
            self.scheduler.start()  # returns once shutdown() has been called
        self.metrics.up.set(0)
        self._keeper.set()
        return self._drain()

    def _schedule(self, specs: list[JobSpec], start: datetime) -> None:
        plans = self._plan(specs, start)
        targets = {spec.name: spec.target for spec in specs}
        for name, plan in plans.items():
            self.plans[name] = plan
            target = targets[name]
            if isinstance(target, HttpTarget):
                self.http.prepare(name, target)
            # The first run is set from the plan: left to APScheduler it would be
            # computed a few microseconds after start and lose the grid's first slot.
            self.scheduler.add_job(
                self._run_job, plan.trigger, args=[name], id=name, name=name,
                next_run_time=plan.first_fire, replace_existing=True,
            )
            self.metrics.next_run.labels(name).set_function(self._next_run_timestamp(name))
            self.metrics.restore([name], {})  # a job added by a reload: its run counters at 0
            self.health.scheduled(name)

    def _plan(self, specs: list[JobSpec], start: datetime) -> dict[str, Plan]:
        """Plans whose grids are the stored ones: a replica that planned a new grid
        after another stored one for the same schedule takes the stored one."""
        spread = self.settings.startup_spread_seconds
        try:
            plans = plan_jobs(specs, self.store.job_states(), self.seed, start, spread)
            moved = [spec for spec in specs if spec.name in plans
                     and self.store.claim_grid(spec.name, plans[spec.name].fingerprint, plans[spec.name].anchor) != plans[spec.name].anchor]
            if moved:
                plans.update(plan_jobs(moved, self.store.job_states(), self.seed, start, spread))
        except StoreUnavailable as exc:
            logger.error("planning without the state store (%s): jobs start new grids; claims still decide who fires", exc)
            plans = plan_jobs(specs, {}, self.seed, start, spread)
        return plans

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
        return self._perform(spec, nominal, deadline, retry=False, fire_time=fire_time)

    def _run_retry(self, name: str, nominal: datetime, fire_time: datetime | None = None) -> Outcome | None:
        """The one retry of a run interrupted by its process's death: the same slot, the same Idempotency-Key."""
        spec, plan = self.jobs.get(name), self.plans.get(name)
        if spec is None or plan is None:
            return None
        following = plan.trigger.following(nominal, fire_time or self.clock())
        return self._perform(spec, nominal, plan.trigger.fire_time(following) if following else None, retry=True,
                             fire_time=fire_time)

    def _perform(
        self, spec: JobSpec, nominal: datetime, deadline: datetime | None, *, retry: bool, fire_time: datetime | None = None,
    ) -> Outcome | None:
        name = spec.name
        claim = self._claim(name, nominal, retry)
        if claim is None:
            return None
        started_at, started = self.clock(), time.monotonic()
        previous = (claim.previous.outcome, claim.previous.scheduled_for) if claim.previous else None
        lease_until = started_at + self._lease if isinstance(claim.run_id, RowRef) else None
        self.events.publish(RunStarted(name, nominal, started_at, claim.run_id, retry, previous, lease_until))
        try:
            outcome = self.runs.run(spec, nominal, deadline, fire_time)
        except BaseException as exc:
            # A fault of the run path itself, not of the job: the run still ends for
            # every listener (never left in flight), and the executor logs the traceback.
            self.events.publish(RunFinished(Outcome(
                job=name, outcome=RunOutcome.FAILED, scheduled_for=nominal, started_at=started_at,
                lateness_seconds=(started_at - (fire_time or nominal)).total_seconds(), duration_seconds=time.monotonic() - started,
                error=f"internal error: {type(exc).__name__}: {exc}"[:400], error_type=type(exc).__name__,
            ), claim.run_id, retry))
            raise
        self.events.publish(RunFinished(outcome, claim.run_id, retry))
        return outcome

    def _claim(self, name: str, nominal: datetime, retry: bool) -> Claim | None:
        """Claim the slot: the claim to run under, or None when this process must not run it."""
        if self.claims_in_memory:
            return self._claim_in_memory(name, nominal, retry)
        fields = {"job": name, "scheduled_for": iso(nominal)}
        try:
            claim = self.store.begin_run(
                name, nominal, replica=self.replica, now=self.clock(), lease_seconds=self.settings.lease_seconds, retry=retry,
            )
        except StoreUnavailable as exc:
            if not self.shared:
                if name in self.paused:
                    return None  # paused when the store was last read
                return Claim(ClaimStatus.WON)  # alone on the file: the run goes on, unrecorded until the store is back
            self._missed_while_store_failed = True
            self.metrics.unclaimed.labels(name).inc()
            logger.warning("run not fired: job=%s scheduled_for=%s: the state store cannot be asked (%s), and without a "
                           "claim another replica could fire it too; the catch-up policy applies when it is back",
                           name, iso(nominal), exc, extra={**fields, "outcome": "unclaimed"})
            return None
        if claim.status == ClaimStatus.TAKEN:
            logger.debug("job %s: the slot %s is another replica's", name, iso(nominal))
            return None
        if claim.status == ClaimStatus.PAUSED:
            logger.debug("run not fired: job=%s scheduled_for=%s: the job is paused", name, iso(nominal))
            return None
        if claim.status == ClaimStatus.IN_FLIGHT and retry:
            self._defer_retry(name, nominal)
            return None
        if claim.status == ClaimStatus.IN_FLIGHT:
            holder = claim.holder
            self.events.publish(RunSkipped(name, nominal, recorded=True))
            if holder is not None:
                logger.warning(
                    "run skipped: job=%s scheduled_for=%s: the previous run (scheduled for %s) has been in flight since %s on %s",
                    name, iso(nominal), iso(holder.scheduled_for), iso(holder.started_at), holder.replica,
                    extra={**fields, "outcome": RunOutcome.SKIPPED_IN_FLIGHT},
                )
            return None
        return claim

    def _claim_in_memory(self, name: str, nominal: datetime, retry: bool) -> Claim | None:
        """The claim alone on a SQLite file, without a store transaction on the run's path: paused
        as last read (every PAUSE_POLL_SECONDS), in flight here (the in-flight table) or in a
        `scheduler fire` process (its rows, read as often). The in-flight row follows in a batch."""
        if name in self.paused:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("run not fired: job=%s scheduled_for=%s: the job is paused", name, iso(nominal))
            return None
        row = RowRef()
        holder: StoredInFlight | None = self._in_flight_elsewhere.get(name)
        if holder is None:  # checked and taken at once: two threads cannot both find the job idle
            local = self.inflight.take(InFlightRun(name, nominal, self.clock(), row, retry))
            if local is not None:
                holder = StoredInFlight(name, local.scheduled_for, local.started_at, self.replica, local.retry)
        if holder is not None and retry:
            self._defer_retry(name, nominal)
            return None
        if holder is not None:
            self.events.publish(RunSkipped(name, nominal, recorded=False))
            logger.warning(
                "run skipped: job=%s scheduled_for=%s: the previous run (scheduled for %s) has been in flight since %s on %s",
                name, iso(nominal), iso(holder.scheduled_for), iso(holder.started_at), holder.replica,
                extra={"job": name, "scheduled_for": iso(nominal), "outcome": RunOutcome.SKIPPED_IN_FLIGHT},
            )
            return None
        return Claim(ClaimStatus.WON, run_id=row)

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
            self.events.publish(RunAbandoned(run.job, run.scheduled_for, run.started_at, run.run_id, run.retry))
        self.recorder.close()
        self.notifier.close()
        try:
            self.store.leave(self.replica)
        except StoreUnavailable:
            pass
        if not abandoned:
            self.http.close()
        logger.info("scheduler stopped (%d run(s) abandoned)", len(abandoned))
        return abandoned

    # -- leases, interrupted runs, the store's health ----------------------------------
    def _keep_leases(self) -> None:
        """Every third of a lease: renew this process's leases, close runs whose process died,
        say this replica is alive, and re-plan once the store answers again after failing."""
        period = self.settings.lease_seconds / 3
        while not self._keeper.wait(period):
            now = self.clock()
            try:
                self.store.renew([run_id for run in self.inflight.snapshot() if (run_id := row_id(run.run_id)) is not None],
                                 now, self.settings.lease_seconds)
                self._close_interrupted(all_rows=False, retry_at=now)
                self._compare_config(now)
            except StoreUnavailable:
                continue  # counted and logged by the store's failure streak
            if self._missed_while_store_failed and not self.store.failures.failing:
                self._missed_while_store_failed = False
                logger.info("the state store answers again: re-planning so that slots missed meanwhile follow the catch-up policy")
                self._schedule(list(self.jobs.values()), now)

    def _close_interrupted(self, *, all_rows: bool, retry_at: datetime) -> None:
        """Close in-flight rows of dead processes as interrupted; retry each once, within its catch-up window."""
        try:
            interrupted = self.store.expire_in_flight(self.clock(), all_rows=all_rows)
        except StoreUnavailable:
            return
        for run in interrupted:
            self.metrics.interrupted.labels(run.job).inc()
            spec = self.jobs.get(run.job)
            window = timedelta(seconds=catch_up_seconds(spec)) if spec else timedelta(0)
            retry = spec is not None and not run.was_retry and retry_at - run.scheduled_for <= window
            logger.warning(
                "run interrupted: job=%s scheduled_for=%s was in flight on %s since %s when its process stopped; %s",
                run.job, iso(run.scheduled_for), run.replica, iso(run.started_at) if run.started_at else "?",
                "retrying it once with the same Idempotency-Key" if retry else
                ("not retried: it was the retry" if run.was_retry else "not retried: its slot is beyond the job's catch_up window"),
                extra={"job": run.job, "scheduled_for": iso(run.scheduled_for), "outcome": RunOutcome.INTERRUPTED},
            )
            if retry:
                self.scheduler.add_job(
                    self._run_retry, "date", run_date=retry_at, args=[run.job, run.scheduled_for],
                    id=f"{run.job}#retry@{iso(run.scheduled_for)}", name=f"{run.job} (retry)",
                    replace_existing=True, misfire_grace_time=None,
                )

    def _defer_retry(self, name: str, nominal: datetime) -> None:
        """A retry found a later run of its job in flight: it waits for the job (never two runs at once)
        and tries again shortly, for as long as its slot is within the job's catch-up window."""
        spec = self.jobs.get(name)
        now = self.clock()
        window = timedelta(seconds=catch_up_seconds(spec)) if spec else timedelta(0)
        if now - nominal > window:
            logger.warning("retry dropped: job=%s scheduled_for=%s: a run of the job stayed in flight until its slot "
                           "left the catch_up window", name, iso(nominal),
                           extra={"job": name, "scheduled_for": iso(nominal), "outcome": RunOutcome.INTERRUPTED})
            return
        self.scheduler.add_job(
            # A random wait: a fixed one equal to the job's interval would meet its next run in flight every time.
            self._run_retry, "date", run_date=now + timedelta(seconds=random.uniform(0.1, RETRY_WAIT_SECONDS)),
            args=[name, nominal],
            id=f"{name}#retry@{iso(nominal)}", name=f"{name} (retry)", replace_existing=True, misfire_grace_time=None,
        )

    def _compare_config(self, now: datetime) -> None:
        others = self.store.heartbeat(self.replica, self.config_fingerprint, now, stale_after=3 * self.settings.lease_seconds)
        if others and self.metrics.config_mismatch._value.get() != len(others):
            logger.warning("replicas %s run a jobs.yaml that differs from this one's (%s): they may fire different jobs",
                           ", ".join(others), self.config_fingerprint[:12])
        self._other_configs = others
        self.metrics.config_mismatch.set(len(others))

    # -- pause ----------------------------------------------------------------------
    def _watch_paused(self) -> None:
        """Every PAUSE_POLL_SECONDS: which jobs are paused, for health, metrics and the log (the
        claim itself refuses a paused job, on every replica, whatever this thread last read)."""
        while not self._keeper.wait(PAUSE_POLL_SECONDS):
            self._read_paused()

    def _read_paused(self) -> None:
        try:
            paused = self.store.paused_jobs()
            if self.claims_in_memory:
                assert isinstance(self.store, SqliteStore)
                self._in_flight_elsewhere = {
                    run.job: run for run in self.store.runs_in_flight(self.clock()) if run.replica != self.replica
                }
        except StoreUnavailable:
            return  # counted and logged by the store's failure streak; the last read stands
        for name in sorted(paused.keys() - self.paused.keys()):
            pause = paused[name]
            logger.info("job %s is paused (since %s, by %s): its slots are not fired until `scheduler resume %s`",
                        name, iso(pause.paused_at), pause.paused_by, name, extra={"job": name})
            self.health.set_paused(name, True)
        for name in sorted(self.paused.keys() - paused.keys()):
            logger.info("job %s is resumed: its next slot fires", name, extra={"job": name})
            self.health.set_paused(name, False)
        self.paused = paused
        for name in list(self.jobs):
            self.metrics.paused.labels(name).set(1 if name in paused else 0)

    def store_status(self) -> dict[str, object]:
        failures = self.store.failures
        status: dict[str, object] = {"location": self.store.location, "ok": not failures.failing, "failures": failures.total}
        if failures.failing and failures.failing_since is not None:
            status.update(failing_since=iso(failures.failing_since), error=failures.last_error)
        return status

    # -- reload ---------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read jobs.yaml: apply it if valid, else log every problem and keep running as before."""
        assert self.loader is not None
        try:
            settings, specs = self.loader()
        except ConfigError as exc:
            for problem in exc.problems:
                reload_logger.error("reload rejected: %s", problem)
            reload_logger.error("reload rejected: %d problem(s); still running the previous configuration", len(exc.problems))
            self.metrics.reloads.labels("rejected").inc()
            return False
        self._take_token(settings.token)
        self.apply(diff_jobs(self.jobs, specs))
        return True

    def _take_token(self, token: str | None) -> None:
        """A token file rotated since the last read: requests from now on carry the new token."""
        redact(token)  # before anything could log it
        if self.http.set_token(token):
            self.settings = replace(self.settings, token=token)
            reload_logger.info("the API token changed (re-read from SCHEDULER_API_TOKEN_FILE): new requests carry the new one")

    def _reload_logged(self) -> None:
        """The reload thread: anything unexpected is logged and counted, never a bare traceback on stderr."""
        try:
            self.reload()
        except Exception:
            reload_logger.exception("reload failed: internal error; still running the previous configuration")
            self.metrics.reloads.labels("failed").inc()

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
        self.liveness.started()
        if self.stopping.is_set():
            self.scheduler.shutdown(wait=False)

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        if event.job_id == HEARTBEAT_JOB or event.job_id in self.paused:
            return  # the heartbeat's last beat is still running (/livez says so); a paused job's slot is not fired
        plan = self.plans.get(event.job_id)
        fire_time = event.scheduled_run_times[-1]
        scheduled = _nominal(event.job_id, plan, fire_time) if plan else fire_time
        previous = self.inflight.get(event.job_id)
        try:
            ours = recorded = self.store.claim_skip(event.job_id, scheduled, replica=self.replica, now=self.clock())
        except StoreUnavailable:
            ours, recorded = not self.shared, False
        if not ours:
            return  # another replica has this slot (and will skip or run it)
        self.events.publish(RunSkipped(event.job_id, scheduled, recorded=recorded))
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
        threading.Thread(target=self._reload_logged, name="reload", daemon=True).start()

    # -- start-up reporting -------------------------------------------------------
    def _log_start(self, now: datetime, start: datetime) -> None:
        settings = self.settings
        logger.info(
            "tickless %s: %d job(s) from %s (%d disabled), API_URL=%s, auth=%s, state %s",
            __version__, len(self.jobs), settings.config_path, len(self.disabled),
            settings.api_url, settings.auth, self.store.location,
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
