"""Tests of ``jobs_file.load_jobs``: real jobs.yaml files in ``tmp_path``, every rule of DESIGN §4.

Problem lines are asserted whole: ``FILE:LINE: job 'NAME': field: message``.
Snippets are dedented and their leading newline dropped, so the first line of
a snippet is line 1 of the file.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from scheduler.config import jobs_file
from scheduler.config.spec import CallTarget, HttpTarget, JobSpec, RetryPolicy, Schedule, ScheduleKind
from scheduler.errors import ConfigError

API_URL = "http://app.test:8000"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SHIPPED = Path(__file__).resolve().parents[2] / "jobs.yaml"
JOB_KEYS = (
    "every, daily, cron, http, call, kwargs, timeout, retry, jitter, initial_offset_max, timezone, enabled, catch_up, notify, ping"
)
RETRY_KEYS = "attempts, backoff, max_backoff"
HTTP_KEYS = "method, path, url, json, headers"
NO_JOBS = "the file needs a top-level 'jobs:' mapping of job name -> spec"


# --------------------------------------------------------------------------- helpers


def write_yaml(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    """Write a dedented snippet; its first line is line 1 of the file."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(path: Path, env: Mapping[str, str] | None = None) -> list[JobSpec]:
    return jobs_file.load_jobs(path, env or {}, API_URL, now=NOW)


def load_jobs(path: Path, env: Mapping[str, str] | None = None) -> dict[str, JobSpec]:
    return {spec.name: spec for spec in load(path, env)}


def problems_of(path: Path, env: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path, env)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def located(path: Path, lines: list[str]) -> list[str]:
    """Prefix each expected ``LINE: ...`` with the file name, as the loader does."""
    return [f"{path}:{line}" for line in lines]


def assert_problems(path: Path, expected: list[str], env: Mapping[str, str] | None = None) -> None:
    """Exactly these problems (order is checked separately, in the ordering test)."""
    assert sorted(problems_of(path, env)) == sorted(located(path, expected))


def line_containing(path: Path, needle: str) -> int:
    numbers = [n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    assert len(numbers) == 1, f"{needle!r} occurs on lines {numbers}"
    return numbers[0]


@pytest.fixture
def job_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A tiny importable module with a known function, on sys.path for this test only."""
    name = f"tickless_test_jobs_{uuid.uuid4().hex}"
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / f"{name}.py").write_text(
        textwrap.dedent(
            """
            CALLS = []
            NOT_CALLABLE = 42


            def collect(**kwargs):
                CALLS.append(kwargs)
                return sorted(kwargs)
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)


# --------------------------------------------------------------------------- the shipped jobs.yaml

# name, schedule text, interval seconds (every only), method, path, timeout, initial_offset_max
REFERENCE_JOBS = [
    ("data-refresh", "every 15m", 900, "POST", "/api/sync/trigger", 120, 0),
    ("health-check", "every 5m", 300, "GET", "/api/health", 30, 0),
    ("script-runner", "every 1m", 60, "POST", "/api/scripts/run-due", 600, 0),
    ("marketplaces", "daily 03:00", None, "POST", "/api/marketplaces/sync-all", 900, 0),
    ("session-collector", "every 10m", 600, "POST", "/api/admin/run-session-collector", 300, 0),
    (
        "session-processor:verification", "every 15m", 900, "POST",
        "/api/admin/run-session-processor?processor=verification", 900, 0,
    ),
    ("session-processor:usage", "every 10m", 600, "POST", "/api/admin/run-session-processor?processor=usage", 300, 0),
    ("corporate-memory", "every 17m", 1020, "POST", "/api/admin/run-corporate-memory", 900, 0),
    ("store-blocked-purge", "daily 04:00", None, "POST", "/api/admin/run-blocked-purge", 600, 0),
    ("store-reap-stuck-reviews", "every 15m", 900, "POST", "/api/admin/run-reap-stuck-reviews", 60, 0),
    ("bq-metadata-refresh", "every 4h", 14400, "POST", "/api/admin/run-bq-metadata-refresh", 1800, 900),
]

# environment variable -> the job whose cadence it drives
INTERVAL_VARIABLES = [
    ("SCHEDULER_DATA_REFRESH_INTERVAL", "data-refresh"),
    ("SCHEDULER_HEALTH_CHECK_INTERVAL", "health-check"),
    ("SCHEDULER_SCRIPT_RUN_INTERVAL", "script-runner"),
    ("SCHEDULER_SESSION_COLLECTOR_INTERVAL", "session-collector"),
    ("SCHEDULER_VERIFICATION_DETECTOR_INTERVAL", "session-processor:verification"),
    ("SCHEDULER_USAGE_PROCESSOR_INTERVAL", "session-processor:usage"),
    ("SCHEDULER_CORPORATE_MEMORY_INTERVAL", "corporate-memory"),
    ("SCHEDULER_BQ_METADATA_REFRESH_INTERVAL", "bq-metadata-refresh"),
]
OFFSET_VARIABLE = "SCHEDULER_BQ_METADATA_INITIAL_OFFSET_MAX_SECONDS"


def test_shipped_catalogue_has_the_reference_jobs_in_order() -> None:
    specs = load(SHIPPED)
    assert [spec.name for spec in specs] == [row[0] for row in REFERENCE_JOBS]


@pytest.mark.parametrize(
    ("name", "schedule", "interval", "method", "path", "timeout", "offset_max"),
    REFERENCE_JOBS,
    ids=[row[0] for row in REFERENCE_JOBS],
)
def test_shipped_job_matches_the_reference(
    name: str, schedule: str, interval: int | None, method: str, path: str, timeout: int, offset_max: int
) -> None:
    spec = load_jobs(SHIPPED)[name]
    assert spec.schedule.text == schedule
    assert spec.schedule.interval_seconds == interval
    assert spec.schedule.timezone == "UTC"
    assert isinstance(spec.target, HttpTarget)
    assert spec.target.method == method
    assert spec.target.url == API_URL + path
    assert spec.target.headers == {}
    assert spec.target.json_body is None
    assert spec.timeout_seconds == timeout
    assert spec.initial_offset_max_seconds == offset_max
    assert spec.retry == RetryPolicy(attempts=3, backoff_seconds=1, max_backoff_seconds=30)
    assert spec.jitter_seconds == 0
    assert spec.enabled is True


def test_shipped_daily_jobs_run_at_their_reference_times() -> None:
    jobs = load_jobs(SHIPPED)
    assert jobs["marketplaces"].schedule.times == (time(3, 0),)
    assert jobs["store-blocked-purge"].schedule.times == (time(4, 0),)


@pytest.mark.parametrize(("variable", "job"), INTERVAL_VARIABLES, ids=[row[0] for row in INTERVAL_VARIABLES])
def test_each_interval_variable_overrides_only_its_own_job(variable: str, job: str) -> None:
    baseline = {name: spec.schedule for name, spec in load_jobs(SHIPPED).items()}
    overridden = load_jobs(SHIPPED, {variable: "30"})
    assert overridden[job].schedule.interval_seconds == 30
    assert overridden[job].schedule.text == "every 30s"
    assert {name: spec.schedule for name, spec in overridden.items() if name != job} == {
        name: schedule for name, schedule in baseline.items() if name != job
    }


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("120", 120), (" 60 ", 60)])
def test_initial_offset_variable_overrides_bq_metadata_offset(raw: str, expected: int) -> None:
    spec = load_jobs(SHIPPED, {OFFSET_VARIABLE: raw})["bq-metadata-refresh"]
    assert spec.initial_offset_max_seconds == expected
    assert spec.schedule.interval_seconds == 14400


@pytest.mark.parametrize(("variable", "job"), INTERVAL_VARIABLES, ids=[row[0] for row in INTERVAL_VARIABLES])
@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("", "='' must be a positive integer (seconds)"),
        ("abc", "='abc' must be a positive integer (seconds)"),
        ("1.5", "='1.5' must be a positive integer (seconds)"),
        ("15m", "='15m' must be a positive integer (seconds)"),
        ("-5", "=-5 must be > 0 (seconds)"),
        ("0", "=0 must be > 0 (seconds)"),
    ],
    ids=["empty", "abc", "float", "unit", "negative", "zero"],
)
def test_bad_interval_variable_names_the_job_and_the_variable(variable: str, job: str, raw: str, rule: str) -> None:
    line = line_containing(SHIPPED, "${" + variable)
    assert problems_of(SHIPPED, {variable: raw}) == [f"{SHIPPED}:{line}: job {job!r}: every: {variable}{rule}"]


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("", "='' must be a non-negative integer (seconds)"),
        ("abc", "='abc' must be a non-negative integer (seconds)"),
        ("-5", "=-5 must be >= 0 (seconds)"),
    ],
    ids=["empty", "abc", "negative"],
)
def test_bad_initial_offset_variable(raw: str, rule: str) -> None:
    line = line_containing(SHIPPED, "${" + OFFSET_VARIABLE)
    assert problems_of(SHIPPED, {OFFSET_VARIABLE: raw}) == [
        f"{SHIPPED}:{line}: job 'bq-metadata-refresh': initial_offset_max: {OFFSET_VARIABLE}{rule}"
    ]


def test_api_url_is_joined_to_every_path() -> None:
    specs = jobs_file.load_jobs(SHIPPED, {}, "https://api.internal/base", now=NOW)
    assert all(isinstance(spec.target, HttpTarget) for spec in specs)
    assert {spec.target.url for spec in specs if isinstance(spec.target, HttpTarget)} >= {
        "https://api.internal/base/api/health",
        "https://api.internal/base/api/admin/run-session-processor?processor=usage",
    }


# --------------------------------------------------------------------------- valid files


def test_minimal_job_gets_the_built_in_defaults(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        jobs:
          ping:
            every: 5m
            http: {path: /ping}
        """,
    )
    (spec,) = load(path)
    assert spec == JobSpec(
        name="ping",
        line=2,
        schedule=Schedule(ScheduleKind.EVERY, interval_seconds=300),
        target=HttpTarget(method="GET", url=API_URL + "/ping"),
        timeout_seconds=60,
        retry=RetryPolicy(3, 1, 30),
        jitter_seconds=0,
        initial_offset_max_seconds=0,
        enabled=True,
    )


def test_defaults_apply_to_jobs_that_do_not_override_them(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        defaults:
          timeout: 45s
          retry: {attempts: 5, backoff: 2s, max_backoff: 1m}
          jitter: 10s
          timezone: Europe/Prague
        jobs:
          inherits:
            daily: "06:00"
            http: {method: POST, path: /a}
          overrides:
            daily: "06:00"
            http: {method: POST, path: /b}
            timeout: 2m
            retry: {attempts: 1}
            jitter: 0
            timezone: UTC
          interval:
            every: 1h
            http: {method: POST, path: /c}
        """,
    )
    jobs = load_jobs(path)
    inherits, overrides, interval = jobs["inherits"], jobs["overrides"], jobs["interval"]
    assert inherits.timeout_seconds == 45
    assert inherits.retry == RetryPolicy(attempts=5, backoff_seconds=2, max_backoff_seconds=60)
    assert inherits.jitter_seconds == 10
    assert inherits.schedule.timezone == "Europe/Prague"
    assert overrides.timeout_seconds == 120
    # A partial retry mapping keeps the other fields from defaults.
    assert overrides.retry == RetryPolicy(attempts=1, backoff_seconds=2, max_backoff_seconds=60)
    assert overrides.jitter_seconds == 0
    assert overrides.schedule.timezone == "UTC"
    assert interval.timeout_seconds == 45
    assert interval.jitter_seconds == 10


@pytest.mark.parametrize(
    ("written", "seconds", "text"),
    [
        ("30s", 30, "every 30s"),
        ("15m", 900, "every 15m"),
        ("4h", 14400, "every 4h"),
        ("1d", 86400, "every 1d"),
        ("45", 45, "every 45s"),
        ('"90"', 90, "every 90s"),
        ("3600", 3600, "every 1h"),
    ],
)
def test_durations(tmp_path: Path, written: str, seconds: int, text: str) -> None:
    path = write_yaml(
        tmp_path,
        f"""
        jobs:
          a:
            every: {written}
            timeout: {written}
            http: {{method: GET, path: /x}}
        """,
    )
    (spec,) = load(path)
    assert spec.schedule.interval_seconds == seconds
    assert spec.timeout_seconds == seconds
    assert spec.schedule.text == text


@pytest.mark.parametrize(
    ("daily", "times", "text"),
    [
        ('"07:00,13:00"', (time(7), time(13)), "daily 07:00,13:00"),
        ('"13:00, 07:00"', (time(7), time(13)), "daily 07:00,13:00"),
        ('["07:00", "13:00"]', (time(7), time(13)), "daily 07:00,13:00"),
        ('["13:00", "07:30"]', (time(7, 30), time(13)), "daily 07:30,13:00"),
        ('"03:00"', (time(3),), "daily 03:00"),
        ('"7:05"', (time(7, 5),), "daily 07:05"),
        # 03:00 (leading zero) is not a YAML 1.1 sexagesimal number: PyYAML keeps the string.
        ("03:00", (time(3),), "daily 03:00"),
    ],
)
def test_daily_times(tmp_path: Path, daily: str, times: tuple[time, ...], text: str) -> None:
    path = write_yaml(
        tmp_path,
        f"""
        jobs:
          a:
            daily: {daily}
            http: {{method: GET, path: /x}}
        """,
    )
    (spec,) = load(path)
    assert spec.schedule.kind == "daily"
    assert spec.schedule.times == times
    assert spec.schedule.text == text


def test_cron_is_normalised_and_keeps_its_timezone(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        jobs:
          nightly-report:
            cron: " 30  2 *  * 1-5 "
            timezone: Europe/Prague
            jitter: 5m
            http: {method: POST, path: /report}
        """,
    )
    (spec,) = load(path)
    assert spec.schedule == Schedule(ScheduleKind.CRON, cron="30 2 * * 1-5", timezone="Europe/Prague")
    assert spec.schedule.text == "cron 30 2 * * 1-5"
    assert spec.jitter_seconds == 300


def test_schedule_text_normalisation() -> None:
    assert Schedule(ScheduleKind.EVERY, interval_seconds=900).text == "every 15m"
    assert Schedule(ScheduleKind.EVERY, interval_seconds=90).text == "every 90s"
    assert Schedule(ScheduleKind.DAILY, times=(time(7), time(13))).text == "daily 07:00,13:00"
    assert Schedule(ScheduleKind.CRON, cron="30 2 * * 1-5").text == "cron 30 2 * * 1-5"


def test_call_job_resolves_a_real_function_and_passes_kwargs(tmp_path: Path, job_module: str) -> None:
    path = write_yaml(
        tmp_path,
        f"""
        jobs:
          in-process:
            every: 10m
            call: {job_module}:collect
            kwargs: {{table: orders, limit: 5, region: "${{REGION:-eu}}"}}
        """,
    )
    (spec,) = load(path, {"REGION": "us"})
    module = sys.modules[job_module]
    assert isinstance(spec.target, CallTarget)
    assert spec.target.kind == "call"
    assert spec.target.reference == f"{job_module}:collect"
    assert spec.target.function is module.collect
    assert spec.target.kwargs == {"table": "orders", "limit": 5, "region": "us"}
    assert spec.target.function(**spec.target.kwargs) == ["limit", "region", "table"]
    assert module.CALLS == [{"table": "orders", "limit": 5, "region": "us"}]


def test_call_job_without_kwargs_gets_an_empty_mapping(tmp_path: Path, job_module: str) -> None:
    path = write_yaml(
        tmp_path,
        f"""
        jobs:
          in-process:
            every: 10m
            call: {job_module}:collect
        """,
    )
    (spec,) = load(path)
    assert isinstance(spec.target, CallTarget)
    assert spec.target.kwargs == {}


def test_http_target_with_url_body_and_headers(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        jobs:
          webhook:
            every: 1h
            http:
              method: put
              url: "https://hooks.example/${HOOK:-default}"
              json: {source: "${SOURCE:-tickless}", tags: [a, "${TAG}"]}
              headers: {X-Team: data, X-Retries: 3}
        """,
    )
    (spec,) = load(path, {"HOOK": "h1", "TAG": "b"})
    assert spec.target == HttpTarget(
        method="PUT",
        url="https://hooks.example/h1",
        json_body={"source": "tickless", "tags": ["a", "b"]},
        headers={"X-Team": "data", "X-Retries": "3"},
    )


def test_variable_default_is_used_only_when_unset(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        jobs:
          a:
            every: ${A_INTERVAL:-15m}
            http: {method: GET, path: "${A_PATH:-/default}"}
        """,
    )
    (unset,) = load(path)
    (set_,) = load(path, {"A_INTERVAL": "120", "A_PATH": "/custom"})
    assert unset.schedule.interval_seconds == 900
    assert unset.target == HttpTarget("GET", API_URL + "/default")
    assert set_.schedule.interval_seconds == 120
    assert set_.target == HttpTarget("GET", API_URL + "/custom")


def test_enabled_false_is_kept(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        jobs:
          paused:
            every: 1m
            enabled: false
            http: {method: GET, path: /x}
          active:
            every: 1m
            enabled: true
            http: {method: GET, path: /x}
        """,
    )
    jobs = load_jobs(path)
    assert jobs["paused"].enabled is False
    assert jobs["active"].enabled is True


def test_jitter_just_below_the_shortest_gap_is_accepted(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        jobs:
          a:
            every: 5m
            jitter: 299s
            http: {method: GET, path: /x}
          b:
            daily: "07:00,07:10"
            jitter: 9m
            http: {method: GET, path: /x}
        """,
    )
    jobs = load_jobs(path)
    assert jobs["a"].jitter_seconds == 299
    assert jobs["b"].jitter_seconds == 540


# --------------------------------------------------------------------------- one problem at a time

HTTP = "http: {method: GET, path: /x}"
DURATION_RULE = "must be a duration like 30s, 15m, 4h, 1d or integer seconds"
GAP_RULE = "must be smaller than the shortest gap between runs"
MISSING_MODULE = "tickless_no_such_module_xyz"

# One job 'a' per file: "jobs:" is line 1, "  a:" line 2, the body starts on line 3.
# id, body lines, env, expected problems ("LINE: ..." without the file name)
JOB_PROBLEMS: list[tuple[str, list[str], dict[str, str], list[str]]] = [
    ("unknown-job-key", ["evrey: 5m", HTTP], {}, [
        "2: job 'a': needs a schedule: one of every, daily, cron",
        f"3: job 'a': evrey: unknown key (did you mean 'every'?); allowed: {JOB_KEYS}",
    ]),
    ("unknown-retry-key", ["every: 5m", HTTP, "retry: {atempts: 2}"], {}, [
        f"5: job 'a': retry.atempts: unknown key (did you mean 'attempts'?); allowed: {RETRY_KEYS}",
    ]),
    ("unknown-http-key", ["every: 5m", "http: {method: GET, path: /x, heders: {X-A: b}}"], {}, [
        f"4: job 'a': http.heders: unknown key (did you mean 'headers'?); allowed: {HTTP_KEYS}",
    ]),
    ("duplicate-key-in-a-job", ["every: 5m", "every: 6m", HTTP], {}, ["4: duplicate key 'every' (first at line 3)"]),
    ("missing-schedule", ["timeout: 5s", HTTP], {}, ["2: job 'a': needs a schedule: one of every, daily, cron"]),
    ("two-schedules", ["every: 5m", 'daily: "03:00"', HTTP], {}, [
        "4: job 'a': daily: conflicts with every: a job has exactly one schedule",
    ]),
    ("missing-target", ["every: 5m"], {}, ["2: job 'a': needs a target: one of http, call"]),
    ("http-and-call", ["every: 5m", HTTP, "call: json:dumps"], {}, [
        "5: job 'a': call: conflicts with http: a job has exactly one target",
    ]),
    ("bad-duration", ["every: 5x", HTTP], {}, [f"3: job 'a': every: {DURATION_RULE}, got '5x'"]),
    ("float-duration", ["every: 1.5", HTTP], {}, [f"3: job 'a': every: {DURATION_RULE}, got 1.5"]),
    ("negative-duration", ["every: -5", HTTP], {}, ["3: job 'a': every: must not be negative, got -5"]),
    ("zero-interval", ["every: 0", HTTP], {}, ["3: job 'a': every: must be greater than 0, got 0"]),
    ("zero-timeout", ["every: 5m", "timeout: 0", HTTP], {}, ["4: job 'a': timeout: must be greater than 0, got 0"]),
    ("zero-timeout-unit", ["every: 5m", "timeout: 0s", HTTP], {}, [
        "4: job 'a': timeout: must be greater than 0, got '0s'",
    ]),
    ("jitter-equal-to-interval", ["every: 5m", "jitter: 5m", HTTP], {}, [
        f"4: job 'a': jitter: {GAP_RULE} (300s), got 300s",
    ]),
    ("jitter-over-shortest-daily-gap", ['daily: "07:00,07:10"', "jitter: 15m", HTTP], {}, [
        f"4: job 'a': jitter: {GAP_RULE} (600s), got 900s",
    ]),
    ("jitter-over-cron-gap", ['cron: "*/5 * * * *"', "jitter: 5m", HTTP], {}, [
        f"4: job 'a': jitter: {GAP_RULE} (300s), got 300s",
    ]),
    ("cron-minute-out-of-range", ['cron: "61 * * * *"', HTTP], {}, [
        "3: job 'a': cron: minute field '61' is invalid: allowed 0-59, in lists, ranges and /steps; got '61 * * * *'",
    ]),
    ("cron-bad-weekday", ['cron: "0 3 * * 8"', HTTP], {}, [
        "3: job 'a': cron: day-of-week field '8' is invalid: allowed 0-7 (0 and 7 are Sunday) or SUN-SAT, "
        "nL (last weekday n of the month) or n#k (k-th weekday n), in lists, ranges and /steps; got '0 3 * * 8'",
    ]),
    ("cron-four-fields", ['cron: "* * * *"', HTTP], {}, [
        "3: job 'a': cron: needs 5 fields (minute hour day-of-month month day-of-week), has 4; got '* * * *'",
    ]),
    ("cron-not-a-string", ["cron: 5", HTTP], {}, ["3: job 'a': cron: must be a 5-field crontab string, got 5"]),
    ("unknown-timezone", ['cron: "0 3 * * *"', "timezone: Europe/Prag", HTTP], {}, [
        "4: job 'a': timezone: unknown timezone 'Europe/Prag' (did you mean 'Europe/Prague'?)",
    ]),
    ("timezone-on-every", ["every: 5m", "timezone: Europe/Prague", HTTP], {}, [
        "4: job 'a': timezone: applies to daily and cron schedules only ('every' counts elapsed time)",
    ]),
    ("bad-http-method", ["every: 5m", "http: {method: FETCH, path: /x}"], {}, [
        "4: job 'a': http.method: must be one of GET, POST, PUT, PATCH, DELETE, got 'FETCH'",
    ]),
    ("path-without-slash", ["every: 5m", "http: {method: GET, path: api/x}"], {}, [
        "4: job 'a': http.path: must start with '/', got 'api/x'",
    ]),
    ("path-and-url", ["every: 5m", 'http: {method: GET, path: /x, url: "https://other.example/x"}'], {}, [
        "4: job 'a': http: needs exactly one of path (joined to API_URL) or url (absolute)",
    ]),
    ("neither-path-nor-url", ["every: 5m", "http: {method: GET}"], {}, [
        "4: job 'a': http: needs exactly one of path (joined to API_URL) or url (absolute)",
    ]),
    ("url-not-http", ["every: 5m", 'http: {method: GET, url: "ftp://files.example/x"}'], {}, [
        "4: job 'a': http.url: must be an absolute http:// or https:// URL, got 'ftp://files.example/x'",
    ]),
    ("http-not-a-mapping", ["every: 5m", "http: GET /x"], {}, [
        "4: job 'a': http: must be a mapping like {method: POST, path: /api/...}, got 'GET /x'",
    ]),
    ("authorization-header", ["every: 5m", "http:", "  path: /x", '  headers: {Authorization: "Bearer abc"}'], {}, [
        "6: job 'a': http.headers.Authorization: is set by the scheduler itself (the token comes from SCHEDULER_API_TOKEN)",
    ]),
    ("unset-variable", ["every: ${TICKLESS_NOPE}", HTTP], {}, [
        "3: job 'a': every: ${TICKLESS_NOPE} is not set and has no default "
        "(set TICKLESS_NOPE, or write ${TICKLESS_NOPE:-value})",
    ]),
    ("empty-variable-with-default", ["every: ${EMPTY_INTERVAL:-60}", HTTP], {"EMPTY_INTERVAL": ""}, [
        "3: job 'a': every: EMPTY_INTERVAL='' must be a positive integer (seconds)",
    ]),
    ("empty-variable-without-default", ["every: ${EMPTY_INTERVAL}", HTTP], {"EMPTY_INTERVAL": ""}, [
        "3: job 'a': every: EMPTY_INTERVAL='' must be a positive integer (seconds)",
    ]),
    ("empty-variable-in-a-string", ["every: 5m", 'http: {path: "${EMPTY_PATH:-/x}"}'], {"EMPTY_PATH": ""}, [
        "4: job 'a': http.path: EMPTY_PATH is set but empty: unset it to use the default '/x'",
    ]),
    ("non-integer-variable", ["every: ${ABC_INTERVAL:-60}", HTTP], {"ABC_INTERVAL": "abc"}, [
        "3: job 'a': every: ABC_INTERVAL='abc' must be a positive integer (seconds)",
    ]),
    ("negative-offset-variable", ["every: 5m", "initial_offset_max: ${NEG_OFFSET:-900}", HTTP], {"NEG_OFFSET": "-5"}, [
        "4: job 'a': initial_offset_max: NEG_OFFSET=-5 must be >= 0 (seconds)",
    ]),
    ("malformed-variable", ["every: ${1BAD}", HTTP], {}, [
        "3: job 'a': every: '${1BAD}' is not a variable reference: use ${NAME} or ${NAME:-default}",
    ]),
    ("call-module-missing", ["every: 5m", f"call: {MISSING_MODULE}:run"], {}, [
        f"4: job 'a': call: cannot import '{MISSING_MODULE}': ModuleNotFoundError: No module named '{MISSING_MODULE}'",
    ]),
    ("call-not-module-function", ["every: 5m", "call: not a reference"], {}, [
        "4: job 'a': call: must be 'module:function', got 'not a reference'",
    ]),
    ("kwargs-on-http-job", ["every: 5m", HTTP, "kwargs: {table: orders}"], {}, [
        "5: job 'a': kwargs: applies to 'call' jobs only",
    ]),
    # YAML 1.1 reads an unquoted 3:00 as the sexagesimal number 180.
    ("unquoted-daily-time", ["daily: 3:00", HTTP], {}, [
        '3: job \'a\': daily: quote the times: YAML reads an unquoted 3:00 as the number 180; write "03:00"',
    ]),
    ("daily-hour-out-of-range", ['daily: "25:00"', HTTP], {}, [
        "3: job 'a': daily: must be \"HH:MM\" between 00:00 and 23:59, got '25:00'",
    ]),
    ("daily-time-twice", ['daily: "07:00,07:00"', HTTP], {}, ["3: job 'a': daily: lists '07:00' twice"]),
    ("initial-offset-on-daily", ['daily: "03:00"', "initial_offset_max: 5m", HTTP], {}, [
        "4: job 'a': initial_offset_max: applies to 'every' schedules only",
    ]),
    ("enabled-maybe", ["every: 5m", "enabled: maybe", HTTP], {}, [
        "4: job 'a': enabled: must be true or false, got 'maybe'",
    ]),
    ("retry-attempts-zero", ["every: 5m", HTTP, "retry: {attempts: 0}"], {}, [
        "5: job 'a': retry.attempts: must be an integer of at least 1, got 0",
    ]),
    ("retry-backoff-above-default-max", ["every: 5m", HTTP, "retry: {backoff: 1m}"], {}, [
        "5: job 'a': retry.max_backoff: must be at least retry.backoff (60s), got 30s",
    ]),
]


def job_file(body: list[str]) -> str:
    return "jobs:\n  a:\n" + "".join(f"    {line}\n" for line in body)


@pytest.mark.parametrize(
    ("body", "env", "expected"), [case[1:] for case in JOB_PROBLEMS], ids=[case[0] for case in JOB_PROBLEMS]
)
def test_job_problem_is_reported_with_file_line_job_and_field(
    tmp_path: Path, body: list[str], env: dict[str, str], expected: list[str]
) -> None:
    path = write_yaml(tmp_path, job_file(body))
    assert_problems(path, expected, env)


# Problems of the file as a whole, its top level or its defaults.
FILE_PROBLEMS = [
    pytest.param(
        """
        default:
          timeout: 5s
        jobs:
          a: {every: 5m, http: {path: /x}}
        """,
        ["1: default: unknown key (did you mean 'defaults'?); allowed: defaults, jobs"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        defaults:
          timeuot: 5s
        jobs:
          a: {every: 5m, http: {path: /x}}
        """,
        ["2: defaults.timeuot: unknown key (did you mean 'timeout'?); allowed: timeout, retry, jitter, timezone, notify, ping"],
        id="unknown-defaults-key",
    ),
    pytest.param(
        """
        defaults:
          jitter: 10m
        jobs:
          a: {every: 5m, http: {path: /x}}
        """,
        [f"4: job 'a': jitter: {GAP_RULE} (300s), got 600s (inherited from defaults.jitter)"],
        id="default-jitter-over-interval",
    ),
    pytest.param(
        """
        jobs:
          a:
            every: 5m
            http: {method: GET, path: /x}
          a:
            every: 6m
            http: {method: GET, path: /y}
        """,
        ["5: duplicate key 'a' (first at line 2)"],
        id="duplicate-job-name",
    ),
    pytest.param(
        """
        jobs:
          a:
        """,
        ["2: job 'a': must be a mapping with a schedule (every, daily or cron) and a target (http or call), got None"],
        id="job-not-a-mapping",
    ),
    pytest.param(
        """
        jobs:
          a:
            every: 5m
            http: {method: GET, path: /x}
          b:
            every: 5m
            http: {method: GET, path: /x]
        """,
        ["7: invalid YAML: expected ',' or '}', but got ']'"],
        id="invalid-yaml",
    ),
    pytest.param("jobs:\n  a:\n\tevery: 5m\n", ["3: invalid YAML: found character '\\t' that cannot start any token"], id="tab"),
    pytest.param("", [f"1: {NO_JOBS}"], id="empty-file"),
    pytest.param("defaults:\n  timeout: 5s\n", [f"1: {NO_JOBS}"], id="no-jobs-key"),
    pytest.param("- a\n- b\n", [f"1: {NO_JOBS}"], id="top-level-list"),
    pytest.param("jobs:\n", ["1: jobs: must be a non-empty mapping of job name -> spec"], id="jobs-empty"),
    pytest.param("jobs: [a, b]\n", ["1: jobs: must be a non-empty mapping of job name -> spec"], id="jobs-a-list"),
]


@pytest.mark.parametrize(("snippet", "expected"), FILE_PROBLEMS)
def test_file_problem_is_reported_with_file_and_line(tmp_path: Path, snippet: str, expected: list[str]) -> None:
    path = write_yaml(tmp_path, snippet)
    assert_problems(path, expected)


def test_call_module_without_the_function(tmp_path: Path, job_module: str) -> None:
    path = write_yaml(
        tmp_path,
        f"""
        jobs:
          missing:
            every: 5m
            call: {job_module}:nope
          constant:
            every: 5m
            call: {job_module}:NOT_CALLABLE
        """,
    )
    assert_problems(
        path,
        [
            f"4: job 'missing': call: module {job_module!r} has no callable 'nope'",
            f"7: job 'constant': call: module {job_module!r} has no callable 'NOT_CALLABLE'",
        ],
    )


def test_call_module_that_fails_on_import(tmp_path: Path, job_module: str) -> None:
    broken = f"{job_module}_broken"
    (tmp_path / "modules" / f"{broken}.py").write_text("raise RuntimeError('boom at import')\n", encoding="utf-8")
    path = write_yaml(
        tmp_path,
        f"""
        jobs:
          a:
            every: 5m
            call: {broken}:run
        """,
    )
    try:
        assert_problems(path, [f"4: job 'a': call: cannot import {broken!r}: RuntimeError: boom at import"])
    finally:
        sys.modules.pop(broken, None)


def test_unreadable_file_is_a_problem_without_a_line(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    assert problems_of(path) == [f"{path}: cannot read the file: No such file or directory"]


def test_unquoted_afternoon_time_hint_names_the_time_that_was_written(tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted 13:00 as the sexagesimal number 780; the hint
    # must point at what the operator wrote, not at an unrelated 03:00.
    path = write_yaml(tmp_path, job_file(["daily: 13:00", HTTP]))
    (problem,) = problems_of(path)
    prefix = f"{path}:3: job 'a': daily: quote the times: "
    assert problem.startswith(prefix)
    hint = problem.removeprefix(prefix)
    assert "780" in hint
    assert "unquoted 13:00" in hint and '"13:00"' in hint
    assert "03:00" not in hint


def test_unquoted_time_in_a_daily_list_gets_the_same_hint(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, job_file(['daily: ["07:00", 13:00]', HTTP]))
    (problem,) = problems_of(path)
    assert problem == f'{path}:3: job \'a\': daily: quote the times: YAML reads an unquoted 13:00 as the number 780; write "13:00"'


def test_job_names_yaml_would_read_as_booleans_stay_names(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "jobs:\n  on: {every: 5m, http: {path: /x}}\n  no: {every: 5m, http: {path: /y}}\n")
    assert [spec.name for spec in jobs_file.load_jobs(path, {}, API_URL, now=NOW)] == ["on", "no"]


def test_enabled_may_come_from_a_variable(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, job_file(["every: 5m", HTTP, "enabled: ${JOB_ON:-true}"]))
    assert jobs_file.load_jobs(path, {"JOB_ON": "false"}, API_URL, now=NOW)[0].enabled is False
    assert jobs_file.load_jobs(path, {}, API_URL, now=NOW)[0].enabled is True


def test_duration_with_an_embedded_variable_names_the_source(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, job_file(["every: ${N}m", HTTP]))
    (problem,) = problems_of(path, {"N": "abc"})
    assert problem.endswith("got 'abcm' (expanded from '${N}m')")


def test_cron_that_never_fires_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, job_file(['cron: "0 0 31 2 *"', HTTP]))
    (problem,) = problems_of(path)
    assert problem == f"{path}:3: job 'a': cron: never fires: no month in '2' has day '31'; got '0 0 31 2 *'"


def test_unknown_key_in_defaults_retry_names_the_defaults_section(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        defaults:
          retry: {attempts: 3, backof: 2s}
        jobs:
          a:
            every: 5m
            http: {method: GET, path: /x}
        """,
    )
    assert_problems(
        path,
        [f"2: defaults.retry.backof: unknown key (did you mean 'backoff'?); allowed: {RETRY_KEYS}"],
    )


def test_bad_defaults_timezone_names_the_defaults_section(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        defaults:
          timezone: Europe/Prag
        jobs:
          a:
            daily: "03:00"
            http: {method: GET, path: /x}
        """,
    )
    assert_problems(path, ["2: defaults.timezone: unknown timezone 'Europe/Prag' (did you mean 'Europe/Prague'?)"])


# --------------------------------------------------------------------------- many problems at once

MANY_PROBLEMS = """
defaults:
  jitter: 2h
  timeuot: 5s
jobs:
  first:
    timeout: 0
    every: 5x
    http: {method: FETCH, path: /x}
  second:
    daily: "07:00"
    timezone: Europe/Prag
    call: tickless_no_such_module_xyz:run
  third:
    every: ${THIRD_INTERVAL:-60}
    http: {method: GET, path: /x}
  ok:
    every: 1d
    http: {method: GET, path: /x}
  first:
    every: 1m
    http: {method: GET, path: /x}
"""
# In line order.
MANY_PROBLEMS_FOUND = [
    "3: defaults.timeuot: unknown key (did you mean 'timeout'?); allowed: timeout, retry, jitter, timezone, notify, ping",
    "6: job 'first': timeout: must be greater than 0, got 0",
    f"7: job 'first': every: {DURATION_RULE}, got '5x'",
    "8: job 'first': http.method: must be one of GET, POST, PUT, PATCH, DELETE, got 'FETCH'",
    "11: job 'second': timezone: unknown timezone 'Europe/Prag' (did you mean 'Europe/Prague'?)",
    f"12: job 'second': call: cannot import '{MISSING_MODULE}': ModuleNotFoundError: No module named '{MISSING_MODULE}'",
    "14: job 'third': every: THIRD_INTERVAL='' must be a positive integer (seconds)",
    "19: duplicate key 'first' (first at line 5)",
]


def test_every_problem_in_a_file_is_reported_in_one_error(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, MANY_PROBLEMS)
    with pytest.raises(ConfigError) as caught:
        load(path, {"THIRD_INTERVAL": ""})
    assert sorted(caught.value.lines) == sorted(located(path, MANY_PROBLEMS_FOUND))
    assert str(caught.value).splitlines() == caught.value.lines


def test_problems_are_sorted_by_line(tmp_path: Path) -> None:
    # Found in another order: duplicates while parsing, defaults before jobs,
    # and within 'first' the schedule (line 7) before the timeout (line 6).
    path = write_yaml(tmp_path, MANY_PROBLEMS)
    assert problems_of(path, {"THIRD_INTERVAL": ""}) == located(path, MANY_PROBLEMS_FOUND)


def test_problems_within_one_job_are_sorted_by_line(tmp_path: Path) -> None:
    # The unknown key (line 3) is found before the missing schedule (line 2).
    path = write_yaml(tmp_path, job_file(["evrey: 5m", HTTP]))
    assert problems_of(path) == located(
        path,
        [
            "2: job 'a': needs a schedule: one of every, daily, cron",
            f"3: job 'a': evrey: unknown key (did you mean 'every'?); allowed: {JOB_KEYS}",
        ],
    )


def test_shipped_catalogue_reports_every_bad_variable_together() -> None:
    env = {
        "SCHEDULER_DATA_REFRESH_INTERVAL": "",
        "SCHEDULER_HEALTH_CHECK_INTERVAL": "abc",
        OFFSET_VARIABLE: "-5",
    }
    found = problems_of(SHIPPED, env)
    assert sorted(found) == sorted(
        [
            f"{SHIPPED}:{line_containing(SHIPPED, '${SCHEDULER_DATA_REFRESH_INTERVAL')}: job 'data-refresh': every: "
            "SCHEDULER_DATA_REFRESH_INTERVAL='' must be a positive integer (seconds)",
            f"{SHIPPED}:{line_containing(SHIPPED, '${SCHEDULER_HEALTH_CHECK_INTERVAL')}: job 'health-check': every: "
            "SCHEDULER_HEALTH_CHECK_INTERVAL='abc' must be a positive integer (seconds)",
            f"{SHIPPED}:{line_containing(SHIPPED, '${' + OFFSET_VARIABLE)}: job 'bq-metadata-refresh': "
            f"initial_offset_max: {OFFSET_VARIABLE}=-5 must be >= 0 (seconds)",
        ]
    )


def test_a_json_body_yaml_reads_as_a_date_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, job_file(["every: 5m", "http: {method: POST, path: /x, json: {since: 2024-01-01}}"]))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4: job 'a': http.json: cannot be sent as JSON: Object of type date is not JSON serializable")


@pytest.mark.parametrize("value", ["99999999999999", "999999999d"])
def test_absurdly_long_durations_are_configuration_errors(tmp_path: Path, value: str) -> None:
    path = write_yaml(tmp_path, job_file([f"every: {value}", HTTP]))
    (problem,) = problems_of(path)
    assert "must be at most 10 years (315360000s)" in problem


def test_an_interval_variable_in_milliseconds_is_caught(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, job_file(["every: ${SCHEDULER_DATA_REFRESH_INTERVAL:-900}", HTTP]))
    (problem,) = problems_of(path, {"SCHEDULER_DATA_REFRESH_INTERVAL": "900000000000"})
    assert problem.endswith("SCHEDULER_DATA_REFRESH_INTERVAL=900000000000 must be <= 315360000 (seconds, 10 years)")


def test_a_control_character_is_a_located_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text('jobs:\n  a:\n    every: 5m\n    http: {path: "/x\x01"}\n')
    (problem,) = problems_of(path)
    assert problem == f"{path}:4: invalid YAML: character '\\x01' is not allowed (special characters are not allowed)"


# --------------------------------------------------------------------------- issue 11: names, URLs, kwargs, catalog


@pytest.mark.parametrize("name", ["a", "data-refresh", "session-processor:usage", "v1.2_x", "A" * jobs_file.MAX_NAME_LENGTH])
def test_job_names_of_letters_digits_and_dot_underscore_colon_dash_are_accepted(tmp_path: Path, name: str) -> None:
    path = write_yaml(tmp_path, f'jobs:\n  "{name}": {{every: 5m, http: {{path: /x}}}}\n')
    assert [spec.name for spec in load(path)] == [name]


@pytest.mark.parametrize(("written", "shown"), [
    ('""', "''"),
    ('"x\\ny"', "'x\\ny'"),
    ('"my job"', "'my job'"),
    ('"a/b"', "'a/b'"),
    ('"naïve"', "'naïve'"),
    ('"' + "n" * 101 + '"', repr("n" * 101)),
])
def test_other_job_names_are_refused_with_file_and_line(tmp_path: Path, written: str, shown: str) -> None:
    path = write_yaml(tmp_path, f"jobs:\n  ok: {{every: 5m, http: {{path: /x}}}}\n  {written}: {{every: 5m, http: {{path: /x}}}}\n")
    rule = "the name must be 1 to 100 letters, digits or '.', '_', ':', '-' (no spaces or line breaks)"
    assert problems_of(path) == [f"{path}:3: job {shown}: {rule}; got {shown}"]


def test_credentials_in_a_job_url_are_refused_without_the_password(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, """
        jobs:
          hook:
            every: 5m
            http: {method: POST, url: "https://deploy:hunter2@hooks.example.com/run?x=1"}
          only-user:
            every: 5m
            http: {url: "http://deploy@hooks.example.com/run"}
        """)
    lines = problems_of(path)
    rule = "http.url: must not carry credentials (user:password@): put a token in http.headers instead; got"
    assert lines == [
        f"{path}:4: job 'hook': {rule} 'https://deploy@hooks.example.com/run' (the password, if any, is not shown)",
        f"{path}:7: job 'only-user': {rule} 'http://deploy@hooks.example.com/run' (the password, if any, is not shown)",
    ]
    assert "hunter2" not in "\n".join(lines)


@pytest.fixture
def fixed_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"tickless_test_signature_{uuid.uuid4().hex}"
    folder = tmp_path / "signature"
    folder.mkdir()
    (folder / f"{name}.py").write_text("def sync(source, *, dry_run=False):\n    return source\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)


def test_kwargs_are_bound_against_the_callables_signature(tmp_path: Path, fixed_signature: str) -> None:
    path = write_yaml(tmp_path, f"""
        jobs:
          unknown:
            every: 5m
            call: {fixed_signature}:sync
            kwargs: {{source: crm, dryrun: true}}
          missing:
            every: 5m
            call: {fixed_signature}:sync
          fits:
            every: 5m
            call: {fixed_signature}:sync
            kwargs: {{source: crm, dry_run: true}}
        """)
    reference = f"{fixed_signature}:sync(source, *, dry_run=False)"
    assert problems_of(path) == [
        f"{path}:5: job 'unknown': kwargs: do not fit {reference}: got an unexpected keyword argument 'dryrun' "
        "(kwargs given: source, dryrun)",
        f"{path}:8: job 'missing': kwargs: do not fit {reference}: missing a required argument: 'source' (kwargs given: none)",
    ]


def test_kwargs_that_fit_are_kept(tmp_path: Path, fixed_signature: str) -> None:
    path = write_yaml(tmp_path, f"jobs:\n  a: {{every: 5m, call: '{fixed_signature}:sync', kwargs: {{source: crm}}}}\n")
    [spec] = load(path)
    assert isinstance(spec.target, CallTarget) and spec.target.function(**spec.target.kwargs) == "crm"


CATALOG_JOB = """
    jobs:
      local: {every: 5m, http: {path: /x}}
      bq-metadata-refresh:
        every: 4h
        call: catalog.refresh:refresh_all
    """


def test_a_job_calling_the_catalog_reports_the_catalogs_problems_located_in_catalog_yaml(tmp_path: Path) -> None:
    catalog_yaml = write_yaml(tmp_path, """
        bigquery:
          project: my-project
        tables:
          orders: {dataset: sales, table: orders}
        where_examples: ["amount >"]
        """, name="catalog.yaml")
    path = write_yaml(tmp_path, CATALOG_JOB)
    lines = problems_of(path, {"CATALOG_CONFIG": str(catalog_yaml)})
    assert len(lines) == 2
    assert lines[0].startswith(f"{catalog_yaml}:5: where_examples: where example 'amount >': does not parse")
    assert lines[1] == (
        f"{path}:3: job 'bq-metadata-refresh': call: calls into the catalog, whose configuration has 1 problem(s) "
        f"(listed with {catalog_yaml}); every run would fail"
    )


def test_a_catalog_variable_problem_is_reported_too(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, CATALOG_JOB)
    lines = problems_of(path, {"CATALOG_CONFIG": str(tmp_path / "absent.yaml"), "CATALOG_REFRESH_CONCURRENCY": "0"})
    assert "CATALOG_REFRESH_CONCURRENCY=0 must be between 1 and 64" in lines
    assert lines[-1].startswith(f"{path}:3: job 'bq-metadata-refresh': call: calls into the catalog")


def test_a_job_calling_a_valid_catalog_loads(tmp_path: Path) -> None:
    catalog_yaml = write_yaml(tmp_path, """
        bigquery:
          project: my-project
        tables:
          orders: {dataset: sales, table: orders}
        """, name="catalog.yaml")
    assert sorted(load_jobs(write_yaml(tmp_path, CATALOG_JOB), {"CATALOG_CONFIG": str(catalog_yaml)})) == [
        "bq-metadata-refresh", "local",
    ]
