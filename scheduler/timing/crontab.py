"""Crontab expressions with Debian cron's meaning, on the ``cronsim`` engine.

``cronsim`` (by the author of healthchecks.io, which runs it against millions
of user crontabs) follows Debian/Vixie cron: day-of-month and day-of-week are
ORed when both are restricted, names are case-insensitive anywhere, steps
apply to any range, 0 and 7 are Sunday, and ``L``, ``LW``, ``nL`` and ``n#k``
work. Its Debian mode for "fixed-time" jobs (minute and hour fields not
starting with ``*``) is used as it is: a skipped time runs once at the jump,
a repeated one once, at its first occurrence.

What this module adds is small: the ``@`` aliases, ``nW`` (nearest weekday),
``fri-sun`` style ranges that end on Sunday, refusing what cannot be a
5-field schedule (``@reboot``, a seconds or year field) with a message that
says why, and two corrections the oracle test (tests/scheduler/test_cron_semantics.py)
found in cronsim 2.8: a one-value stepped range (``5-5/2``) is read as
``5/2``, and its elapsed-time mode for wildcard jobs misses runs after
half-hour changes (Lord Howe) and midnight jumps (Santiago). Wildcard jobs
are therefore placed here: cronsim gives plain wall-clock matches, and each
is kept where the clock shows it (per stretch of constant UTC offset).
"""

from __future__ import annotations

import calendar
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from cronsim import CronSim, CronSimError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

FIELD_RULES = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, LW or nW (nearest weekday to day n)"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 (0 and 7 are Sunday) or SUN-SAT, nL (last weekday n of the month) or n#k (k-th weekday n)"),
)

_NEAREST_WEEKDAY = re.compile(r"^(\d{1,2})W$")
_STEPPED_RANGE = re.compile(r"^([0-9A-Z]+)-([0-9A-Z]+)/\d+$")
_NAMES = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))} | {
    name: number for number, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_RANGE_TO_SUNDAY = re.compile(r"^([A-Z]{3}|\d)-(0|SUN)(/\d+)?$")
# Bounds the candidates walked for one answer: the walk over a repeated
# interval or across offset changes takes a few hundred at most.
_MAX_CANDIDATES = 5000
_TICK = timedelta(microseconds=1)


class CronSyntaxError(ValueError):
    """A crontab expression tickless cannot run; the message says which rule it breaks."""


@dataclass(frozen=True)
class CronExpression:
    """A parsed crontab: the five fields handed to cronsim, plus ``nW`` days."""

    text: str  # as written (whitespace normalised)
    fields: tuple[str, str, str, str, str]
    nearest_weekdays: frozenset[int] = frozenset()
    # Debian: both day fields must match when either starts with "*" (taken
    # from the fields as written, before nW terms are set aside).
    days_and: bool = True

    @property
    def fixed_time(self) -> bool:
        """Debian's "fixed-time job": neither minute nor hour starts with ``*``."""
        return not (self.fields[0].startswith("*") or self.fields[1].startswith("*"))


def parse_cron(expression: str) -> CronExpression:
    """Check ``expression`` and return it parsed; CronSyntaxError says what is wrong."""
    text = " ".join(expression.split())
    if not text:
        raise CronSyntaxError("is empty: write 5 fields (minute hour day-of-month month day-of-week) or an @alias")
    if text.startswith("@"):
        alias = text.lower()
        if alias == "@reboot":
            raise CronSyntaxError(
                "@reboot is not supported: it means 'when the cron daemon starts', which is not a time a schedule can "
                "plan (restarts are handled by catch_up); use a 5-field expression or one of " + ", ".join(ALIASES)
            )
        if alias not in ALIASES:
            raise CronSyntaxError(f"unknown alias {text!r}: allowed are " + ", ".join(ALIASES))
        text_fields = ALIASES[alias].split()
    else:
        text_fields = text.split()
    if len(text_fields) == 6:
        raise CronSyntaxError(
            "has 6 fields: cron has 5 (minute hour day-of-month month day-of-week); a seconds or year field is "
            "not crontab syntax and is not supported"
        )
    if len(text_fields) != 5:
        raise CronSyntaxError(f"needs 5 fields (minute hour day-of-month month day-of-week), has {len(text_fields)}")
    minute, hour, day, month, weekday = (_one_value_ranges(field.upper()) for field in text_fields)
    days_and = day.startswith("*") or weekday.startswith("*")
    day, nearest = _split_nearest_weekdays(day)
    weekday = ",".join(_sunday_closes_range(term) for term in weekday.split(","))
    parsed = CronExpression(text, (minute, hour, day, month, weekday), nearest, days_and)
    _check_fields(parsed, text_fields)
    return parsed


def _one_value_ranges(field: str) -> str:
    """``5-5/2`` is just 5: cronsim 2.8 reads a stepped range of one value as ``5/2`` (5 to the end)."""
    terms = []
    for term in field.split(","):
        match = _STEPPED_RANGE.match(term)
        if match and _value(match.group(1)) == _value(match.group(2)):
            term = match.group(1)
        terms.append(term)
    return ",".join(terms)


def _value(text: str) -> int | str:
    return int(text) if text.isdigit() else _NAMES.get(text, text)


def _split_nearest_weekdays(field: str) -> tuple[str, frozenset[int]]:
    """``15W`` terms out of a day-of-month field; cronsim knows ``LW`` but not ``nW``."""
    terms, nearest = [], set()
    for term in field.split(","):
        match = _NEAREST_WEEKDAY.match(term)
        if match:
            day = int(match.group(1))
            if not 1 <= day <= 31:
                raise CronSyntaxError(f"day-of-month {term!r}: nW needs a day 1-31")
            nearest.add(day)
        else:
            terms.append(term)
    return ",".join(terms), frozenset(nearest)


def _sunday_closes_range(term: str) -> str:
    """``fri-sun`` and ``5-0`` mean Friday to Sunday (cron would refuse a range that runs backwards)."""
    match = _RANGE_TO_SUNDAY.match(term)
    if match and match.group(1) not in ("0", "SUN"):
        return f"{match.group(1)}-7{match.group(3) or ''}"
    return term


def _check_fields(parsed: CronExpression, written: list[str]) -> None:
    for index, (name, rule) in enumerate(FIELD_RULES):
        if index == 2 and not parsed.fields[2]:
            continue  # only nW terms: checked above
        probe = ["*"] * 5
        probe[index] = parsed.fields[index]
        try:
            CronSim(" ".join(probe), datetime(2000, 1, 1, tzinfo=UTC))
        except (CronSimError, ValueError, IndexError) as exc:
            raise CronSyntaxError(f"{name} field {written[index]!r} is invalid: allowed {rule}, in lists, ranges and /steps") from exc
    try:
        _engine(parsed, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise CronSyntaxError(f"never fires: no month in {written[3]!r} has day {written[2]!r}") from exc


def nearest_weekday(year: int, month: int, day: int) -> int | None:
    """The weekday (Monday-Friday) nearest to ``day`` inside its month (Quartz's ``nW``); None if the month is shorter."""
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return None
    weekday = date(year, month, day).weekday()
    if weekday == 5:  # Saturday: the Friday before, unless that is in the previous month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, unless that is in the next month
        return day + 1 if day < last else day - 2
    return day


class _Engine(CronSim):
    """cronsim plus ``nW`` days."""

    def __init__(self, parsed: CronExpression, start: datetime) -> None:
        fields = list(parsed.fields)
        if not fields[2]:
            fields[2] = "1"  # a stand-in so cronsim parses; its own days are replaced below
        super().__init__(" ".join(fields), start)
        self.nearest = parsed.nearest_weekdays
        self.day_and = parsed.days_and
        if not parsed.fields[2]:
            self.days = set()

    def match_dom(self, d: date) -> bool:
        if super().match_dom(d):
            return True
        return any(nearest_weekday(d.year, d.month, day) == d.day for day in self.nearest)


def _engine(parsed: CronExpression, start: datetime) -> _Engine:
    return _Engine(parsed, start)


def _offset(zone: tzinfo, moment: datetime) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _offset_change(zone: tzinfo, after: datetime, until: datetime, offset: timedelta) -> datetime | None:
    """The first instant in (after, until] at which ``zone``'s offset is no longer ``offset``, or None.

    Probes a day at a time (no zone changes its offset twice within a day),
    then narrows the change down to the microsecond.
    """
    low = after
    while low < until:
        high = min(low + timedelta(days=1), until)
        if _offset(zone, high) != offset:
            while high - low > timedelta(microseconds=1):
                middle = low + (high - low) / 2
                if _offset(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


@dataclass
class _Cursor:
    """The last answer for one expression, and the engine that gave it (asking for the next one continues it)."""

    asked: datetime  # the answer is the first nominal time strictly after this
    answer: datetime
    engine: _Engine
    offset: timedelta | None  # wildcard jobs: the UTC offset of the engine's wall times


class CronGrid(BaseTrigger):
    """The nominal times of one or more crontab expressions (ORed) in one zone, none before ``start``.

    An APScheduler trigger; tickless reads it through :meth:`nominal_after`.
    Times at the same instant (two daily times both moved to a DST jump) are one run.
    """

    def __init__(self, expressions: tuple[CronExpression, ...], zone: tzinfo, start: datetime | None = None) -> None:
        if not expressions:
            raise ValueError("a cron grid needs at least one expression")
        self.expressions = expressions
        self.zone = zone
        self.start = start.astimezone(UTC) if start is not None else None
        # Runs are asked for in order, so each answer usually continues the
        # previous one's engine (setting up a cronsim engine costs more than a step).
        self._cursors: list[_Cursor | None] = [None] * len(expressions)
        self._lock = threading.Lock()

    def nominal_after(self, moment: datetime) -> datetime | None:
        """The first nominal time strictly after ``moment``, in UTC, or None if there is none."""
        moment = moment.astimezone(UTC)
        if self.start is not None and moment < self.start:
            moment = self.start - _TICK
        with self._lock:
            times = [self._next(index, moment) for index in range(len(self.expressions))]
        found = [moment for moment in times if moment is not None]
        return min(found) if found else None

    def _next(self, index: int, moment: datetime) -> datetime | None:
        cursor = self._cursors[index]
        if cursor is not None and cursor.asked <= moment < cursor.answer:
            return cursor.answer
        continuing = cursor if cursor is not None and cursor.answer == moment else None
        expression = self.expressions[index]
        found: tuple[datetime, _Engine, timedelta | None] | None
        if expression.fixed_time or self.zone is UTC:
            found = self._next_fixed_time(expression, moment, continuing)
        else:
            found = self._next_wildcard(expression, moment, continuing)
        self._cursors[index] = _Cursor(moment, *found) if found else None
        return found[0] if found else None

    def _next_fixed_time(
        self, expression: CronExpression, moment: datetime, cursor: _Cursor | None
    ) -> tuple[datetime, _Engine, None] | None:
        """cronsim's own Debian mode: wall times, a skipped one moved to the jump, a repeated one taken once."""
        engine = cursor.engine if cursor else _engine(expression, moment.astimezone(self.zone))
        for _ in range(_MAX_CANDIDATES):
            try:
                candidate = next(engine).astimezone(UTC)
            except StopIteration:  # cronsim gives up after 50 years without a match
                return None
            # A repeated wall time resolves to its first instant, which lies
            # before ``moment`` when ``moment`` is in the second copy.
            if candidate > moment:
                return candidate, engine, None
        return None

    def _next_wildcard(
        self, expression: CronExpression, moment: datetime, cursor: _Cursor | None
    ) -> tuple[datetime, _Engine, timedelta] | None:
        """A wildcard job runs at each instant whose wall time (as the clock shows it) matches.

        Within a stretch of constant UTC offset, wall time is the instant plus
        the offset, so cronsim is asked in plain wall-clock time (no zone) and
        its answer is kept if no offset change comes first; otherwise the
        search restarts at the change. (cronsim 2.8's own elapsed-time mode
        misses runs after half-hour changes and midnight jumps.)
        """
        lower = moment
        for _ in range(_MAX_CANDIDATES):
            if cursor is not None and cursor.offset is not None:
                engine, offset = cursor.engine, cursor.offset
                cursor = None
            else:
                offset = _offset(self.zone, lower + _TICK)
                engine = _engine(expression, (lower + offset).replace(tzinfo=None))
            try:
                match = next(engine)
            except StopIteration:
                return None
            candidate = (match - offset).replace(tzinfo=UTC)
            change = _offset_change(self.zone, lower, candidate, offset)
            if change is None:
                return candidate, engine, offset
            lower = change - _TICK
        return None

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is not None:
            return self.nominal_after(previous_fire_time)
        return self.nominal_after(now - timedelta(microseconds=1))

    def __str__(self) -> str:
        return f"cron[{' | '.join(expression.text for expression in self.expressions)}] in {self.zone}"

    def __repr__(self) -> str:
        return f"<CronGrid {self} start={self.start}>"
