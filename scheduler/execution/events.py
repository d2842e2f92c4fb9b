"""Run events: what happened to a run, told to whoever listens.

APScheduler's listener pattern, for runs: the service publishes a
``RunStarted`` before a run, a ``RunFinished`` after it, a ``RunSkipped`` when
its slot came while the previous run was still in flight, and a
``RunAbandoned`` for a run still going when shutdown stopped waiting. Metrics,
health, the history recorder, the in-flight table and the notifier each subscribe; the
service names none of them when a run happens, and none of them knows the
service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from scheduler.execution.run import Outcome

logger = logging.getLogger("scheduler.events")


class RowRef:
    """An in-flight row the background writer adds after the run has started (the SQLite store,
    alone on its file): its id once written, so that the run's end completes that row."""

    __slots__ = ("id",)

    def __init__(self) -> None:
        self.id: int | None = None


RowId: TypeAlias = int | RowRef | None  # an in-flight row: written already (int), to be written (RowRef), or none


def row_id(row: RowId) -> int | None:
    return row.id if isinstance(row, RowRef) else row


@dataclass(frozen=True)
class RunStarted:
    job: str
    scheduled_for: datetime
    started_at: datetime
    run_id: RowId = None  # the store's in-flight row, when it has one (a RowRef: the recorder writes it)
    retry: bool = False  # the one retry of an interrupted run
    previous: tuple[str, datetime] | None = None  # the store's last ok or failed run of the job: (outcome, slot)
    lease_until: datetime | None = None  # with a RowRef: the in-flight row's first lease


@dataclass(frozen=True)
class RunFinished:
    outcome: Outcome
    run_id: RowId = None
    retry: bool = False


@dataclass(frozen=True)
class RunSkipped:
    job: str
    scheduled_for: datetime
    recorded: bool = False  # the store wrote the skip already, with its claim


@dataclass(frozen=True)
class RunAbandoned:
    job: str
    scheduled_for: datetime
    started_at: datetime
    run_id: RowId = None
    retry: bool = False


RunEvent = RunStarted | RunFinished | RunSkipped | RunAbandoned
RunListener = Callable[[RunEvent], None]


class RunEvents:
    """Delivers each event to every listener, in the order they subscribed.

    A listener that raises is logged with its traceback and the others still
    hear the event: a broken metric must not lose a history record, and
    never the run itself.
    """

    def __init__(self) -> None:
        self._listeners: list[RunListener] = []

    def subscribe(self, listener: RunListener) -> None:
        self._listeners.append(listener)

    def publish(self, event: RunEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("run event listener %r failed on %r", listener, event)
