"""The history recorder: run events become stored records, off the runs' threads.

A run hands its record over and goes on; when many runs end together their
records share one transaction. When the store fails, the batch is kept and
tried again with backoff (the failure streak is logged once by the store),
so a short outage loses no record; ``close()`` makes a last attempt and says
how many records it could not write.
"""

from __future__ import annotations

import logging
import queue
import threading

from scheduler.errors import StoreUnavailable
from scheduler.execution.events import RowId, RowRef, RunAbandoned, RunEvent, RunFinished, RunSkipped, RunStarted
from scheduler.execution.run import RunOutcome
from scheduler.state.records import RunRecord
from scheduler.state.store import StateStore

logger = logging.getLogger("scheduler.state")

Finished = tuple[RowId, RunRecord]  # the in-flight row to complete or add (None: a new row), and what to write
_MAX_BACKOFF = 30.0
_MAX_KEPT = 100_000  # beyond this, the oldest kept records are dropped (and counted) rather than memory growing


class BackgroundRecorder:
    """Writes run records from one thread, in batches."""

    def __init__(self, store: StateStore, batch: int = 500, replica: str | None = None) -> None:
        self.store = store
        self.batch = batch
        self.replica = replica
        self.dropped = 0
        self._queue: queue.SimpleQueue[Finished | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._write, name="state-writer", daemon=True)
        self._thread.start()

    def submit(self, run_id: RowId, run: RunRecord) -> None:
        self._queue.put((run_id, run))

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _write(self) -> None:
        kept: list[Finished] = []
        backoff = 0.5
        done = False
        while not done:
            item = self._queue.get()
            pending = [item]
            while len(pending) < self.batch:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = None in pending
            kept += [entry for entry in pending if entry is not None]
            if len(kept) > _MAX_KEPT:
                self.dropped += len(kept) - _MAX_KEPT
                kept = kept[-_MAX_KEPT:]
            while kept:
                try:
                    self.store.finish_runs(kept)
                except StoreUnavailable:
                    if done or self._closing.is_set():
                        logger.error("%d run record(s) could not be written before shutdown", len(kept))
                        return
                    # Wait for more records or the backoff, whichever first; then try all of them again.
                    self._closing.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    break
                kept = []
                backoff = 0.5

    def on_event(self, event: RunEvent) -> None:
        """A run listener: every run that ended, was skipped or abandoned is recorded, and
        the in-flight row of a run whose claim was decided without a store transaction."""
        if isinstance(event, RunStarted) and isinstance(event.run_id, RowRef):
            self.submit(event.run_id, RunRecord(
                event.job, event.scheduled_for, RunOutcome.RUNNING, started_at=event.started_at, retry=event.retry,
                replica=self.replica, lease_until=event.lease_until,
            ))
        elif isinstance(event, RunFinished):
            self.submit(event.run_id, RunRecord.of(event.outcome, retry=event.retry, replica=self.replica))
        elif isinstance(event, RunSkipped) and not event.recorded:
            self.submit(None, RunRecord(event.job, event.scheduled_for, RunOutcome.SKIPPED_IN_FLIGHT, replica=self.replica))
        elif isinstance(event, RunAbandoned):
            self.submit(event.run_id, RunRecord(event.job, event.scheduled_for, RunOutcome.ABANDONED_AT_SHUTDOWN,
                                                started_at=event.started_at, retry=event.retry, replica=self.replica))
