"""An independent crontab oracle, written from cron's definition, for tests and bench/cron_agreement.py.

It shares no code with scheduler.timing (nor with cronsim): it parses the five
fields itself, walks the wall-clock minutes that match, and places each on
the time line with the rules of Debian cron (cron.c, "time changes of less
than three hours"):

* day-of-month and day-of-week: when either field starts with ``*`` both must
  match, otherwise either may (``0 0 1 * 1`` is every 1st and every Monday);
* a "wildcard job" (minute or hour field starting with ``*``) runs at each
  minute the clock shows that matches: both copies of a repeated wall time,
  none of a skipped one;
* a "fixed-time job" (neither starts with ``*``) runs a skipped wall time at
  the moment the clock jumps (the first minute the clock shows after it), and
  a repeated wall time once, at its first occurrence.

The extensions cron users write are defined here too: ``L`` (last day of the
month), ``LW`` (its last weekday), ``nW`` (the weekday nearest day n, in the
same month), ``nL`` (the last weekday n of the month), ``n#k`` (the k-th
weekday n), and the ``@`` aliases.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
MINUTE = timedelta(minutes=1)


@dataclass
class Cron:
    minutes: set[int] = field(default_factory=set)
    hours: set[int] = field(default_factory=set)
    months: set[int] = field(default_factory=set)
    days: set[int] = field(default_factory=set)
    last_day: bool = False
    last_weekday_of_month: bool = False
    nearest: set[int] = field(default_factory=set)
    weekdays: set[int] = field(default_factory=set)  # 0 = Sunday
    last_weekdays: set[int] = field(default_factory=set)
    nth_weekdays: set[tuple[int, int]] = field(default_factory=set)
    days_star: bool = False
    weekdays_star: bool = False
    wildcard_job: bool = False


def _number(text: str, names: tuple[str, ...], first: int) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + first
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _values(text: str, low: int, high: int, names: tuple[str, ...] = (), first_name: int = 0, sunday: bool = False) -> set[int]:
    values: set[int] = set()
    for term in text.split(","):
        body, slash, step_text = term.partition("/")
        step = int(step_text) if slash else 1
        if step < 1:
            raise ValueError(term)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            left, right = body.split("-")
            start, end = _number(left, names, first_name), _number(right, names, first_name)
            if sunday and end == 0 and start > 0:
                end = 7
        else:
            start = _number(body, names, first_name)
            end = high if slash else start
        if not (low <= start <= end <= high):
            raise ValueError(term)
        values.update(range(start, end + 1, step))
    return values


def parse(expression: str) -> Cron:
    text = " ".join(expression.split())
    if text.startswith("@"):
        text = ALIASES[text.lower()]
    minute, hour, day, month, weekday = text.split()
    cron = Cron()
    cron.minutes = _values(minute, 0, 59)
    cron.hours = _values(hour, 0, 23)
    cron.months = _values(month, 1, 12, MONTH_NAMES, 1)
    plain_days = []
    for term in day.split(","):
        upper = term.upper()
        if upper == "L":
            cron.last_day = True
        elif upper == "LW":
            cron.last_weekday_of_month = True
        elif upper.endswith("W"):
            cron.nearest.add(int(upper[:-1]))
        else:
            plain_days.append(term)
    if plain_days:
        cron.days = _values(",".join(plain_days), 1, 31)
    plain_weekdays = []
    for term in weekday.split(","):
        if "#" in term:
            name, nth = term.split("#")
            cron.nth_weekdays.add((_number(name, DAY_NAMES, 0) % 7, int(nth)))
        elif term.upper().endswith("L"):
            cron.last_weekdays.add(_number(term[:-1], DAY_NAMES, 0) % 7)
        else:
            plain_weekdays.append(term)
    if plain_weekdays:
        cron.weekdays = {value % 7 for value in _values(",".join(plain_weekdays), 0, 7, DAY_NAMES, 0, sunday=True)}
    cron.days_star = day.startswith("*")
    cron.weekdays_star = weekday.startswith("*")
    cron.wildcard_job = minute.startswith("*") or hour.startswith("*")
    return cron


def _is_weekday(day: date) -> bool:
    return day.weekday() < 5


def day_matches(cron: Cron, day: date) -> bool:
    length = calendar.monthrange(day.year, day.month)[1]
    by_date = day.day in cron.days or (cron.last_day and day.day == length)
    if cron.last_weekday_of_month:
        last = date(day.year, day.month, length)
        while not _is_weekday(last):
            last -= timedelta(days=1)
        by_date = by_date or day == last
    for wanted in cron.nearest:
        if wanted > length:
            continue
        target = date(day.year, day.month, wanted)
        # The nearest Monday-Friday to the target without leaving its month.
        candidates = [target + timedelta(days=shift) for shift in (0, -1, 1, -2, 2)]
        nearest = next(
            candidate for candidate in candidates if candidate.month == day.month and _is_weekday(candidate)
        )
        by_date = by_date or day == nearest
    sunday_first = (day.weekday() + 1) % 7
    by_weekday = (
        sunday_first in cron.weekdays
        or (sunday_first in cron.last_weekdays and day.day + 7 > length)
        or (sunday_first, (day.day - 1) // 7 + 1) in cron.nth_weekdays
    )
    if cron.days_star or cron.weekdays_star:
        return by_date and by_weekday
    return by_date or by_weekday


def _shown(wall: datetime, zone: tzinfo) -> bool:
    """Whether the clock in ``zone`` ever shows ``wall`` (naive)."""
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def instants(cron: Cron, wall: datetime, zone: tzinfo) -> list[datetime]:
    """When cron runs a job for the matching wall time ``wall`` (naive, in ``zone``)."""
    if not _shown(wall, zone):
        if cron.wildcard_job:
            return []
        after = wall
        while not _shown(after, zone):
            after += MINUTE
        return [after.replace(tzinfo=zone).astimezone(UTC)]
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second or not cron.wildcard_job:
        return [min(first, second)]
    return sorted({first, second})


def times_between(expression: str, zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """Every run of ``expression`` in ``zone`` at an instant in [start, end], in UTC."""
    return times_between_parsed(parse(expression), zone, start, end)


def times_between_parsed(cron: Cron, zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    first_day = (start.astimezone(zone) - timedelta(days=1)).date()
    last_day = (end.astimezone(zone) + timedelta(days=1)).date()
    found: set[datetime] = set()
    day = first_day
    while day <= last_day:
        if day.month in cron.months and day_matches(cron, day):
            for hour in cron.hours:
                for minute in cron.minutes:
                    for moment in instants(cron, datetime.combine(day, time(hour, minute)), zone):
                        if start <= moment <= end:
                            found.add(moment)
        day += timedelta(days=1)
    return sorted(found)
