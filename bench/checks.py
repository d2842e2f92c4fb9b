"""Self-checks: a harness refuses to report figures that cannot be right.

A benchmark that prints a wrong number is worse than one that crashes: the
number gets copied into the README. Each check raises `CheckFailed` naming the
harness and the check; `run` turns that into a message and exit status 1.
The checks are plain functions over plain data so that tests/bench can feed
them bad data and see them refuse it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# Both ends of a lateness read the same host clock (time.time() / datetime.now()
# in two processes); a few milliseconds covers rounding of the ISO stamps
# (microseconds) and of the log's lateness_s, never a run matched to the wrong nominal time.
CLOCK_TOLERANCE = 0.005


class CheckFailed(Exception):
    def __init__(self, harness: str, check: str, detail: str) -> None:
        super().__init__(f"bench.{harness}: self-check {check!r} failed: {detail}")
        self.harness = harness
        self.check = check


@dataclass(frozen=True)
class Run:
    """One run as one side saw it: the job (its HTTP path), the nominal time it was for, and when that side saw it."""

    job: str
    nominal: float
    at: float  # scheduler side: run start; server side: arrival


def _show(nominal: float) -> str:
    return f"{nominal:.3f}"


def check_nonempty(harness: str, label: str, values: Sequence[object]) -> None:
    if not values:
        raise CheckFailed(harness, "non-empty", f"{label}: no measurements at all")


def check_lateness(harness: str, label: str, values: Sequence[float], tolerance: float = CLOCK_TOLERANCE) -> None:
    """Lateness (seconds) is measured from the nominal time, and nothing runs before it is due."""
    check_nonempty(harness, label, values)
    bad = [value for value in values if math.isnan(value)]
    if bad:
        raise CheckFailed(harness, "no NaN", f"{label}: {len(bad)} of {len(values)} lateness values are NaN")
    early = sorted(value for value in values if value < -tolerance)
    if early:
        raise CheckFailed(
            harness, "no negative lateness",
            f"{label}: {len(early)} of {len(values)} runs are early (as low as {early[0] * 1000:.1f} ms, tolerance "
            f"{tolerance * 1000:g} ms): runs were matched to the wrong nominal times",
        )


def check_exit(harness: str, label: str, code: int | None, output: str = "") -> None:
    """A subject that crashed (or never stopped) measured nothing worth printing; ``output`` is its log's tail."""
    if code != 0:
        tail = f"; its output ends:\n{output.rstrip()}" if output.strip() else ""
        raise CheckFailed(harness, "subject exited cleanly", f"{label}: exit status {code}{tail}")


def check_finite(harness: str, label: str, document: Any) -> None:
    """Every number in a results document is finite (a NaN is a figure computed from nothing)."""
    def walk(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise CheckFailed(harness, "finite figures", f"{label}: {where} is {value}")
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")
    walk(document, label)


def check_runs(
    harness: str,
    label: str,
    fired: Iterable[Run],
    arrived: Iterable[Run],
    *,
    jobs: Iterable[str],
    interval: float,
    gaps_allowed: bool = False,
    since: float | None = None,
    tolerance: float = CLOCK_TOLERANCE,
) -> None:
    """What the scheduler says it fired and what the server received are the same runs, one to one.

    Runs are paired by job and nominal time (within ``tolerance``). Checked: no run
    counted twice on either side; every fired run arrived and every arrival
    was fired; each arrival came after its run started; every job ran; and,
    unless the scenario allows skipped runs (overload with coalescing), each
    job's nominal times are consecutive points of its grid, none missing.
    ``since`` is where both sides were cut: a run within ``tolerance`` of it
    may fall on different sides of the cut (its nominal time printed to the
    millisecond on one side), so it is not required to have a partner.
    """
    fired, arrived = list(fired), list(arrived)
    check_nonempty(harness, f"{label} (runs fired)", fired)
    check_nonempty(harness, f"{label} (arrivals)", arrived)
    fired_by_job, arrived_by_job = _runs_by_job(fired), _runs_by_job(arrived)
    for side, by_job in (("fired", fired_by_job), ("arrived", arrived_by_job)):
        for job, runs in by_job.items():
            for before, after in pairwise(runs):
                if after.nominal - before.nominal <= tolerance:
                    raise CheckFailed(harness, "each run counted once",
                                      f"{label}: {job} at {_show(before.nominal)} {side} more than once")
    lost: list[Run] = []
    stray: list[Run] = []
    for job in fired_by_job.keys() | arrived_by_job.keys():
        # Both sides sorted by nominal time; runs of one job are an interval apart, far more than the
        # tolerance, so a merge pairs each run with the arrival for the same nominal time (the log
        # may print it to the millisecond, the request header to the microsecond).
        ours, theirs = fired_by_job.get(job, []), arrived_by_job.get(job, [])
        i = j = 0
        while i < len(ours) and j < len(theirs):
            started, came = ours[i], theirs[j]
            if abs(started.nominal - came.nominal) <= tolerance:
                if came.at < started.at - tolerance:
                    raise CheckFailed(harness, "arrival after start",
                                      f"{label}: {job} at {_show(started.nominal)} arrived "
                                      f"{(started.at - came.at) * 1000:.1f} ms before it started")
                i, j = i + 1, j + 1
            elif started.nominal < came.nominal:
                lost.append(started)
                i += 1
            else:
                stray.append(came)
                j += 1
        lost.extend(ours[i:])
        stray.extend(theirs[j:])
    if since is not None:
        lost = [item for item in lost if item.nominal > since + tolerance]
        stray = [item for item in stray if item.nominal > since + tolerance]
    if lost:
        first = min(lost, key=lambda item: item.nominal)
        raise CheckFailed(harness, "every run arrived",
                          f"{label}: {len(lost)} of {len(fired)} runs fired never arrived, e.g. {first.job} at {_show(first.nominal)}")
    if stray:
        first = min(stray, key=lambda item: item.nominal)
        raise CheckFailed(harness, "every arrival fired",
                          f"{label}: {len(stray)} of {len(arrived)} arrivals match no run fired, e.g. {first.job} at "
                          f"{_show(first.nominal)}")
    per_job = _per_job(fired)
    silent = sorted(set(jobs) - per_job.keys())
    if silent:
        raise CheckFailed(harness, "every job ran", f"{label}: {len(silent)} jobs never ran, e.g. {silent[0]}")
    for job, nominals in per_job.items():
        for earlier, later in pairwise(nominals):
            steps = (later - earlier) / interval
            if abs(steps - round(steps)) * interval > tolerance:
                raise CheckFailed(harness, "nominal times on the grid",
                                  f"{label}: {job} ran for {_show(earlier)} and {_show(later)}, not a whole number of "
                                  f"{interval:g} s intervals apart")
            if round(steps) > 1 and not gaps_allowed:
                raise CheckFailed(harness, "no missing runs",
                                  f"{label}: {job} has {round(steps) - 1} runs missing between {_show(earlier)} and {_show(later)}")


def _runs_by_job(runs: Iterable[Run]) -> dict[str, list[Run]]:
    by_job: dict[str, list[Run]] = {}
    for item in runs:
        by_job.setdefault(item.job, []).append(item)
    return {job: sorted(items, key=lambda item: item.nominal) for job, items in by_job.items()}


def _per_job(runs: Iterable[Run]) -> dict[str, list[float]]:
    return {job: [item.nominal for item in items] for job, items in _runs_by_job(runs).items()}


def missing_runs(runs: Iterable[Run], interval: float) -> int:
    """Grid points skipped between each job's first and last run (coalesced or refused under overload)."""
    return sum(
        max(0, round((after - before) / interval) - 1)
        for nominals in _per_job(runs).values()
        for before, after in pairwise(nominals)
    )


def run(harness: str, main: Callable[[], None]) -> int:
    """Run a harness's main; a failed self-check is a clear message and exit status 1."""
    try:
        main()
    except CheckFailed as failure:
        print(f"\nFAILED {failure}", file=sys.stderr, flush=True)
        return 1
    return 0
