"""Restart planning as a pure function: jobs + what the store remembers + seed + start."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from scheduler.config.spec import HttpTarget, JobSpec, Schedule, ScheduleKind
from scheduler.state.records import JobState
from scheduler.timing.planning import fingerprint, plan_jobs

START = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
TARGET = HttpTarget("POST", "http://app/x")


def every(name: str, seconds: int, **kwargs: object) -> JobSpec:
    return JobSpec(name=name, line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=seconds), target=TARGET, **kwargs)  # type: ignore[arg-type]


def daily(name: str, *times: time, **kwargs: object) -> JobSpec:
    return JobSpec(name=name, line=1, schedule=Schedule(ScheduleKind.DAILY, times=times), target=TARGET, **kwargs)  # type: ignore[arg-type]


def ran(spec: JobSpec, last: datetime, anchor: datetime | None = None, same_schedule: bool = True) -> JobState:
    print_ = fingerprint(spec) if same_schedule else "every 1h tz=UTC"
    return JobState(print_, anchor or last, last, "ok", last)


def test_a_job_that_ran_recently_resumes_its_grid_instead_of_firing_at_start() -> None:
    job = every("refresh", 900)
    last = START - timedelta(minutes=5)
    plan = plan_jobs([job], {"refresh": ran(job, last)}, 1, START, 30)["refresh"]
    assert plan.first_fire == last + timedelta(minutes=15)  # 10 minutes after start, not at start
    assert plan.reason == "resumes its grid"


def test_the_grid_anchor_survives_restarts() -> None:
    job = every("refresh", 900)
    anchor = START - timedelta(hours=5, minutes=7)
    last = anchor + timedelta(minutes=15 * 20)  # the run at 11:53
    plan = plan_jobs([job], {"refresh": ran(job, last, anchor)}, 1, START, 30)["refresh"]
    assert plan.anchor == anchor
    assert plan.first_fire == anchor + timedelta(minutes=15 * 21)


def test_a_missed_slot_runs_once_at_start_with_its_own_nominal_time() -> None:
    job = every("refresh", 900)
    last = START - timedelta(minutes=20)  # the slot at START-5m was missed while down
    plan = plan_jobs([job], {"refresh": ran(job, last)}, 1, START, 0)["refresh"]
    assert plan.first_fire == START
    assert plan.first_nominal == last + timedelta(minutes=15)
    assert plan.reason.startswith("catch-up")
    # After the catch-up the job is back on its grid.
    assert plan.trigger.get_next_fire_time(plan.first_fire, START) == last + timedelta(minutes=30)


def test_many_missed_slots_still_run_once() -> None:
    job = every("tick", 60, catch_up_seconds=3600)
    last = START - timedelta(minutes=30, seconds=10)
    plan = plan_jobs([job], {"tick": ran(job, last)}, 1, START, 0)["tick"]
    assert plan.first_fire == START
    assert plan.first_nominal == last + timedelta(minutes=30)  # the latest missed slot only


def test_catch_up_zero_skips_missed_slots() -> None:
    job = every("refresh", 900, catch_up_seconds=0)
    last = START - timedelta(minutes=20)
    plan = plan_jobs([job], {"refresh": ran(job, last)}, 1, START, 0)["refresh"]
    assert plan.first_fire == last + timedelta(minutes=30)
    assert "skipped" in plan.reason


def test_after_a_long_outage_an_interval_job_catches_up_once_by_default() -> None:
    job = every("refresh", 900)  # catch_up defaults to one interval: the latest slot is always inside it
    last = START - timedelta(hours=3, minutes=1)
    plan = plan_jobs([job], {"refresh": ran(job, last)}, 1, START, 0)["refresh"]
    assert plan.first_fire == START
    assert plan.first_nominal == START - timedelta(minutes=1)


def test_a_miss_older_than_catch_up_is_skipped() -> None:
    job = every("refresh", 900, catch_up_seconds=300)
    last = START - timedelta(hours=3, minutes=10)  # the latest slot is 10 minutes before start
    plan = plan_jobs([job], {"refresh": ran(job, last)}, 1, START, 0)["refresh"]
    assert plan.first_fire == START + timedelta(minutes=5)
    assert plan.first_nominal == plan.first_fire
    assert plan.reason == "missed slot(s) beyond catch_up skipped"


def test_daily_jobs_do_not_fire_at_restart() -> None:
    job = daily("marketplaces", time(3, 0))
    yesterday = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    fresh = plan_jobs([job], {}, 1, START, 30)["marketplaces"]
    resumed = plan_jobs([job], {"marketplaces": ran(job, yesterday)}, 1, START, 30)["marketplaces"]
    assert fresh.first_fire == resumed.first_fire == datetime(2026, 3, 11, 3, 0, tzinfo=UTC)


def test_a_daily_slot_missed_within_six_hours_runs_once() -> None:
    job = daily("marketplaces", time(9, 0))
    last = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # today's 09:00 was missed; START is 12:00
    plan = plan_jobs([job], {"marketplaces": ran(job, last)}, 1, START, 0)["marketplaces"]
    assert plan.first_fire == START
    assert plan.first_nominal == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def test_a_daily_slot_missed_long_ago_is_skipped() -> None:
    job = daily("marketplaces", time(3, 0))
    last = datetime(2026, 3, 9, 3, 0, tzinfo=UTC)  # today's 03:00 is 9 h before START
    plan = plan_jobs([job], {"marketplaces": ran(job, last)}, 1, START, 0)["marketplaces"]
    assert plan.first_fire == datetime(2026, 3, 11, 3, 0, tzinfo=UTC)


def test_jobs_due_at_start_are_spread_evenly_in_name_order() -> None:
    jobs = [every(name, 600) for name in ("c", "a", "b")]
    plans = plan_jobs(jobs, {}, 1, START, 30)
    assert [plans[name].first_fire for name in ("a", "b", "c")] == [
        START, START + timedelta(seconds=10), START + timedelta(seconds=20),
    ]
    # The spread is the grid itself: later runs keep their phase.
    assert plans["c"].trigger.get_next_fire_time(plans["c"].first_fire, START) == START + timedelta(seconds=620)


def test_only_jobs_due_at_start_share_the_spread() -> None:
    recent = every("recent", 600)
    jobs = [recent, every("new1", 600), every("new2", 600)]
    plans = plan_jobs(jobs, {"recent": ran(recent, START - timedelta(seconds=60))}, 1, START, 30)
    assert plans["new1"].first_fire == START and plans["new2"].first_fire == START + timedelta(seconds=15)
    assert plans["recent"].first_fire == START + timedelta(seconds=540)


def test_a_changed_interval_starts_a_new_grid_from_the_last_run() -> None:
    job = every("refresh", 600)
    last = START - timedelta(minutes=4)
    old_anchor = START - timedelta(hours=1, minutes=1)
    plan = plan_jobs([job], {"refresh": ran(job, last, old_anchor, same_schedule=False)}, 1, START, 0)["refresh"]
    assert plan.anchor == last
    assert plan.first_fire == last + timedelta(minutes=10)


def test_first_run_of_the_offset_job_is_interval_minus_offset_after_start() -> None:
    job = every("bq", 14400, initial_offset_max_seconds=900)
    plan = plan_jobs([job], {}, 7, START, 30)["bq"]
    assert plan.first_fire is not None
    assert START + timedelta(seconds=14400 - 900) <= plan.first_fire <= START + timedelta(seconds=14400)
    assert plan_jobs([job], {}, 7, START, 30)["bq"].first_fire == plan.first_fire  # same seed, same time


@pytest.mark.parametrize("seed", [1, 2])
def test_disabled_jobs_are_not_planned(seed: int) -> None:
    plans = plan_jobs([every("off", 60, enabled=False), every("on", 60)], {}, seed, START, 0)
    assert set(plans) == {"on"}


def test_a_redeploy_does_not_push_back_a_first_run_that_has_not_happened_yet() -> None:
    job = every("bq", 14400, initial_offset_max_seconds=900)
    first = plan_jobs([job], {}, 7, START, 30)["bq"]
    planned = JobState(fingerprint(job), first.anchor, None, None, None)
    three_hours_later = START + timedelta(hours=3)
    again = plan_jobs([job], {"bq": planned}, 7, three_hours_later, 30)["bq"]
    assert again.first_fire == first.first_fire
    assert again.anchor == first.anchor


def test_a_planned_first_run_missed_while_down_is_caught_up() -> None:
    job = every("refresh", 900)
    planned = JobState(fingerprint(job), START - timedelta(minutes=10), None, None, None)
    plan = plan_jobs([job], {"refresh": planned}, 1, START, 0)["refresh"]
    assert plan.first_fire == START
    assert plan.first_nominal == START - timedelta(minutes=10)


def test_a_long_catch_up_window_finds_the_latest_slot_quickly() -> None:
    job = JobSpec(name="minutely", line=1, schedule=Schedule(ScheduleKind.CRON, cron="* * * * *"), target=TARGET,
                  catch_up_seconds=400 * 86400)
    last = START - timedelta(days=300)
    plan = plan_jobs([job], {"minutely": ran(job, last)}, 1, START, 0)["minutely"]
    assert plan.first_nominal == START  # the slot at start itself, not one from months ago
    interval = every("second", 1, catch_up_seconds=400 * 86400)
    plan = plan_jobs([interval], {"second": ran(interval, last)}, 1, START + timedelta(milliseconds=500), 0)["second"]
    assert plan.first_nominal == START


def test_moving_a_job_in_the_file_does_not_change_it() -> None:
    job = every("a", 60)
    moved = JobSpec(name="a", line=40, schedule=job.schedule, target=TARGET)
    assert moved == job


def test_a_catch_up_within_a_tenth_of_an_interval_of_the_next_run_is_dropped() -> None:
    # Slots every 100 s at ..., START-10s, START+90s. The spread puts the second job's
    # catch-up at START+81s: 9 s before its next regular run, less than a tenth of 100 s.
    jobs = [every("a-first", 100), every("b-second", 100)]
    last = START - timedelta(seconds=110)
    states = {job.name: ran(job, last) for job in jobs}
    plans = plan_jobs(jobs, states, 1, START, 162)
    kept, dropped = plans["a-first"], plans["b-second"]
    assert kept.first_fire == START and kept.first_nominal == START - timedelta(seconds=10)
    assert dropped.first_fire == dropped.first_nominal == START + timedelta(seconds=90)
    assert dropped.reason.startswith(f"catch-up of the slot at {(START - timedelta(seconds=10)).isoformat()} dropped")
    assert "within a tenth of an interval of the next run" in dropped.reason


def test_a_catch_up_a_tenth_of_an_interval_or_more_before_the_next_run_is_kept() -> None:
    jobs = [every("a-first", 100), every("b-second", 100)]
    last = START - timedelta(seconds=110)
    plans = plan_jobs(jobs, {job.name: ran(job, last) for job in jobs}, 1, START, 160)  # b at START+80s: 10 s before
    assert plans["b-second"].first_fire == START + timedelta(seconds=80)
    assert plans["b-second"].first_nominal == START - timedelta(seconds=10)
