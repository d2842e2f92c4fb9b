"""What ``scheduler list`` and ``scheduler history`` print (JSON shapes of DESIGN §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scheduler.config.spec import CallTarget, JobSpec, ScheduleKind
from scheduler.state.records import RunRecord
from scheduler.timing.planning import Plan
from tickless.clock import iso


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
        state = "" if row["enabled"] else "  (disabled)"
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
    }


def history_text(runs: list[RunRecord]) -> str:
    if not runs:
        return "no runs recorded"
    width = max(len(run.job) for run in runs)
    lines = []
    for run in runs:
        took = f"{run.duration_s:.3f}s" if run.duration_s is not None else "-"
        detail = f"HTTP {run.status}" if run.status is not None else (run.error_type or "")
        if run.outcome != "ok" and run.error:
            detail = run.error[:120]
        lines.append(f"{iso(run.scheduled_for)}  {run.job:<{width}}  {run.outcome:<21}  {took:>9}  {detail}")
    return "\n".join(lines)
