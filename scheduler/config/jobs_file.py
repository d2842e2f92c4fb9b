"""jobs.yaml -> list[JobSpec]: every rule of the file, every problem at once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from scheduler.config import job_fields as fields
from scheduler.config.catalog_jobs import calls_catalog, catalog_problems
from scheduler.config.job_fields import Context
from scheduler.config.spec import CallTarget, HttpTarget, JobSpec, RetryPolicy, Schedule, ScheduleKind
from scheduler.errors import ConfigError
from scheduler.timing.triggers import shortest_gap_seconds
from tickless.config.problems import Problems
from tickless.config.yamlfile import LineMap, read_document

TOP_KEYS = ("defaults", "jobs")
MAX_NAME_LENGTH = 100
JOB_NAME = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_NAME_LENGTH}}}")
DEFAULT_KEYS = ("timeout", "retry", "jitter", "timezone", "notify", "ping")
SCHEDULE_KEYS = tuple(kind.value for kind in ScheduleKind)
TARGET_KEYS = ("http", "call")
JOB_KEYS = SCHEDULE_KEYS + TARGET_KEYS + (
    "kwargs", "timeout", "retry", "jitter", "initial_offset_max", "timezone", "enabled", "catch_up", "notify", "ping",
)


@dataclass(frozen=True)
class Defaults:
    timeout_seconds: int = 60
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    jitter_seconds: int = 0
    timezone: str = "UTC"
    notify_url: str | None = None


def load_jobs(path: Path, env: Mapping[str, str], api_url: str, *, now: datetime) -> list[JobSpec]:
    """Read and validate ``path``; raise ConfigError with every problem found.

    ``now`` is the moment the jobs are checked for: a wall-clock schedule's
    shortest gap (which bounds its jitter) depends on that year's DST dates.
    """
    problems = Problems(str(path))
    ctx = Context(env, problems)
    document = read_document(path, problems, "jobs", "a top-level 'jobs:' mapping of job name -> spec")
    if document is None:
        raise ConfigError(problems)
    ctx.check_keys(document, TOP_KEYS)
    defaults = _read_defaults(ctx, document.get("defaults"), document.line_of("defaults"))
    jobs = document["jobs"]
    if not isinstance(jobs, LineMap) or not jobs:
        ctx.add(document.line_of("jobs"), "jobs", "must be a non-empty mapping of job name -> spec")
        raise ConfigError(problems)
    specs = []
    for name, raw in jobs.items():
        named = _check_name(ctx.for_job(name), name, jobs.line_of(name))
        spec = _read_job(ctx.for_job(name), name, raw, jobs.line_of(name), defaults, api_url, now)
        if spec is not None and named:
            specs.append(spec)
    if calling_catalog := [spec for spec in specs if calls_catalog(spec)]:
        problems.extend(catalog_problems(calling_catalog, env, problems.file))
    if problems:
        raise ConfigError(problems.in_order())
    return specs


def _check_name(ctx: Context, name: str, line: int) -> bool:
    """A name goes into headers, log lines and the Idempotency-Key: a newline or a space would break them."""
    if JOB_NAME.fullmatch(name):
        return True
    ctx.add(
        line, None,
        f"the name must be 1 to {MAX_NAME_LENGTH} letters, digits or '.', '_', ':', '-' "
        f"(no spaces or line breaks); got {name[:MAX_NAME_LENGTH + 20]!r}",
    )
    return False


def _read_defaults(ctx: Context, raw: object, line: int) -> Defaults:
    defaults = Defaults()
    if raw is None:
        return defaults
    if not isinstance(raw, LineMap):
        ctx.add(line, "defaults", f"must be a mapping, got {raw!r}")
        return defaults
    ctx.check_keys(raw, DEFAULT_KEYS, "defaults.")
    if "timeout" in raw:
        timeout = fields.read_duration(ctx, raw, "timeout", positive=True, field="defaults.timeout")
        defaults = replace(defaults, timeout_seconds=timeout or defaults.timeout_seconds)
    if "retry" in raw:
        retry = fields.read_retry(ctx, raw, defaults.retry, prefix="defaults.")
        defaults = replace(defaults, retry=retry or defaults.retry)
    if "jitter" in raw:
        jitter = fields.read_duration(ctx, raw, "jitter", positive=False, field="defaults.jitter")
        defaults = replace(defaults, jitter_seconds=jitter or 0)
    if "timezone" in raw:
        defaults = replace(defaults, timezone=fields.read_timezone(ctx, raw, field="defaults.timezone") or defaults.timezone)
    if "notify" in raw:
        notify = fields.read_hook(ctx, raw, "notify", field="defaults.notify")
        defaults = replace(defaults, notify_url=notify or None)
    if "ping" in raw:
        ctx.add(raw.line_of("ping"), "defaults.ping",
                "is set per job: a ping URL is one check, and jobs sharing it would hide each other's failures")
    return defaults


def _read_job(
    ctx: Context, name: str, raw: object, line: int, defaults: Defaults, api_url: str, now: datetime
) -> JobSpec | None:
    if not isinstance(raw, LineMap):
        ctx.add(line, None, f"must be a mapping with a schedule (every, daily or cron) and a target (http or call), got {raw!r}")
        return None
    before = len(ctx.problems)
    ctx.check_keys(raw, JOB_KEYS)
    schedule = _read_schedule(ctx, raw, line, defaults, now)
    target = _read_target(ctx, raw, line, api_url)

    timeout = defaults.timeout_seconds
    if "timeout" in raw:
        timeout = fields.read_duration(ctx, raw, "timeout", positive=True) or timeout
    retry = fields.read_retry(ctx, raw, defaults.retry) if "retry" in raw else defaults.retry
    jitter = defaults.jitter_seconds
    if "jitter" in raw:
        jitter = fields.read_duration(ctx, raw, "jitter", positive=False) or 0
    offset_max = 0
    if "initial_offset_max" in raw:
        if "every" not in raw:
            ctx.add(raw.line_of("initial_offset_max"), "initial_offset_max", "applies to 'every' schedules only")
        offset_max = fields.read_duration(ctx, raw, "initial_offset_max", positive=False) or 0
    enabled = fields.read_bool(ctx, raw, "enabled", default=True)
    catch_up = fields.read_duration(ctx, raw, "catch_up", positive=False) if "catch_up" in raw else None
    notify = fields.read_hook(ctx, raw, "notify") if "notify" in raw else defaults.notify_url
    ping = fields.read_hook(ctx, raw, "ping") if "ping" in raw else None

    if schedule is not None and jitter:
        gap = shortest_gap_seconds(schedule, now)
        if jitter >= gap:
            where = raw.line_of("jitter") if "jitter" in raw else line
            source = "" if "jitter" in raw else " (inherited from defaults.jitter)"
            ctx.add(where, "jitter", f"must be smaller than the shortest gap between runs ({gap:g}s), got {jitter}s{source}")
    if len(ctx.problems) > before or schedule is None or target is None or retry is None:
        return None
    return JobSpec(
        name=name, line=line, schedule=schedule, target=target, timeout_seconds=timeout,
        retry=retry, jitter_seconds=jitter, initial_offset_max_seconds=offset_max, enabled=enabled,
        catch_up_seconds=catch_up, notify_url=notify or None, ping_url=ping or None,
    )


def _exactly_one(ctx: Context, raw: LineMap, line: int, keys: tuple[str, ...], what: str) -> str | None:
    present = [key for key in keys if key in raw]
    if len(present) == 1:
        return present[0]
    if not present:
        ctx.add(line, None, f"needs a {what}: one of {', '.join(keys)}")
    else:
        ctx.add(raw.line_of(present[1]), present[1], f"conflicts with {present[0]}: a job has exactly one {what}")
    return None


def _read_schedule(ctx: Context, raw: LineMap, line: int, defaults: Defaults, now: datetime) -> Schedule | None:
    kind = _exactly_one(ctx, raw, line, SCHEDULE_KEYS, "schedule")
    timezone = defaults.timezone
    if "timezone" in raw:
        if kind == ScheduleKind.EVERY:
            ctx.add(raw.line_of("timezone"), "timezone", "applies to daily and cron schedules only ('every' counts elapsed time)")
            return None
        timezone = fields.read_timezone(ctx, raw) or ""
    if kind == ScheduleKind.EVERY:
        interval = fields.read_duration(ctx, raw, "every", positive=True)
        return Schedule(ScheduleKind.EVERY, interval_seconds=interval) if interval else None
    if kind == ScheduleKind.DAILY:
        times = fields.read_daily(ctx, raw)
        return Schedule(ScheduleKind.DAILY, times=times, timezone=timezone) if times and timezone else None
    if kind == ScheduleKind.CRON:
        expression = fields.read_cron(ctx, raw, now)
        return Schedule(ScheduleKind.CRON, cron=expression, timezone=timezone) if expression and timezone else None
    return None


def _read_target(ctx: Context, raw: LineMap, line: int, api_url: str) -> HttpTarget | CallTarget | None:
    kind = _exactly_one(ctx, raw, line, TARGET_KEYS, "target")
    if "kwargs" in raw and kind != "call":
        ctx.add(raw.line_of("kwargs"), "kwargs", "applies to 'call' jobs only")
    if kind == "http":
        return fields.read_http(ctx, raw, api_url)
    if kind == "call":
        return fields.read_call(ctx, raw)
    return None
