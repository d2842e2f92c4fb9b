"""Harness 2, the jitter law: mean period / interval over a long simulated horizon.

No sleeping: each trigger is driven the way APScheduler drives it (the next
fire time is asked for with the previous fire time), on a fake clock.
Self-checks: each trigger gave every fire asked for, strictly later each time,
and the mean periods are finite and positive. Usage: python -m bench.jitter_law [--quick|--smoke]
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import pairwise

from apscheduler.triggers.interval import IntervalTrigger

from bench.checks import CheckFailed, run
from bench.common import Mode, header, table, write_result
from scheduler.config.spec import Schedule, ScheduleKind
from scheduler.timing.triggers import schedule_trigger

NAME = "jitter_law"
INTERVAL, JITTER = 60, 30
START = datetime(2026, 1, 1, tzinfo=UTC)


def mean_period(trigger: object, runs: int) -> tuple[float, list[datetime]]:
    fires: list[datetime] = []
    previous = None
    for _ in range(runs):
        moment = trigger.get_next_fire_time(previous, previous or START)  # type: ignore[attr-defined]
        fires.append(moment)
        previous = moment
    return (fires[-1] - fires[0]).total_seconds() / (len(fires) - 1), fires


def check_fires(label: str, fires: list[datetime], runs: int, period: float) -> None:
    """A trigger driven by its own previous fire time moves forward every time; a period is a positive number."""
    if len(fires) != runs:
        raise CheckFailed(NAME, "every fire counted", f"{label}: {len(fires)} fires, expected {runs}")
    for index, (before, after) in enumerate(pairwise(fires)):
        if not after > before:
            raise CheckFailed(NAME, "fires move forward", f"{label}: fire {index + 1} ({after}) is not after fire {index} ({before})")
    if not (math.isfinite(period) and period > 0):
        raise CheckFailed(NAME, "positive finite period", f"{label}: mean period {period}")


def main() -> None:
    mode = Mode.from_argv()
    runs = mode.pick(full=100_000, quick=100_000, smoke=2_000)
    print(header("jitter law") + ("  [smoke]" if mode is Mode.SMOKE else ""))
    ours_trigger = schedule_trigger(Schedule(ScheduleKind.EVERY, interval_seconds=INTERVAL), START, "job", JITTER, seed=1)
    ours, fires = mean_period(ours_trigger, runs)
    check_fires("tickless", fires, runs, ours)
    in_window = sum(
        0 <= (fire - START).total_seconds() - k * INTERVAL <= JITTER for k, fire in enumerate(fires)
    )
    theirs, their_fires = mean_period(IntervalTrigger(seconds=INTERVAL, jitter=JITTER, start_date=START, timezone=UTC), runs)
    check_fires("APScheduler jitter=", their_fires, runs, theirs)
    rows = [
        ["tickless (non-drifting)", f"{ours:.3f}", f"{ours / INTERVAL:.4f}", f"{in_window}/{runs}"],
        ["APScheduler jitter=", f"{theirs:.3f}", f"{theirs / INTERVAL:.4f}", "-"],
    ]
    print(f"{runs:,} runs of a {INTERVAL} s job with {JITTER} s jitter")
    print(table(["trigger", "mean period s", "period / interval", "runs in [nominal, nominal+jitter]"], rows))
    print("(target: tickless within 1% of the interval)")
    write_result(NAME, {
        "interval_seconds": INTERVAL, "jitter_seconds": JITTER, "runs": runs,
        "tickless": {"mean_period_seconds": ours, "ratio": ours / INTERVAL, "runs_in_window": in_window},
        "apscheduler_jitter": {"mean_period_seconds": theirs, "ratio": theirs / INTERVAL},
    }, mode)


if __name__ == "__main__":
    raise SystemExit(run(NAME, main))
