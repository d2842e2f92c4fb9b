"""Cron and daily schedules against an independent oracle of Debian cron (tests/scheduler/cron_oracle.py).

Thousands of generated expressions (lists, ranges, steps, names in any case,
both day fields restricted, L/LW/nW/nL/n#k) in five zones, compared run by run
in windows around both DST changes of a year and in ordinary windows (a leap
February's end, a mid-year week). The quick part runs in the unit loop; the
large sample is marked integration.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.config.spec import Schedule, ScheduleKind
from scheduler.timing.crontab import CronSyntaxError, parse_cron
from scheduler.timing.triggers import schedule_trigger
from tests.scheduler import cron_oracle

ZONES = ("UTC", "Europe/Prague", "America/New_York", "Australia/Lord_Howe", "America/Santiago")
YEAR = 2027
# The wall-clock hours where each zone's clock jumps: generated hour fields lean on them.
HOT_HOURS = {
    "UTC": (0, 12, 23),
    "Europe/Prague": (1, 2, 3),
    "America/New_York": (0, 1, 2, 3),
    "Australia/Lord_Howe": (1, 2, 3),
    "America/Santiago": (22, 23, 0, 1),
}
ORDINARY_WINDOWS = (
    (datetime(2028, 2, 24, tzinfo=UTC), datetime(2028, 3, 2, tzinfo=UTC)),  # a leap February's end: L, LW, nW, nL
    (datetime(2027, 6, 27, tzinfo=UTC), datetime(2027, 7, 3, tzinfo=UTC)),  # a month's end in mid-year
)
MAX_RUNS = 3000


def offset_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    """The instants (UTC) at which ``zone``'s offset changes in ``year``, to the quarter hour."""
    changes = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment.year == year:
        moment += timedelta(minutes=15)
        now = moment.astimezone(zone).utcoffset()
        if now != offset:
            changes.append(moment)
            offset = now
    return changes


def windows(zone_name: str) -> list[tuple[datetime, datetime]]:
    changes = offset_changes(ZoneInfo(zone_name), YEAR)
    return [(change - timedelta(hours=30), change + timedelta(hours=30)) for change in changes] + list(ORDINARY_WINDOWS)


ZONE_WINDOWS = {zone: windows(zone) for zone in ZONES}


def test_the_windows_hold_both_changes_of_each_dst_zone() -> None:
    for zone in ZONES[1:]:
        assert len(ZONE_WINDOWS[zone]) == 4, zone
    assert len(ZONE_WINDOWS["UTC"]) == 2


# -- generated expressions ----------------------------------------------------------------------------


def _written(rng: random.Random, value: int, names: tuple[str, ...], first: int) -> str:
    if names and rng.random() < 0.4:
        name = names[value - first] if value - first < len(names) else names[0]  # 7 is Sunday too
        return rng.choice((name, name.upper(), name.capitalize()))
    return str(value)


def _term(rng: random.Random, low: int, high: int, hot: tuple[int, ...], names: tuple[str, ...] = (), first: int = 0) -> str:
    # Plain ranges stay short (a minute range of 40 values would only make the comparison slower).
    width = min(12, high - low)
    def value() -> int:
        return rng.choice(hot) if hot and rng.random() < 0.5 else rng.randint(low, high)

    shape = rng.random()
    if shape < 0.45:
        return _written(rng, value(), names, first)
    if shape < 0.7:
        a = value()
        b = min(high, a + rng.randint(0, width))
        return f"{_written(rng, a, names, first)}-{_written(rng, b, names, first)}"
    if shape < 0.85:
        a, b = sorted((value(), value()))
        return f"{_written(rng, a, names, first)}-{_written(rng, b, names, first)}/{rng.randint(1, 4)}"
    if shape < 0.93:
        return f"*/{rng.randint(2, max(2, (high - low) // 2))}"
    return f"{_written(rng, value(), names, first)}/{rng.randint(2, 5)}"


def _field(rng: random.Random, star: float, low: int, high: int, hot: tuple[int, ...] = (),
           names: tuple[str, ...] = (), first: int = 0) -> str:
    if rng.random() < star:
        return "*"
    return ",".join(_term(rng, low, high, hot, names, first) for _ in range(rng.choice((1, 1, 1, 2, 3))))


def generate(rng: random.Random, zone: str) -> str:
    minute = _field(rng, 0.03, 0, 59, (0, 15, 30, 45, 59))
    if minute != "*" and rng.random() < 0.1:
        minute = f"*/{rng.choice((5, 10, 15, 20, 30))}"
    hour = _field(rng, 0.2, 0, 23, HOT_HOURS[zone])
    if rng.random() < 0.15:
        hour = f"*/{rng.choice((2, 3, 5))}"
    day = _field(rng, 0.45, 1, 31, (1, 15, 28, 29, 30, 31))
    special = rng.random()
    if special < 0.08:
        day = rng.choice(("L", "LW", f"{rng.randint(1, 31)}W", f"1,{rng.randint(2, 31)}W", "L,15"))
    month = _field(rng, 0.75, 1, 12, (2, 3, 4, 6, 7, 9, 10, 11), cron_oracle.MONTH_NAMES, 1)
    weekday = _field(rng, 0.45, 0, 7, (0, 1, 5, 6, 7), cron_oracle.DAY_NAMES, 0)
    special = rng.random()
    if special < 0.06:
        weekday = rng.choice((f"{rng.randint(0, 7)}L", f"{rng.randint(0, 7)}#{rng.randint(1, 5)}", "fri-sun", "Mon-Fri", "1#1,5L"))
    if rng.random() < 0.02:
        return rng.choice(list(cron_oracle.ALIASES))
    return f"{minute} {hour} {day} {month} {weekday}"


def trigger_runs(expression: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """The nominal times the service's trigger gives in [start, end]."""
    trigger = schedule_trigger(Schedule(ScheduleKind.CRON, cron=expression, timezone=zone), start, "probe", 0, 0)
    runs: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end and len(runs) < MAX_RUNS:
        runs.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return runs


def compare(count: int, seed: int) -> tuple[list[str], int, int]:
    """(mismatches, runs compared, cases where ORing the day fields changes the answer)."""
    rng = random.Random(seed)
    mismatches: list[str] = []
    runs_compared = 0
    or_matters = 0
    for index in range(count):
        zone = ZONES[index % len(ZONES)]
        expression = generate(rng, zone)
        try:
            parse_cron(expression)
        except CronSyntaxError as exc:
            assert str(exc).startswith("never fires"), f"{expression!r} refused: {exc}"
            continue
        parsed = cron_oracle.parse(expression)
        both_days_restricted = not (parsed.days_star or parsed.weekdays_star)
        for start, end in ZONE_WINDOWS[zone]:
            expected = cron_oracle.times_between(expression, ZoneInfo(zone), start, end)[:MAX_RUNS]
            got = trigger_runs(expression, zone, start, end)
            runs_compared += len(expected)
            if got != expected:
                missing = sorted(set(expected) - set(got))[:3]
                extra = sorted(set(got) - set(expected))[:3]
                mismatches.append(f"{expression!r} in {zone} from {start:%Y-%m-%d %H:%M}: missing {missing}, extra {extra}")
            if both_days_restricted:
                anded = replace(parsed, days_star=True)
                or_matters += cron_oracle.times_between_parsed(anded, ZoneInfo(zone), start, end)[:MAX_RUNS] != expected
    return mismatches, runs_compared, or_matters


def test_generated_expressions_agree_with_cron() -> None:
    mismatches, runs, or_matters = compare(100, seed=9)
    assert not mismatches, "\n".join(mismatches[:10])
    assert runs > 5000  # not vacuous: thousands of runs compared
    assert or_matters > 5  # ANDing the day fields would have failed this test


@pytest.mark.integration
def test_thousands_of_generated_expressions_agree_with_cron() -> None:
    mismatches, runs, or_matters = compare(2000, seed=20270327)
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:10])
    assert runs > 50_000
    assert or_matters > 50
