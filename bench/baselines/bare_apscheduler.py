"""The floor: bare APScheduler 3.11 firing the same jobs with a minimal pooled requests call.

Usage: python -m bench.baselines.bare_apscheduler JOBS INTERVAL URL DURATION OUT.json [SPREAD]
Job i's grid starts at start + i * SPREAD / JOBS (default 0: all due together).
Writes [[nominal, scheduling lateness], ...] to OUT.json.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import requests
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from requests.adapters import HTTPAdapter


def main() -> None:
    count, interval, url, duration, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
    spread = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=count))
    start = datetime.now(UTC) + timedelta(seconds=1)
    samples: list[list[float]] = []
    lock = threading.Lock()

    def first(index: int) -> datetime:
        return start + timedelta(seconds=index * spread / count)

    def fire(index: int) -> None:
        began = time.time()
        steps = round((began - first(index).timestamp()) / interval)
        nominal = first(index) + timedelta(seconds=steps * interval)
        with lock:
            samples.append([nominal.timestamp(), began - nominal.timestamp()])
        stamp = nominal.isoformat().replace("+00:00", "Z")
        session.post(f"{url}/job/{index}", headers={"X-Scheduler-Scheduled-For": stamp}, timeout=30).close()

    scheduler = BackgroundScheduler(
        executors={"default": {"type": "threadpool", "max_workers": count}},
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
