"""End to end: the real CLI in a subprocess against a real HTTP server on 127.0.0.1.

Timing bounds are generous for a loaded 2-core machine; what is asserted is
ordering and counts that would fail if the feature were removed.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from tests.scheduler.support import ApiServer, Service, clean_env, json_lines, write_jobs

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-token-value-7f2a"


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_one_second_job_fires_on_its_grid_with_headers(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          tick:
            every: 1
            http: {method: POST, path: /api/tick, json: {"source": "test"}}
    """)
    env = clean_env(API_URL=api.url, SCHEDULER_API_TOKEN=TOKEN, SCHEDULER_STARTUP_GRACE_SECONDS="0")
    service = start_service(["run", "-c", str(config)], env)
    calls = api.wait_for("/api/tick", 3)
    code, _ = service.terminate()

    assert code == 0
    first = calls[0]
    assert first.method == "POST"
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.headers["X-Scheduler-Job"] == "tick"
    assert first.headers["User-Agent"].startswith("tickless/")
    assert json.loads(first.body) == {"source": "test"}
    stamps = [_stamp(call.headers["X-Scheduler-Scheduled-For"]) for call in calls[:3]]
    # Nominal times sit exactly on a 1-second grid: no tick, no drift.
    assert [b - a for a, b in pairwise(stamps)] == [timedelta(seconds=1)] * 2
    for call in calls[:3]:
        assert call.headers["Idempotency-Key"] == f"tick@{call.headers['X-Scheduler-Scheduled-For']}"
        # Arrives after its nominal time, and not a polling tick later.
        lateness = call.arrived - _stamp(call.headers["X-Scheduler-Scheduled-For"]).timestamp()
        assert -0.05 < lateness < 2.0
    assert "run start: job=tick" in service.log and "outcome=ok" in service.log
    assert TOKEN not in service.log


def test_slow_endpoint_never_has_two_runs_in_flight(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    api.on("/api/slow", delay=2.5)
    config = write_jobs(tmp_path, """
        jobs:
          slow:
            every: 1
            http: {method: POST, path: /api/slow}
            timeout: 10s
    """)
    service = start_service(["run", "-c", str(config)], clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0"))
    api.wait_for("/api/slow", 2, timeout=30)
    service.wait_for_log("run skipped: job=slow")
    code, _ = service.terminate()

    assert code == 0
    assert api.max_in_flight["/api/slow"] == 1
    skipped = [line for line in service.lines if "run skipped: job=slow" in line]
    assert "has been in flight since" in skipped[0]


def test_always_500_is_called_once_per_run(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    api.on("/api/broken", status=500, body="database exploded " * 30)
    config = write_jobs(tmp_path, """
        jobs:
          broken:
            every: 1
            http: {method: POST, path: /api/broken}
            retry: {attempts: 5, backoff: 0s}
    """)
    service = start_service(["run", "-c", str(config)], clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0"))
    api.wait_for("/api/broken", 3)
    time.sleep(0.5)
    code, _ = service.terminate()

    assert code == 0
    calls = api.calls("/api/broken")
    keys = [call.headers["Idempotency-Key"] for call in calls]
    assert len(keys) == len(set(keys)), "a 500 must not be retried within a run"
    failures = [line for line in service.lines if "run end: job=broken" in line and "outcome=failed" in line]
    assert len(failures) >= len(calls) - 1  # the last call may still be in flight at SIGTERM
    assert "HTTP 500" in failures[0] and "database exploded" in failures[0]
    assert len(failures[0].split("error=")[1]) < 300  # the body is cut to 200 characters


def test_503_is_retried_with_the_same_idempotency_key(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    api.on("/api/flaky", script=[503], status=200)
    config = write_jobs(tmp_path, """
        jobs:
          flaky:
            every: 1h
            http: {method: POST, path: /api/flaky}
            retry: {attempts: 3, backoff: 0s}
    """)
    service = start_service(["run", "-c", str(config)], clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0"))
    calls = api.wait_for("/api/flaky", 2)
    service.wait_for_log("run end: job=flaky")
    service.terminate()

    assert calls[0].headers["Idempotency-Key"] == calls[1].headers["Idempotency-Key"]
    assert "run retry: job=flaky attempt=1" in service.log
    assert "outcome=ok" in service.log


def test_sigterm_during_grace_exits_within_a_second(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          tick:
            every: 1
            http: {method: POST, path: /api/tick}
    """)
    service = start_service(["run", "-c", str(config)], clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="60"))
    service.wait_for_log("startup grace")
    service.wait_for_log(f"API_URL {api.url} answers")  # the one health probe, during the grace
    code, took = service.terminate()

    assert code == 0
    assert took < 1.0
    assert api.calls("/api/tick") == []
    assert len(api.calls("/api/health")) == 1


def test_probe_reports_an_api_that_does_not_answer(tmp_path: Path, start_service: Callable[..., Service]) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          tick:
            every: 1h
            http: {method: POST, path: /api/tick}
    """)
    env = clean_env(API_URL="http://127.0.0.1:9", SCHEDULER_STARTUP_GRACE_SECONDS="30")
    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log("does not answer")
    code, _ = service.terminate()
    assert code == 0
    assert "WARNING" in next(line for line in service.lines if "does not answer" in line)


def test_sigterm_waits_for_the_run_in_flight(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    api.on("/api/long", delay=2.0)
    config = write_jobs(tmp_path, """
        jobs:
          long:
            every: 1h
            http: {method: POST, path: /api/long}
    """)
    service = start_service(["run", "-c", str(config)], clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0"))
    call = api.wait_for("/api/long", 1)[0]
    code, _ = service.terminate()
    exited = time.time()

    assert code == 0
    assert call.finished and call.finished <= exited, "exited before the in-flight run completed"
    assert "run end: job=long" in service.log and "outcome=ok" in service.log
    assert "abandoned" not in service.log.replace("0 run(s) abandoned", "")


def test_shutdown_timeout_abandons_and_logs_the_run(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    api.on("/api/stuck", delay=20.0)
    config = write_jobs(tmp_path, """
        jobs:
          stuck:
            every: 1h
            http: {method: POST, path: /api/stuck}
            timeout: 60s
    """)
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS="1")
    service = start_service(["run", "-c", str(config)], env)
    api.wait_for("/api/stuck", 1)
    code, took = service.terminate()

    assert code == 0
    assert 0.9 < took < 8.0
    assert "run abandoned at shutdown: job=stuck" in service.log


def test_call_job_runs_in_process(tmp_path: Path, start_service: Callable[..., Service]) -> None:
    marker = tmp_path / "called.txt"
    (tmp_path / "mytasks.py").write_text(
        "def touch(path, word):\n    open(path, 'a').write(word + '\\n')\n"
    )
    config = write_jobs(tmp_path, f"""
        jobs:
          touch:
            every: 1
            call: mytasks:touch
            kwargs: {{path: "{marker}", word: hello}}
    """)
    env = clean_env(SCHEDULER_STARTUP_GRACE_SECONDS="0", PYTHONPATH=str(tmp_path), API_URL="http://127.0.0.1:9")
    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log("run end: job=touch")
    service.terminate()
    assert marker.read_text().splitlines()[0] == "hello"


def test_json_log_lines(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          tick:
            every: 1h
            http: {method: GET, path: /api/tick}
    """)
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_LOG_FORMAT="json",
                    SCHEDULER_API_TOKEN=TOKEN)
    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log('"outcome": "ok"')
    service.terminate()

    records = json_lines(service.log)
    end = next(record for record in records if str(record["message"]).startswith("run end"))
    assert end["job"] == "tick" and end["status"] == 200 and end["level"] == "INFO"
    assert isinstance(end["duration_s"], float) and isinstance(end["lateness_s"], float)
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    assert TOKEN not in service.log


def test_second_sigint_stops_waiting(api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]) -> None:
    api.on("/api/stuck", delay=20.0)
    config = write_jobs(tmp_path, """
        jobs:
          stuck:
            every: 1h
            http: {method: POST, path: /api/stuck}
    """)
    service = start_service(["run", "-c", str(config)], clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0"))
    api.wait_for("/api/stuck", 1)
    service.proc.send_signal(signal.SIGINT)
    service.wait_for_log("shutting down: waiting")
    code, took = service.terminate(signal.SIGINT)
    assert code == 0
    assert took < 5.0
    assert "run abandoned at shutdown: job=stuck" in service.log


def test_runs_missed_while_paused_are_coalesced_into_one(
    api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]
) -> None:
    config = write_jobs(tmp_path, """
        jobs:
          tick:
            every: 2
            http: {method: POST, path: /api/tick}
    """)
    service = start_service(["run", "-c", str(config)], clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0"))
    first = api.wait_for("/api/tick", 1)[0]
    n0 = _stamp(first.headers["X-Scheduler-Scheduled-For"]).timestamp()
    time.sleep(max(0.0, n0 + 0.5 - time.time()))
    service.proc.send_signal(signal.SIGSTOP)
    # Stopped over the slots n0+2 and n0+4; resumed 1.5 s after the latter,
    # later than APScheduler's default 1 s misfire grace would allow.
    time.sleep(max(0.0, n0 + 5.5 - time.time()))
    resumed = time.time()
    service.proc.send_signal(signal.SIGCONT)
    api.wait_for("/api/tick", 2)
    time.sleep(0.3)
    service.terminate()

    late = [
        call for call in api.calls("/api/tick")
        if n0 < _stamp(call.headers["X-Scheduler-Scheduled-For"]).timestamp() < resumed
    ]
    assert len(late) == 1, "missed slots must run once, coalesced, however late"
    assert abs(_stamp(late[0].headers["X-Scheduler-Scheduled-For"]).timestamp() - (n0 + 4)) < 0.001
    assert late[0].arrived >= resumed
