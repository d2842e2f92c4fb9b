"""Restarts, reload, metrics and health: the real CLI, a real state file, real sockets."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.scheduler.support import ApiServer, Service, clean_env, http_get, ops_url, run_cli, write_jobs

pytestmark = pytest.mark.integration

Start = Callable[..., Service]


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _env(api: ApiServer, **extra: str) -> dict[str, str]:
    return clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", **extra)






def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def test_restart_does_not_refire_a_job_that_just_ran(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  hourly: {every: 1h, http: {method: POST, path: /api/h}}\n")
    first = start_service(["run", "-c", str(config)], _env(api))
    call = api.wait_for("/api/h", 1)[0]
    first.terminate()
    seed = re.search(r"jitter seed (\d+) \(drawn now", first.log)
    assert seed, first.log

    second = start_service(["run", "-c", str(config)], _env(api))
    second.wait_for_log("resumes its grid")
    time.sleep(1.5)
    second.terminate()
    assert len(api.calls("/api/h")) == 1, "a restart must not re-fire a job that ran minutes ago"
    assert f"jitter seed {seed.group(1)} (from the state store)" in second.log
    following = datetime.fromtimestamp(_stamp(call.headers["X-Scheduler-Scheduled-For"]) + 3600, UTC)
    expected = following.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert f"job hourly: every 1h, first run at {expected} (resumes its grid)" in second.log


def test_list_prints_what_the_restarted_service_will_do(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  hourly: {every: 1h, jitter: 2s, http: {path: /api/h}}\n")
    service = start_service(["run", "-c", str(config)], _env(api))
    api.wait_for("/api/h", 1)
    service.terminate()
    listed = run_cli(["list", "-c", str(config), "--json", "--next", "1"], _env(api), tmp_path)
    assert listed.returncode == 0, listed.stderr
    next_run = json.loads(listed.stdout)["jobs"][0]["next_runs"][0]

    again = start_service(["run", "-c", str(config)], _env(api))
    again.wait_for_log("first run at")
    again.terminate()
    assert f"job hourly: every 1h, first run at {next_run} (resumes its grid)" in again.log


def test_a_slot_missed_while_down_runs_once_with_its_own_time(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  tick: {every: 3, http: {method: POST, path: /api/t}}\n")
    first = start_service(["run", "-c", str(config)], _env(api))
    n0 = _stamp(api.wait_for("/api/t", 1)[0].headers["X-Scheduler-Scheduled-For"])
    first.terminate()
    time.sleep(max(0.0, n0 + 3.6 - time.time()))  # down over the slot at n0+3

    restarted = time.time()
    second = start_service(["run", "-c", str(config)], _env(api))
    calls = api.wait_for("/api/t", 2)
    second.terminate()
    catch_up = calls[1]
    assert abs(_stamp(catch_up.headers["X-Scheduler-Scheduled-For"]) - (n0 + 3)) < 0.001
    assert catch_up.arrived - restarted < 2.5  # at start, not at the next slot
    assert "catch-up of the slot" in second.log


def test_catch_up_zero_waits_for_the_next_slot(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  tick: {every: 3, catch_up: 0, http: {method: POST, path: /api/t}}\n")
    first = start_service(["run", "-c", str(config)], _env(api))
    n0 = _stamp(api.wait_for("/api/t", 1)[0].headers["X-Scheduler-Scheduled-For"])
    first.terminate()
    time.sleep(max(0.0, n0 + 3.6 - time.time()))

    second = start_service(["run", "-c", str(config)], _env(api))
    calls = api.wait_for("/api/t", 2)
    second.terminate()
    assert abs(_stamp(calls[1].headers["X-Scheduler-Scheduled-For"]) - (n0 + 6)) < 0.001
    assert calls[1].arrived >= n0 + 6
    assert "catch_up 0" in second.log


def test_jobs_due_at_start_are_spread(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          c: {every: 1h, http: {path: /api/c}}
          a: {every: 1h, http: {path: /api/a}}
          b: {every: 1h, http: {path: /api/b}}
    """)
    started = time.time()
    service = start_service(["run", "-c", str(config)], _env(api, SCHEDULER_STARTUP_SPREAD_SECONDS="3"))
    arrivals = [api.wait_for(f"/api/{name}", 1)[0].arrived for name in ("a", "b", "c")]
    service.terminate()
    assert arrivals == sorted(arrivals)
    assert arrivals[2] - arrivals[0] >= 1.8  # 2 s apart in the plan; not all at once
    assert arrivals[2] - started < 15


def test_sighup_applies_a_valid_file_and_keeps_running_on_an_invalid_one(
    api: ApiServer, tmp_path: Path, start_service: Start
) -> None:
    config = write_jobs(tmp_path, "jobs:\n  a: {every: 1h, http: {path: /api/a}}\n")
    service = start_service(["run", "-c", str(config)], _env(api))
    api.wait_for("/api/a", 1)
    base = ops_url(service)

    write_jobs(tmp_path, "jobs:\n  a: {every: 1h, http: {path: /api/a}}\n  b: {every: 1h, http: {path: /api/b}}\n")
    service.proc.send_signal(signal.SIGHUP)
    service.wait_for_log("reload applied")
    api.wait_for("/api/b", 1)
    assert "added ['b'], removed none, changed none, 1 unchanged" in service.log

    write_jobs(tmp_path, "jobs:\n  a: {evry: 1h, http: {path: /api/a}}\n")
    service.proc.send_signal(signal.SIGHUP)
    service.wait_for_log("reload rejected: 2 problem(s)")
    _, metrics = http_get(base + "/metrics")
    assert service.proc.poll() is None
    assert "unknown key (did you mean 'every'?)" in service.log
    assert _sample(metrics, "tickless_config_reloads_total", result="applied") == 1
    assert _sample(metrics, "tickless_config_reloads_total", result="rejected") == 1
    assert len(api.calls("/api/a")) == 1  # the unchanged job kept its phase: no re-run on reload
    code, _ = service.terminate()
    assert code == 0


def test_metrics_and_health_over_a_real_socket(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    api.on("/api/bad", status=500)
    config = write_jobs(tmp_path, """
        jobs:
          good: {every: 1, http: {path: /api/good}}
          bad: {every: 1, timeout: 1s, http: {path: /api/bad}}
    """)
    service = start_service(["run", "-c", str(config)], _env(api, SCHEDULER_STARTUP_SPREAD_SECONDS="0"))
    base = ops_url(service)
    api.wait_for("/api/good", 1)
    time.sleep(0.3)
    _, before = http_get(base + "/metrics")
    api.wait_for("/api/good", len(api.calls("/api/good")) + 2)
    time.sleep(0.3)
    _, after = http_get(base + "/metrics")
    ok_before = _sample(before, "tickless_runs_total", job="good", outcome="ok")
    assert ok_before >= 1
    assert _sample(after, "tickless_runs_total", job="good", outcome="ok") >= ok_before + 2
    assert _sample(after, "tickless_runs_total", job="bad", outcome="failed") >= 1
    assert _sample(after, "tickless_scheduler_up") == 1
    assert _sample(after, "tickless_next_run_timestamp_seconds", job="good") > time.time() - 1
    assert _sample(after, "tickless_last_success_timestamp_seconds", job="good") > 0
    assert "tickless_run_lateness_seconds_bucket" in after

    # 'bad' never succeeds: after 2 x 1 s + 1 s timeout the service is unhealthy, naming it.
    time.sleep(max(0.0, 3.5 - (time.time() - api.calls("/api/good")[0].arrived)))
    status, body = http_get(base + "/healthz")
    health = json.loads(body)
    service.terminate()
    assert status == 503
    assert health["status"] == "unhealthy"
    assert any(problem.startswith("job bad has not succeeded") for problem in health["problems"])
    jobs = {job["name"]: job for job in health["jobs"]}
    assert jobs["good"]["last_outcome"] == "ok" and jobs["bad"]["last_outcome"] == "failed"
    assert jobs["good"]["next_run"].endswith("Z")


def test_healthz_is_200_when_all_jobs_succeed(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  good: {every: 1, http: {path: /api/good}}\n")
    service = start_service(["run", "-c", str(config)], _env(api))
    base = ops_url(service)
    api.wait_for("/api/good", 2)
    status, body = http_get(base + "/healthz")
    service.terminate()
    assert status == 200
    assert json.loads(body)["status"] == "ok"


def test_history_command_reads_the_state_store(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    api.on("/api/bad", status=404, body="gone")
    config = write_jobs(tmp_path, """
        jobs:
          good: {every: 1h, http: {path: /api/good}}
          bad: {every: 1h, http: {path: /api/bad}}
    """)
    service = start_service(["run", "-c", str(config)], _env(api, SCHEDULER_STARTUP_SPREAD_SECONDS="0"))
    api.wait_for("/api/good", 1)
    api.wait_for("/api/bad", 1)
    service.wait_for_log("run end: job=bad")
    service.terminate()

    result = run_cli(["history", "-c", str(config), "--json"], _env(api), tmp_path)
    assert result.returncode == 0, result.stderr
    runs = {run["job"]: run for run in json.loads(result.stdout)["runs"]}
    assert runs["good"]["outcome"] == "ok" and runs["good"]["status"] == 200
    assert runs["bad"]["outcome"] == "failed" and runs["bad"]["status"] == 404 and "gone" in runs["bad"]["error"]
    text = run_cli(["history", "bad", "-c", str(config)], _env(api), tmp_path)
    assert "failed" in text.stdout and "good" not in text.stdout


def test_an_unusable_state_path_is_a_clear_start_error(tmp_path: Path) -> None:
    config = write_jobs(tmp_path, "jobs:\n  a: {every: 1h, http: {path: /a}}\n")
    (tmp_path / "plain-file").write_text("")
    env = clean_env(SCHEDULER_STATE_PATH=str(tmp_path / "plain-file" / "state.sqlite"))
    result = run_cli(["run", "-c", str(config)], env, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"SCHEDULER_STATE_PATH='{tmp_path / 'plain-file' / 'state.sqlite'}': cannot use the state store" in result.stderr


def test_a_reload_during_the_grace_does_not_fire_early(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  a: {every: 1, http: {path: /api/a}}\n")
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="4")
    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log("startup grace")
    grace_end = re.search(r"nothing runs before (\S+)", service.log)
    assert grace_end
    write_jobs(tmp_path, "jobs:\n  a: {every: 1, http: {path: /api/a}}\n  b: {every: 1, http: {path: /api/b}}\n")
    service.proc.send_signal(signal.SIGHUP)
    service.wait_for_log("reload applied")
    calls = api.wait_for("/api/b", 1)
    service.terminate()
    assert calls[0].arrived >= _stamp(grace_end.group(1))
    assert all(call.arrived >= _stamp(grace_end.group(1)) for call in api.calls("/api/a"))
