"""Which runs are in flight right now, and since when."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class InFlightRun:
    job: str
    scheduled_for: datetime
    started_at: datetime


class InFlight:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._runs: dict[str, InFlightRun] = {}
        self._released = False

    def begin(self, run: InFlightRun) -> None:
        with self._changed:
            self._runs[run.job] = run

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
