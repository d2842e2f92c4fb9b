"""Triggers driven with explicit datetimes: grids, weekday numbers, the jitter law, offsets, nominal times.

Nothing here sleeps or patches ``datetime``: every call takes ``now`` (and the
previous fire time) as arguments, the way APScheduler calls a trigger.

Datetimes in a ``ZoneInfo`` zone are compared after ``astimezone(UTC)``:
subtracting two datetimes that share a tzinfo is wall-clock arithmetic in
Python and would hide (or invent) an hour at every DST change.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.config.spec import HttpTarget, JobSpec, Schedule, ScheduleKind
from scheduler.timing.crontab import CronGrid, CronSyntaxError, parse_cron
from scheduler.timing.triggers import (
    NonDriftingTrigger,
    build_trigger,
    grid_trigger,
    initial_offset,
    jitter_offset,
    next_fire_times,
    shortest_gap_seconds,
)

PRAGUE = ZoneInfo("Europe/Prague")
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday
SEED = 20260105
MINUTE = timedelta(seconds=60)
IN_2026 = datetime(2026, 6, 1, tzinfo=UTC)  # the DST dates the gap cases name are 2026's


def every(seconds: int) -> Schedule:
    return Schedule(kind=ScheduleKind.EVERY, interval_seconds=seconds)


def daily(*times: str, tz: str = "UTC") -> Schedule:
    return Schedule(kind=ScheduleKind.DAILY, times=tuple(time.fromisoformat(t) for t in times), timezone=tz)


def cron(expression: str, tz: str = "UTC") -> Schedule:
    return Schedule(kind=ScheduleKind.CRON, cron=expression, timezone=tz)


def job(name: str, schedule: Schedule, *, jitter: int = 0, offset_max: int = 0) -> JobSpec:
    return JobSpec(
        name=name, line=1, schedule=schedule, target=HttpTarget("POST", "http://app.test/api/x"),
        jitter_seconds=jitter, initial_offset_max_seconds=offset_max,
    )


def drive(trigger: object, runs: int, now: datetime = START) -> list[datetime]:
    """Fire times as APScheduler produces them: previous = last fire, now = that fire time."""
    fires: list[datetime] = []
    fire = trigger.get_next_fire_time(None, now)  # type: ignore[attr-defined]
    while len(fires) < runs:
        assert fire is not None
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)  # type: ignore[attr-defined]
    return fires


def utc(moments: list[datetime]) -> list[datetime]:
    return [moment.astimezone(UTC) for moment in moments]


def weekday_dates(first: datetime, count: int, local_time: time, tz: ZoneInfo) -> list[datetime]:
    """Independent expectation: ``local_time`` in ``tz`` on each Monday-Friday from ``first``'s date, in UTC."""
    result: list[datetime] = []
    day = first.date()
    while len(result) < count:
        if day.weekday() < 5:
            moment = datetime.combine(day, local_time, tzinfo=tz).astimezone(UTC)
            if moment >= first:
                result.append(moment)
        day += timedelta(days=1)
    return result


# -- trigger mapping ------------------------------------------------------------


def test_every_maps_to_an_interval_trigger_starting_at_start() -> None:
    grid = grid_trigger(every(900), START)
    assert isinstance(grid, IntervalTrigger)
    assert grid.interval == timedelta(seconds=900)
    assert grid.start_date == START

    fires = next_fire_times(build_trigger(job("sync", every(900)), START, SEED), START, 4)
    assert fires == [START + timedelta(seconds=900 * k) for k in range(4)]  # the first run exactly at start


def test_every_first_fire_after_start_is_the_next_grid_point() -> None:
    trigger = build_trigger(job("sync", every(900)), START, SEED)
    assert trigger.get_next_fire_time(None, START + timedelta(seconds=1)) == START + timedelta(seconds=900)
    assert trigger.get_next_fire_time(None, START - timedelta(days=1)) == START  # never before start


def test_daily_with_two_times_fires_at_each_listed_time_in_utc() -> None:
    grid = grid_trigger(daily("07:00", "13:00"), START)
    assert isinstance(grid, CronGrid)
    assert [expression.text for expression in grid.expressions] == ["0 7 * * *", "0 13 * * *"]
    fires = utc(next_fire_times(build_trigger(job("twice", daily("07:00", "13:00")), START, SEED), START, 6))
    expected = [
        datetime(2026, 1, day, hour, 0, tzinfo=UTC) for day in (5, 6, 7) for hour in (7, 13)
    ]
    assert fires == expected


@pytest.mark.parametrize(
    ("now", "expected_utc"),
    [
        (datetime(2026, 1, 14, 12, 0, tzinfo=UTC), datetime(2026, 1, 15, 6, 0, tzinfo=UTC)),  # CET, UTC+1
        (datetime(2026, 7, 14, 12, 0, tzinfo=UTC), datetime(2026, 7, 15, 5, 0, tzinfo=UTC)),  # CEST, UTC+2
    ],
    ids=["winter", "summer"],
)
def test_daily_in_prague_fires_at_local_seven(now: datetime, expected_utc: datetime) -> None:
    trigger = build_trigger(job("morning", daily("07:00", tz="Europe/Prague")), now, SEED)
    first = trigger.get_next_fire_time(None, now)
    assert first is not None
    assert first.astimezone(UTC) == expected_utc
    local = first.astimezone(PRAGUE)
    assert (local.hour, local.minute) == (7, 0)


def test_daily_in_prague_follows_the_spring_change() -> None:
    # Clocks go forward on Sunday 2026-03-29: 07:00 local moves from 06:00 to 05:00 UTC.
    now = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    fires = utc(next_fire_times(build_trigger(job("morning", daily("07:00", tz="Europe/Prague")), now, SEED), now, 4))
    assert fires == [
        datetime(2026, 3, 28, 6, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 31, 5, 0, tzinfo=UTC),
    ]


def test_cron_weekdays_use_standard_numbers_monday_to_friday() -> None:
    trigger = build_trigger(job("nightly", cron("30 2 * * 1-5", tz="Europe/Prague")), START, SEED)
    fires = next_fire_times(trigger, START, 10)
    local = [fire.astimezone(PRAGUE) for fire in fires]
    assert [moment.weekday() for moment in local] == [0, 1, 2, 3, 4] * 2  # Monday..Friday, twice
    assert all((moment.hour, moment.minute) == (2, 30) for moment in local)
    assert utc(fires) == weekday_dates(START, 10, time(2, 30), PRAGUE)
    assert fires[0].astimezone(UTC) == datetime(2026, 1, 5, 1, 30, tzinfo=UTC)  # CET: 02:30 local = 01:30 UTC


@pytest.mark.parametrize("sunday", ["0", "7"])
def test_cron_zero_and_seven_are_sunday(sunday: str) -> None:
    trigger = build_trigger(job("weekly", cron(f"0 12 * * {sunday}")), START, SEED)
    fires = next_fire_times(trigger, START, 3)
    assert [fire.weekday() for fire in fires] == [6, 6, 6]
    assert fires[0] == datetime(2026, 1, 11, 12, 0, tzinfo=UTC)


def test_cron_needs_five_fields() -> None:
    with pytest.raises(CronSyntaxError, match="5 fields"):
        parse_cron("30 2 * *")


@pytest.mark.parametrize(
    ("schedule", "start", "expected_first_utc"),
    [
        (daily("07:00", "13:00"), datetime(2026, 1, 5, 7, 0, 1, tzinfo=UTC), datetime(2026, 1, 5, 13, 0, tzinfo=UTC)),
        (daily("07:00", "13:00"), datetime(2026, 1, 5, 13, 30, tzinfo=UTC), datetime(2026, 1, 6, 7, 0, tzinfo=UTC)),
        # Friday 03:00 Prague is after that day's 02:30: the next run is Monday.
        (cron("30 2 * * 1-5", tz="Europe/Prague"), datetime(2026, 1, 9, 2, 0, tzinfo=UTC),
         datetime(2026, 1, 12, 1, 30, tzinfo=UTC)),
    ],
    ids=["daily-same-day", "daily-next-day", "cron-next-monday"],
)
def test_daily_and_cron_never_fire_before_start(schedule: Schedule, start: datetime, expected_first_utc: datetime) -> None:
    trigger = build_trigger(job("grid", schedule), start, SEED)
    early = start - timedelta(days=3)  # asked long before the service's start
    fires = next_fire_times(trigger, early, 5)
    assert fires[0].astimezone(UTC) == expected_first_utc
    assert all(fire >= start for fire in fires)


# -- weekday fields (cron's numbers, names, ranges that end on Sunday) --------------------


def weekdays_of(field: str) -> set[int]:
    """The weekdays (Python's: Monday = 0) a day-of-week field fires on over three weeks."""
    grid = CronGrid((parse_cron(f"0 12 * * {field}"),), UTC, START)
    fires = next_fire_times(NonDriftingTrigger(grid, "w", 0, SEED), START, 22)
    assert len(fires) == 22 and fires[-1] >= START + timedelta(days=21)  # the three weeks are covered
    return {fire.weekday() for fire in fires if fire < START + timedelta(days=21)}


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("1-5", {0, 1, 2, 3, 4}),
        ("0", {6}),
        ("7", {6}),
        ("5-7", {4, 5, 6}),
        ("5-0", {4, 5, 6}),
        ("*/2", {6, 1, 3, 5}),
        ("1-5/2", {0, 2, 4}),
        ("0,6", {6, 5}),
        ("mon,3", {0, 2}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("Sat,SUN", {5, 6}),
        ("fri-sun", {4, 5, 6}),
        ("7/2", {6}),
    ],
)
def test_weekday_fields_mean_what_cron_means(field: str, days: set[int]) -> None:
    assert weekdays_of(field) == days


@pytest.mark.parametrize("field", ["8", "3-1", "1-9", "1/0", "xyz"])
def test_invalid_weekday_fields_raise(field: str) -> None:
    with pytest.raises(CronSyntaxError, match="day-of-week field"):
        parse_cron(f"0 0 * * {field}")


# -- the jitter law -------------------------------------------------------------------


def test_non_drifting_jitter_stays_in_window_and_keeps_the_period() -> None:
    trigger = NonDriftingTrigger(grid_trigger(every(60), START), "minutely", 30, SEED)
    fires = drive(trigger, 1000)
    offsets = []
    for k, fire in enumerate(fires):
        nominal = START + MINUTE * k
        assert nominal <= fire <= nominal + timedelta(seconds=30), f"run {k}: {fire} outside its window"
        offsets.append((fire - nominal).total_seconds())
    mean_period = (fires[-1] - fires[0]).total_seconds() / (len(fires) - 1)
    assert abs(mean_period - 60) <= 0.6
    # The jitter is really applied, spread over the whole window.
    assert min(offsets) < 3 and max(offsets) > 27
    assert 12 < statistics.mean(offsets) < 18


def test_apscheduler_native_jitter_drifts() -> None:
    # The contrast that justifies NonDriftingTrigger: APScheduler adds the jitter
    # to the previous (already jittered) fire time, so delays accumulate.
    native = IntervalTrigger(seconds=60, jitter=30, start_date=START, timezone=UTC)
    fires = drive(native, 1000)
    mean_period = (fires[-1] - fires[0]).total_seconds() / (len(fires) - 1)
    assert mean_period > 70
    assert fires[-1] > START + MINUTE * 999 + timedelta(hours=3)  # hours behind its grid


def test_same_seed_same_fire_times_different_seed_different() -> None:
    def fires(seed: int, name: str = "minutely") -> list[datetime]:
        return drive(NonDriftingTrigger(grid_trigger(every(60), START), name, 30, seed), 50)

    assert fires(SEED) == fires(SEED)
    assert fires(SEED) != fires(SEED + 1)
    assert fires(SEED) != fires(SEED, name="another-job")


def test_offset_is_a_pure_function_of_seed_name_and_nominal() -> None:
    nominal = START + timedelta(hours=5)
    offset = jitter_offset(SEED, "job", nominal, 30)
    assert timedelta(0) <= offset <= timedelta(seconds=30)
    assert jitter_offset(SEED, "job", nominal.astimezone(PRAGUE), 30) == offset  # the instant, not its zone
    assert jitter_offset(SEED, "job", nominal, 0) == timedelta(0)


def test_each_fire_time_handed_out_carries_its_nominal_time() -> None:
    trigger = NonDriftingTrigger(grid_trigger(every(60), START), "minutely", 30, SEED)
    fires = drive(trigger, 1000)
    assert [trigger.nominal_of(fire) for fire in fires] == [START + MINUTE * k for k in range(1000)]
    assert trigger.nominal_of(START + timedelta(seconds=7)) is None  # never handed out: not guessed


def test_daily_with_jitter_stays_on_its_grid() -> None:
    schedule = daily("07:00", "13:00")
    trigger = build_trigger(job("twice", schedule, jitter=3600), START, SEED)
    fires = drive(trigger, 400)
    nominals = [datetime(2026, 1, 5, hour, tzinfo=UTC) + timedelta(days=k) for k in range(200) for hour in (7, 13)]
    offsets = []
    for fire, nominal in zip(fires, nominals, strict=True):
        assert nominal <= fire <= nominal + timedelta(hours=1)
        assert trigger.nominal_of(fire) == nominal
        offsets.append((fire - nominal).total_seconds())
    assert max(offsets) - min(offsets) > 3000  # jitter really spread over the hour


def test_cron_with_jitter_stays_on_its_grid_across_dst() -> None:
    # 300 weekday runs from January 2026 into 2027: both DST changes, the UTC
    # time of the grid moves between 01:30 and 00:30, the fires follow it.
    schedule = cron("30 2 * * 1-5", tz="Europe/Prague")
    trigger = build_trigger(job("nightly", schedule, jitter=300), START, SEED)
    fires = drive(trigger, 300)
    nominals = weekday_dates(START, 300, time(2, 30), PRAGUE)
    for fire, nominal in zip(utc(fires), nominals, strict=True):
        assert nominal <= fire <= nominal + timedelta(seconds=300)
        assert trigger.nominal_of(fire).astimezone(UTC) == nominal
    assert {nominal.hour for nominal in nominals} == {0, 1}  # summer and winter both covered


# -- initial offset -------------------------------------------------------------------


def test_initial_offset_puts_the_first_run_near_the_end_of_the_first_interval() -> None:
    spec = job("bq-metadata-refresh", every(14400), offset_max=900)
    first = build_trigger(spec, START, SEED).get_next_fire_time(None, START)
    assert first is not None
    assert START + timedelta(seconds=14400 - 900) <= first <= START + timedelta(seconds=14400)
    assert first == START + timedelta(seconds=14400 - initial_offset(SEED, spec.name, 900))
    # Then the interval, measured from that first run.
    assert next_fire_times(build_trigger(spec, START, SEED), START, 3)[1:] == [
        first + timedelta(seconds=14400),
        first + timedelta(seconds=28800),
    ]


def test_initial_offset_depends_only_on_seed_and_name() -> None:
    spec = job("bq-metadata-refresh", every(14400), offset_max=900)
    later_start = START + timedelta(days=3, seconds=17)

    def lead(seed: int, start: datetime, name: str = spec.name) -> timedelta:
        first = build_trigger(job(name, every(14400), offset_max=900), start, seed).get_next_fire_time(None, start)
        assert first is not None
        return first - start

    assert lead(SEED, START) == lead(SEED, later_start)  # the start does not change the offset
    assert len({lead(seed, START) for seed in range(20)}) > 1  # the seed does
    assert len({lead(SEED, START, name=f"job-{n}") for n in range(20)}) > 1  # and so does the name
    assert initial_offset(SEED, spec.name, 900) == initial_offset(SEED, spec.name, 900)


def test_initial_offset_with_maximum_zero_is_zero() -> None:
    assert initial_offset(SEED, "any", 0) == 0
    first = build_trigger(job("plain", every(14400)), START, SEED).get_next_fire_time(None, START)
    assert first == START  # no offset_max: the first run at start


def test_initial_offset_larger_than_the_interval_is_clamped() -> None:
    firsts = []
    for seed in range(300):
        trigger = build_trigger(job("short", every(600), offset_max=900), START, seed)
        first = trigger.get_next_fire_time(None, START - timedelta(hours=1))  # asked early: the grid's own first point
        assert first is not None
        assert trigger.get_next_fire_time(None, START) == first
        assert START <= first <= START + timedelta(seconds=600)
        firsts.append(first)
    # The offsets use the whole clamped range (an unclamped 900 s would land before start).
    assert min(firsts) < START + timedelta(seconds=100)
    assert max(firsts) > START + timedelta(seconds=500)


# -- misfires and coalescing -------------------------------------------------------------


def test_after_a_long_pause_next_fires_stay_on_the_grid() -> None:
    trigger = NonDriftingTrigger(grid_trigger(every(60), START), "minutely", 30, SEED)
    first = trigger.get_next_fire_time(None, START)
    assert first is not None
    now = START + timedelta(days=1, seconds=17, microseconds=500)  # the process was paused for a day

    # APScheduler's Job._get_run_times: every due time from the last fire, then coalesced to one run.
    due: list[datetime] = []
    fire = trigger.get_next_fire_time(first, now)
    while fire is not None and fire <= now:
        due.append(fire)
        fire = trigger.get_next_fire_time(fire, now)
    assert fire is not None

    nominals = [START + MINUTE * k for k in range(1, len(due) + 1)]
    assert due == [trigger.fire_time(nominal) for nominal in nominals]  # consecutive grid times, none skipped
    # Coalesced, only the last runs: it is told its own slot (the ledger keeps the newest fire times).
    assert trigger.nominal_of(due[-1]) == nominals[-1]
    # Runs nominal at +1 min .. +1439 min were due for sure; the one nominal at +1 day only if its offset was <= 17 s.
    assert len(due) == 1439 + (trigger.fire_time(START + timedelta(days=1)) <= now)
    assert due[0] == trigger.fire_time(START + MINUTE)  # the first missed run, not "now"
    next_nominal = trigger.nominal_of(fire)
    assert next_nominal == nominals[-1] + MINUTE
    assert fire > now


def test_nominal_after_is_exact_far_into_the_future() -> None:
    trigger = NonDriftingTrigger(grid_trigger(every(1), START), "each-second", 0, SEED)
    ten_years = timedelta(days=3652)
    assert trigger.nominal_after(START + ten_years) == START + ten_years + timedelta(seconds=1)
    assert trigger.nominal_after(START + ten_years - timedelta(microseconds=1)) == START + ten_years
    assert trigger.nominal_after(START + ten_years + timedelta(microseconds=999_999)) == START + ten_years + timedelta(seconds=1)
    assert trigger.nominal_after(START - timedelta(days=1)) == START

    seven = NonDriftingTrigger(grid_trigger(every(7), START), "each-7s", 0, SEED)
    far = START + timedelta(seconds=7 * 45_000_000)  # ~10 years of 7-second steps
    assert seven.nominal_after(far - timedelta(microseconds=1)) == far
    assert seven.nominal_after(far) == far + timedelta(seconds=7)
    assert seven.get_next_fire_time(far, far + timedelta(days=30)) == far + timedelta(seconds=7)


def test_nominal_after_is_strictly_after_for_daily_and_cron() -> None:
    grid = NonDriftingTrigger(grid_trigger(daily("07:00", "13:00"), START), "twice", 0, SEED)
    seven = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert grid.nominal_after(seven) == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    assert grid.nominal_after(seven - timedelta(microseconds=1)) == seven


# -- shortest gap, next fire times --------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        (every(900), 900.0),
        (every(14400), 14400.0),
        (daily("03:00"), 86400.0),
        (daily("07:00", "13:00"), 21600.0),
        (daily("23:30", "00:15"), 2700.0),  # across midnight
        (cron("*/5 * * * *"), 300.0),
        (cron("30 2 * * 1-5"), 86400.0),
        (cron("30 2 * * 1-5", tz="Europe/Prague"), 86400.0),
        (cron("0 9 * * 1"), 604800.0),
    ],
)
def test_shortest_gap_seconds(schedule: Schedule, gap: float) -> None:
    assert shortest_gap_seconds(schedule, IN_2026) == gap


def test_next_fire_times_count_and_order() -> None:
    trigger = build_trigger(job("minutely", every(60), jitter=30), START, SEED)
    fires = next_fire_times(trigger, START, 25)
    assert len(fires) == 25
    assert all(earlier < later for earlier, later in pairwise(fires))
    assert next_fire_times(trigger, START, 0) == []
    assert next_fire_times(trigger, START, 10) == fires[:10]  # the same plan, whatever the count


# -- DST autumn change (Europe/Prague, Sunday 2026-10-25: 03:00 CEST -> 02:00 CET) ------------
# These describe the correct behaviour; see the bug report in the hand-off.


def test_daily_in_the_repeated_autumn_hour_keeps_moving_forward() -> None:
    start = datetime(2026, 10, 23, 0, 0, tzinfo=UTC)
    trigger = build_trigger(job("night", daily("02:30", tz="Europe/Prague")), start, SEED)
    fires = utc(next_fire_times(trigger, start, 5))
    assert all(earlier < later for earlier, later in pairwise(fires)), fires
    assert fires[-1] >= datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # it gets past the change


def test_a_daily_time_in_the_repeated_autumn_hour_runs_once_that_day() -> None:
    start = datetime(2026, 10, 23, 0, 0, tzinfo=UTC)
    trigger = build_trigger(job("night", daily("02:30", tz="Europe/Prague")), start, SEED)
    fires = utc(next_fire_times(trigger, start, 5))
    assert fires[:4] == [
        datetime(2026, 10, 23, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the first 02:30 of the change day; not again at 01:30 UTC
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]


def test_an_hourly_cron_still_runs_in_both_repeated_hours() -> None:
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    trigger = build_trigger(job("hourly", cron("15 * * * *", tz="Europe/Prague")), start, SEED)
    fires = utc(next_fire_times(trigger, start, 4))
    assert fires == [datetime(2026, 10, 24, 23, 15, tzinfo=UTC) + timedelta(hours=k) for k in range(4)]


def test_jitter_in_the_repeated_autumn_hour_stays_in_its_window() -> None:
    start = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
    trigger = build_trigger(job("hourly", cron("15 * * * *", tz="Europe/Prague"), jitter=600), start, SEED)
    fires = utc(next_fire_times(trigger, start, 12))
    assert all(earlier < later for earlier, later in pairwise(fires)), fires
    for fire in fires:  # Prague is a whole number of hours from UTC: nominal times are hh:15 UTC
        nominal = fire.replace(minute=15, second=0, microsecond=0)
        assert nominal <= fire <= nominal + timedelta(seconds=600), fire


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        (daily("03:00", tz="Europe/Prague"), 82800.0),  # 2026-03-29: 02:00 UTC -> 01:00 UTC
        (cron("0 1-23/2 * * *", tz="Europe/Prague"), 3600.0),  # 2026-03-29: 01:00 CET -> 03:00 CEST
    ],
)
def test_shortest_gap_includes_dst(schedule: Schedule, gap: float) -> None:
    assert shortest_gap_seconds(schedule, IN_2026) == gap


def test_shortest_gap_of_a_daily_time_in_the_repeated_hour_is_not_zero() -> None:
    # 02:30 happens twice on 2026-10-25; any jitter would be rejected with a gap of 0.
    assert shortest_gap_seconds(daily("02:30", tz="Europe/Prague"), IN_2026) >= 3600


def test_gaps_are_sampled_in_the_year_asked_about_not_a_fixed_one() -> None:
    # Moscow kept DST until 2010: that spring, "every odd hour" had a 1-hour gap;
    # since 2011 it has none. A hard-coded sampling year cannot give both.
    schedule = cron("0 1-23/2 * * *", tz="Europe/Moscow")
    assert shortest_gap_seconds(schedule, datetime(2010, 2, 1, tzinfo=UTC)) == 3600.0
    assert shortest_gap_seconds(schedule, datetime(2026, 2, 1, tzinfo=UTC)) == 7200.0
