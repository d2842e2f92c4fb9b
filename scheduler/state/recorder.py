"""The history recorder: run events become stored records, off the runs' threads."""

from __future__ import annotations

import queue
import threading

from scheduler.execution.events import RunAbandoned, RunEvent, RunFinished, RunSkipped
from scheduler.execution.run import RunOutcome
from scheduler.state.records import RunRecord
from scheduler.state.store import StateStore


class BackgroundRecorder:
    """Writes run records from one thread, in batches, off the runs' own threads.

    A run hands its record over and goes on; when many runs end together their
    records share one transaction. ``close()`` writes whatever is queued.
    """

    def __init__(self, store: StateStore, batch: int = 500) -> None:
        self.store = store
        self.batch = batch
        self._queue: queue.SimpleQueue[RunRecord | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="state-writer", daemon=True)
        self._thread.start()

    def submit(self, run: RunRecord) -> None:
        self._queue.put(run)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _write(self) -> None:
        while True:
            first = self._queue.get()
            pending = [first]
            while len(pending) < self.batch:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            runs = [run for run in pending if run is not None]
            if runs:
                self.store.record_many(runs)
            if None in pending:
                return

    def on_event(self, event: RunEvent) -> None:
        """A run listener: every run that ended, was skipped or abandoned is recorded."""
        if isinstance(event, RunFinished):
            self.submit(RunRecord.of(event.outcome))
        elif isinstance(event, RunSkipped):
            self.submit(RunRecord(event.job, event.scheduled_for, RunOutcome.SKIPPED_IN_FLIGHT))
        elif isinstance(event, RunAbandoned):
            self.submit(RunRecord(event.job, event.scheduled_for, RunOutcome.ABANDONED_AT_SHUTDOWN, started_at=event.started_at))
