"""/livez: the scheduler loop and its worker pool are alive, whatever the jobs do."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.config.settings import load_settings
from scheduler.config.spec import CallTarget, JobSpec, Schedule, ScheduleKind
from scheduler.ops.liveness import Liveness
from scheduler.service import Service
from scheduler.state.sqlite import SqliteStore
from tests.scheduler.support import ApiServer, clean_env, write_jobs
from tests.scheduler.support import Service as ServiceProcess


@dataclass
class Ticks:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def test_alive_while_running_and_beating() -> None:
    ticks = Ticks()
    liveness = Liveness(lambda: True, heartbeat_seconds=5, stale_after_seconds=30, monotonic=ticks)
    liveness.started()
    ticks.now += 20
    assert liveness.check().healthy  # no beat yet, but within the bound from the loop's start
    liveness.beat()
    ticks.now += 29
    state = liveness.check()
    assert state.healthy and state.body["status"] == "alive" and state.body["last_heartbeat_seconds_ago"] == 29


def test_dead_when_the_heartbeat_stops_naming_why() -> None:
    ticks = Ticks()
    liveness = Liveness(lambda: True, heartbeat_seconds=5, stale_after_seconds=30, monotonic=ticks)
    liveness.started()
    liveness.beat()
    ticks.now += 31
    state = liveness.check()
    assert not state.healthy and state.body["status"] == "dead"
    assert state.body["problems"] == [
        "the last heartbeat ran 31s ago (allowed 30s): the scheduler loop or its worker pool is stuck"
    ]
    liveness.beat()
    assert liveness.check().healthy


def test_dead_when_the_loop_is_not_running() -> None:
    running = False
    liveness = Liveness(lambda: running, monotonic=Ticks())
    assert liveness.check().body["problems"] == ["the scheduler loop is not running"]
    running = True
    liveness.started()
    assert liveness.check().healthy


def _service(tmp_path: Path, heartbeat: float) -> Service:
    settings = load_settings(clean_env(SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"), SCHEDULER_STARTUP_GRACE_SECONDS="3600"),
                             str(tmp_path / "jobs.yaml"))
    spec = JobSpec(name="idle", line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=3600),
                   target=CallTarget("builtins:len", len, {}))
    return Service(settings, [spec], SqliteStore(tmp_path / "state.sqlite"), heartbeat_seconds=heartbeat)


@pytest.mark.integration
def test_a_worker_pool_whose_every_worker_is_stuck_is_not_alive(tmp_path: Path) -> None:
    service = _service(tmp_path, heartbeat=0.2)  # stale after 3 s
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    release = threading.Event()
    try:
        deadline = time.monotonic() + 5
        while not (service.running and service.liveness.check().body["last_heartbeat_seconds_ago"] is not None):
            assert time.monotonic() < deadline, "the heartbeat never ran"
            time.sleep(0.05)
        assert service.liveness.check().healthy
        # Every worker of the pool the jobs run in blocks: the heartbeat cannot run any more.
        pool = service.scheduler._lookup_executor("default")._pool
        for _ in range(service.workers):
            pool.submit(release.wait)
        deadline = time.monotonic() + 10
        while service.liveness.check().healthy:
            assert time.monotonic() < deadline, "a stuck pool was still called alive"
            time.sleep(0.1)
        assert "worker pool is stuck" in service.liveness.check().body["problems"][0]  # type: ignore[index]
        release.set()
        deadline = time.monotonic() + 5
        while not service.liveness.check().healthy:
            assert time.monotonic() < deadline, "a pool that came back was not alive again"
            time.sleep(0.05)
    finally:
        release.set()
        service.request_stop()
        thread.join(15)
    assert not service.liveness.check().healthy  # stopped: not running


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.integration
def test_livez_stays_200_while_a_job_keeps_failing_and_healthz_turns_503(
    api: ApiServer, tmp_path: Path, start_service: Callable[..., ServiceProcess],
) -> None:
    api.on("/api/broken", status=500)
    # Unhealthy after 2 x 1 s + 1 s without a success.
    config = write_jobs(tmp_path, "jobs:\n  broken: {every: 1s, timeout: 1s, retry: {attempts: 1}, http: {path: /api/broken}}\n")
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0")
    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log("metrics and health on")
    match = re.search(r"http://([\d.]+:\d+)/metrics", service.log)
    assert match
    base = f"http://{match.group(1)}"
    api.wait_for("/api/broken", 1)  # the loop runs: the "not running yet" 503s are over
    deadline = time.monotonic() + 20
    while True:
        status, body = _get(f"{base}/healthz")
        problems = body["problems"]
        assert isinstance(problems, list)
        if any("job broken has not succeeded" in problem for problem in problems):
            break
        assert time.monotonic() < deadline, f"healthz never named the failing job: {status} {problems}"
        assert _get(f"{base}/livez")[0] == 200  # alive all along
        time.sleep(0.2)
    assert status == 503
    status, body = _get(f"{base}/livez")
    assert status == 200 and body["status"] == "alive" and body["scheduler_running"] is True
    assert len(api.calls("/api/broken")) >= 3
    service.terminate()
