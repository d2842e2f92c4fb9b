"""The state store: what every backend keeps and promises, and how one is opened.

Two backends keep the same things (run history with in-flight rows, each
job's grid and last run, the jitter seed, a claim per slot) with the same
promises:

* ``SqliteStore`` (``SCHEDULER_STATE_PATH``, the embedded default): one
  service per file, held by an OS lock.
* ``PostgresStore`` (``SCHEDULER_STATE_URL``): any number of replicas. A slot
  ``(job, nominal time)`` is claimed in one atomic statement; only the
  winner fires it. A run in flight holds a lease its process renews; when a
  process dies its leases expire and its runs are closed as interrupted.

A failing store is logged once per failure streak, not once per write.

Pausing a job (``scheduler pause``) is a row in the store: the claim of a
slot refuses a paused job in the same transaction, so every process that
could fire it (the service, each replica, ``scheduler fire``) honours it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from scheduler.errors import StoreUnavailable
from scheduler.state.records import Claim, InFlightRun, Interrupted, JobState, PausedJob, RowId, RunRecord
from tickless.clock import Clock, iso, utc_now

logger = logging.getLogger("scheduler.state")  # the name logs have always carried


def claims_kept(history_per_job: int) -> int:
    """Claims kept per job: enough that no slot a catch-up could fire has lost its claim."""
    return history_per_job + 10


class FailureStreak:
    """Counts failures of a store; logs the first of a streak and its end, not every one."""

    def __init__(self, location: str, clock: Clock = utc_now) -> None:
        self.location = location
        self.clock = clock
        self.total = 0
        self.failing_since: datetime | None = None
        self.last_error: str | None = None
        self.listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def failed(self, what: str, error: BaseException | str) -> None:
        with self._lock:
            self.total += 1
            self.last_error = str(error)
            first = self.failing_since is None
            if first:
                self.failing_since = self.clock()
        if first:
            logger.error("state store %s failed (%s): %s; runs go on, later failures of this streak are only counted",
                         self.location, what, error)
        for listener in self.listeners:
            listener()

    def succeeded(self) -> None:
        if self.failing_since is None:
            return
        with self._lock:
            since, self.failing_since = self.failing_since, None
            count = self.total
        if since is not None:
            logger.warning("state store %s works again (failing since %s; %d failure(s) in all)", self.location, iso(since), count)

    @property
    def failing(self) -> bool:
        return self.failing_since is not None


class StateStore(Protocol):
    """What the service, ``fire``, ``list`` and ``history`` need of a store."""

    location: str  # the file, or the URL without its password: safe to show
    failures: FailureStreak

    def close(self) -> None: ...
    def jitter_seed(self) -> int | None: ...
    def claim_jitter_seed(self, candidate: int) -> int: ...
    def job_states(self) -> dict[str, JobState]: ...
    def claim_grid(self, name: str, fingerprint: str, anchor: datetime) -> datetime: ...
    def begin_run(
        self, job: str, scheduled_for: datetime, *, replica: str, now: datetime, lease_seconds: float,
        retry: bool = False, force: bool = False,
    ) -> Claim: ...
    def claim_skip(self, job: str, scheduled_for: datetime, *, replica: str, now: datetime) -> bool: ...
    def in_flight(self, job: str, now: datetime) -> InFlightRun | None: ...
    def renew(self, run_ids: Sequence[int], now: datetime, lease_seconds: float) -> None: ...
    def finish_runs(self, finished: Sequence[tuple[RowId, RunRecord]]) -> None: ...
    def record_many(self, runs: Sequence[RunRecord]) -> None: ...
    def expire_in_flight(self, now: datetime, *, all_rows: bool) -> list[Interrupted]: ...
    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]: ...
    def heartbeat(self, replica: str, config_fingerprint: str, now: datetime, stale_after: float) -> list[str]: ...
    def leave(self, replica: str) -> None: ...
    def pause(self, job: str, *, by: str, now: datetime) -> PausedJob: ...
    def resume(self, job: str) -> PausedJob | None: ...
    def paused_jobs(self) -> dict[str, PausedJob]: ...


class LeaseRenewer:
    """Renews one in-flight run's lease from a thread while it runs (``scheduler fire``)."""

    def __init__(self, store: StateStore, run_id: int | None, lease_seconds: float, clock: Clock = utc_now) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if run_id is None:
            return

        def renew() -> None:
            while not self._stop.wait(lease_seconds / 3):
                try:
                    store.renew([run_id], clock(), lease_seconds)
                except StoreUnavailable:
                    pass  # counted and logged by the store; the run goes on

        self._thread = threading.Thread(target=renew, name="lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
