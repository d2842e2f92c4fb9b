"""The limit lines: the same N requests due together, sent by clients with less Python per request.

Usage: python -m bench.baselines.limits KIND JOBS INTERVAL URL DURATION OUT.json
KIND is ``urllib3`` (threads, one per job, each calling a shared urllib3
PoolManager directly: the floor of any requests-based client, as requests is
built on it) or ``aiohttp`` (one asyncio loop and one aiohttp session: a
reference of what a client that does not hold the GIL per request costs; not a
dependency of the product, installed for the bench only). Job i is due at
start, start + INTERVAL, ...; each request carries its nominal time in
X-Scheduler-Scheduled-For. Writes [[path, nominal, scheduling lateness], ...]
to OUT.json, as bench.baselines.bare_apscheduler does.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any


def _stamp(nominal: float) -> str:
    return datetime.fromtimestamp(nominal, UTC).isoformat().replace("+00:00", "Z")


def _grid(duration: float, interval: int) -> tuple[float, int]:
    """The first nominal time (a second from now, as bare APScheduler's) and how many rounds fit in ``duration``."""
    return time.time() + 1, max(1, math.ceil((duration - 1) / interval))


def run_urllib3(count: int, interval: int, url: str, duration: float) -> list[list[Any]]:
    import urllib3

    pool = urllib3.PoolManager(maxsize=count)
    start, rounds = _grid(duration, interval)
    samples: list[list[Any]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        path = f"/job/{index}"
        for k in range(rounds):
            nominal = start + k * interval
            time.sleep(max(0.0, nominal - time.time()))
            began = time.time()
            with lock:
                samples.append([path, nominal, began - nominal])
            pool.request("POST", url + path, headers={"X-Scheduler-Scheduled-For": _stamp(nominal)}, timeout=30).data  # noqa: B018

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def run_aiohttp(count: int, interval: int, url: str, duration: float) -> list[list[Any]]:
    import asyncio

    import aiohttp

    samples: list[list[Any]] = []

    async def main() -> None:
        start, rounds = _grid(duration, interval)
        connector = aiohttp.TCPConnector(limit=count)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(index: int, nominal: float) -> None:
                samples.append([f"/job/{index}", nominal, time.time() - nominal])
                headers = {"X-Scheduler-Scheduled-For": _stamp(nominal)}
                async with session.post(f"{url}/job/{index}", headers=headers) as response:
                    await response.read()

            for k in range(rounds):
                nominal = start + k * interval
                await asyncio.sleep(max(0.0, nominal - time.time()))
                await asyncio.gather(*(one(index, nominal) for index in range(count)))

    asyncio.run(main())
    return samples


def main() -> None:
    kind, count, interval, url, duration, out = sys.argv[1:7]
    runner = {"urllib3": run_urllib3, "aiohttp": run_aiohttp}[kind]
    samples = runner(int(count), int(interval), url, float(duration))
    with open(out, "w") as handle:
        json.dump(samples, handle)


if __name__ == "__main__":
    main()
