"""Failure notifications and pings: run events become POSTs to the URLs jobs.yaml names.

* ``notify: {url: URL}``: a JSON document (``notification()``) when a job
  starts failing (a failed run whose previous run was not a failure) and when
  it recovers (an ok run after a failure): once per failure streak, never once
  per failed run. Where a streak stands is the job's last ok or failed run:
  the store's, handed over with the run's claim (so it survives a restart and
  is the same on every replica), or the last one this process saw end,
  whichever is newer.
* ``ping: {url: URL}``, healthchecks.io-style: ``URL/start`` when a run
  starts, ``URL`` when it succeeds, ``URL/fail`` (with the error as its body)
  when it fails.

Nothing is sent from a run's thread or the scheduler's: requests go to a few
lanes (one thread each), a job always to the same lane, so its start ping
never overtakes its success ping. A lane with too many requests waiting (a
receiver down for long) drops new ones. Every request not delivered is
counted (``tickless_notification_failures_total``) and logged once per
receiver until one gets through again, naming the receiver by scheme and host
only. The API token never goes to a receiver, and is blanked out of the
error text a document carries.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scheduler.config.spec import JobSpec
from scheduler.errors import HookFailed
from scheduler.execution.events import RunEvent, RunFinished, RunStarted
from scheduler.execution.http import HookClient, hook_origin
from scheduler.execution.run import Outcome, RunOutcome
from scheduler.ops.metrics import Metrics
from scheduler.state.records import JobState
from tickless.clock import iso

logger = logging.getLogger("scheduler.notify")

Last = tuple[str, datetime]  # a run that ended ok or failed: (outcome, its slot)
_UNSEEN = object()


def ping_url(url: str, suffix: str) -> str:
    """``URL/start`` or ``URL/fail``: the suffix goes at the end of the path, before any query."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + suffix, parts.query, parts.fragment))


def _newest(first: Last | None, second: Last | None) -> Last | None:
    if first is None or second is None:
        return first or second
    return first if first[1] >= second[1] else second


def _redact(text: str | None, secrets: Sequence[str]) -> str | None:
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def notification(event: str, outcome: Outcome, *, replica: str | None, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON document a ``notify`` URL receives (``event`` is "failure" or "recovery")."""
    error = _redact(outcome.error, secrets)
    text = (f"tickless: job {outcome.job} is failing: {error}" if event == "failure"
            else f"tickless: job {outcome.job} recovered: {outcome.outcome} after failing")
    return {
        "event": event,
        "job": outcome.job,
        "scheduled_for": iso(outcome.scheduled_for),
        "started_at": iso(outcome.started_at),
        "outcome": outcome.outcome,
        "status": outcome.status,
        "error": error,
        "error_type": outcome.error_type,
        "attempts": outcome.attempts,
        "duration_seconds": round(outcome.duration_seconds, 6),
        "replica": replica,
        "text": text,  # what chat webhooks (Slack, Mattermost) show
    }


class Notifier:
    """A run listener that sends notifications and pings from lanes of its own."""

    def __init__(
        self,
        jobs: Callable[[str], JobSpec | None],
        client: HookClient,
        metrics: Metrics,
        *,
        states: Mapping[str, JobState] | None = None,
        secrets: Sequence[str] = (),
        replica: str | None = None,
        lanes: int = 4,
        max_waiting: int = 100,
    ) -> None:
        self.jobs = jobs
        self.client = client
        self.metrics = metrics
        self.secrets = [secret for secret in secrets if secret]
        self.replica = replica
        self.max_waiting = max_waiting
        self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"notify-{index}") for index in range(lanes)]
        self._waiting = [0] * lanes
        self._idle = threading.Condition()
        self._previous: dict[str, object] = {}  # per job in flight: its streak's state when it started
        self._last: dict[str, Last] = {
            name: (state.last_outcome, state.last_nominal) for name, state in (states or {}).items()
            if state.last_outcome in (RunOutcome.OK, RunOutcome.FAILED) and state.last_nominal is not None
        }
        self._failing: set[str] = set()  # receivers whose last request was not delivered

    # -- run events -------------------------------------------------------------------
    def on_event(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._previous[event.job] = _newest(event.previous, self._last.get(event.job))
            spec = self.jobs(event.job)
            if spec is not None and spec.ping_url:
                self._send(event.job, "ping", ping_url(spec.ping_url, "/start"), "")
        elif isinstance(event, RunFinished):
            self.finished(event.outcome)

    def finished(self, outcome: Outcome) -> None:
        job = outcome.job
        seen = self._previous.pop(job, _UNSEEN)
        previous = self._last.get(job) if seen is _UNSEEN else seen
        self._last[job] = (outcome.outcome, outcome.scheduled_for)
        spec = self.jobs(job)
        if spec is None:
            return
        if spec.ping_url:
            if outcome.ok:
                self._send(job, "ping", spec.ping_url, "")
            else:
                self._send(job, "ping", ping_url(spec.ping_url, "/fail"), _redact(outcome.error, self.secrets) or "failed")
        if spec.notify_url:
            was_failing = isinstance(previous, tuple) and previous[0] == RunOutcome.FAILED
            if not outcome.ok and not was_failing:
                event = "failure"
            elif outcome.ok and was_failing:
                event = "recovery"
            else:
                return
            logger.info("notifying: job=%s event=%s to %s", job, event, hook_origin(spec.notify_url),
                        extra={"job": job, "scheduled_for": iso(outcome.scheduled_for), "event": event})
            self._send(job, "notify", spec.notify_url, notification(event, outcome, replica=self.replica, secrets=self.secrets))

    # -- delivery ---------------------------------------------------------------------
    def _send(self, job: str, kind: str, url: str, body: object) -> None:
        lane = zlib.crc32(job.encode()) % len(self._lanes)
        with self._idle:
            full = self._waiting[lane] >= self.max_waiting
            if not full:
                self._waiting[lane] += 1
        if full:
            self._failed(job, kind, url, f"dropped: {self.max_waiting} requests already wait for delivery")
            return
        try:
            self._lanes[lane].submit(self._deliver, lane, job, kind, url, body)
        except RuntimeError:  # closed: the service is stopping
            self._done(lane)

    def _deliver(self, lane: int, job: str, kind: str, url: str, body: object) -> None:
        try:
            self.client.post(url, body)
        except HookFailed as exc:
            self._failed(job, kind, url, str(exc))
        except Exception as exc:  # a lane must survive anything; the request is counted as not delivered
            logger.exception("notification to %s failed unexpectedly", hook_origin(url))
            self._failed(job, kind, url, type(exc).__name__)
        else:
            self.metrics.notifications.labels(job, kind).inc()
            receiver = hook_origin(url)
            with self._idle:
                recovered = receiver in self._failing
                self._failing.discard(receiver)
            if recovered:
                logger.warning("notifications to %s are delivered again", receiver)
        finally:
            self._done(lane)

    def _failed(self, job: str, kind: str, url: str, why: str) -> None:
        self.metrics.notification_failures.labels(job, kind).inc()
        receiver = hook_origin(url)
        with self._idle:
            first = receiver not in self._failing
            self._failing.add(receiver)
        if first:
            logger.error(
                "%s not delivered: job=%s to %s: %s; further failures to %s are only counted "
                "(tickless_notification_failures_total) until one is delivered",
                "notification" if kind == "notify" else "ping", job, receiver, why, receiver, extra={"job": job},
            )

    def _done(self, lane: int) -> None:
        with self._idle:
            self._waiting[lane] -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing waits for delivery; False if time ran out."""
        with self._idle:
            return self._idle.wait_for(lambda: not any(self._waiting), timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what waits, for up to ``timeout`` seconds; then drop the rest."""
        if not self.wait_idle(timeout):
            logger.warning("%d notification(s) or ping(s) not delivered before shutdown", sum(self._waiting))
        for lane in self._lanes:
            lane.shutdown(wait=False, cancel_futures=True)
        self.client.close()
