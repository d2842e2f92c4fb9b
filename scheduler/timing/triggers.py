"""Job schedule -> APScheduler trigger, with jitter that never drifts.

APScheduler's own ``jitter=`` adds a random delay to the *previous fire time*,
so the delays accumulate (a 60 s job with 30 s jitter averages a 75 s period).
Here every run has a nominal time on the configured grid and fires at
``nominal + offset(seed, job, nominal)`` with the offset in ``[0, jitter]``.
The next nominal time is computed from the grid, never from the jittered fire
time, so over many runs the mean period is the interval. Offsets are a pure
function of (seed, job name, nominal time): ``scheduler list`` and the running
service agree on every fire time for the same seed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.config.spec import JobSpec, Schedule, ScheduleKind

_TICK = timedelta(microseconds=1)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def standard_day_of_week(field: str) -> str:
    """Translate a crontab day-of-week field (0 or 7 = Sunday) for APScheduler 3.x.

    APScheduler 3.x numbers weekdays from Monday = 0 (its documented historical
    mistake), so ``1-5`` would silently mean Tuesday to Saturday. Numbers are
    expanded here and handed over as names, which both agree on.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step must be at least 1 in {part!r}")
        if body == "*":
            low, high = 0, 6
        elif "-" in body:
            low_text, high_text = body.split("-", 1)
            low, high = _weekday_number(low_text), _weekday_number(high_text)
            if high < low and high == 0:
                high = 7  # "5-0" and "fri-sun": Sunday closes the week
            if high < low:
                raise ValueError(f"day-of-week range {body!r} runs backwards")
        else:
            low = high = _weekday_number(body) % 7
            if step_text:
                high = 6
        days.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday_number(text: str) -> int:
    text = text.strip().lower()
    if text in _WEEKDAYS:
        return _WEEKDAYS.index(text)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise ValueError(f"day of week must be 0-7 or sun-sat, got {text!r}")


def cron_trigger(expression: str, tz: ZoneInfo, start: datetime | None = None) -> CronTrigger:
    """A 5-field crontab with standard weekday numbers; ValueError if invalid."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"needs 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month,
        day_of_week=standard_day_of_week(weekday), timezone=tz, start_date=start,
    )


def grid_trigger(schedule: Schedule, start: datetime) -> BaseTrigger:
    """The trigger that yields the nominal (unjittered) times, none before ``start``."""
    if schedule.kind == ScheduleKind.EVERY:
        assert schedule.interval_seconds
        return IntervalTrigger(seconds=schedule.interval_seconds, start_date=start, timezone=UTC)
    tz = ZoneInfo(schedule.timezone)
    if schedule.kind == ScheduleKind.DAILY:
        parts = [CronTrigger(hour=t.hour, minute=t.minute, timezone=tz, start_date=start) for t in schedule.times]
        return parts[0] if len(parts) == 1 else OrTrigger(parts)
    assert schedule.cron
    return cron_trigger(schedule.cron, tz, start)


def _utc(moment: datetime | None) -> datetime | None:
    # Arithmetic on an aware datetime in a DST zone is wall-clock arithmetic
    # and forgets which of the two repeated autumn hours it meant (fold);
    # in UTC, adding an offset always moves forward in real time.
    return None if moment is None else moment.astimezone(UTC)


def jitter_offset(seed: int, name: str, nominal: datetime, jitter_seconds: float) -> timedelta:
    if jitter_seconds <= 0:
        return timedelta(0)
    # Seeding with a string hashes it with SHA-512: stable across processes.
    rng = random.Random(f"{seed}:{name}:{nominal.timestamp():.6f}")
    return timedelta(seconds=rng.uniform(0, jitter_seconds))


def initial_offset(seed: int, name: str, maximum: int) -> int:
    """The first-fire offset in [0, maximum], the same for the same seed."""
    return random.Random(f"{seed}:{name}:initial-offset").randint(0, maximum) if maximum > 0 else 0


class NonDriftingTrigger(BaseTrigger):
    """Fires at ``nominal_k + offset_k``; nominal times come from a grid trigger."""

    def __init__(
        self, grid: BaseTrigger, name: str, jitter_seconds: float, seed: int, once_per_wall_time: ZoneInfo | None = None
    ) -> None:
        self.grid = grid
        self.name = name
        self.jitter_seconds = jitter_seconds
        self.seed = seed
        # A fixed-time job in a DST zone: when the clocks go back, its wall time
        # comes twice; like cron, it runs at the first one only.
        self.once_per_wall_time = once_per_wall_time

    def nominal_after(self, moment: datetime) -> datetime | None:
        """The first nominal time strictly after ``moment``, in UTC."""
        grid = self.grid
        if isinstance(grid, IntervalTrigger):
            # Exact integer arithmetic on timedeltas: the float ceil() inside
            # IntervalTrigger could land one step off after a long uptime.
            if moment < grid.start_date:
                return grid.start_date.astimezone(UTC)
            steps = (moment - grid.start_date) // grid.interval + 1
            return (grid.start_date + grid.interval * steps).astimezone(UTC)
        candidate = _utc(grid.get_next_fire_time(None, moment + _TICK))
        if candidate is not None and self._is_repeated_wall_time(candidate):
            return self.nominal_after(candidate)
        return candidate

    def _is_repeated_wall_time(self, moment: datetime) -> bool:
        zone = self.once_per_wall_time
        if zone is None:
            return False
        local = moment.astimezone(zone)
        return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()

    def nominal_for(self, fire_time: datetime) -> datetime:
        """The nominal time of the run that fires at ``fire_time``.

        Jitter is validated to be smaller than the gap between runs, so the
        run's nominal time is the last grid time at or before its fire time.
        """
        candidate = self.nominal_after(fire_time - timedelta(seconds=self.jitter_seconds) - _TICK)
        assert candidate is not None and candidate <= fire_time
        following = self.nominal_after(candidate)
        while following is not None and following <= fire_time:
            candidate, following = following, self.nominal_after(following)
        return candidate

    def fire_time(self, nominal: datetime) -> datetime:
        return nominal + jitter_offset(self.seed, self.name, nominal, self.jitter_seconds)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None:
            nominal = self.nominal_after(now - _TICK)
        else:
            nominal = self.nominal_after(previous_fire_time)
        return None if nominal is None else self.fire_time(nominal)

    def __str__(self) -> str:
        return f"{self.grid} (jitter {self.jitter_seconds}s, non-drifting)"

    def __repr__(self) -> str:
        return f"<NonDriftingTrigger grid={self.grid!r} jitter={self.jitter_seconds}>"


def schedule_trigger(schedule: Schedule, anchor: datetime, name: str, jitter_seconds: float, seed: int) -> NonDriftingTrigger:
    """The trigger of one job whose grid starts at ``anchor``."""
    fixed_hour = schedule.kind == ScheduleKind.DAILY or (
        schedule.kind == ScheduleKind.CRON and "*" not in (schedule.cron or "* *").split()[1]
    )
    zone = ZoneInfo(schedule.timezone) if fixed_hour else None
    return NonDriftingTrigger(grid_trigger(schedule, anchor), name, jitter_seconds, seed, zone)


def build_trigger(spec: JobSpec, start: datetime, seed: int) -> NonDriftingTrigger:
    """The trigger the service uses for ``spec`` when its grace period ends at ``start``.

    Interval jobs run once at ``start``; the job with ``initial_offset_max``
    runs first at ``start + interval - offset`` instead; daily and cron jobs
    only at their times.
    """
    if spec.schedule.kind == ScheduleKind.EVERY and spec.initial_offset_max_seconds:
        interval = spec.schedule.interval_seconds or 0
        offset = initial_offset(seed, spec.name, min(spec.initial_offset_max_seconds, interval))
        start = start + timedelta(seconds=interval - offset)
    return schedule_trigger(spec.schedule, start, spec.name, spec.jitter_seconds, seed)


def next_fire_times(trigger: NonDriftingTrigger, now: datetime, count: int) -> list[datetime]:
    times: list[datetime] = []
    previous: datetime | None = None
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous = fire
    return times


def _offset_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    """The hours (UTC) in ``year`` at which ``zone``'s UTC offset changes."""
    changes = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    previous = moment.astimezone(zone).utcoffset()
    while moment.year == year:
        moment += timedelta(hours=1)
        offset = moment.astimezone(zone).utcoffset()
        if offset != previous:
            changes.append(moment)
            previous = offset
    return changes


def shortest_gap_seconds(schedule: Schedule, around: datetime, samples: int = 400) -> float:
    """The smallest real gap between consecutive nominal times, DST changes included."""
    return gap_range_seconds(schedule, around, samples)[0]


def gap_range_seconds(schedule: Schedule, around: datetime, samples: int = 400) -> tuple[float, float]:
    """The smallest and largest real gaps between consecutive nominal times.

    Samples the start of the year of ``around`` and of the next one, and the
    hours around each of the zone's offset changes in those years, where a
    wall-clock schedule's real gaps shrink or grow (a zone's DST rules can
    change from one year to the next).
    """
    if schedule.kind == ScheduleKind.EVERY:
        interval = float(schedule.interval_seconds or 0)
        return interval, interval
    zone = ZoneInfo(schedule.timezone)
    starts: list[datetime] = []
    for year in (around.year, around.year + 1):
        starts.append(datetime(year, 1, 1, tzinfo=UTC))
        starts += [change - timedelta(hours=12) for change in _offset_changes(zone, year)]
    gaps: list[float] = []
    for start in starts:
        grid = schedule_trigger(schedule, start, "gap", 0, 0)
        times = next_fire_times(grid, start, samples)
        gaps += [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
    return (min(gaps), max(gaps)) if gaps else (float("inf"), float("inf"))
