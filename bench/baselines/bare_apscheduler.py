"""The floor: bare APScheduler 3.11 firing the same jobs with a minimal pooled requests call.

Usage: python -m bench.baselines.bare_apscheduler JOBS INTERVAL URL DURATION OUT.json [SPREAD]
Job i's grid starts at start + i * SPREAD / JOBS (default 0: all due together).
Writes [[path, nominal, scheduling lateness], ...] to OUT.json; each request
carries its nominal time in X-Scheduler-Scheduled-For, as this project's do.

The nominal time is the run time APScheduler itself fired the run for. It used
to be guessed in the job function by rounding (now - first) / interval to the
nearest grid point; a run more than half an interval late (bare APScheduler at
750 fires/s: about 780 ms) was then matched to the *next* nominal time and
reported as early (p50 -222 ms). APScheduler's run_job does not hand the run
time to the job function, so the executor below records it, per worker
thread, just before APScheduler's own run_job calls the function.
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from apscheduler.executors.pool import BasePoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from requests.adapters import HTTPAdapter

_current = threading.local()  # .run_time: the nominal time of the run this worker thread is executing


def _with_run_time(run_job: Callable[..., Any], job: Any, jobstore: str, run_times: list[datetime], logger: str) -> Any:
    if len(run_times) != 1:  # coalesce=True hands over exactly the latest due time
        raise RuntimeError(f"expected one run time per submission (coalesce=True), got {len(run_times)}")
    _current.run_time = run_times[0]
    return run_job(job, jobstore, run_times, logger)


class _Pool(concurrent.futures.ThreadPoolExecutor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        return super().submit(_with_run_time, fn, *args, **kwargs)


class NominalThreadPoolExecutor(BasePoolExecutor):  # type: ignore[misc]  # APScheduler 3.x is untyped
    """APScheduler's thread pool executor, with each run's nominal time readable by the job function."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(_Pool(max_workers))


def main() -> None:
    count, interval, url, duration, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
    spread = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=count))
    start = datetime.now(UTC) + timedelta(seconds=1)
    samples: list[list[Any]] = []
    lock = threading.Lock()

    def first(index: int) -> datetime:
        return start + timedelta(seconds=index * spread / count)

    def fire(index: int) -> None:
        began = time.time()
        nominal: datetime = _current.run_time
        path = f"/job/{index}"
        with lock:
            samples.append([path, nominal.timestamp(), began - nominal.timestamp()])
        stamp = nominal.astimezone(UTC).isoformat().replace("+00:00", "Z")
        session.post(f"{url}{path}", headers={"X-Scheduler-Scheduled-For": stamp}, timeout=30).close()

    scheduler = BackgroundScheduler(
        executors={"default": NominalThreadPoolExecutor(max_workers=count)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC,
    )
    for index in range(count):
        scheduler.add_job(
            fire, IntervalTrigger(seconds=interval, start_date=first(index)), args=[index], next_run_time=first(index)
        )
    scheduler.start()
    time.sleep(duration)
    scheduler.shutdown(wait=True)
    with open(out, "w") as handle:
        json.dump(samples, handle)


if __name__ == "__main__":
    main()
