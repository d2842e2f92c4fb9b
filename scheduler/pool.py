"""An APScheduler executor that tells each run when it was due.

APScheduler's own pool executor calls ``job.func()`` without the run time, but
a run needs it: its nominal time goes into ``X-Scheduler-Scheduled-For`` and
the ``Idempotency-Key``. Subclassing ``BaseExecutor`` and implementing
``_do_submit_job`` is APScheduler 3.x's documented way to write an executor.
Jobs are coalesced, so a submission carries one run time that matters: the
latest.
"""

from __future__ import annotations

import concurrent.futures
from datetime import datetime
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job


class FireTimeExecutor(BaseExecutor):
    """Runs ``job.func(*args, fire_time=..., **kwargs)`` in a thread pool."""

    def __init__(self, max_workers: int) -> None:
        super().__init__()
        self.max_workers = max_workers
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="job")

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        fire_time = run_times[-1]

        def finished(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                event = JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, "default", fire_time, retval=future.result())
                self._run_job_success(job.id, [event])

        future = self._pool.submit(job.func, *job.args, fire_time=fire_time, **job.kwargs)
        future.add_done_callback(finished)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
