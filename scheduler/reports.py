"""What ``scheduler list``, ``history`` and ``status`` print (JSON shapes of DESIGN §6)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from scheduler.config.spec import CallTarget, JobSpec, ScheduleKind
from scheduler.execution.run import RunOutcome
from scheduler.state.records import PausedJob, RunRecord
from scheduler.timing.planning import Plan
from tickless.clock import iso, parse_iso


def fire_times(plan: Plan | None, now: datetime, count: int) -> list[datetime]:
    """The plan's first fire time and the ones after it, as the service will fire them."""
    if plan is None or plan.first_fire is None or count <= 0:
        return []
    times = [plan.first_fire]
    while len(times) < count:
        following = plan.trigger.get_next_fire_time(times[-1], now)
        if following is None:
            break
        times.append(following)
    return times


def job_row(spec: JobSpec, plan: Plan | None, now: datetime, count: int) -> dict[str, Any]:
    target = spec.target
    call = target if isinstance(target, CallTarget) else None
    http = None if isinstance(target, CallTarget) else target
    return {
        "name": spec.name,
        "enabled": spec.enabled,
        "schedule": spec.schedule.text,
        "interval_seconds": spec.schedule.interval_seconds if spec.schedule.kind == ScheduleKind.EVERY else None,
        "timezone": spec.schedule.timezone,
        "kind": target.kind,
        "method": http.method if http else None,
        "url": http.url if http else None,
        "callable": call.reference if call else None,
        "timeout_seconds": spec.timeout_seconds,
        "jitter_seconds": spec.jitter_seconds,
        "initial_offset_max_seconds": spec.initial_offset_max_seconds,
        "retry": {
            "attempts": spec.retry.attempts,
            "backoff_seconds": spec.retry.backoff_seconds,
            "max_backoff_seconds": spec.retry.max_backoff_seconds,
        },
        "next_runs": [iso(moment) for moment in fire_times(plan, now, count)],
    }


def list_text(header: str, rows: list[dict[str, Any]], reasons: dict[str, str]) -> str:
    lines = [header]
    width = max((len(row["name"]) for row in rows), default=4)
    for row in rows:
        target = f"call {row['callable']}" if row["kind"] == "call" else f"{row['method']} {row['url']}"
        state = ("" if row["enabled"] else "  (disabled)") + ("  (paused)" if row.get("paused") else "")
        lines.append(f"{row['name']:<{width}}  {row['schedule']:<22}  {target}{state}")
        if row["name"] in reasons:
            lines.append(f"{'':<{width}}    ({reasons[row['name']]})")
        lines.extend(f"{'':<{width}}    {moment}" for moment in row["next_runs"])
    return "\n".join(lines)


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "job": run.job,
        "scheduled_for": iso(run.scheduled_for),
        "started_at": iso(run.started_at) if run.started_at else None,
        "finished_at": iso(run.finished_at) if run.finished_at else None,
        "outcome": run.outcome,
        "status": run.status,
        "error_type": run.error_type,
        "attempts": run.attempts,
        "duration_seconds": run.duration_s,
        "error": run.error,
        "retry": run.retry,
        "replica": run.replica,
    }


def by_scheduled_time(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs the store returned (the most recently recorded), newest scheduled time first."""
    return sorted(runs, key=lambda run: run.scheduled_for, reverse=True)


HISTORY_COLUMNS = ("SCHEDULED", "JOB", "OUTCOME", "DURATION", "ATTEMPTS", "DETAIL")


def history_text(runs: list[RunRecord]) -> str:
    if not runs:
        return "no runs recorded"
    width = max(len(HISTORY_COLUMNS[1]), *(len(run.job) for run in runs))
    scheduled, job, outcome, took_title, attempts_title, detail_title = HISTORY_COLUMNS
    lines = [f"{scheduled:<24}  {job:<{width}}  {outcome:<21}  {took_title:>9}  {attempts_title:>8}  {detail_title}"]
    for run in runs:
        took = f"{run.duration_s:.3f}s" if run.duration_s is not None else "-"
        attempts = str(run.attempts) if run.attempts is not None else "-"
        detail = f"HTTP {run.status}" if run.status is not None else (run.error_type or "")
        if run.outcome != "ok" and run.error:
            detail = run.error[:120]
        lines.append(f"{iso(run.scheduled_for):<24}  {run.job:<{width}}  {run.outcome:<21}  {took:>9}  {attempts:>8}  {detail}")
    return "\n".join(lines)


def paused_json(pause: PausedJob) -> dict[str, Any]:
    return {"job": pause.job, "paused_at": iso(pause.paused_at), "paused_by": pause.paused_by}


def paused_lines(paused: Iterable[PausedJob]) -> list[str]:
    """One line per paused job, for the foot of ``history``."""
    return [f"paused: {pause.job} since {iso(pause.paused_at)} by {pause.paused_by}"
            for pause in sorted(paused, key=lambda pause: pause.job)]


def last_started(runs: list[RunRecord]) -> RunRecord | None:
    """The newest run that started (skips have no start), from a job's history newest first."""
    return next((run for run in runs if run.started_at is not None), None)


def left_text(seconds: float) -> str:
    """Time until the next run, the way ``systemctl list-timers`` writes it: 4min 3s, 2h 5min, 1d 3h."""
    if seconds <= 0:
        return "now"
    whole = int(seconds + 0.999)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}min"
    if minutes:
        return f"{minutes}min {secs}s"
    return f"{secs}s"


def status_row(
    spec: JobSpec, plan: Plan | None, last: RunRecord | None, pause: PausedJob | None, now: datetime,
) -> dict[str, Any]:
    """One job in ``status --json``: its next run (none while paused or disabled) and its last run."""
    upcoming = None if pause or not spec.enabled else next(iter(fire_times(plan, now, 1)), None)
    return {
        "name": spec.name,
        "enabled": spec.enabled,
        "paused": pause is not None,
        "paused_at": iso(pause.paused_at) if pause else None,
        "paused_by": pause.paused_by if pause else None,
        "next_run": iso(upcoming) if upcoming else None,
        "left_seconds": round(max(0.0, (upcoming - now).total_seconds()), 3) if upcoming else None,
        "last_run": run_json(last) if last else None,
    }


STATUS_COLUMNS = ("NEXT", "LEFT", "LAST", "RESULT", "DURATION", "JOB")


def status_text(rows: list[dict[str, Any]], now: datetime) -> str:
    """One line per job, soonest first, like ``systemctl list-timers``."""
    table = [STATUS_COLUMNS]
    for row in sorted(rows, key=lambda row: (row["next_run"] is None, row["next_run"] or "", row["name"])):
        last = row["last_run"]
        if row["paused"]:
            upcoming, left = "paused", "-"
        elif not row["enabled"]:
            upcoming, left = "disabled", "-"
        elif row["next_run"] is None:
            upcoming, left = "-", "-"
        else:
            upcoming, left = row["next_run"], left_text(row["left_seconds"])
        if last is None:
            when, result, took = "-", "-", "-"
        else:
            when, result = last["started_at"], last["outcome"]
            if last["duration_seconds"] is not None:
                took = f"{last['duration_seconds']:.3f}s"
            elif last["outcome"] == RunOutcome.RUNNING:
                took = f"{(now - (parse_iso(last['started_at']) or now)).total_seconds():.0f}s so far"
            else:
                took = "-"
        name = row["name"] + (f"  (paused since {row['paused_at']} by {row['paused_by']})" if row["paused"] else "")
        table.append((upcoming, left, when, result, took, name))
    widths = [max(len(line[column]) for line in table) for column in range(len(STATUS_COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + "  " + line[-1] for line in table
    )
