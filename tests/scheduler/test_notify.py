"""Failure notifications and pings: one document per failure streak, pings per run, all to a real receiver."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.config.jobs_file import load_jobs
from scheduler.config.spec import HttpTarget, JobSpec, Schedule, ScheduleKind
from scheduler.errors import ConfigError
from scheduler.execution.events import RunFinished, RunStarted
from scheduler.execution.http import HookClient
from scheduler.execution.run import Outcome, RunOutcome
from scheduler.ops.metrics import Metrics
from scheduler.ops.notify import Notifier, ping_url
from scheduler.state.records import JobState
from tests.scheduler.support import ApiServer, clean_env, write_jobs
from tests.scheduler.support import Service as ServiceProcess

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOKEN = "tok-5ec7-never-send-me"
DOC_KEYS = {"event", "job", "scheduled_for", "started_at", "outcome", "status", "error", "error_type", "attempts",
            "duration_seconds", "replica", "text"}


def spec(api: ApiServer, *, notify: bool = True, ping: bool = True) -> JobSpec:
    return JobSpec(
        name="job", line=1, schedule=Schedule(ScheduleKind.EVERY, interval_seconds=60), target=HttpTarget("GET", "http://app/x"),
        notify_url=f"{api.url}/hook/T01/B02/s3cret" if notify else None, ping_url=f"{api.url}/ping/uuid-1" if ping else None,
    )


def outcome(ok: bool, slot: datetime, error: str | None = None) -> Outcome:
    return Outcome("job", RunOutcome.OK if ok else RunOutcome.FAILED, slot, slot, 0.0, 0.25,
                   status=200 if ok else 500, attempts=1 if ok else 3, error=None if ok else (error or "HTTP 500 from GET /x"))


@pytest.fixture
def notifier_for(api: ApiServer) -> Iterator[Callable[..., tuple[Notifier, Metrics]]]:
    made: list[Notifier] = []

    def make(job: JobSpec, states: dict[str, JobState] | None = None) -> tuple[Notifier, Metrics]:
        metrics = Metrics()
        notifier = Notifier({job.name: job}.get, HookClient(timeout=2, backoff=0.01), metrics, states=states,
                            secrets=[TOKEN], replica="host:1:ab")
        made.append(notifier)
        return notifier, metrics

    yield make
    for notifier in made:
        notifier.close(1)


def run(notifier: Notifier, ok: bool, slot: datetime, previous: tuple[str, datetime] | None = None, error: str | None = None) -> None:
    notifier.on_event(RunStarted("job", slot, slot, previous=previous))
    notifier.on_event(RunFinished(outcome(ok, slot, error)))


def test_one_failure_and_one_recovery_document_per_streak(api: ApiServer, notifier_for: Callable[..., tuple[Notifier, Metrics]]) -> None:
    notifier, metrics = notifier_for(spec(api))
    for index, ok in enumerate([False, False, False, True, True]):
        run(notifier, ok, T0 + timedelta(minutes=index), error=f"HTTP 500 from GET /x: echoed Bearer {TOKEN}")
    assert notifier.wait_idle(10)
    hooks = api.calls("/hook/T01/B02/s3cret")
    assert [json.loads(call.body)["event"] for call in hooks] == ["failure", "recovery"]
    failure, recovery = (json.loads(call.body) for call in hooks)
    assert set(failure) == DOC_KEYS
    assert failure["job"] == "job" and failure["scheduled_for"] == "2026-03-10T12:00:00.000Z"
    assert (failure["outcome"], failure["status"], failure["attempts"]) == ("failed", 500, 3)
    assert failure["error"] == "HTTP 500 from GET /x: echoed Bearer [redacted]"
    assert (recovery["outcome"], recovery["scheduled_for"], recovery["error"]) == ("ok", "2026-03-10T12:03:00.000Z", None)
    for call in api.requests:
        assert TOKEN not in call.body.decode() and "Authorization" not in call.headers
        assert call.method == "POST"
    assert hooks[0].headers["Content-Type"] == "application/json"
    # Pings: a start per run, the end of each run to URL (ok) or URL/fail.
    assert len(api.calls("/ping/uuid-1/start")) == 5
    assert len(api.calls("/ping/uuid-1/fail")) == 3 and len(api.calls("/ping/uuid-1")) == 2
    assert api.calls("/ping/uuid-1/fail")[0].body.decode() == "HTTP 500 from GET /x: echoed Bearer [redacted]"
    assert metrics.notifications.labels("job", "notify")._value.get() == 2
    assert metrics.notifications.labels("job", "ping")._value.get() == 10


def test_a_start_ping_never_overtakes_its_runs_end(api: ApiServer, notifier_for: Callable[..., tuple[Notifier, Metrics]]) -> None:
    notifier, _ = notifier_for(spec(api, notify=False))
    for index in range(5):
        run(notifier, True, T0 + timedelta(minutes=index))
    assert notifier.wait_idle(10)
    paths = [call.path for call in api.requests]
    assert paths == ["/ping/uuid-1/start", "/ping/uuid-1"] * 5


def test_the_streak_is_the_stores_when_the_claim_says_so(api: ApiServer, notifier_for: Callable[..., tuple[Notifier, Metrics]]) -> None:
    # After a restart (or on another replica), the claim hands over the job's last result from the store.
    notifier, _ = notifier_for(spec(api, ping=False))
    run(notifier, False, T0 + timedelta(minutes=5), previous=("failed", T0))  # the streak goes on: no new document
    run(notifier, True, T0 + timedelta(minutes=6), previous=("failed", T0 + timedelta(minutes=5)))
    assert notifier.wait_idle(10)
    assert [json.loads(call.body)["event"] for call in api.requests] == ["recovery"]


def test_the_streak_survives_a_restart_through_the_stored_job_state(
    api: ApiServer, notifier_for: Callable[..., tuple[Notifier, Metrics]],
) -> None:
    # The store could not be asked at the claim: the job state read at start says the job was failing.
    states = {"job": JobState("every 1m tz=UTC", T0, T0, "failed", None)}
    notifier, _ = notifier_for(spec(api, ping=False), states)
    run(notifier, False, T0 + timedelta(minutes=1))
    run(notifier, True, T0 + timedelta(minutes=2))
    assert notifier.wait_idle(10)
    assert [json.loads(call.body)["event"] for call in api.requests] == ["recovery"]


def test_a_receiver_that_fails_is_counted_and_logged_once_without_its_secret_path(
    api: ApiServer, notifier_for: Callable[..., tuple[Notifier, Metrics]], caplog: pytest.LogCaptureFixture,
) -> None:
    api.on("/ping/uuid-1/start", status=503)
    api.on("/ping/uuid-1", status=404)
    notifier, metrics = notifier_for(spec(api, notify=False))
    with caplog.at_level(logging.INFO, logger="scheduler.notify"):
        run(notifier, True, T0)
        run(notifier, True, T0 + timedelta(minutes=1))
        assert notifier.wait_idle(20)
    assert len(api.calls("/ping/uuid-1/start")) == 2 * 3  # 503 is retried (3 attempts per ping)
    assert len(api.calls("/ping/uuid-1")) == 2  # 404 is not
    assert metrics.notification_failures.labels("job", "ping")._value.get() == 4
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and api.url in errors[0] and "uuid-1" not in errors[0]


def test_a_slow_receiver_never_holds_up_the_run(api: ApiServer, notifier_for: Callable[..., tuple[Notifier, Metrics]]) -> None:
    api.on("/ping/uuid-1/start", delay=1.0)
    notifier, _ = notifier_for(spec(api, notify=False))
    started = time.monotonic()
    notifier.on_event(RunStarted("job", T0, T0))
    assert time.monotonic() - started < 0.2
    assert notifier.wait_idle(10)


def test_ping_suffixes_go_on_the_path_before_the_query() -> None:
    assert ping_url("https://hc-ping.com/abc/", "/start") == "https://hc-ping.com/abc/start"
    assert ping_url("https://hc.example/ping/abc?create=1", "/fail") == "https://hc.example/ping/abc/fail?create=1"


# --- jobs.yaml -------------------------------------------------------------------------------------------------


def load(tmp_path: Path, text: str) -> list[JobSpec]:
    return load_jobs(write_jobs(tmp_path, text), {"HC": "https://hc-ping.com/from-env"}, "http://app", now=T0)


def test_notify_and_ping_keys_per_job_and_in_defaults(tmp_path: Path) -> None:
    jobs = {job.name: job for job in load(tmp_path, """
        defaults:
          notify: {url: "https://hooks.example.com/services/T/B/x"}
        jobs:
          a: {every: 1m, http: {path: /a}, ping: {url: "${HC}"}}
          b: {every: 1m, http: {path: /b}, notify: false}
          c: {every: 1m, http: {path: /c}, notify: {url: "https://other.example/hook"}}
    """)}
    assert (jobs["a"].notify_url, jobs["a"].ping_url) == ("https://hooks.example.com/services/T/B/x", "https://hc-ping.com/from-env")
    assert (jobs["b"].notify_url, jobs["b"].ping_url) == (None, None)
    assert jobs["c"].notify_url == "https://other.example/hook"


def test_bad_notify_and_ping_keys_are_located_and_never_echo_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, """
            defaults:
              ping: {url: "https://hc-ping.com/x"}
            jobs:
              a: {every: 1m, http: {path: /a}, notify: {url: "https://user:hunter2@hooks.example.com/x"}}
              b: {every: 1m, http: {path: /b}, ping: {uri: "https://hc-ping.com/x"}}
              c: {every: 1m, http: {path: /c}, notify: "https://hooks.example.com/x"}
              d: {every: 1m, http: {path: /d}, ping: {url: "hooks.example.com/services/T/B/secret-part"}}
        """)
    lines = [line.split(str(tmp_path / "jobs.yaml") + ":", 1)[1] for line in caught.value.lines]
    assert lines[0] == "3: defaults.ping: is set per job: a ping URL is one check, and jobs sharing it would hide each other's failures"
    assert lines[1].startswith("5: job 'a': notify.url: must not carry credentials") and "hunter2" not in lines[1]
    assert lines[2].startswith("6: job 'b': ping.uri: unknown key")
    assert lines[3] == "6: job 'b': ping.url: is required: the receiver's http:// or https:// URL"
    assert lines[4].startswith("7: job 'c': notify: must be a mapping like {url: https://...}")
    assert lines[5] == "8: job 'd': ping.url: must be an absolute http:// or https:// URL, got 'hooks.exampl...'"
    assert len(lines) == 6


# --- end to end ------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_running_service_notifies_once_per_streak_and_pings_each_run(
    api: ApiServer, tmp_path: Path, start_service: Callable[..., ServiceProcess],
) -> None:
    api.on("/api/job", script=[500, 500, 500], status=200)
    config = write_jobs(tmp_path, f"""
        defaults:
          notify: {{url: "{api.url}/hook"}}
        jobs:
          job:
            every: 1s
            retry: {{attempts: 1}}
            http: {{path: /api/job}}
            ping: {{url: "{api.url}/ping/check-1"}}
    """)
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_API_TOKEN=TOKEN,
                    SCHEDULER_STATE_PATH=str(tmp_path / "state.sqlite"))
    service = start_service(["run", "-c", str(config)], env)
    api.wait_for("/api/job", 6)
    api.wait_for("/ping/check-1", 2)
    time.sleep(0.5)
    service.terminate()
    documents = [json.loads(call.body) for call in api.calls("/hook")]
    assert [(doc["event"], doc["outcome"]) for doc in documents] == [("failure", "failed"), ("recovery", "ok")]
    assert documents[0]["status"] == 500 and documents[0]["attempts"] == 1 and "HTTP 500" in documents[0]["error"]
    assert documents[0]["scheduled_for"] < documents[1]["scheduled_for"]
    assert len(api.calls("/ping/check-1/fail")) == 3
    assert len(api.calls("/ping/check-1/start")) == len(api.calls("/api/job"))
    for call in api.calls("/hook") + api.calls("/ping/check-1") + api.calls("/ping/check-1/start"):
        assert "Authorization" not in call.headers and TOKEN not in call.body.decode()
    assert os.path.exists(tmp_path / "state.sqlite")
