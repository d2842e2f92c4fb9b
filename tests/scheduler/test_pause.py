"""Pause, resume and status: kept in the store (both backends, migrated), honoured by a running service."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from scheduler import cli
from scheduler.execution.run import RunOutcome
from scheduler.ops.health import HealthTracker
from scheduler.state import postgres, sqlite
from scheduler.state.postgres import PostgresStore
from scheduler.state.records import ClaimStatus, RunRecord
from scheduler.state.sqlite import SqliteStore
from tests.scheduler.support import ApiServer, clean_env, http_get, run_cli, write_jobs
from tests.scheduler.support import Service as ServiceProcess
from tests.scheduler.test_health import NOW, FakeService, minutely

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

# --- migrations ------------------------------------------------------------------------------------------------


def test_a_version_2_sqlite_store_migrates_to_3_keeping_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.executescript(sqlite._SCHEMA + sqlite._MIGRATE_TO_2 + "PRAGMA user_version = 2;")
    db.execute("INSERT INTO runs (job, scheduled_for, outcome, started_at) VALUES ('job', ?, 'ok', ?)", (T0.isoformat(),) * 2)
    db.commit()
    db.close()
    assert SqliteStore(path, readonly=True).paused_jobs() == {}  # a look at the old file (a CLI beside an old service)
    store = SqliteStore(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == sqlite.SCHEMA_VERSION == 4
    assert [run.outcome for run in store.history("job")] == [RunOutcome.OK]
    store.pause("job", by="ops@host", now=T0)
    assert store.begin_run("job", T0, replica="a", now=T0, lease_seconds=30).status == ClaimStatus.PAUSED
    store.close()


def test_a_version_1_postgres_store_migrates_to_2_keeping_its_runs(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in postgres._SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO tickless_meta (key, value) VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO tickless_runs (job, scheduled_for, outcome) VALUES ('job', %s, 'ok')", (T0,))
    store = PostgresStore(postgres_url, pool_size=2)
    try:
        with psycopg.connect(postgres_url) as conn:
            version = conn.execute("SELECT value FROM tickless_meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(postgres.SCHEMA_VERSION),) == ("2",)
        assert [run.outcome for run in store.history("job")] == [RunOutcome.OK]
        store.pause("job", by="ops@host", now=T0)
        replica = PostgresStore(postgres_url, pool_size=2)  # another replica, started after the migration
        assert replica.begin_run("job", T0, replica="b", now=T0, lease_seconds=30).status == ClaimStatus.PAUSED
        replica.close()
    finally:
        store.close()


# --- health ----------------------------------------------------------------------------------------------------


def test_a_paused_job_is_not_unhealthy_and_is_judged_from_its_resume() -> None:
    service = FakeService({"tick": minutely()}, next_runs={"tick": NOW + timedelta(seconds=60)})
    tracker = HealthTracker(service, {}, service.clock)
    tracker.set_paused("tick", True)
    service.now = NOW + timedelta(hours=5)
    health = tracker.check()
    assert health.healthy, health.body
    assert health.body["jobs"] == [{"name": "tick", "last_outcome": None, "last_run_at": None, "last_success_at": None,
                                    "next_run": None, "paused": True}]
    tracker.set_paused("tick", False)
    service.now += timedelta(seconds=60)
    assert tracker.check().healthy  # silence while paused is not held against it
    service.now += timedelta(seconds=200)
    assert not tracker.check().healthy


# --- the commands ----------------------------------------------------------------------------------------------

JOBS = """
jobs:
  tick: {every: 15m, http: {path: /api/tick}}
  report: {daily: "07:00", http: {method: POST, path: /api/report}}
  never: {every: 1h, http: {path: /api/never}}
  off: {every: 1h, http: {path: /api/off}, enabled: false}
"""


@pytest.fixture
def scheduler_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    for name in list(clean_env()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCHEDULER_STATE_PATH", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("SCHEDULER_JITTER_SEED", "7")
    monkeypatch.chdir(tmp_path)
    write_jobs(tmp_path, JOBS)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield run


def test_pause_and_resume_record_the_state_and_refuse_unknown_names(scheduler_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = scheduler_cli("pause", "tick")
    assert code == 0 and re.match(r"tick: paused since \S+Z by \S+@\S+; ", out)
    code, _, err = scheduler_cli("pause", "tik")
    assert code == 2 and "no job named 'tik'" in err and "did you mean 'tick'?" in err
    code, out, _ = scheduler_cli("list", "--json", "--next", "0")
    assert {job["name"]: job["paused"] for job in json.loads(out)["jobs"]} == {"tick": True, "report": False, "never": False, "off": False}
    code, out, _ = scheduler_cli("list", "--next", "0")
    assert re.search(r"^tick .*\(paused\)$", out, re.M)
    code, out, _ = scheduler_cli("history", "--json")
    assert [entry["job"] for entry in json.loads(out)["paused"]] == ["tick"]
    code, out, _ = scheduler_cli("history")
    assert out.splitlines()[-1].startswith("paused: tick since ")
    code, out, _ = scheduler_cli("resume", "tick")
    assert code == 0 and out.startswith("tick: resumed (paused since ")
    code, out, _ = scheduler_cli("resume", "tick")
    assert code == 0 and out == "tick: was not paused\n"
    code, _, err = scheduler_cli("resume", "nope")
    assert code == 2 and "no job named 'nope'" in err


def test_status_shows_next_left_last_result_duration_job(tmp_path: Path, scheduler_cli: Callable[..., tuple[int, str, str]]) -> None:
    now = datetime.now(UTC)
    last = now - timedelta(minutes=5)
    store = SqliteStore(tmp_path / "state.sqlite")
    store.claim_grid("tick", "every 15m tz=UTC", last)
    claim = store.begin_run("tick", last, replica="a", now=last, lease_seconds=30)
    store.finish_runs([(claim.run_id, RunRecord("tick", last, RunOutcome.OK, last, last + timedelta(seconds=0.25),
                                                status=200, attempts=1, duration_s=0.25))])
    store.claim_grid("report", "daily 07:00 tz=UTC", last)
    failed = store.begin_run("report", last, replica="a", now=last, lease_seconds=30)
    store.finish_runs([(failed.run_id, RunRecord("report", last, RunOutcome.FAILED, last, last + timedelta(seconds=2),
                                                 status=500, attempts=3, duration_s=2.0, error="HTTP 500"))])
    store.pause("report", by="ops@host", now=now)
    store.close()

    code, out, _ = scheduler_cli("status", "--json")
    assert code == 0
    document = json.loads(out)
    assert set(document) == {"server_time", "state_path", "jobs"}
    jobs = {job["name"]: job for job in document["jobs"]}
    assert set(jobs["tick"]) == {"name", "enabled", "paused", "paused_at", "paused_by", "next_run", "left_seconds", "last_run"}
    tick = jobs["tick"]
    # Its grid resumes: the next slot is 15 minutes after the last one.
    assert tick["next_run"] == (last + timedelta(minutes=15)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert 590 < tick["left_seconds"] <= 600
    assert (tick["last_run"]["outcome"], tick["last_run"]["duration_seconds"], tick["paused"]) == ("ok", 0.25, False)
    report = jobs["report"]
    assert (report["paused"], report["paused_by"], report["next_run"], report["left_seconds"]) == (True, "ops@host", None, None)
    assert report["last_run"]["outcome"] == "failed"
    assert jobs["never"]["last_run"] is None and jobs["never"]["next_run"] is not None
    assert (jobs["off"]["enabled"], jobs["off"]["next_run"]) == (False, None)

    code, out, _ = scheduler_cli("status")
    lines = out.splitlines()
    assert lines[0].split() == ["NEXT", "LEFT", "LAST", "RESULT", "DURATION", "JOB"]
    rows = {line.split()[-1] if "(paused" not in line else "report": line for line in lines[1:]}
    assert rows["tick"].split()[:2] == [tick["next_run"], "10min"] or rows["tick"].split()[1:3] == ["9min", "59s"]
    assert rows["tick"].split()[-4:] == [tick["last_run"]["started_at"], "ok", "0.250s", "tick"]
    assert rows["report"].split()[:5] == ["paused", "-", report["last_run"]["started_at"], "failed", "2.000s"]
    assert rows["report"].endswith(f"report  (paused since {report['paused_at']} by ops@host)")
    assert rows["never"].split()[2:] == ["-", "-", "-", "never"]
    assert rows["off"].split() == ["disabled", "-", "-", "-", "-", "off"]
    assert [line.split()[-1] for line in lines[1:3]] == ["never", "tick"]  # soonest first (never: its first run is due now)


def test_status_before_any_state_store(scheduler_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = scheduler_cli("status")
    assert code == 0 and len(out.splitlines()) == 5 and not any("paused" in line for line in out.splitlines())


# --- end to end ------------------------------------------------------------------------------------------------




@pytest.mark.integration
def test_pause_and_resume_through_a_running_service(
    api: ApiServer, tmp_path: Path, start_service: Callable[..., ServiceProcess],
) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          tick: {every: 1s, http: {path: /api/tick}}
          other: {every: 1s, http: {path: /api/other}}
    """)
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"))
    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log("metrics and health on")
    base = "http://" + re.search(r"http://([\d.]+:\d+)/metrics", service.log).group(1)  # type: ignore[union-attr]
    api.wait_for("/api/tick", 2)

    paused = run_cli(["pause", "tick", "-c", str(config)], env, tmp_path)
    assert paused.returncode == 0, paused.stderr
    honoured_by = time.time() + 1.0  # a run claimed just before the pause may still arrive
    service.wait_for_log("job tick is paused")
    time.sleep(3)
    assert [call for call in api.calls("/api/tick") if call.arrived > honoured_by] == []
    assert len([call for call in api.calls("/api/other") if call.arrived > honoured_by]) >= 2  # the others go on
    status, body = http_get(f"{base}/healthz")
    assert status == 200 and {job["name"]: job["paused"] for job in json.loads(body)["jobs"]} == {"tick": True, "other": False}
    assert 'tickless_job_paused{job="tick"} 1.0' in http_get(f"{base}/metrics")[1]
    fire = run_cli(["fire", "tick", "-c", str(config)], env, tmp_path)
    assert fire.returncode == 3 and "not run: the job is paused" in fire.stderr
    listed = run_cli(["status", "-c", str(config)], env, tmp_path)
    assert re.search(r"^paused .* tick  \(paused since ", listed.stdout, re.M), listed.stdout

    resumed_at = time.time()
    resumed = run_cli(["resume", "tick", "-c", str(config)], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    deadline = time.monotonic() + 5
    while not [call for call in api.calls("/api/tick") if call.arrived > resumed_at]:
        assert time.monotonic() < deadline, "tick never fired again after resume"
        time.sleep(0.05)
    service.wait_for_log("job tick is resumed")
    assert 'tickless_job_paused{job="tick"} 0.0' in http_get(f"{base}/metrics")[1]
    service.terminate()
