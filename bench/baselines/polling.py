"""A re-implementation of the reference's polling loop, to show what a 30 s tick costs.

Every TICK seconds it checks each job; a job is due when ``now - last_run >=
interval``; due jobs run in a thread pool; ``last_run`` becomes the tick's time.
The job's first due time is ``start + first_due`` (the reference faked a recent
``last_run`` the same way for its first-fire offset).

Usage: python -m bench.baselines.polling URL INTERVAL FIRST_DUE TICK DURATION OUT.json
Writes [[path, nominal, scheduling lateness], ...]: nominal times on the configured
grid ``start + first_due + k * interval``; each request carries its nominal time.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests


def main() -> None:
    url, interval, first_due, tick, duration, out = (
        sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    )
    session = requests.Session()
    pool = ThreadPoolExecutor(max_workers=4)
    start = time.time()
    last_run = start + first_due - interval
    grid = start + first_due
    samples: list[list[object]] = []

    def call(nominal: float) -> None:
        stamp = datetime.fromtimestamp(nominal, UTC).isoformat().replace("+00:00", "Z")
        session.post(f"{url}/job/0", headers={"X-Scheduler-Scheduled-For": stamp}, timeout=30).close()

    while time.time() - start < duration:
        now = time.time()
        if now - last_run >= interval:
            steps = int((now - grid) // interval)
            nominal = grid + steps * interval
            samples.append(["/job/0", nominal, now - nominal])
            pool.submit(call, nominal)
            last_run = now
        time.sleep(tick)
    pool.shutdown(wait=True)
    with open(out, "w") as handle:
        json.dump(samples, handle)


if __name__ == "__main__":
    main()
