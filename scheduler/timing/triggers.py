"""Job schedule -> APScheduler trigger, with jitter that never drifts.

APScheduler's own ``jitter=`` adds a random delay to the *previous fire time*,
so the delays accumulate (a 60 s job with 30 s jitter averages a 75 s period).
Here every run has a nominal time on the configured grid and fires at
``nominal + offset(seed, job, nominal)`` with the offset in ``[0, jitter]``.
The next nominal time is computed from the grid, never from the jittered fire
time, so over many runs the mean period is the interval. Offsets are a pure
function of (seed, job name, nominal time): ``scheduler list`` and the running
service agree on every fire time for the same seed.

Daily and cron jobs get their nominal times from a :class:`CronGrid` (cronsim,
Debian cron's semantics, DST included); ``every`` jobs from an IntervalTrigger
counting elapsed time. The trigger records the nominal time of each fire time
it hands out, and the run reads it from there.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.config.spec import JobSpec, Schedule, ScheduleKind
from scheduler.timing.crontab import CronExpression, CronGrid, parse_cron

_TICK = timedelta(microseconds=1)
# Fire times handed out and not yet run are a handful per job; a coalesced
# catch-up after a long suspension hands out many, of which only the last runs.
_LEDGER_SIZE = 1024


def schedule_zone(schedule: Schedule) -> tzinfo:
    # UTC as datetime.UTC: cronsim then counts plain seconds, with no zone rules to consult.
    return UTC if schedule.timezone == "UTC" else ZoneInfo(schedule.timezone)


def schedule_expressions(schedule: Schedule) -> tuple[CronExpression, ...]:
    """A cron schedule's expression, or one ``M H * * *`` per daily time; ValueError if invalid."""
    if schedule.kind == ScheduleKind.DAILY:
        return tuple(parse_cron(f"{moment.minute} {moment.hour} * * *") for moment in schedule.times)
    assert schedule.cron
    return (parse_cron(schedule.cron),)


def grid_trigger(schedule: Schedule, start: datetime) -> IntervalTrigger | CronGrid:
    """The trigger that yields the nominal (unjittered) times, none before ``start``."""
    if schedule.kind == ScheduleKind.EVERY:
        assert schedule.interval_seconds
        return IntervalTrigger(seconds=schedule.interval_seconds, start_date=start, timezone=UTC)
    return CronGrid(schedule_expressions(schedule), schedule_zone(schedule), start)


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
    """Fires at ``nominal_k + offset_k``; nominal times come from a grid trigger.

    Every fire time it hands out is recorded with the nominal time it stands
    for, so the run is told its nominal time (:meth:`nominal_of`) instead of
    working it back out of a jittered fire time, which is ambiguous as soon as
    a DST change moves two nominal times closer than the jitter.
    """

    def __init__(self, grid: IntervalTrigger | CronGrid, name: str, jitter_seconds: float, seed: int) -> None:
        self.grid = grid
        self.name = name
        self.jitter_seconds = jitter_seconds
        self.seed = seed
        self._ledger: OrderedDict[datetime, datetime] = OrderedDict()  # fire time (UTC) -> nominal time
        # APScheduler asks for fire times on its own thread; runs look theirs up on worker threads.
        self._lock = threading.Lock()

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
        return grid.nominal_after(moment)

    def fire_time(self, nominal: datetime) -> datetime:
        return nominal.astimezone(UTC) + jitter_offset(self.seed, self.name, nominal, self.jitter_seconds)

    def record(self, fire_time: datetime, nominal: datetime) -> None:
        """Remember that the run firing at ``fire_time`` stands for ``nominal`` (e.g. a planned catch-up)."""
        with self._lock:
            self._ledger[fire_time.astimezone(UTC)] = nominal.astimezone(UTC)
            self._ledger.move_to_end(fire_time.astimezone(UTC))
            while len(self._ledger) > _LEDGER_SIZE:
                self._ledger.popitem(last=False)

    def nominal_of(self, fire_time: datetime) -> datetime | None:
        """The nominal time of a fire time this trigger handed out (or was told of); None if unknown."""
        with self._lock:
            return self._ledger.get(fire_time.astimezone(UTC))

    def following(self, nominal: datetime, fire_time: datetime) -> datetime | None:
        """The nominal time of the run after the one (``nominal``, ``fire_time``).

        The next slot on the grid, skipping any whose fire time would not come
        after ``fire_time`` (only a catch-up fired late, or jitter wider than a
        DST-shortened gap, can meet one), so fire times only move forward.
        """
        following = self.nominal_after(nominal)
        while following is not None and self.fire_time(following) <= fire_time:
            following = self.nominal_after(following)
        return following

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None:
            nominal = self.nominal_after(now - _TICK)
        else:
            previous_nominal = self.nominal_of(previous_fire_time)
            # A fire time handed out by another instance (APScheduler never does
            # this): the grid after it is still never earlier than it.
            nominal = self.following(previous_nominal or previous_fire_time, previous_fire_time)
        if nominal is None:
            return None
        fire = self.fire_time(nominal)
        self.record(fire, nominal)
        return fire

    def __str__(self) -> str:
        return f"{self.grid} (jitter {self.jitter_seconds}s, non-drifting)"

    def __repr__(self) -> str:
        return f"<NonDriftingTrigger grid={self.grid!r} jitter={self.jitter_seconds}>"


def schedule_trigger(schedule: Schedule, anchor: datetime, name: str, jitter_seconds: float, seed: int) -> NonDriftingTrigger:
    """The trigger of one job whose grid starts at ``anchor``."""
    return NonDriftingTrigger(grid_trigger(schedule, anchor), name, jitter_seconds, seed)


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
