"""One service per SQLite file, `fire` through the store, kill -9, a failing store, an unreachable PostgreSQL.

The real CLI in subprocesses, a real SQLite file, a real PostgreSQL, real sockets.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scheduler.support import ApiServer, Service, clean_env, http_get, ops_url, run_cli, write_jobs

pytestmark = pytest.mark.integration

Start = Callable[..., Service]


def _env(api: ApiServer, state: Path, **extra: str) -> dict[str, str]:
    return clean_env(API_URL=api.url, SCHEDULER_STATE_PATH=str(state), SCHEDULER_STARTUP_GRACE_SECONDS="0",
                     SCHEDULER_STARTUP_SPREAD_SECONDS="0", **extra)






def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {name} in:\n{text}")


def test_a_second_run_on_the_same_file_exits_2_naming_the_holder(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    config = write_jobs(tmp_path, "jobs:\n  hourly: {every: 1h, http: {path: /h}}\n")
    state = tmp_path / "state" / "scheduler.sqlite"
    env = _env(api, state)
    first = start_service(["run", "-c", str(config)], env)
    first.wait_for_log("jitter seed")
    api.wait_for("/h", 1)

    began = time.monotonic()
    second = run_cli(["run", "-c", str(config)], env, tmp_path, timeout=30)
    took = time.monotonic() - began
    assert second.returncode == 2, second.stderr
    assert took < 10, f"the second run took {took:.1f}s to give up: it should exit at once"
    assert str(state) in second.stderr, second.stderr
    assert f"pid {first.proc.pid} on {socket.gethostname()}, since 20" in second.stderr, second.stderr
    assert "jitter seed" not in second.stderr  # it never started

    time.sleep(1)
    assert len(api.calls("/h")) == 1, "the refused second instance fired a run"
    assert first.proc.poll() is None
    code, _ = first.terminate()
    assert code == 0
    # The lock goes with its holder: a new run on the file starts.
    third = start_service(["run", "-c", str(config)], env)
    third.wait_for_log("jitter seed")
    assert third.terminate()[0] == 0


def test_fire_during_a_run_exits_3_and_force_runs_it(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    api.on("/slow", delay=8)
    config = write_jobs(tmp_path, "jobs:\n  slow: {every: 1h, retry: {attempts: 1}, http: {path: /slow}}\n")
    env = _env(api, tmp_path / "state.sqlite")
    service = start_service(["run", "-c", str(config)], env)
    api.wait_for("/slow", 1)

    refused = run_cli(["fire", "slow", "-c", str(config)], env, tmp_path)
    assert refused.returncode == 3, refused.stderr
    assert re.search(r"slow: not run: a run of it is in flight; it has been in flight since 20\S+Z on "
                     rf"{re.escape(socket.gethostname())}:{service.proc.pid}:", refused.stderr), refused.stderr
    assert "--force" in refused.stderr
    assert len(api.calls("/slow")) == 1, "a refused fire made a request"

    forced = run_cli(["fire", "slow", "--force", "-c", str(config)], env, tmp_path)
    assert forced.returncode == 0, forced.stderr
    calls = api.calls("/slow")
    assert len(calls) == 2
    assert api.max_in_flight["/slow"] == 2, "--force must run beside the service's run, at the same time"
    assert calls[1].arrived < calls[0].finished

    service.terminate()
    history = json.loads(run_cli(["history", "slow", "--json", "-c", str(config)], env, tmp_path).stdout)["runs"]
    outcomes = sorted(run["outcome"] for run in history)
    # the service's run, the forced fire; the refused fire left a skipped row, never a run
    assert outcomes == ["ok", "ok", "skipped_in_flight"], history


def _wait_for_running(config: Path, env: dict[str, str], cwd: Path, jobs: set[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        history = json.loads(run_cli(["history", "--json", "-c", str(config)], env, cwd).stdout)["runs"]
        if jobs <= {run["job"] for run in history if run["outcome"] == "running"}:
            return
        assert time.monotonic() < deadline, f"in-flight rows of {sorted(jobs)} never written: {history}"
        time.sleep(0.05)


def test_kill_9_mid_run_is_closed_as_interrupted_and_retried_once(api: ApiServer, tmp_path: Path, start_service: Start) -> None:
    api.on("/kept", delay=3)
    api.on("/late", delay=3)
    config = write_jobs(tmp_path, """\
        jobs:
          kept: {every: 1h, catch_up: 1h, retry: {attempts: 1}, http: {method: POST, path: /kept}}
          late: {every: 1h, catch_up: 0s, retry: {attempts: 1}, http: {method: POST, path: /late}}
    """)
    env = _env(api, tmp_path / "state.sqlite")
    first = start_service(["run", "-c", str(config)], env)
    original = api.wait_for("/kept", 1)[0]
    api.wait_for("/late", 1)
    # Alone on its file the service writes in-flight rows from its background writer, a few
    # milliseconds after a run starts (docs/operations.md): kill once both rows are on disk.
    _wait_for_running(config, env, tmp_path, {"kept", "late"})
    first.kill()  # SIGKILL, both runs in flight

    second = start_service(["run", "-c", str(config)], env)
    second.wait_for_log("run interrupted: job=kept")
    second.wait_for_log("run interrupted: job=late")
    retried = api.wait_for("/kept", 2)[1]
    second.wait_for_log("run end: job=kept")
    time.sleep(1.5)
    code, _ = second.terminate()
    assert code == 0

    assert retried.headers["Idempotency-Key"] == original.headers["Idempotency-Key"]
    assert retried.headers["X-Scheduler-Scheduled-For"] == original.headers["X-Scheduler-Scheduled-For"]
    assert len(api.calls("/kept")) == 2, "retried more than once"
    assert len(api.calls("/late")) == 1, "a slot beyond its catch_up window was retried"
    assert "not retried: its slot is beyond the job's catch_up window" in second.log

    stamp = original.headers["X-Scheduler-Scheduled-For"]
    history = json.loads(run_cli(["history", "--json", "-c", str(config)], env, tmp_path).stdout)["runs"]
    kept = [(run["scheduled_for"], run["outcome"]) for run in reversed(history) if run["job"] == "kept"]
    late = [(run["scheduled_for"], run["outcome"]) for run in reversed(history) if run["job"] == "late"]
    slot = re.sub(r"(\.\d{3})\d*Z$", r"\1Z", stamp)  # history prints milliseconds
    assert kept == [(slot, "interrupted"), (slot, "ok")], history
    assert [outcome for _, outcome in late] == ["interrupted"], history
    interrupted = next(run for run in history if run["job"] == "kept" and run["outcome"] == "interrupted")
    assert interrupted["started_at"] and interrupted["finished_at"] and "kill -9" in interrupted["error"]


def test_a_store_that_stops_taking_writes_is_logged_once_counted_and_unhealthy(
    api: ApiServer, tmp_path: Path, start_service: Start,
) -> None:
    config = write_jobs(tmp_path, "jobs:\n  tick: {every: 1s, retry: {attempts: 1}, http: {path: /tick}}\n")
    state = tmp_path / "state.sqlite"
    service = start_service(["run", "-c", str(config)], _env(api, state))
    ops = ops_url(service)
    api.wait_for("/tick", 2)
    status, body = http_get(f"{ops}/healthz")
    assert status == 200, body
    assert _sample(http_get(f"{ops}/metrics")[1], "tickless_state_store_failures_total") == 0

    state.unlink()  # deleted under the service
    before = len(api.calls("/tick"))
    api.wait_for("/tick", before + 4, timeout=15)  # runs go on
    time.sleep(0.5)

    status, body = http_get(f"{ops}/healthz")
    assert status == 503, body
    health = json.loads(body)
    assert health["state_store"]["location"] == str(state) and health["state_store"]["ok"] is False, health
    assert any(str(state) in problem for problem in health["problems"]), health
    failures = _sample(http_get(f"{ops}/metrics")[1], "tickless_state_store_failures_total")
    assert failures >= 4, f"{failures} failures counted for 4 runs or more"
    assert _sample(http_get(f"{ops}/metrics")[1], "tickless_state_store_up") == 0

    logged = [line for line in service.lines if f"state store {state} failed" in line]
    assert len(logged) == 1, "\n".join(logged) or service.log
    assert "deleted or replaced" in logged[0]
    assert service.proc.poll() is None
    code, _ = service.terminate()
    assert code == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PASSWORD = "Pa55-w0rd-never-shown"


def test_postgresql_unreachable_at_start_exits_2_and_the_password_is_never_shown(
    api: ApiServer, tmp_path: Path, start_service: Start, postgres_url: str,
) -> None:
    config = write_jobs(tmp_path, "jobs:\n  hourly: {every: 1h, http: {path: /h}}\n")
    unreachable = f"postgresql://tickless:{PASSWORD}@127.0.0.1:{_closed_port()}/tickless"
    env = clean_env(API_URL=api.url, SCHEDULER_STATE_URL=unreachable, SCHEDULER_STARTUP_GRACE_SECONDS="0")
    for command in (["run"], ["validate"]):
        began = time.monotonic()
        result = run_cli([*command, "-c", str(config)], env, tmp_path)
        took = time.monotonic() - began
        shown = result.stdout + result.stderr
        assert result.returncode == 2, shown
        assert PASSWORD not in shown, shown
        assert "SCHEDULER_STATE_URL='postgresql://tickless@127.0.0.1:" in result.stderr, shown
        message = [line for line in result.stderr.splitlines() if line.startswith("scheduler: ")]
        assert message and "Connection refused" in message[0], f"the message does not say why: {shown}"
        assert took < 8, f"{command[0]} took {took:.1f}s to report an unreachable server"
    listed = run_cli(["list", "--json", "-c", str(config)], env, tmp_path)
    assert PASSWORD not in listed.stdout + listed.stderr
    assert api.calls("/h") == []

    # A reachable server, with a password in the URL (trust authentication ignores it): never shown either.
    reachable = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    assert PASSWORD in reachable
    env = clean_env(API_URL=api.url, SCHEDULER_STATE_URL=reachable, SCHEDULER_STARTUP_GRACE_SECONDS="0")
    for command in (["validate"], ["list", "--json"], ["history", "--json"]):
        result = run_cli([*command, "-c", str(config)], env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr, result.stdout + result.stderr
    service = start_service(["run", "-c", str(config)], env)
    api.wait_for("/h", 1)
    assert service.terminate()[0] == 0
    assert "state postgresql://postgres@127.0.0.1:5432/" in service.log or "state postgresql://postgres@" in service.log
    assert PASSWORD not in service.log
    history = run_cli(["history", "--json", "-c", str(config)], env, tmp_path)
    assert [run["outcome"] for run in json.loads(history.stdout)["runs"]] == ["ok"]
    assert PASSWORD not in history.stdout + history.stderr
