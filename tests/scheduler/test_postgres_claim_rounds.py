"""Claims asked together go to PostgreSQL together: one statement, one transaction, one connection.

Jobs due at one instant ask for their claims from as many threads at nearly the same time. The
first claim goes at once; those asked while it is out wait and go in the next round. A round
needs one connection however many claims it carries (the pool is sized for the store's other
work, not for the number of jobs), a claim the server refuses fails alone, and replicas claiming
the same instant in rounds get one winner per slot without deadlocking each other.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from scheduler.config.settings import load_settings
from scheduler.errors import StoreUnavailable
from scheduler.execution.run import RunOutcome
from scheduler.state.backends import READING_POOL_SIZE, open_store, peek_store
from scheduler.state.postgres import PostgresStore
from scheduler.state.records import Claim, ClaimStatus, RunRecord

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def now() -> datetime:
    return datetime.now(UTC)


class Rounds:
    """Records the size of each round a store sends, and the errors rounds met."""

    def __init__(self, store: PostgresStore) -> None:
        self.sizes: list[int] = []
        self.errors: list[str] = []
        send = store._claims

        def counted(asked: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
            self.sizes.append(len(asked))
            try:
                return send(asked)  # type: ignore[arg-type]
            except Exception as exc:
                self.errors.append(str(exc))
                raise

        store._claims = counted  # type: ignore[method-assign,assignment]


class HeldJob:
    """Holds the per-job lock a claim takes, so that the round carrying that job's claim waits on the server."""

    def __init__(self, url: str, job: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"tickless:{job}",))

    def release(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock_all()")
        self.conn.close()


def claim_in_thread(store: PostgresStore, job: str, slot: datetime, answers: dict[str, Claim | Exception],
                    lease_seconds: float = 30) -> threading.Thread:
    def claim() -> None:
        try:
            answers[job] = store.begin_run(job, slot, replica="a", now=now(), lease_seconds=lease_seconds)
        except StoreUnavailable as exc:
            answers[job] = exc

    thread = threading.Thread(target=claim)
    thread.start()
    return thread


def wait_until(condition: object, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url, pool_size=2)
    yield opened
    opened.close()


def test_a_hundred_claims_asked_meanwhile_go_in_one_round_on_one_connection(store: PostgresStore, postgres_url: str) -> None:
    rounds = Rounds(store)
    answers: dict[str, Claim | Exception] = {}
    held = HeldJob(postgres_url, "job000")
    first = claim_in_thread(store, "job000", T0, answers)
    wait_until(lambda: rounds.sizes == [1], "the first claim was not sent alone")
    others = [claim_in_thread(store, f"job{index:03}", T0, answers) for index in range(1, 100)]
    wait_until(lambda: len(store._rounds._waiting) == 99, "the other claims did not wait for the next round")
    held.release()
    for thread in [first, *others]:
        thread.join(10)
    assert rounds.sizes == [1, 99]
    assert all(isinstance(answer, Claim) and answer.status == ClaimStatus.WON for answer in answers.values()), answers
    assert len({answer.run_id for answer in answers.values() if isinstance(answer, Claim)}) == 100
    with psycopg.connect(postgres_url) as conn:
        counts = conn.execute("SELECT (SELECT count(*) FROM tickless_claims), (SELECT count(*) FROM tickless_runs"
                              " WHERE outcome = 'running' AND lease_until > clock_timestamp())").fetchone()
    assert counts == (100, 100)
    assert store.failures.total == 0


def test_a_claim_the_server_refuses_fails_alone_in_its_round(store: PostgresStore, postgres_url: str) -> None:
    rounds = Rounds(store)
    answers: dict[str, Claim | Exception] = {}
    held = HeldJob(postgres_url, "first")
    first = claim_in_thread(store, "first", T0, answers)
    wait_until(lambda: rounds.sizes == [1], "the first claim was not sent alone")
    threads = [claim_in_thread(store, f"good{index}", T0, answers) for index in range(3)]
    # A lease ending after the year 294276: the server refuses this claim's statement, and the whole round with it.
    threads.append(claim_in_thread(store, "refused", T0, answers, lease_seconds=10**13))
    threads += [claim_in_thread(store, f"good{index}", T0, answers) for index in range(3, 6)]
    wait_until(lambda: len(store._rounds._waiting) == 7, "the claims did not wait for the next round")
    held.release()
    for thread in [first, *threads]:
        thread.join(10)
    assert rounds.sizes[:2] == [1, 7] and sorted(rounds.sizes[2:]) == [1] * 7  # the round, then each claim alone
    refused = answers.pop("refused")
    assert isinstance(refused, StoreUnavailable) and "out of range" in str(refused)
    assert all(isinstance(answer, Claim) and answer.status == ClaimStatus.WON for answer in answers.values()), answers
    assert len(answers) == 7


def test_replicas_claiming_the_same_instants_in_rounds_get_one_winner_each_and_no_deadlock(postgres_url: str) -> None:
    replicas = [PostgresStore(postgres_url, pool_size=3), PostgresStore(postgres_url, pool_size=3)]
    rounds = [Rounds(store) for store in replicas]
    jobs = [f"job{index:02}" for index in range(40)]
    for job in jobs[::-1]:  # each job's row, that claims and run records update
        replicas[0].claim_grid(job, "fingerprint", T0)
    claimed: dict[tuple[str, datetime], list[str]] = {}  # who claimed each slot: to run it, or to skip it (a run in flight)
    lock = threading.Lock()
    together = threading.Barrier(2)
    writers: list[threading.Thread] = []

    def replica(index: int, store: PostgresStore) -> None:
        for step in range(8):
            slot = T0 + step * SECOND
            together.wait(20)  # both replicas claim the same instant
            finished: list[tuple[int | None, RunRecord]] = []

            def claim(job: str, slot: datetime = slot, finished: list[tuple[int | None, RunRecord]] = finished) -> None:
                answer = store.begin_run(job, slot, replica=f"r{index}", now=now(), lease_seconds=30)
                with lock:
                    if answer.status != ClaimStatus.TAKEN:
                        claimed.setdefault((job, slot), []).append(f"r{index}")
                    if answer.status == ClaimStatus.WON:
                        finished.append((answer.run_id, RunRecord(job, slot, RunOutcome.OK, slot, slot + SECOND)))

            # Each replica asks in its own order; its finished runs are written while the other claims the next instant.
            threads = [threading.Thread(target=claim, args=(job,)) for job in (jobs if index == 0 else jobs[::-1])]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
            writer = threading.Thread(target=store.finish_runs, args=(finished[::-1],))
            writer.start()
            writers.append(writer)

    try:
        runners = [threading.Thread(target=replica, args=(index, store)) for index, store in enumerate(replicas)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join(60)
        for writer in writers:
            writer.join(20)
        assert sorted(claimed) == sorted((job, T0 + step * SECOND) for job in jobs for step in range(8))
        assert all(len(who) == 1 for who in claimed.values()), {slot: who for slot, who in claimed.items() if len(who) > 1}
        assert {one for who in claimed.values() for one in who} == {"r0", "r1"}, "one replica claimed everything"
        assert max(size for counted in rounds for size in counted.sizes) > 1, "no claims went together: the test proved nothing"
        # A deadlock would have cost a round its answers (then asked claim by claim) or a batch of run records.
        assert [error for counted in rounds for error in counted.errors] == []
        assert all(store.failures.total == 0 for store in replicas)
        with psycopg.connect(postgres_url) as conn:
            outcomes = dict(conn.execute("SELECT outcome, count(*) FROM tickless_runs GROUP BY outcome").fetchall())
        assert outcomes.get("ok", 0) > 0 and outcomes.get("ok", 0) + outcomes.get("skipped_in_flight", 0) == len(jobs) * 8, outcomes
    finally:
        for store in replicas:
            store.close()


def test_a_round_of_claims_and_a_batch_of_run_records_on_the_same_jobs_wait_instead_of_deadlocking(
    store: PostgresStore, postgres_url: str,
) -> None:
    # A round locks its jobs' rows in name order as it claims them; run records written meanwhile
    # lock theirs in the same order, so neither can hold a row the other took first and wants.
    for job in ("b", "a"):
        store.claim_grid(job, "fingerprint", T0)
    rounds = Rounds(store)
    answers: dict[str, Claim | Exception] = {}
    held_b, held_lead = HeldJob(postgres_url, "b"), HeldJob(postgres_url, "lead")
    lead = claim_in_thread(store, "lead", T0, answers)
    wait_until(lambda: rounds.sizes == [1], "the first claim was not sent alone")
    claims = [claim_in_thread(store, job, T0, answers) for job in ("b", "a")]
    wait_until(lambda: len(store._rounds._waiting) == 2, "the claims did not wait for the next round")
    held_lead.release()
    wait_until(lambda: rounds.sizes == [1, 2], "the round of a and b was not sent")
    time.sleep(0.3)  # the round has claimed a (its row locked) and waits for b's lock
    failed: list[Exception] = []

    def record() -> None:
        try:
            store.record_many([RunRecord(job, T0 - SECOND, RunOutcome.OK, T0 - SECOND, T0) for job in ("b", "a")])
        except StoreUnavailable as exc:
            failed.append(exc)

    writer = threading.Thread(target=record)
    writer.start()
    time.sleep(0.3)  # the run records wait for a's row
    held_b.release()
    for thread in [lead, *claims, writer]:
        thread.join(10)
    assert rounds.errors == [] and failed == [], (rounds.errors, failed)
    assert all(isinstance(answer, Claim) and answer.status == ClaimStatus.WON for answer in answers.values()), answers
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT name, last_outcome, last_nominal FROM tickless_jobs ORDER BY name").fetchall()
    assert rows == [("a", "ok", T0), ("b", "ok", T0)]


def _connections(url: str, application_name: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,)).fetchone()
    return int(row[0]) if row else 0


def test_the_pool_is_the_setting_for_run_and_two_connections_for_reading(postgres_url: str) -> None:
    # The sizing rule of docs/operations.md: a replica's pool does not grow with its jobs (claims share
    # one connection, as above); list, history and status read through two.
    name = f"tickless-pool-{uuid.uuid4().hex[:8]}"
    settings = load_settings({"SCHEDULER_STATE_URL": f"{postgres_url}&application_name={name}", "SCHEDULER_STATE_POOL_SIZE": "4",
                              "API_URL": "http://127.0.0.1:1"})
    for opener, expected in ((open_store, 4), (peek_store, READING_POOL_SIZE)):
        opened = opener(settings)
        assert opened is not None
        try:
            assert _connections(postgres_url, name) == expected
        finally:
            opened.close()
