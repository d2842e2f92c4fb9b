"""Harness 2, the jitter law: mean period / interval over a long simulated horizon.

No sleeping: each trigger is driven the way APScheduler drives it (the next
fire time is asked for with the previous fire time), on a fake clock.
Usage: python -m bench.jitter_law
"""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.triggers.interval import IntervalTrigger

from bench.common import header, table, write_result
from scheduler.config.spec import Schedule, ScheduleKind
from scheduler.timing.triggers import schedule_trigger

INTERVAL, JITTER, RUNS = 60, 30, 100_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def mean_period(trigger: object, runs: int) -> tuple[float, list[datetime]]:
    fires: list[datetime] = []
    previous = None
    for _ in range(runs):
        moment = trigger.get_next_fire_time(previous, previous or START)  # type: ignore[attr-defined]
        fires.append(moment)
        previous = moment
    return (fires[-1] - fires[0]).total_seconds() / (len(fires) - 1), fires


def main() -> None:
    print(header("jitter law"))
    ours_trigger = schedule_trigger(Schedule(ScheduleKind.EVERY, interval_seconds=INTERVAL), START, "job", JITTER, seed=1)
    ours, fires = mean_period(ours_trigger, RUNS)
    in_window = sum(
        0 <= (fire - START).total_seconds() - k * INTERVAL <= JITTER for k, fire in enumerate(fires)
    )
    theirs, _ = mean_period(IntervalTrigger(seconds=INTERVAL, jitter=JITTER, start_date=START, timezone=UTC), RUNS)
    rows = [
        ["tickless (non-drifting)", f"{ours:.3f}", f"{ours / INTERVAL:.4f}", f"{in_window}/{RUNS}"],
        ["APScheduler jitter=", f"{theirs:.3f}", f"{theirs / INTERVAL:.4f}", "-"],
    ]
    print(f"{RUNS:,} runs of a {INTERVAL} s job with {JITTER} s jitter")
    print(table(["trigger", "mean period s", "period / interval", "runs in [nominal, nominal+jitter]"], rows))
    print("(target: tickless within 1% of the interval)")
    path = write_result("jitter_law", {
        "interval_seconds": INTERVAL, "jitter_seconds": JITTER, "runs": RUNS,
        "tickless": {"mean_period_seconds": ours, "ratio": ours / INTERVAL, "runs_in_window": in_window},
        "apscheduler_jitter": {"mean_period_seconds": theirs, "ratio": theirs / INTERVAL},
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
