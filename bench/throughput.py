"""Harness 4, throughput: sustained fires per second, 1 ms server latency, until p99 lateness > 100 ms.

N jobs every second, their grids spread evenly over the second (this project:
SCHEDULER_STARTUP_SPREAD_SECONDS=1; bare APScheduler: start dates i/N apart),
N raised step by step. Both subjects put each run's nominal time in the
request (X-Scheduler-Scheduled-For), so every arrival is matched to the run
it was fired for; the harness fails if the runs fired and the arrivals do not
match one to one or any lateness is negative. Skipped runs (coalesced under
overload) are allowed and counted. Usage: python -m bench.throughput [--quick|--smoke]
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench.checks import Run, check_exit, check_lateness, check_runs, missing_runs, run
from bench.common import (
    Mode,
    RecordingServer,
    arrival_runs,
    header,
    lateness,
    python,
    recorded_runs,
    side_by_side,
    summary_ms,
    table,
    write_result,
)
from bench.subject import Tickless, jobs_yaml

NAME = "throughput"
LEVELS = [100, 250, 500, 600, 750, 1000]
SMOKE_LEVELS = [20]
LIMIT_MS = 100.0


def _figures(label: str, count: int, fired: list[Run], arrived: list[Run], since: float) -> dict[str, Any]:
    """Figures for one subject at one level, once its runs fired and arrivals are shown to be the same runs."""
    jobs = [f"/job/{i}" for i in range(count)]
    check_runs(NAME, label, fired, arrived, jobs=jobs, interval=1, gaps_allowed=True, since=since)
    check_lateness(NAME, f"{label}, scheduling", lateness(fired))
    check_lateness(NAME, f"{label}, arrival", lateness(arrived))
    return {"scheduling": summary_ms(lateness(fired)), "arrival": summary_ms(lateness(arrived)),
            "skipped_runs": missing_runs(fired, 1)}


WARM_UP_SECONDS = 2.0  # from a subject's own first run: its first rounds open the threads and connections


def _after_warm_up(fired: list[Run], started: float) -> float:
    """Where a subject's measured window starts: the same distance after its own first run for
    every subject (one that takes longer to start must not have its cold first rounds counted)."""
    first = min((run.nominal for run in fired), default=started)
    return first + WARM_UP_SECONDS


def measure_tickless(count: int, seconds: float) -> dict[str, Any]:
    server = RecordingServer(latency=0.001)
    subject = Tickless(jobs_yaml(count, 1), server.url, SCHEDULER_STARTUP_SPREAD_SECONDS="1")
    started = time.time()
    time.sleep(seconds)
    check_exit(NAME, f"tickless at {count}/s", subject.stop(), subject.log_tail())
    since = _after_warm_up(subject.runs(0), started)
    arrived = arrival_runs(server.take(), since)
    server.close()
    return _figures(f"tickless at {count}/s", count, subject.runs(since), arrived, since)


def measure_bare(count: int, seconds: float) -> dict[str, Any]:
    server = RecordingServer(latency=0.001)
    out = Path(tempfile.mkdtemp()) / "bare.json"
    started = time.time()
    result = subprocess.run(
        [python(), "-m", "bench.baselines.bare_apscheduler", str(count), "1", server.url, str(seconds), str(out), "1"],
        check=False,
    )
    check_exit(NAME, f"bare APScheduler at {count}/s", result.returncode)
    since = _after_warm_up(recorded_runs(out, 0), started)
    arrived = arrival_runs(server.take(), since)
    server.close()
    return _figures(f"bare APScheduler at {count}/s", count, recorded_runs(out, since), arrived, since)


def main() -> None:
    mode = Mode.from_argv()
    seconds = mode.pick(full=10, quick=7, smoke=5)
    levels_tried = mode.pick(full=LEVELS, quick=LEVELS, smoke=SMOKE_LEVELS)
    print(header("throughput") + ("  [smoke]" if mode is Mode.SMOKE else ""))
    rows, levels = [], []
    best = {"tickless": 0, "bare APScheduler": 0}
    within = {"tickless": True, "bare APScheduler": True}  # every level so far kept p99 under the limit
    for count in levels_tried:
        ours, bare = side_by_side(mode, partial(measure_tickless, count, seconds), partial(measure_bare, count, seconds))
        figures = {"tickless": ours, "bare APScheduler": bare}
        levels.append({"fires_per_second": count, **figures})
        for name, result in figures.items():
            p99 = result["scheduling"]["p99_ms"]
            within[name] = within[name] and p99 <= LIMIT_MS
            if within[name]:
                best[name] = count
            rows.append([count, name, result["scheduling"]["p50_ms"], p99, result["arrival"]["p99_ms"], result["skipped_runs"]])
        if not any(within.values()):
            break
    print(table(["fires/s", "subject", "sched p50 ms", "sched p99 ms", "arrival p99 ms", "skipped runs"], rows))
    print(f"sustained fires/s with scheduling p99 <= {LIMIT_MS:g} ms: tickless {best['tickless']}, "
          f"bare APScheduler {best['bare APScheduler']} (levels tried: {', '.join(map(str, levels_tried))})")
    write_result(NAME, {"quick": mode is Mode.QUICK, "limit_ms": LIMIT_MS, "levels": levels, "sustained": best}, mode)


if __name__ == "__main__":
    raise SystemExit(run(NAME, main))
