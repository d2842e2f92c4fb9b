"""Issue 9's examples as regression tests: DST changes, cron's day rule and syntax, the run's nominal time.

2027's changes: Europe/Prague 03-28 (02:00 -> 03:00) and 10-31 (03:00 -> 02:00),
America/New_York 03-14 and 11-07 (at 02:00), America/Santiago 09-05 (Saturday
24:00 -> Sunday 01:00) and 04-04 (Sunday 00:00 -> Saturday 23:00).
"""

from __future__ import annotations

import calendar
import json
import signal
import struct
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from scheduler.config.spec import HttpTarget, JobSpec, Schedule, ScheduleKind
from scheduler.timing.planning import plan_jobs
from scheduler.timing.triggers import build_trigger, next_fire_times, shortest_gap_seconds
from tests.scheduler.support import ApiServer, Service, clean_env, run_cli, write_jobs

SEED = 9


def daily(*times: str, tz: str) -> Schedule:
    return Schedule(ScheduleKind.DAILY, times=tuple(time.fromisoformat(t) for t in times), timezone=tz)


def cron(expression: str, tz: str = "UTC") -> Schedule:
    return Schedule(ScheduleKind.CRON, cron=expression, timezone=tz)


def job(schedule: Schedule, jitter: int = 0, name: str = "job") -> JobSpec:
    return JobSpec(name=name, line=1, schedule=schedule, target=HttpTarget("POST", "http://app.test/x"), jitter_seconds=jitter)


def runs(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    return next_fire_times(build_trigger(job(schedule), start, SEED), start, count)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- a time inside the skipped hour: once, at the jump (it used to crash) ---------------------------------


@pytest.mark.parametrize("schedule", [daily("02:30", tz="Europe/Prague"), cron("30 2 * * *", "Europe/Prague")], ids=["daily", "cron"])
def test_a_time_in_the_skipped_hour_runs_once_at_the_jump(schedule: Schedule) -> None:
    assert runs(schedule, utc("2027-03-26T12:00"), 4) == [
        utc("2027-03-27T01:30"),  # 02:30 CET
        utc("2027-03-28T01:00"),  # 02:30 does not exist: at the jump, 03:00 CEST
        utc("2027-03-29T00:30"),  # 02:30 CEST
        utc("2027-03-30T00:30"),
    ]


def test_planning_the_day_before_the_change_does_not_crash() -> None:
    start = utc("2027-03-27T12:00")
    plans = plan_jobs([job(daily("02:30", tz="Europe/Prague"), jitter=1200)], {}, SEED, start, 0)
    plan = plans["job"]
    assert plan.first_nominal == utc("2027-03-28T01:00")
    assert plan.first_fire is not None
    assert plan.first_nominal <= plan.first_fire <= plan.first_nominal + timedelta(seconds=1200)
    assert plan.trigger.nominal_of(plan.first_fire) == plan.first_nominal


# -- no lost day (APScheduler 3.x's CronTrigger lost the day after the change) ---------------------------


def test_midnight_in_prague_runs_every_day_across_spring_forward() -> None:
    assert runs(daily("00:00", tz="Europe/Prague"), utc("2027-03-26T12:00"), 4) == [
        utc("2027-03-26T23:00"), utc("2027-03-27T23:00"), utc("2027-03-28T22:00"), utc("2027-03-29T22:00"),
    ]


@pytest.mark.parametrize("clock", ["00:00", "00:15", "00:30", "00:45"])
def test_just_after_midnight_in_new_york_runs_every_day(clock: str) -> None:
    minute = int(clock[3:])
    got = runs(daily(clock, tz="America/New_York"), utc("2027-03-12T12:00"), 4)
    assert got == [
        utc(f"2027-03-13T05:{minute:02d}"), utc(f"2027-03-14T05:{minute:02d}"),  # EST
        utc(f"2027-03-15T04:{minute:02d}"), utc(f"2027-03-16T04:{minute:02d}"),  # EDT
    ]


def test_midnight_in_santiago_on_the_change_day_runs_at_the_jump() -> None:
    # Saturday 2027-09-04 24:00 -04 becomes Sunday 01:00 -03: Sunday's 00:00 never shows.
    assert runs(daily("00:00", tz="America/Santiago"), utc("2027-09-03T12:00"), 3) == [
        utc("2027-09-04T04:00"), utc("2027-09-05T04:00"), utc("2027-09-06T03:00"),
    ]


# -- a repeated interval ----------------------------------------------------------------------------------


def test_a_fixed_time_in_the_repeated_hour_runs_once() -> None:
    assert runs(daily("02:30", tz="Europe/Prague"), utc("2027-10-29T12:00"), 3) == [
        utc("2027-10-30T00:30"), utc("2027-10-31T00:30"), utc("2027-11-01T01:30"),
    ]
    # Santiago repeats Saturday 23:00-23:59 on 2027-04-03.
    assert runs(daily("23:30", tz="America/Santiago"), utc("2027-04-02T12:00"), 3) == [
        utc("2027-04-03T02:30"), utc("2027-04-04T02:30"), utc("2027-04-05T03:30"),  # -03, the first copy at -03, then -04
    ]


@pytest.mark.parametrize("expression", ["*/30 * * * *", "30 */1 * * *"])
def test_a_wildcard_hour_runs_in_both_copies_of_the_repeated_hour(expression: str) -> None:
    got = runs(cron(expression, "America/New_York"), utc("2027-11-07T04:45"), 6)
    # 01:00-01:59 EDT (05:00-05:59 UTC) and again as EST (06:00-06:59 UTC).
    assert utc("2027-11-07T05:30") in got and utc("2027-11-07T06:30") in got
    assert all(later - earlier in (timedelta(minutes=30), timedelta(hours=1)) for earlier, later in pairwise(got))


def test_a_stepped_hour_that_is_not_a_wildcard_is_a_fixed_time_as_in_debian() -> None:
    # "1-23/2" does not start with "*": Debian runs it once in the repeated hour.
    got = runs(cron("30 1-23/2 * * *", "America/New_York"), utc("2027-11-07T04:00"), 2)
    assert got == [utc("2027-11-07T05:30"), utc("2027-11-07T08:30")]


# -- every jobs count elapsed time ---------------------------------------------------------------------------


@pytest.mark.parametrize("start", [utc("2027-03-27T20:00"), utc("2027-10-30T20:00")], ids=["spring", "autumn"])
def test_every_jobs_keep_counting_elapsed_time_across_dst(start: datetime) -> None:
    got = runs(Schedule(ScheduleKind.EVERY, interval_seconds=1800), start, 20)
    assert got == [start + timedelta(minutes=30 * k) for k in range(20)]
    assert shortest_gap_seconds(Schedule(ScheduleKind.EVERY, interval_seconds=1800), start) == 1800


# -- cron's day rule and syntax ---------------------------------------------------------------------------------


def test_both_day_fields_restricted_means_either() -> None:
    got = runs(cron("0 0 1 * 1"), utc("2027-02-01T00:00"), 6)
    assert got == [utc("2027-02-01T00:00"), utc("2027-02-08T00:00"), utc("2027-02-15T00:00"),
                   utc("2027-02-22T00:00"), utc("2027-03-01T00:00"), utc("2027-03-08T00:00")]


def test_a_month_range_from_a_name_to_a_number() -> None:
    got = runs(cron("0 0 1 FEB-6 *"), utc("2027-01-01T00:00"), 6)
    assert [moment.month for moment in got] == [2, 3, 4, 5, 6, 2]


@pytest.mark.parametrize(
    ("expression", "first_three"),
    [
        ("2-3/2 0 * * *", ["2027-01-01T00:02", "2027-01-02T00:02", "2027-01-03T00:02"]),  # a step wider than its range
        ("0 0 L * *", ["2027-01-31T00:00", "2027-02-28T00:00", "2027-03-31T00:00"]),
        ("0 0 * * 5L", ["2027-01-29T00:00", "2027-02-26T00:00", "2027-03-26T00:00"]),  # last Friday
        ("0 0 * * 5#2", ["2027-01-08T00:00", "2027-02-12T00:00", "2027-03-12T00:00"]),  # second Friday
        ("0 0 15W * *", ["2027-01-15T00:00", "2027-02-15T00:00", "2027-03-15T00:00"]),
        ("0 0 16W * *", ["2027-01-15T00:00", "2027-02-16T00:00", "2027-03-16T00:00"]),  # Saturday the 16th: Friday
        ("0 0 LW * *", ["2027-01-29T00:00", "2027-02-26T00:00", "2027-03-31T00:00"]),
        ("@yearly", ["2027-01-01T00:00", "2028-01-01T00:00", "2029-01-01T00:00"]),
        ("@annually", ["2027-01-01T00:00", "2028-01-01T00:00", "2029-01-01T00:00"]),
        ("@monthly", ["2027-01-01T00:00", "2027-02-01T00:00", "2027-03-01T00:00"]),
        ("@weekly", ["2027-01-03T00:00", "2027-01-10T00:00", "2027-01-17T00:00"]),
        ("@daily", ["2027-01-01T00:00", "2027-01-02T00:00", "2027-01-03T00:00"]),
        ("@midnight", ["2027-01-01T00:00", "2027-01-02T00:00", "2027-01-03T00:00"]),
        ("@hourly", ["2027-01-01T00:00", "2027-01-01T01:00", "2027-01-01T02:00"]),
        ("0 12 * * sun,Sat", ["2027-01-02T12:00", "2027-01-03T12:00", "2027-01-09T12:00"]),
        ("0 0 1 jan-MAR/2 *", ["2027-01-01T00:00", "2027-03-01T00:00", "2028-01-01T00:00"]),
    ],
)
def test_syntax_cron_users_write(expression: str, first_three: list[str]) -> None:
    assert runs(cron(expression), utc("2027-01-01T00:00"), 3) == [utc(text) for text in first_three]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("@reboot", "@reboot is not supported: it means 'when the cron daemon starts'"),
        ("0 30 2 * * *", "has 6 fields: cron has 5 (minute hour day-of-month month day-of-week); a seconds or year field"),
        ("@fortnightly", "unknown alias '@fortnightly': allowed are @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"),
        ("0 0 * * 5#6", "day-of-week field '5#6' is invalid"),
        ("0 0 32W * *", "day-of-month '32W': nW needs a day 1-31"),
        ("0 24 * * *", "hour field '24' is invalid: allowed 0-23"),
    ],
)
def test_refused_syntax_says_why(tmp_path: Path, expression: str, message: str) -> None:
    config = write_jobs(tmp_path, f"""\
        jobs:
          report:
            cron: "{expression}"
            http: {{method: POST, path: /api/report}}
        """)
    result = run_cli(["validate", "-c", str(config)], clean_env(), tmp_path)
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    assert f"{config}:3: job 'report': cron: {message}" in result.stderr
    assert f"got '{expression}'" in result.stderr


# -- the run carries its nominal time -----------------------------------------------------------------------


def test_jitter_across_the_change_fires_in_the_window_of_its_own_nominal_time() -> None:
    # 02:00 and 02:30 both fall to the jump on 2027-03-28; 03:15 comes 45 minutes later, closer than
    # the 2 h jitter could tell apart from a fire time alone.
    schedule = daily("02:00", "02:30", "03:15", tz="Europe/Prague")
    trigger = build_trigger(job(schedule, jitter=40 * 60), utc("2027-03-27T00:00"), SEED)
    fires = next_fire_times(trigger, utc("2027-03-27T00:00"), 9)
    nominals = [trigger.nominal_of(fire) for fire in fires]
    assert nominals[3:6] == [utc("2027-03-28T01:00"), utc("2027-03-28T01:15"), utc("2027-03-29T00:00")]
    for fire, nominal in zip(fires, nominals, strict=True):
        assert nominal is not None and nominal <= fire <= nominal + timedelta(minutes=40)
    assert all(earlier < later for earlier, later in pairwise(fires))


# -- the command line: list --from, and run started before the change ---------------------------------------


JOBS = """\
    jobs:
      night-daily:
        daily: "02:30"
        timezone: Europe/Prague
        http: {method: POST, path: /api/night}
      night-cron:
        cron: "30 2 * * *"
        timezone: Europe/Prague
        jitter: 20m
        http: {method: POST, path: /api/night}
      midnight:
        daily: "00:00"
        timezone: Europe/Prague
        http: {method: POST, path: /api/midnight}
      half-hourly:
        every: 30m
        http: {method: POST, path: /api/tick}
    """


def _list_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_JITTER_SEED="9",
                     SCHEDULER_STATE_PATH=str(tmp_path / "state" / "scheduler.sqlite"))


def test_list_from_the_day_before_spring_forward(tmp_path: Path) -> None:
    config = write_jobs(tmp_path, JOBS)
    result = run_cli(["list", "-c", str(config), "--from", "2027-03-27T12:00:00Z", "--next", "3", "--json"], _list_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = {row["name"]: row["next_runs"] for row in json.loads(result.stdout)["jobs"]}
    assert jobs["night-daily"] == ["2027-03-28T01:00:00.000Z", "2027-03-29T00:30:00.000Z", "2027-03-30T00:30:00.000Z"]
    nominals = [utc("2027-03-28T01:00"), utc("2027-03-29T00:30"), utc("2027-03-30T00:30")]
    for text, nominal in zip(jobs["night-cron"], nominals, strict=True):
        fire = datetime.fromisoformat(text)
        assert nominal <= fire <= nominal + timedelta(minutes=20)
    assert jobs["midnight"] == ["2027-03-27T23:00:00.000Z", "2027-03-28T22:00:00.000Z", "2027-03-29T22:00:00.000Z"]
    assert jobs["half-hourly"] == ["2027-03-27T12:00:00.000Z", "2027-03-27T12:30:00.000Z", "2027-03-27T13:00:00.000Z"]

    text = run_cli(["list", "-c", str(config), "--from", "2027-03-27T13:00:00+01:00"], _list_env(tmp_path), tmp_path)
    assert text.returncode == 0, text.stderr
    assert "service started at (2027-03-27T12:00:00.000Z)" in text.stdout
    assert "2027-03-28T01:00:00.000Z" in text.stdout


@pytest.mark.parametrize(
    ("value", "says"),
    [("2027-13-27T12:00:00Z", "is not an ISO-8601 time"), ("tomorrow", "is not an ISO-8601 time"),
     ("2027-03-27T12:00:00", "has no UTC offset")],
)
def test_list_from_a_malformed_time_is_a_usage_error(tmp_path: Path, value: str, says: str) -> None:
    config = write_jobs(tmp_path, JOBS)
    result = run_cli(["list", "-c", str(config), "--from", value], _list_env(tmp_path), tmp_path)
    assert result.returncode == 2
    assert f"argument --from: {value!r} {says}" in result.stderr
    assert "Traceback" not in result.stderr


def _zone_jumping_at(directory: Path, jump: datetime) -> str:
    """A zone (a TZif file under ``directory``) whose clock springs forward an hour at ``jump``.

    Standard time is UTC plus a few seconds, so that the jump happens at a
    whole local minute, as in every real zone, a few seconds from now.
    """
    east = (60 - jump.second) % 60
    local = jump + timedelta(seconds=east)
    # Julian days (Jn: 1-365, February 29 never counted) leave no doubt about which day is meant.
    day = local.timetuple().tm_yday - (1 if calendar.isleap(local.year) and local.month > 2 else 0)
    rule = f"AAA-0:00:{east:02d}BBB,J{day}/{local:%H:%M:%S},J{(day + 180 - 1) % 365 + 1}/2"
    names = b"AAA\x00"
    counts = struct.pack(">6l", 0, 0, 0, 0, 1, len(names))
    body = struct.pack(">lbb", east, 0, 0) + names
    data = b"TZif2" + bytes(15) + counts + body + b"TZif2" + bytes(15) + counts + body + f"\n{rule}\n".encode()
    (directory / "Test").mkdir(parents=True, exist_ok=True)
    (directory / "Test" / "Jump").write_bytes(data)
    return "Test/Jump"


@pytest.mark.integration
def test_run_started_before_spring_forward_runs_the_skipped_time_at_the_jump(
    api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]
) -> None:
    jump = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
    zones = tmp_path / "zones"
    zone = _zone_jumping_at(zones, jump)
    skipped = (jump + timedelta(seconds=(60 - jump.second) % 60, minutes=30)).strftime("%H:%M")  # inside the lost hour
    config = write_jobs(tmp_path, f"""\
        jobs:
          lost-hour:
            daily: "{skipped}"
            timezone: {zone}
            http: {{method: POST, path: /api/lost-hour}}
        """)
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", PYTHONTZPATH=str(zones),
                    SCHEDULER_STATE_PATH=str(tmp_path / "state" / "scheduler.sqlite"))
    listed = run_cli(["list", "-c", str(config), "--json", "--next", "2"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    expected = jump.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert json.loads(listed.stdout)["jobs"][0]["next_runs"][0] == expected

    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log(f"job lost-hour: daily {skipped}, first run at {expected}")
    (call,) = api.wait_for("/api/lost-hour", 1, timeout=40)
    assert datetime.fromisoformat(call.headers["X-Scheduler-Scheduled-For"]) == jump
    assert call.arrived >= jump.timestamp()
    code, _ = service.terminate(signal.SIGTERM)
    assert code == 0
    assert "Traceback" not in service.log
    assert len(api.calls("/api/lost-hour")) == 1
