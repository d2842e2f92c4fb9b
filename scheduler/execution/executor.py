"""An APScheduler executor that tells each run when it was due.

APScheduler's own pool executor calls ``job.func()`` without the run time, but
a run needs it: its nominal time goes into ``X-Scheduler-Scheduled-For`` and
the ``Idempotency-Key``. Subclassing ``BaseExecutor`` and implementing
``_do_submit_job`` is APScheduler 3.x's documented way to write an executor.
Like APScheduler's ``run_job``, it honours the job's ``misfire_grace_time``
(a run later than that is reported missed, not run), runs each run time it
is handed (one, when the job coalesces), and catches what a run raises: the
exception is logged with its traceback and reported as an ``EVENT_JOB_ERROR``
for that run time, and the remaining run times still run.
"""

from __future__ import annotations

import concurrent.futures
import logging
import traceback
from datetime import datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job

from tickless.clock import Clock, utc_now

logger = logging.getLogger("scheduler.pool")  # the name logs have always carried


class FireTimeExecutor(BaseExecutor):
    """Runs ``job.func(*args, fire_time=..., **kwargs)`` in a thread pool."""

    def __init__(self, max_workers: int, clock: Clock = utc_now) -> None:
        super().__init__()
        self.max_workers = max_workers
        self.clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="job")

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def finished(future: concurrent.futures.Future[list[JobExecutionEvent]]) -> None:
            exc = future.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        self._pool.submit(_run, job, list(run_times), self.clock).add_done_callback(finished)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _run(job: Job, run_times: list[datetime], clock: Clock) -> list[JobExecutionEvent]:
    events = []
    for fire_time in run_times:
        if job.misfire_grace_time is not None:
            late = clock() - fire_time
            if late > timedelta(seconds=job.misfire_grace_time):
                logger.warning("job %s: run due at %s missed by %s", job.id, fire_time, late)
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, "default", fire_time))
                continue
        try:
            retval = job.func(*job.args, fire_time=fire_time, **job.kwargs)
        except BaseException as exc:
            logger.exception("job %s: the run due at %s raised an exception", job.id, fire_time)
            formatted = "".join(traceback.format_tb(exc.__traceback__))
            events.append(JobExecutionEvent(EVENT_JOB_ERROR, job.id, "default", fire_time, exception=exc, traceback=formatted))
            traceback.clear_frames(exc.__traceback__)
        else:
            events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, "default", fire_time, retval=retval))
    return events
