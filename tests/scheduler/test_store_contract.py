"""What every state store promises, checked on a real SQLite file and a real PostgreSQL.

The same tests run against both backends: a slot is claimed once, a run in
flight blocks the next slot of its job (unless forced), finished runs
complete their in-flight row, a dead process's runs are closed as
interrupted, the grid and the jitter seed are shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.execution.run import RunOutcome
from scheduler.state.postgres import PostgresStore
from scheduler.state.records import ClaimStatus, RunRecord
from scheduler.state.sqlite import SqliteStore
from scheduler.state.store import StateStore

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    opened: list[StateStore] = []
    if request.param == "sqlite":
        def make() -> StateStore:
            store = SqliteStore(tmp_path / "state.sqlite")
            opened.append(store)
            return store
    else:
        url = request.getfixturevalue("postgres_url")

        def make() -> StateStore:
            store = PostgresStore(url, pool_size=4)
            opened.append(store)
            return store
    yield make
    for store in opened:
        store.close()


def finished(job: str, slot: datetime, outcome: RunOutcome = RunOutcome.OK) -> RunRecord:
    return RunRecord(job, slot, outcome, slot, slot + timedelta(seconds=2), status=200, attempts=1, duration_s=2.0)


def now() -> datetime:
    return datetime.now(UTC)


def test_a_slot_is_claimed_once(open_store: Callable[[], StateStore]) -> None:
    a, b = open_store(), open_store()
    first = a.begin_run("job", T0, replica="a", now=now(), lease_seconds=30)
    second = b.begin_run("job", T0, replica="b", now=now(), lease_seconds=30)
    assert first.status == ClaimStatus.WON and first.run_id is not None
    assert second.status == ClaimStatus.TAKEN
    assert [run.outcome for run in a.history("job")] == [RunOutcome.RUNNING]


def test_concurrent_claims_of_one_slot_have_one_winner(open_store: Callable[[], StateStore]) -> None:
    stores = [open_store() for _ in range(6)]
    results: list[ClaimStatus] = []
    barrier = threading.Barrier(len(stores))

    def claim(index: int) -> None:
        barrier.wait()
        results.append(stores[index].begin_run("job", T0, replica=f"r{index}", now=now(), lease_seconds=30).status)

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted([ClaimStatus.WON] + [ClaimStatus.TAKEN] * (len(stores) - 1))


def test_a_run_in_flight_makes_the_next_slot_a_skip_naming_it(open_store: Callable[[], StateStore]) -> None:
    a, b = open_store(), open_store()
    a.begin_run("job", T0, replica="host-a:1", now=now(), lease_seconds=30)
    skipped = b.begin_run("job", T0 + MINUTE, replica="host-b:2", now=now(), lease_seconds=30)
    assert skipped.status == ClaimStatus.IN_FLIGHT
    assert skipped.holder is not None and skipped.holder.replica == "host-a:1" and skipped.holder.scheduled_for == T0
    assert [run.outcome for run in b.history("job")] == [RunOutcome.SKIPPED_IN_FLIGHT, RunOutcome.RUNNING]
    # Another job is not held up.
    assert b.begin_run("other", T0 + MINUTE, replica="host-b:2", now=now(), lease_seconds=30).status == ClaimStatus.WON


def test_force_runs_beside_a_run_in_flight(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30)
    assert store.begin_run("job", T0 + MINUTE, replica="cli", now=now(), lease_seconds=30, force=True).status == ClaimStatus.WON


def test_finishing_completes_the_in_flight_row_and_frees_the_job(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    claim = store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30)
    store.finish_runs([(claim.run_id, finished("job", T0))])
    [run] = store.history("job")
    assert (run.outcome, run.status, run.replica) == (RunOutcome.OK, 200, "a")
    state = store.job_states()
    assert state == {} or state["job"].last_outcome == "ok"  # no grid claimed for this job: no job row
    assert store.in_flight("job", now()) is None
    assert store.begin_run("job", T0 + MINUTE, replica="a", now=now(), lease_seconds=30).status == ClaimStatus.WON


def test_a_dead_process_runs_are_closed_as_interrupted_once_their_lease_expires(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    store.claim_grid("job", "every 1m tz=UTC", T0)
    store.begin_run("job", T0, replica="dead:1", now=now(), lease_seconds=0.2)
    store.begin_run("live", T0, replica="alive:2", now=now(), lease_seconds=30)  # a live replica's run stays in flight
    threading.Event().wait(0.5)
    interrupted = store.expire_in_flight(now(), all_rows=False)
    assert [(run.job, run.scheduled_for, run.replica, run.was_retry) for run in interrupted] == [("job", T0, "dead:1", False)]
    assert store.history("job")[0].outcome == RunOutcome.INTERRUPTED
    assert store.job_states()["job"].last_outcome == "interrupted"
    assert store.expire_in_flight(now(), all_rows=False) == []  # closed once
    assert store.in_flight("live", now()) is not None
    # The one retry of that slot is a claim of its own; a second retry is not.
    retried = store.begin_run("job", T0, replica="b", now=now(), lease_seconds=30, retry=True)
    assert retried.status == ClaimStatus.WON
    assert store.begin_run("job", T0, replica="c", now=now(), lease_seconds=30, retry=True).status == ClaimStatus.IN_FLIGHT
    store.finish_runs([(retried.run_id, finished("job", T0))])
    assert store.begin_run("job", T0, replica="c", now=now(), lease_seconds=30, retry=True).status == ClaimStatus.TAKEN


def test_renewed_leases_do_not_expire(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    claim = store.begin_run("job", T0, replica="a", now=now(), lease_seconds=0.3)
    assert claim.run_id is not None
    for _ in range(4):
        threading.Event().wait(0.15)
        store.renew([claim.run_id], now(), 0.3)
    assert store.expire_in_flight(now(), all_rows=False) == []
    assert store.in_flight("job", now()) is not None


def test_the_grid_and_the_seed_are_shared_first_come(open_store: Callable[[], StateStore]) -> None:
    a, b = open_store(), open_store()
    assert a.claim_grid("job", "every 1m tz=UTC", T0) == T0
    assert b.claim_grid("job", "every 1m tz=UTC", T0 + timedelta(seconds=3)) == T0  # same schedule: the stored grid
    assert b.claim_grid("job", "every 2m tz=UTC", T0 + MINUTE) == T0 + MINUTE  # a changed schedule: a new grid
    assert a.claim_jitter_seed(11) == 11
    assert b.claim_jitter_seed(22) == 11
    assert b.jitter_seed() == 11


def test_a_skip_of_a_local_overlap_is_recorded_once(open_store: Callable[[], StateStore]) -> None:
    a, b = open_store(), open_store()
    assert a.claim_skip("job", T0, replica="a", now=now()) is True
    assert b.claim_skip("job", T0, replica="b", now=now()) is False
    assert [run.outcome for run in a.history("job")] == [RunOutcome.SKIPPED_IN_FLIGHT]


def test_history_keeps_the_newest_finished_runs_and_every_run_in_flight(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    in_flight = store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30, force=True)
    assert in_flight.status == ClaimStatus.WON
    store.history_per_job = 3  # type: ignore[attr-defined]
    store.record_many([finished("job", T0 + MINUTE * index) for index in range(1, 8)])
    outcomes = [run.outcome for run in store.history("job", limit=50)]
    assert outcomes.count(RunOutcome.OK) == 3 and outcomes.count(RunOutcome.RUNNING) == 1


def test_a_paused_job_is_refused_by_every_replica_until_resumed(open_store: Callable[[], StateStore]) -> None:
    a, b = open_store(), open_store()  # two replicas (on SQLite: the service and `scheduler fire`)
    pause = a.pause("job", by="ops@host", now=T0)
    assert (pause.job, pause.paused_at, pause.paused_by) == ("job", T0, "ops@host")
    assert a.pause("job", by="someone-else", now=T0 + MINUTE) == pause  # pausing again keeps the first pause
    assert set(b.paused_jobs()) == {"job"}
    refused = b.begin_run("job", T0, replica="b", now=now(), lease_seconds=30)
    assert refused.status == ClaimStatus.PAUSED and refused.paused == pause
    assert a.history("job") == []  # not fired, not recorded
    # Other jobs are not held up; --force runs the paused one anyway.
    assert b.begin_run("other", T0, replica="b", now=now(), lease_seconds=30).status == ClaimStatus.WON
    assert b.begin_run("job", T0, replica="cli", now=now(), lease_seconds=30, force=True).status == ClaimStatus.WON
    assert a.resume("job") == pause
    assert a.resume("job") is None
    assert b.paused_jobs() == {}
    assert b.begin_run("job", T0 + MINUTE, replica="b", now=now(), lease_seconds=30, force=True).status == ClaimStatus.WON

def test_a_claim_carries_the_jobs_last_ok_or_failed_run(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    first = store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30)
    assert first.previous is None
    store.finish_runs([(first.run_id, finished("job", T0, RunOutcome.FAILED))])
    store.claim_skip("job", T0 + MINUTE, replica="a", now=now())  # a skip is no result
    second = open_store().begin_run("job", T0 + 2 * MINUTE, replica="b", now=now(), lease_seconds=30)
    assert second.previous is not None and (second.previous.outcome, second.previous.scheduled_for) == ("failed", T0)


def test_a_retry_waits_for_a_run_in_flight_instead_of_becoming_a_skip(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    running = store.begin_run("job", T0 + MINUTE, replica="a", now=now(), lease_seconds=30)
    waiting = store.begin_run("job", T0, replica="b", now=now(), lease_seconds=30, retry=True)
    assert waiting.status == ClaimStatus.IN_FLIGHT and waiting.holder is not None
    assert [run.outcome for run in store.history("job")] == [RunOutcome.RUNNING]  # no skip recorded, no claim taken
    store.finish_runs([(running.run_id, finished("job", T0 + MINUTE))])
    assert store.begin_run("job", T0, replica="b", now=now(), lease_seconds=30, retry=True).status == ClaimStatus.WON
