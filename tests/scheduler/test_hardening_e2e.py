"""Issue 11, part A, through the real CLI: tokens, hostile YAML in both tools and on SIGHUP,
call modules from the working directory, a 429 that cannot wait, history, metrics at start."""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.config.jobs_file import load_jobs
from scheduler.errors import ConfigError
from scheduler.execution.run import RunOutcome
from scheduler.state.records import RunRecord
from scheduler.state.sqlite import SqliteStore
from tests.scheduler.support import ApiServer, Service, clean_env, json_lines, run_cli, write_jobs

pytestmark = pytest.mark.integration

Start = Callable[..., Service]
GOOD = "tok-first-7c1d2e3f"
ROTATED = "tok-second-9a8b7c6d"
TWO_LINES = ("tok-TWOLINE-5e4d3c2b", "# rotated on monday")
BOMB_LEVELS = "".join(
    f"      {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB_JOBS = (
    "jobs:\n  x:\n    every: 60\n    http:\n      method: POST\n      path: /x\n      json:\n"
    '        a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + BOMB_LEVELS.replace("      ", "        ")
)
DEEP_JOBS = "jobs:\n  x:\n    every: 60\n    http:\n      method: POST\n      path: /x\n      json: " + "[" * 1000 + "]" * 1000 + "\n"
BOMB_CATALOG = (
    "bigquery:\n  project: my-project\ntables:\n  orders: {dataset: sales, table: orders}\nwhere_examples:\n"
    '  - &a ["x = 1", "x = 1", "x = 1", "x = 1", "x = 1", "x = 1", "x = 1", "x = 1", "x = 1"]\n'
    + "".join(f"  - &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True))
)
DEEP_CATALOG = (
    "bigquery:\n  project: my-project\ntables:\n  orders: {dataset: sales, table: orders}\n"
    "where_examples: " + "[" * 1000 + "]" * 1000 + "\n"
)


def _metrics(service: Service) -> str:
    service.wait_for_log("metrics and health on")
    line = next(line for line in service.lines if "metrics and health on" in line)
    match = re.search(r"http://([\d.]+:\d+)/metrics", line)
    assert match, line
    with urllib.request.urlopen(f"http://{match.group(1)}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _peak_child_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# -- tokens ---------------------------------------------------------------------------------------


def test_a_two_line_token_never_appears_in_any_output_log_history_or_metric(
    api: ApiServer, tmp_path: Path, start_service: Start,
) -> None:
    """Refused by every command without being quoted; rotated in by SIGHUP it is rejected and the old token stays."""
    token = tmp_path / "token"
    token.write_text("\n".join(TWO_LINES) + "\n")
    config = write_jobs(tmp_path, "jobs:\n  tick: {every: 1, http: {method: POST, path: /api/tick}}\n")
    env = clean_env(API_URL=api.url, SCHEDULER_API_TOKEN_FILE=str(token), SCHEDULER_STARTUP_GRACE_SECONDS="0",
                    SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"))
    seen: list[str] = []
    for args in (["validate"], ["run"], ["list", "--json"], ["fire", "tick"], ["history"], ["history", "--json"]):
        result = run_cli([*args, "-c", str(config)], env, tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "the token must be one line of visible ASCII characters, but it has 2 lines" in result.stderr
        seen += [result.stdout, result.stderr]

    # A running service whose token file is rotated to the two-line value: rejected, the old token stays.
    token.write_text(GOOD + "\n")
    service = start_service(["run", "-c", str(config)], {**env, "SCHEDULER_LOG_FORMAT": "json"})
    api.wait_for("/api/tick", 1)
    token.write_text("\n".join(TWO_LINES) + "\n")
    service.proc.send_signal(signal.SIGHUP)
    service.wait_for_log("reload rejected: 1 problem(s)")
    after = len(api.calls("/api/tick"))
    api.wait_for("/api/tick", after + 2)
    seen.append(_metrics(service))
    service.terminate()
    seen.append(service.log)
    for args in (["history"], ["history", "--json"], ["list", "--json"]):
        token.write_text(GOOD + "\n")
        result = run_cli([*args, "-c", str(config)], env, tmp_path)
        assert result.returncode == 0, result.stderr
        seen += [result.stdout, result.stderr]
    reader = SqliteStore(tmp_path / "state.sqlite", readonly=True)
    seen += [repr(run) for run in reader.history(None, 1000)]  # every stored row, every column
    reader.close()
    everything = "\n".join(seen)
    for part in TWO_LINES:
        assert part not in everything
    assert {call.headers["Authorization"] for call in api.calls("/api/tick")} == {f"Bearer {GOOD}"}
    assert "Traceback" not in service.log


def test_a_rotated_token_file_is_re_read_on_sighup(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    token = tmp_path / "token"
    token.write_text(GOOD + "\n")
    config = write_jobs(tmp_path, "jobs:\n  tick: {every: 1, http: {method: POST, path: /api/tick}}\n")
    env = clean_env(API_URL=api.url, SCHEDULER_API_TOKEN_FILE=str(token), SCHEDULER_STARTUP_GRACE_SECONDS="0",
                    SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"), SCHEDULER_LOG_FORMAT="json")
    service = start_service(["run", "-c", str(config)], env)
    api.wait_for("/api/tick", 1)
    token.write_text(ROTATED + "\n")
    service.proc.send_signal(signal.SIGHUP)
    service.wait_for_log("the API token changed")
    after = len(api.calls("/api/tick"))
    api.wait_for("/api/tick", after + 2)
    service.terminate()
    tokens = [call.headers["Authorization"] for call in api.calls("/api/tick")]
    assert tokens[0] == f"Bearer {GOOD}" and tokens[-1] == f"Bearer {ROTATED}"
    assert tokens == sorted(tokens, key=lambda value: value != f"Bearer {GOOD}")  # old ones, then new ones only
    assert GOOD not in service.log and ROTATED not in service.log


# -- hostile YAML: both tools, and SIGHUP ------------------------------------------------------------


@pytest.mark.parametrize(("text", "line", "message"), [
    (BOMB_JOBS, 13, "aliases expand the document beyond 100000 nodes"),
    (DEEP_JOBS, 7, "nested more than 100 levels deep"),
])
def test_scheduler_validate_refuses_an_alias_bomb_and_deep_nesting_quickly(
    tmp_path: Path, text: str, line: int, message: str,
) -> None:
    config = tmp_path / "jobs.yaml"
    config.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_jobs(config, {}, "http://app", now=datetime.now(UTC))
    assert time.monotonic() - started < 1.0
    assert caught.value.lines[0].startswith(f"{config}:{line}: {message}")

    result = run_cli(["validate", "-c", str(config)], clean_env(), tmp_path, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{config}:{line}: {message}" in result.stderr and len(result.stderr) < 1000
    assert _peak_child_rss_mib() < 200  # expanded, the bomb is hundreds of millions of nodes


@pytest.mark.parametrize(("text", "line", "message"), [
    (BOMB_CATALOG, 11, "aliases expand the document beyond 100000 nodes"),
    (DEEP_CATALOG, 5, "nested more than 100 levels deep"),
])
@pytest.mark.parametrize("command", [["list"], ["status", "--json"], ["guard", "SELECT 1"]])
def test_catalog_commands_refuse_an_alias_bomb_and_deep_nesting_in_where_examples(
    tmp_path: Path, text: str, line: int, message: str, command: list[str],
) -> None:
    from catalog.errors import ConfigError as CatalogConfigError
    from catalog.registry import load_registry

    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(CatalogConfigError):
        load_registry(path, {})
    assert time.monotonic() - started < 1.0
    env = {**clean_env(), "CATALOG_CONFIG": str(path), "CATALOG_DB": str(tmp_path / "catalog.sqlite")}
    result = subprocess.run([sys.executable, "-m", "catalog", *command], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr) < 1000
    assert f"{path}:{line}" in result.stderr and message in result.stderr
    assert _peak_child_rss_mib() < 200


def test_hostile_yaml_sent_with_sighup_is_rejected_and_logged_and_the_service_goes_on(
    api: ApiServer, tmp_path: Path, start_service: Start,
) -> None:
    good = "jobs:\n  tick: {every: 1, http: {method: POST, path: /api/tick}}\n"
    config = write_jobs(tmp_path, good)
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_STATE_PATH=str(tmp_path / "s.sqlite"))
    service = start_service(["run", "-c", str(config)], env)
    api.wait_for("/api/tick", 1)
    for number, (text, line) in enumerate(((BOMB_JOBS, 13), (DEEP_JOBS, 7)), start=1):
        config.write_text(text)
        sent = time.monotonic()
        service.proc.send_signal(signal.SIGHUP)
        service.wait_for_log(f"reload rejected: {config}:{line}:")
        assert time.monotonic() - sent < 5.0  # generous: the refusal itself takes milliseconds
        service.wait_for_log("still running the previous configuration")
        while sum("still running the previous configuration" in entry for entry in service.lines) < number:
            time.sleep(0.02)
    after = len(api.calls("/api/tick"))
    api.wait_for("/api/tick", after + 2)  # the service goes on with the previous jobs
    metrics = _metrics(service)
    assert 'tickless_config_reloads_total{result="rejected"} 2.0' in metrics
    code, _ = service.terminate()
    assert code == 0
    assert "Traceback" not in service.log


# -- call modules from the working directory -------------------------------------------------------


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_call_modules_import_from_the_working_directory_however_the_cli_is_started(tmp_path: Path, how: str) -> None:
    (tmp_path / "myjobs.py").write_text("def nightly(dry_run=False):\n    return dry_run\n")
    config = write_jobs(tmp_path, "jobs:\n  n: {every: 1h, call: 'myjobs:nightly', kwargs: {dry_run: true}}\n")
    script = Path(sys.executable).parent / "scheduler"
    argv = [str(script)] if how == "console script" else [sys.executable, "-m", "scheduler"]
    result = subprocess.run([*argv, "validate", "-c", str(config)], env=clean_env(), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "1 jobs valid" in result.stdout


# -- a 429 that cannot be waited out -------------------------------------------------------------------


def test_a_retry_after_beyond_the_next_run_is_named_in_the_failure(api: ApiServer, tmp_path: Path) -> None:
    api.on("/api/limited", status=429, headers={"Retry-After": "3600"}, body="slow down")
    config = write_jobs(tmp_path, "jobs:\n  limited: {every: 60, http: {method: POST, path: /api/limited}}\n")
    env = clean_env(API_URL=api.url, SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"))
    result = run_cli(["fire", "limited", "-c", str(config)], env, tmp_path)
    assert result.returncode == 1
    assert len(api.calls("/api/limited")) == 1
    assert "HTTP 429" in result.stdout and "not retried: its Retry-After (3600s) ends after the job's next run" in result.stdout


# -- history and metrics from the store --------------------------------------------------------------


T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_history_is_ordered_by_scheduled_time_with_a_header_and_attempts(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite")
    # Recorded in this order: a catch-up of an older slot is recorded last.
    store.record_many([
        RunRecord("a", T0 + timedelta(minutes=1), RunOutcome.OK, T0, T0, status=200, attempts=1, duration_s=0.2),
        RunRecord("b", T0 + timedelta(minutes=2), RunOutcome.FAILED, T0, T0, status=503, attempts=3, duration_s=1.5, error="HTTP 503"),
        RunRecord("a", T0 - timedelta(minutes=5), RunOutcome.OK, T0, T0, status=200, attempts=2, duration_s=0.3),
    ])
    store.close()
    config = write_jobs(tmp_path, "jobs:\n  a: {every: 1m, http: {path: /a}}\n  b: {every: 1m, http: {path: /b}}\n")
    env = clean_env(SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"))
    text = run_cli(["history", "-c", str(config)], env, tmp_path)
    assert text.returncode == 0, text.stderr
    header, *rows = text.stdout.splitlines()
    assert header.split() == ["SCHEDULED", "JOB", "OUTCOME", "DURATION", "ATTEMPTS", "DETAIL"]
    assert [row.split()[:5] for row in rows] == [
        ["2026-03-10T12:02:00.000Z", "b", "failed", "1.500s", "3"],
        ["2026-03-10T12:01:00.000Z", "a", "ok", "0.200s", "1"],
        ["2026-03-10T11:55:00.000Z", "a", "ok", "0.300s", "2"],
    ]
    document = json.loads(run_cli(["history", "-c", str(config), "--json"], env, tmp_path).stdout)
    assert [(run["scheduled_for"], run["attempts"]) for run in document["runs"]] == [
        ("2026-03-10T12:02:00.000Z", 3), ("2026-03-10T12:01:00.000Z", 1), ("2026-03-10T11:55:00.000Z", 2),
    ]


def test_last_success_and_run_counters_are_there_before_the_first_run(tmp_path: Path, start_service: Start) -> None:
    store = SqliteStore(tmp_path / "state.sqlite")
    store.claim_grid("a", "every 1h tz=UTC", T0)
    finished = T0 + timedelta(seconds=2)
    store.record_many([RunRecord("a", T0, RunOutcome.OK, T0, finished, status=200, attempts=1, duration_s=2.0)])
    store.close()
    config = write_jobs(tmp_path, "jobs:\n  a: {every: 1h, http: {path: /a}}\n  b: {every: 1h, http: {path: /b}}\n")
    env = clean_env(SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"), SCHEDULER_STARTUP_GRACE_SECONDS="600")
    service = start_service(["run", "-c", str(config)], env)
    metrics = _metrics(service)  # during the grace: no run has happened
    service.terminate()
    [restored] = [line for line in metrics.splitlines() if line.startswith('tickless_last_success_timestamp_seconds{job="a"} ')]
    assert float(restored.split()[-1]) == finished.timestamp()
    assert 'tickless_last_success_timestamp_seconds{job="b"}' not in metrics
    for job in ("a", "b"):
        for outcome in ("ok", "failed"):
            assert f'tickless_runs_total{{job="{job}",outcome="{outcome}"}} 0.0' in metrics


def test_lateness_is_logged_from_the_jittered_fire_time(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  j: {every: 2, jitter: 1s, http: {path: /api/j}}\n")
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_LOG_FORMAT="json",
                    SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"), SCHEDULER_JITTER_SEED="3")
    service = start_service(["run", "-c", str(config)], env)
    api.wait_for("/api/j", 4)
    service.terminate()
    starts = [line for line in json_lines(service.log) if str(line.get("message", "")).startswith("run start: job=j")]
    assert len(starts) >= 4
    for line in starts:
        fire = datetime.fromisoformat(str(line["fire_time"]).replace("Z", "+00:00"))
        nominal = datetime.fromisoformat(str(line["scheduled_for"]).replace("Z", "+00:00"))
        assert timedelta(0) <= fire - nominal <= timedelta(seconds=1)
        assert float(str(line["lateness_s"])) < 0.5  # measured from the fire time: the jitter is not counted
    assert any(
        datetime.fromisoformat(str(line["fire_time"]).replace("Z", "+00:00"))
        - datetime.fromisoformat(str(line["scheduled_for"]).replace("Z", "+00:00")) > timedelta(seconds=0.5)
        for line in starts
    ), "the seed should give at least one jitter over 0.5 s, or the test proves nothing"
