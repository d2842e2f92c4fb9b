"""Three replicas on one PostgreSQL, one killed with SIGKILL every 10 s: each slot fired once.

The real CLI (`python -m scheduler run`) three times over, the same jobs.yaml
and SCHEDULER_STATE_URL, against a loopback recorder, for about a minute.
Every 10 s one replica (round-robin) is killed with SIGKILL and restarted at
once; near the end one is stopped cleanly with SIGTERM. Then the requests the
server saw and the history in PostgreSQL must agree on the promises of
issue 10: no slot fired twice except the one retry of a run interrupted by a
kill (same Idempotency-Key; the history shows the slot interrupted, then a
retry row), no slot lost (every slot of every job has its row, and a slot
not fired was skipped while a run of its job was in flight), never two
requests of one job in flight at once, and a clean stop interrupts nothing.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest

from tests.scheduler.support import ApiServer, Recorded, Service, clean_env, write_jobs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

Start = Callable[..., Service]

# name -> (interval, the endpoint's response delay), seconds. Twenty jobs every second, every other one
# answering in 0.4 s, so kills land mid-request; and ten every 6 s answering in 2 s, in flight a third of
# the time, whose interrupted runs are retried (a lease to a lease and a third after the kill) before
# their next slot is due, so their retries are never skipped for a run of the job in flight.
JOBS = {
    **{f"j{index:02d}": (1, 0.4 if index % 2 == 0 else 0.0) for index in range(20)},
    **{f"long{index}": (6, 2.0) for index in range(10)},
}
LEASE = 2
KILL_EVERY = 10.0
KILLS = 5
WARM_UP = 3.0  # seconds after the three replicas said they started
END_MARGIN = 2.5  # seconds before the last replicas were asked to stop


@dataclass(frozen=True)
class Row:
    id: int
    job: str
    scheduled_for: datetime
    outcome: str
    retry: bool
    replica: str | None
    started_at: datetime | None
    finished_at: datetime | None


def _jobs_yaml() -> str:
    lines = ["jobs:"]
    for name, (interval, _) in JOBS.items():
        lines.append(f"  {name}: {{every: {interval}s, catch_up: 30s, retry: {{attempts: 1}}, http: {{method: POST, path: /{name}}}}}")
    return "\n".join(lines) + "\n"


def _slot(request: Recorded) -> tuple[str, datetime]:
    stamp = request.headers["X-Scheduler-Scheduled-For"]
    return request.headers["X-Scheduler-Job"], datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _pid(replica: str | None) -> int | None:
    # host:pid:tag
    return int(replica.split(":")[1]) if replica else None


def _history(url: str) -> list[Row]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, job, scheduled_for, outcome, retry, replica, started_at, finished_at FROM tickless_runs ORDER BY id"
        ).fetchall()
    return [Row(*row) for row in rows]


def test_three_replicas_with_kills_fire_each_slot_once(
    api: ApiServer, tmp_path: Path, start_service: Start, postgres_url: str,
) -> None:
    for name, (_, delay) in JOBS.items():
        api.on(f"/{name}", delay=delay)
    config = write_jobs(tmp_path, _jobs_yaml())
    env = clean_env(
        API_URL=api.url, SCHEDULER_STATE_URL=postgres_url, SCHEDULER_STARTUP_GRACE_SECONDS="0",
        SCHEDULER_STARTUP_SPREAD_SECONDS="0", SCHEDULER_LEASE_SECONDS=str(LEASE), SCHEDULER_STATE_POOL_SIZE="5",
        SCHEDULER_HISTORY_PER_JOB="1000", SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS="20",
    )

    def start() -> Service:
        return start_service(["run", "-c", str(config)], env)

    replicas = [start() for _ in range(3)]
    for replica in replicas:
        replica.wait_for_log("jitter seed", timeout=30)
    began = datetime.now(UTC)
    t0 = time.monotonic()

    killed: set[int] = set()
    for kill in range(1, KILLS + 1):
        time.sleep(max(0.0, t0 + kill * KILL_EVERY - time.monotonic()))
        index = kill % 3
        victim = replicas[index]
        assert victim.proc.poll() is None, f"replica {victim.proc.pid} died on its own:\n{victim.log}"
        killed.add(victim.proc.pid)
        victim.kill()  # SIGKILL
        replicas[index] = start()

    # One replica stopped cleanly: its runs finish, nothing of it is left in flight or interrupted.
    time.sleep(max(0.0, t0 + (KILLS + 0.5) * KILL_EVERY - time.monotonic()))
    polite = replicas.pop(0)
    polite_pid = polite.proc.pid
    code, _ = polite.terminate(timeout=30)
    assert code == 0, polite.log
    assert "scheduler stopped (0 run(s) abandoned)" in polite.log, polite.log

    time.sleep(max(0.0, t0 + (KILLS + 1.2) * KILL_EVERY - time.monotonic()))
    ended = datetime.now(UTC)
    for replica in replicas:
        assert replica.proc.poll() is None, f"replica {replica.proc.pid} died on its own:\n{replica.log}"
        code, _ = replica.terminate(timeout=30)
        assert code == 0, replica.log

    # The start-up probe of API_URL carries no job header: only runs count.
    requests = [request for request in api.requests if "X-Scheduler-Job" in request.headers]
    history = _history(postgres_url)
    window_start, window_end = began + timedelta(seconds=WARM_UP), ended - timedelta(seconds=END_MARGIN)

    def in_window(moment: datetime) -> bool:
        return window_start <= moment <= window_end

    # Never two requests of one job at the server at once, kills and retries included.
    assert len(requests) > 20 * 40, f"only {len(requests)} runs arrived"
    assert max(api.max_in_flight[f"/{name}"] for name in JOBS) <= 1, api.max_in_flight

    # Nothing is left in flight once every replica has stopped or had its lease closed.
    assert [row for row in history if row.outcome == "running"] == []

    fired: dict[tuple[str, datetime], list[Recorded]] = defaultdict(list)
    for request in requests:
        headers = request.headers
        assert headers["Idempotency-Key"] == f"{headers['X-Scheduler-Job']}@{headers['X-Scheduler-Scheduled-For']}"
        fired[_slot(request)].append(request)
    rows: dict[tuple[str, datetime], list[Row]] = defaultdict(list)
    for row in history:
        rows[(row.job, row.scheduled_for)].append(row)

    # Every slot claimed has exactly one first row, and at most one retry row.
    for slot, slot_rows in rows.items():
        firsts = [row for row in slot_rows if not row.retry]
        retries = [row for row in slot_rows if row.retry]
        assert len(firsts) == 1, f"{slot}: {slot_rows}"
        assert len(retries) <= 1, f"{slot}: {slot_rows}"
        if retries:
            assert firsts[0].outcome == "interrupted", f"{slot}: a retry of a run that was not interrupted: {slot_rows}"
            assert firsts[0].id < retries[0].id, slot_rows

    # Each request belongs to a slot in the history; a slot fired twice is exactly an interrupted run and its retry.
    twice = 0
    for slot, calls in fired.items():
        slot_rows = rows.get(slot, [])
        assert slot_rows, f"{slot}: fired, but no claim recorded in the history"
        first = next(row for row in slot_rows if not row.retry)
        retry = next((row for row in slot_rows if row.retry), None)
        if first.outcome in ("ok", "failed"):
            assert len(calls) == 1 and retry is None, f"{slot}: fired {len(calls)} times: {slot_rows}"
        elif first.outcome == "interrupted":
            allowed = 1 + (retry is not None and retry.outcome != "skipped_in_flight")
            assert len(calls) <= allowed, f"{slot}: fired {len(calls)} times: {slot_rows}"
            if len(calls) == 2:
                twice += 1
                assert calls[0].headers["Idempotency-Key"] == calls[1].headers["Idempotency-Key"]
                assert calls[1].arrived > calls[0].arrived
        else:
            pytest.fail(f"{slot}: fired, but its history says {first.outcome}: {slot_rows}")

    # Interruptions happened, only to killed replicas, and each within the catch-up window was retried once.
    interrupted = [row for row in history if row.outcome == "interrupted"]
    assert interrupted, "no kill landed on a run in flight: the test proved nothing about interrupted runs"
    for row in interrupted:
        assert _pid(row.replica) in killed, f"a run of a replica that was not killed was interrupted: {row}"
        assert _pid(row.replica) != polite_pid
        if not row.retry:
            assert any(other.retry for other in rows[(row.job, row.scheduled_for)]), f"interrupted, never retried: {row}"
    retried_ok = [row for row in history if row.retry and row.outcome == "ok"]
    assert retried_ok, "no interrupted run was retried"
    for row in interrupted:
        if row.job.startswith("long") and not row.retry:
            # Retried before the job's next slot: nothing in flight could make it a skip.
            retry = next(other for other in rows[(row.job, row.scheduled_for)] if other.retry)
            assert retry.outcome in ("ok", "interrupted"), f"the retry of {row} was {retry}"
    assert sum(1 for row in history if _pid(row.replica) == polite_pid) > 0, "the cleanly stopped replica ran nothing"

    # No slot lost: in the steady window every job has every 1 s slot, each fired or skipped
    # while another run of the job was in flight.
    skipped = 0
    for job, (seconds, _) in JOBS.items():
        interval = timedelta(seconds=seconds)
        slots = sorted(slot for (name, slot) in rows if name == job and in_window(slot))
        assert slots, f"{job}: no slot in the window"
        assert slots[0] - window_start < interval and window_end - slots[-1] < interval, (job, slots[0], slots[-1])
        gaps = [(a, b) for a, b in pairwise(slots) if b - a != interval]
        assert not gaps, f"{job}: slots lost between {gaps[:3]}"
        spans = [row for row in history if row.job == job and row.started_at and row.finished_at]
        for slot in slots:
            first = next(row for row in rows[(job, slot)] if not row.retry)
            if first.outcome != "skipped_in_flight":
                assert fired.get((job, slot)) or first.outcome == "interrupted", f"{job} {slot}: {first} but no request"
                continue
            skipped += 1
            assert not fired.get((job, slot)), (job, slot)
            assert any(
                span.started_at <= slot + timedelta(seconds=2) and span.finished_at >= slot  # type: ignore[operator]
                for span in spans
            ), f"{job} {slot}: skipped as in flight, but no run of it was in flight then"
    slots_in_window = sum(1 for (_, slot) in rows if in_window(slot))
    assert skipped <= slots_in_window * 0.15, f"{skipped} of {slots_in_window} slots skipped"
    print(f"{len(requests)} requests, {slots_in_window} slots in the window, {skipped} skipped in flight, "
          f"{len(interrupted)} interrupted, {twice} fired twice (interrupted and retried), "
          f"outcomes {Counter(row.outcome for row in history)}, retries {Counter(row.outcome for row in history if row.retry)}")
