"""The command line as users script it: exit codes, messages, JSON shapes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduler import __version__
from tests.scheduler.support import ApiServer, clean_env, run_cli, write_jobs

pytestmark = pytest.mark.integration

TOKEN = "tok-9d81-never-print-me"
REPO = Path(__file__).resolve().parents[2]

LIST_KEYS = {
    "name", "enabled", "schedule", "interval_seconds", "timezone", "kind", "method", "url", "callable",
    "timeout_seconds", "jitter_seconds", "initial_offset_max_seconds", "retry", "next_runs", "paused",
}


def test_validate_shipped_catalogue(tmp_path: Path) -> None:
    result = run_cli(["validate", "-c", str(REPO / "jobs.yaml")], clean_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "11 jobs valid (11 enabled, 0 disabled)" in result.stdout
    assert "SCHEDULER_API_TOKEN" in result.stderr  # the one warning about running without a token


def test_validate_reports_every_problem_without_traceback(tmp_path: Path) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          a:
            every: ${SCHEDULER_DATA_REFRESH_INTERVAL:-900}
            http: {method: POST, path: /x}
          b:
            cron: "61 * * * *"
            http: {method: GET, path: nope}
    """)
    env = clean_env(SCHEDULER_DATA_REFRESH_INTERVAL="abc", SCHEDULER_STARTUP_GRACE_SECONDS="-5")
    result = run_cli(["validate", "-c", str(config)], env, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "scheduler: 4 configuration problem(s):"
    assert "SCHEDULER_STARTUP_GRACE_SECONDS=-5 must be >= 0 (seconds)" in lines
    assert f"{config}:4: job 'a': every: SCHEDULER_DATA_REFRESH_INTERVAL='abc' must be a positive integer (seconds)" in lines
    assert any(line.startswith(f"{config}:7: job 'b': cron:") for line in lines)
    assert f"{config}:8: job 'b': http.path: must start with '/', got 'nope'" in lines


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli(["run", "-c", "nowhere.yaml"], clean_env(), tmp_path)
    assert result.returncode == 2
    assert "nowhere.yaml: cannot read the file: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_scheduler_config_variable_names_the_file(tmp_path: Path) -> None:
    write_jobs(tmp_path, "jobs:\n  a: {every: 5m, http: {path: /x}}\n")
    (tmp_path / "jobs.yaml").rename(tmp_path / "other.yaml")
    result = run_cli(["validate"], clean_env(SCHEDULER_CONFIG="other.yaml"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("other.yaml: 1 jobs valid")


def test_list_json_shape_and_no_token(tmp_path: Path) -> None:
    env = clean_env(SCHEDULER_API_TOKEN=TOKEN, SCHEDULER_JITTER_SEED="42", SCHEDULER_STARTUP_GRACE_SECONDS="0")
    result = run_cli(["list", "-c", str(REPO / "jobs.yaml"), "--json", "--next", "2"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"api_url", "auth", "startup_grace_seconds", "jitter_seed", "jobs"}
    assert document["auth"] == "bearer" and document["jitter_seed"] == 42
    jobs = {job["name"]: job for job in document["jobs"]}
    assert len(jobs) == 11
    assert all(set(job) == LIST_KEYS for job in jobs.values())
    refresh = jobs["data-refresh"]
    assert refresh["schedule"] == "every 15m" and refresh["interval_seconds"] == 900
    assert refresh["method"] == "POST" and refresh["url"] == "http://localhost:8000/api/sync/trigger"
    assert refresh["retry"] == {"attempts": 3, "backoff_seconds": 1, "max_backoff_seconds": 30}
    assert len(refresh["next_runs"]) == 2 and refresh["next_runs"][0].endswith("Z")
    marketplaces = jobs["marketplaces"]
    assert marketplaces["schedule"] == "daily 03:00" and marketplaces["interval_seconds"] is None
    assert marketplaces["next_runs"][0].endswith("T03:00:00.000Z")
    assert jobs["bq-metadata-refresh"]["initial_offset_max_seconds"] == 900


def test_list_with_the_same_seed_prints_the_same_jittered_times(tmp_path: Path) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          nightly:
            cron: "30 2 * * 1-5"
            timezone: Europe/Prague
            jitter: 5m
            http: {method: POST, path: /n}
    """)

    def times(seed: str) -> list[str]:
        result = run_cli(["list", "-c", str(config), "--json", "--next", "5"], clean_env(SCHEDULER_JITTER_SEED=seed), tmp_path)
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout)["jobs"][0]["next_runs"])

    first, again, other = times("7"), times("7"), times("8")
    assert first == again
    assert first != other
    prague = ZoneInfo("Europe/Prague")
    for stamp in first:
        local = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(prague)
        nominal = local.replace(hour=2, minute=30, second=0, microsecond=0)
        assert local.weekday() < 5  # crontab 1-5 is Monday to Friday
        assert timedelta(0) <= local - nominal <= timedelta(minutes=5)


def test_fire_success_and_failure_exit_codes(api: ApiServer, tmp_path: Path) -> None:
    api.on("/bad", status=404, body="no such endpoint")
    config = write_jobs(tmp_path, """
        jobs:
          good: {every: 1h, http: {method: POST, path: /good}}
          bad: {every: 1h, http: {method: POST, path: /bad}}
    """)
    env = clean_env(API_URL=api.url, SCHEDULER_API_TOKEN=TOKEN)
    good = run_cli(["fire", "good", "-c", str(config)], env, tmp_path)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("good: ok (HTTP 200")
    assert api.calls("/good")[0].headers["Authorization"] == f"Bearer {TOKEN}"

    bad = run_cli(["fire", "bad", "-c", str(config)], env, tmp_path)
    assert bad.returncode == 1
    assert "HTTP 404" in bad.stdout and "no such endpoint" in bad.stdout
    assert len(api.calls("/bad")) == 1
    assert TOKEN not in good.stdout + good.stderr + bad.stdout + bad.stderr


def test_fire_unknown_job_suggests_the_name(tmp_path: Path) -> None:
    config = write_jobs(tmp_path, "jobs:\n  data-refresh: {every: 1h, http: {path: /x}}\n")
    result = run_cli(["fire", "data-refresh2", "-c", str(config)], clean_env(), tmp_path)
    assert result.returncode == 2
    assert "did you mean 'data-refresh'?" in result.stderr


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = run_cli(["frobnicate"], clean_env(), tmp_path)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_python_dash_m_and_console_script_agree(tmp_path: Path) -> None:
    module = run_cli(["--version"], clean_env(), tmp_path)
    script = Path(sys.executable).with_name("scheduler")
    console = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert module.returncode == console.returncode == 0
    assert module.stdout == console.stdout == f"tickless {__version__}\n"


def test_validate_checks_the_state_store_as_run_would(tmp_path: Path) -> None:
    config = write_jobs(tmp_path, "jobs:\n  a: {every: 1h, http: {path: /a}}\n")
    (tmp_path / "plain-file").write_text("")
    unusable = run_cli(["validate", "-c", str(config)],
                       clean_env(SCHEDULER_STATE_PATH=str(tmp_path / "plain-file" / "s.sqlite")), tmp_path)
    (tmp_path / "corrupt.sqlite").write_text("not a database" * 100)
    corrupt = run_cli(["validate", "-c", str(config)], clean_env(SCHEDULER_STATE_PATH=str(tmp_path / "corrupt.sqlite")), tmp_path)
    assert unusable.returncode == corrupt.returncode == 2
    assert "cannot use the state store" in unusable.stderr and "Traceback" not in unusable.stderr
    assert corrupt.stderr.strip().split("; ")[0].endswith("cannot use the state store: file is not a database")


def test_fire_a_call_job_prints_a_clean_summary(tmp_path: Path) -> None:
    (tmp_path / "mytask.py").write_text("def go():\n    return None\n")
    config = write_jobs(tmp_path, "jobs:\n  task: {every: 1h, call: 'mytask:go'}\n")
    result = run_cli(["fire", "task", "-c", str(config)], clean_env(PYTHONPATH=str(tmp_path)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"task: ok \(\d+\.\d{3}s\)\n", result.stdout)
    assert "status=None" not in result.stderr
