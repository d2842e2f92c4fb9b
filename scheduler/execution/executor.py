"""An APScheduler executor that tells each run when it was due.

APScheduler's own pool executor calls ``job.func()`` without the run time, but
a run needs it: its nominal time goes into ``X-Scheduler-Scheduled-For`` and
the ``Idempotency-Key``. Subclassing ``BaseExecutor`` and implementing
``_do_submit_job`` is APScheduler 3.x's documented way to write an executor.
Like APScheduler's ``run_job``, it honours the job's ``misfire_grace_time``
(a run later than that is reported missed, not run) and runs each run time it
is handed (one, when the job coalesces).
"""

from __future__ import annotations

import concurrent.futures
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job

logger = logging.getLogger(__name__)


class FireTimeExecutor(BaseExecutor):
    """Runs ``job.func(*args, fire_time=..., **kwargs)`` in a thread pool."""

    def __init__(self, max_workers: int) -> None:
        super().__init__()
        self.max_workers = max_workers
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="job")

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def finished(future: concurrent.futures.Future[list[JobExecutionEvent]]) -> None:
            exc = future.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        self._pool.submit(_run, job, list(run_times)).add_done_callback(finished)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _run(job: Job, run_times: list[datetime]) -> list[JobExecutionEvent]:
    events = []
    for fire_time in run_times:
        if job.misfire_grace_time is not None:
            late = datetime.now(UTC) - fire_time
            if late > timedelta(seconds=job.misfire_grace_time):
                logger.warning("job %s: run due at %s missed by %s", job.id, fire_time, late)
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, "default", fire_time))
                continue
        retval = job.func(*job.args, fire_time=fire_time, **job.kwargs)
        events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, "default", fire_time, retval=retval))
    return events
