"""Where each job's schedule stands at start: resumed, caught up, or new.

A pure function of the jobs, what the state store remembers, the seed and the
start time, so ``scheduler list`` prints exactly what ``scheduler run`` will do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.config.spec import JobSpec, ScheduleKind
from scheduler.state.records import JobState
from scheduler.timing.triggers import NonDriftingTrigger, initial_offset, schedule_trigger

# Bound on the slots walked to find the latest one missed inside a catch-up window.
_MAX_WALK = 100_000
# A catch-up closer than interval / 10 to the next regular run is dropped.
CATCH_UP_MIN_GAP_DIVISOR = 10


@dataclass(frozen=True)
class Plan:
    trigger: NonDriftingTrigger
    anchor: datetime  # where the job's grid starts (interval jobs)
    fingerprint: str
    first_fire: datetime | None  # when the first run fires
    first_nominal: datetime | None  # the slot that run stands for (a catch-up's is in the past)
    reason: str


def _plan(trigger: NonDriftingTrigger, anchor: datetime, fp: str, nominal: datetime | None, reason: str) -> Plan:
    """A plan whose first run is the grid slot ``nominal``; the trigger learns which slot its first fire time is."""
    if nominal is None:
        return Plan(trigger, anchor, fp, None, None, reason)
    fire = trigger.fire_time(nominal)
    trigger.record(fire, nominal)
    return Plan(trigger, anchor, fp, fire, nominal, reason)


def fingerprint(spec: JobSpec) -> str:
    return f"{spec.schedule.text} tz={spec.schedule.timezone}"


def catch_up_seconds(spec: JobSpec) -> int:
    if spec.catch_up_seconds is not None:
        return spec.catch_up_seconds
    if spec.schedule.kind == ScheduleKind.EVERY:
        return spec.schedule.interval_seconds or 0
    return 6 * 3600


def _trigger(spec: JobSpec, anchor: datetime, seed: int) -> NonDriftingTrigger:
    return schedule_trigger(spec.schedule, anchor, spec.name, spec.jitter_seconds, seed)


def _latest_slot(trigger: NonDriftingTrigger, after: datetime, until: datetime) -> datetime | None:
    """The last nominal time in (after, until], or None.

    Looks back from ``until`` over a doubling span, so a long catch-up window
    costs a few steps rather than a walk over every slot in it.
    """
    span = timedelta(minutes=1)
    while True:
        lower = max(after, until - span)
        slot = trigger.nominal_after(lower)
        if slot is not None and slot <= until:
            break
        if lower == after:
            return None
        span *= 2
    for _ in range(_MAX_WALK):
        following = trigger.nominal_after(slot)
        if following is None or following > until:
            return slot
        slot = following
    return slot


def plan_jobs(
    jobs: list[JobSpec],
    states: Mapping[str, JobState],
    seed: int,
    start: datetime,
    spread_seconds: int,
) -> dict[str, Plan]:
    """Plan every enabled job for a service whose grace period ends at ``start``.

    Jobs due at start (a first run, or one catch-up) are spread evenly over
    ``spread_seconds`` in name order instead of all firing at once.
    """
    plans: dict[str, Plan] = {}
    due: list[tuple[JobSpec, datetime | None, datetime, str]] = []  # spec, catch-up slot, anchor, reason
    for spec in sorted((job for job in jobs if job.enabled), key=lambda job: job.name):
        state = states.get(spec.name)
        fp = fingerprint(spec)
        same_grid = state is not None and state.fingerprint == fp
        if state is None or (state.last_nominal is None and not same_grid):
            if spec.schedule.kind != ScheduleKind.EVERY:
                trigger = _trigger(spec, start, seed)
                slot = trigger.nominal_after(start - timedelta(microseconds=1))
                plans[spec.name] = _plan(trigger, start, fp, slot, "first slot")
            elif spec.initial_offset_max_seconds:
                interval = spec.schedule.interval_seconds or 0
                offset = initial_offset(seed, spec.name, min(spec.initial_offset_max_seconds, interval))
                anchor = start + timedelta(seconds=interval - offset)
                trigger = _trigger(spec, anchor, seed)
                plans[spec.name] = _plan(trigger, anchor, fp, anchor, f"first run offset by {offset}s")
            else:
                due.append((spec, None, start, "first run"))
            continue
        # A changed schedule starts a new grid, from the last run, so a shorter
        # interval does not fire at once and a longer one does not wait twice.
        anchor = state.anchor if same_grid or spec.schedule.kind != ScheduleKind.EVERY else state.last_nominal or start
        # A job planned before but never run yet keeps its planned first slot
        # (a redeploy must not push the offset job's first run back again).
        last = state.last_nominal or anchor - timedelta(microseconds=1)
        trigger = _trigger(spec, anchor, seed)
        following = trigger.nominal_after(last)
        if following is not None and following >= start:
            plans[spec.name] = _plan(trigger, anchor, fp, following, "resumes its grid")
            continue
        window = catch_up_seconds(spec)
        # Slots after the last run and no older than the catch-up window.
        after = max(last, start - timedelta(seconds=window, microseconds=1))
        slot = _latest_slot(trigger, after, start) if window else None
        if slot is not None:
            due.append((spec, slot, anchor, f"catch-up of the slot at {slot.isoformat()}"))
            continue
        upcoming = trigger.nominal_after(start - timedelta(microseconds=1))
        reason = "missed slot(s) beyond catch_up skipped" if window else "missed slot(s) skipped (catch_up 0)"
        plans[spec.name] = _plan(trigger, anchor, fp, upcoming, reason)

    step = timedelta(seconds=spread_seconds / len(due)) if due else timedelta(0)
    for index, (spec, slot, anchor, reason) in enumerate(due):
        moment = start + step * index
        if slot is None:  # a first run: its whole grid starts at its place in the spread
            trigger = _trigger(spec, moment, seed)
            plans[spec.name] = _plan(trigger, moment, fingerprint(spec), moment, reason)
        else:
            trigger = _trigger(spec, anchor, seed)
            following = trigger.nominal_after(slot)
            if following is not None and _too_close(moment, slot, following, trigger.fire_time(following)):
                # Two runs a moment apart do the same work twice: the regular run stands for both.
                plans[spec.name] = _plan(
                    trigger, anchor, fingerprint(spec), following,
                    f"catch-up of the slot at {slot.isoformat()} dropped: it would fire within a tenth of an "
                    f"interval of the next run",
                )
                continue
            trigger.record(moment, slot)  # a catch-up fires off the grid, for its past slot
            plans[spec.name] = Plan(trigger, anchor, fingerprint(spec), moment, slot, reason)
    return plans


def _too_close(moment: datetime, slot: datetime, following: datetime, following_fire: datetime) -> bool:
    """Whether a catch-up at ``moment`` lands within a tenth of an interval (the gap between
    the missed slot and the next one) of the next regular run, which fires at ``following_fire``."""
    return following_fire - moment < (following - slot) / CATCH_UP_MIN_GAP_DIVISOR
