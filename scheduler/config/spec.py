"""What one job is, after jobs.yaml has been read and validated."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from typing import Any

from tickless.config.durations import format_duration


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: int = 1
    max_backoff_seconds: int = 30


class ScheduleKind(StrEnum):
    """The schedule key a job was written with."""

    EVERY = "every"  # elapsed time: an interval
    DAILY = "daily"  # fixed wall-clock times in a time zone
    CRON = "cron"  # a 5-field crontab in a time zone


@dataclass(frozen=True)
class Schedule:
    kind: ScheduleKind
    interval_seconds: int | None = None
    times: tuple[time, ...] = ()
    cron: str | None = None
    timezone: str = "UTC"

    @property
    def text(self) -> str:
        if self.kind == ScheduleKind.EVERY:
            return f"every {format_duration(self.interval_seconds or 0)}"
        if self.kind == ScheduleKind.DAILY:
            return "daily " + ",".join(t.strftime("%H:%M") for t in self.times)
        return f"cron {self.cron}"


@dataclass(frozen=True)
class HttpTarget:
    method: str
    url: str
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    kind = "http"


@dataclass(frozen=True)
class CallTarget:
    reference: str  # "module:function"
    function: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    kind = "call"


@dataclass(frozen=True)
class JobSpec:
    name: str
    line: int = field(compare=False)  # where it is written is not what it is: moving a job changes nothing
    schedule: Schedule
    target: HttpTarget | CallTarget
    timeout_seconds: int = 60
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    jitter_seconds: int = 0
    initial_offset_max_seconds: int = 0
    enabled: bool = True
    catch_up_seconds: int | None = None  # None: one interval for every, 6 h for daily/cron
    notify_url: str | None = None  # notify: JSON POST when a failure streak starts and when it ends
    ping_url: str | None = None  # ping: healthchecks.io-style URL/start, URL, URL/fail


def jobs_fingerprint(jobs: list[JobSpec]) -> str:
    """A digest of what the jobs do (schedules, targets, limits), not of how the file is written.

    Replicas compare it: two whose fingerprints differ would fire different jobs.
    """
    parts = []
    for spec in sorted(jobs, key=lambda job: job.name):
        target = spec.target
        what = f"call {target.reference} {sorted(target.kwargs.items())!r}" if isinstance(target, CallTarget) else \
            f"http {target.method} {target.url} {target.json_body!r} {sorted(target.headers.items())!r}"
        parts.append(
            f"{spec.name}|{spec.schedule.text}|{spec.schedule.timezone}|{what}|{spec.timeout_seconds}|{spec.retry}|"
            f"{spec.jitter_seconds}|{spec.initial_offset_max_seconds}|{spec.enabled}|{spec.catch_up_seconds}"
        )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
