"""What /livez reports: whether the scheduler loop and its worker pool are alive.

Alive (200) when both hold:

* the APScheduler scheduler is in its running state (not yet started, shut
  down or stopping is 503), and
* the heartbeat ran recently: an APScheduler job fired every
  ``HEARTBEAT_SECONDS`` by the scheduler loop and run through the same worker
  pool as the jobs has completed within the last ``STALE_AFTER_SECONDS``
  (counted from the loop's start until the first beat). A loop that no longer
  wakes up, or a pool whose every worker is stuck, stops the beats.

Job health (a job that keeps failing) is /healthz's business, not this one's:
a liveness probe restarts the process, which cures none of a job's faults.
Staleness is measured on the monotonic clock, so a wall-clock step cannot
make the process look dead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from scheduler.ops.health import Health

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0


class Liveness:
    """Takes the heartbeat's beats and judges from them and the loop's state."""

    def __init__(
        self,
        running: Callable[[], bool],
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        stale_after_seconds: float = STALE_AFTER_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.running = running
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_after_seconds = stale_after_seconds
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._started: float | None = None
        self._last_beat: float | None = None

    def started(self) -> None:
        """The scheduler loop started: the first beat is due within the bound from now."""
        with self._lock:
            self._started = self.monotonic()

    def beat(self, fire_time: datetime | None = None) -> None:
        """The heartbeat job: run by the worker pool, fired by the scheduler loop."""
        with self._lock:
            self._last_beat = self.monotonic()

    def check(self) -> Health:
        now = self.monotonic()
        with self._lock:
            started, last = self._started, self._last_beat
        problems: list[str] = []
        running = self.running()
        if not running:
            problems.append("the scheduler loop is not running")
        since = last if last is not None else started
        age = None if since is None else now - since
        if running and age is not None and age > self.stale_after_seconds:
            what = "the last heartbeat ran" if last is not None else "the loop started and no heartbeat ran since"
            problems.append(
                f"{what} {age:.0f}s ago (allowed {self.stale_after_seconds:.0f}s): the scheduler loop or its worker pool is stuck"
            )
        body: dict[str, object] = {
            "status": "dead" if problems else "alive",
            "problems": problems,
            "scheduler_running": running,
            "last_heartbeat_seconds_ago": None if last is None else round(now - last, 3),
            "heartbeat_seconds": self.heartbeat_seconds,
            "stale_after_seconds": self.stale_after_seconds,
        }
        return Health(healthy=not problems, body=body)
