"""The PostgreSQL state store (``SCHEDULER_STATE_URL``): any number of replicas, each slot fired once.

Every replica computes the same slots (the jitter seed and each job's grid
are stored and shared). Before a run starts, its replica claims the slot
``(job, nominal time)`` with one ``INSERT ... ON CONFLICT DO NOTHING``; only
the winner fires it. No leader, no failover delay.

A run in flight is a row with a lease (``lease_until``) that its replica
renews while it runs. The claim, the check that no run of the job is in
flight and the in-flight row are one transaction under a per-job advisory
lock, so two replicas never start two runs of one job. Leases are compared
with the database's clock, so replicas on hosts whose clocks disagree still
agree on when a lease expired.

The claim is one server-side function call: one round trip on the run's
path. Claims asked while one is out (many jobs due at the same instant) go
together in the next call: a few round trips, commits and one connection
for a hundred claims, however large the pool.

Tables are prefixed ``tickless_`` (the database may be the application's).
The schema is versioned in ``tickless_meta`` and migrated at start under an
advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from scheduler.errors import StateError, StoreUnavailable
from scheduler.execution.run import RunOutcome
from scheduler.state.records import (
    Claim,
    ClaimStatus,
    InFlightRun,
    Interrupted,
    JobState,
    LastResult,
    PausedJob,
    RowId,
    RunRecord,
    row_id,
)
from scheduler.state.rounds import Ask, Rounds
from scheduler.state.store import FailureStreak, claims_kept

logger = logging.getLogger("scheduler.state")

SCHEMA_VERSION = 2
_MIGRATION_LOCK = 0x7469636B  # "tick": one replica migrates at a time
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickless_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickless_runs (
    id BIGSERIAL PRIMARY KEY,
    job TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    outcome TEXT NOT NULL,
    status INTEGER,
    error_type TEXT,
    attempts INTEGER,
    duration_s DOUBLE PRECISION,
    error TEXT,
    retry BOOLEAN NOT NULL DEFAULT FALSE,
    replica TEXT,
    lease_until TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS tickless_runs_by_job ON tickless_runs (job, id);
CREATE INDEX IF NOT EXISTS tickless_runs_in_flight ON tickless_runs (job) WHERE outcome = 'running';
CREATE TABLE IF NOT EXISTS tickless_jobs (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    anchor TIMESTAMPTZ NOT NULL,
    last_nominal TIMESTAMPTZ,
    last_outcome TEXT,
    last_success_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS tickless_claims (
    job TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    retry BOOLEAN NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job, scheduled_for, retry)
);
CREATE TABLE IF NOT EXISTS tickless_replicas (
    replica TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    config_fingerprint TEXT NOT NULL
)
"""
# Version 2: jobs paused with ``scheduler pause``.
_MIGRATE_TO_2 = """
CREATE TABLE IF NOT EXISTS tickless_paused (job TEXT PRIMARY KEY, paused_at TIMESTAMPTZ NOT NULL, paused_by TEXT NOT NULL)
"""
# The claim of a run as one server-side function: one round trip on the run's path instead of
# one per statement (paused check, claim, per-job advisory lock, in-flight check, previous
# result, in-flight row, last_nominal) plus BEGIN and COMMIT. The same steps in the same
# order as they were in Python, in the one transaction the statement runs in. Asked twice with
# the same arguments it answers the same (a replica asks again when the first answer was lost
# with its connection). Created (or replaced) under the migration lock at every start, so an
# upgrade brings its own version.
_BEGIN_RUN_FUNCTION = """
CREATE OR REPLACE FUNCTION tickless_begin_run(
    p_job TEXT, p_slot TIMESTAMPTZ, p_replica TEXT, p_now TIMESTAMPTZ, p_lease INTERVAL, p_retry BOOLEAN, p_force BOOLEAN
) RETURNS TABLE (status TEXT, run_id BIGINT, at1 TIMESTAMPTZ, at2 TIMESTAMPTZ, who TEXT, was_retry BOOLEAN)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_at1 TIMESTAMPTZ; v_at2 TIMESTAMPTZ; v_who TEXT; v_retry BOOLEAN; v_outcome TEXT; v_id BIGINT;
BEGIN
    IF NOT p_force THEN
        SELECT paused_at, paused_by INTO v_at1, v_who FROM tickless_paused WHERE job = p_job;
        IF FOUND THEN
            RETURN QUERY SELECT 'paused'::TEXT, NULL::BIGINT, v_at1, NULL::TIMESTAMPTZ, v_who, NULL::BOOLEAN;
            RETURN;
        END IF;
    END IF;
    IF p_retry AND NOT p_force THEN
        PERFORM pg_advisory_xact_lock(hashtext('tickless:' || p_job));
        SELECT scheduled_for, started_at, replica, retry INTO v_at1, v_at2, v_who, v_retry FROM tickless_runs
            WHERE job = p_job AND outcome = 'running' AND lease_until > clock_timestamp() ORDER BY id DESC LIMIT 1;
        IF FOUND THEN
            RETURN QUERY SELECT 'in_flight'::TEXT, NULL::BIGINT, v_at1, v_at2, v_who, v_retry;
            RETURN;
        END IF;
    END IF;
    INSERT INTO tickless_claims (job, scheduled_for, retry, claimed_by, claimed_at)
        VALUES (p_job, p_slot, p_retry, p_replica, p_now) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        -- The same call again (same replica, same now): its first answer was lost with its connection
        -- after the claim committed. Answer what was decided then, so that asking twice claims once.
        PERFORM FROM tickless_claims WHERE job = p_job AND scheduled_for = p_slot AND retry = p_retry
            AND claimed_by = p_replica AND claimed_at = p_now;
        IF FOUND THEN
            SELECT id, outcome INTO v_id, v_outcome FROM tickless_runs
                WHERE job = p_job AND scheduled_for = p_slot AND retry = p_retry AND replica = p_replica ORDER BY id DESC LIMIT 1;
            IF v_outcome = 'running' THEN
                SELECT outcome, scheduled_for INTO v_outcome, v_at1 FROM tickless_runs
                    WHERE job = p_job AND outcome IN ('ok', 'failed') AND id < v_id ORDER BY id DESC LIMIT 1;
                RETURN QUERY SELECT 'won'::TEXT, v_id, v_at1, NULL::TIMESTAMPTZ, v_outcome, NULL::BOOLEAN;
                RETURN;
            END IF;
            IF v_outcome = 'skipped_in_flight' THEN
                SELECT scheduled_for, started_at, replica, retry INTO v_at1, v_at2, v_who, v_retry FROM tickless_runs
                    WHERE job = p_job AND outcome = 'running' AND lease_until > clock_timestamp() ORDER BY id DESC LIMIT 1;
                RETURN QUERY SELECT 'in_flight'::TEXT, NULL::BIGINT, v_at1, v_at2, v_who, v_retry;
                RETURN;
            END IF;
        END IF;
        RETURN QUERY SELECT 'taken'::TEXT, NULL::BIGINT, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, NULL::TEXT, NULL::BOOLEAN;
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tickless:' || p_job));
    IF NOT p_force THEN
        SELECT scheduled_for, started_at, replica, retry INTO v_at1, v_at2, v_who, v_retry FROM tickless_runs
            WHERE job = p_job AND outcome = 'running' AND lease_until > clock_timestamp() ORDER BY id DESC LIMIT 1;
        IF FOUND THEN
            INSERT INTO tickless_runs (job, scheduled_for, outcome, retry, replica)
                VALUES (p_job, p_slot, 'skipped_in_flight', p_retry, p_replica);
            RETURN QUERY SELECT 'in_flight'::TEXT, NULL::BIGINT, v_at1, v_at2, v_who, v_retry;
            RETURN;
        END IF;
    END IF;
    SELECT outcome, scheduled_for INTO v_outcome, v_at1 FROM tickless_runs
        WHERE job = p_job AND outcome IN ('ok', 'failed') ORDER BY id DESC LIMIT 1;
    INSERT INTO tickless_runs (job, scheduled_for, started_at, outcome, retry, replica, lease_until)
        VALUES (p_job, p_slot, p_now, 'running', p_retry, p_replica, clock_timestamp() + p_lease) RETURNING id INTO v_id;
    UPDATE tickless_jobs SET last_nominal = GREATEST(last_nominal, p_slot) WHERE name = p_job;
    RETURN QUERY SELECT 'won'::TEXT, v_id, v_at1, NULL::TIMESTAMPTZ, v_outcome, NULL::BOOLEAN;
END
$fn$
"""
# Claims asked together (many jobs due at one instant), in one statement and one transaction:
# one round trip and one commit for all of them. Job after job in name order, the order in which
# every transaction that locks several jobs takes their locks (finish_runs, expire_in_flight), so
# that replicas claiming the same instant wait for each other and never deadlock.
_BEGIN_RUNS_FUNCTION = """
CREATE OR REPLACE FUNCTION tickless_begin_runs(
    p_jobs TEXT[], p_slots TIMESTAMPTZ[], p_replicas TEXT[], p_nows TIMESTAMPTZ[], p_leases INTERVAL[], p_retries BOOLEAN[],
    p_forces BOOLEAN[]
) RETURNS TABLE (i INTEGER, status TEXT, run_id BIGINT, at1 TIMESTAMPTZ, at2 TIMESTAMPTZ, who TEXT, was_retry BOOLEAN)
LANGUAGE plpgsql AS $fn$
DECLARE
    k INTEGER;
BEGIN
    FOR k IN SELECT o.n FROM unnest(p_jobs) WITH ORDINALITY AS o(job, n) ORDER BY o.job COLLATE "C", o.n LOOP
        RETURN QUERY SELECT k, c.* FROM tickless_begin_run(
            p_jobs[k], p_slots[k], p_replicas[k], p_nows[k], p_leases[k], p_retries[k], p_forces[k]) AS c;
    END LOOP;
END
$fn$
"""
_CLAIM = "SELECT 1, * FROM tickless_begin_run(%s, %s, %s, %s, %s, %s, %s)"  # a lone claim: no arrays to build and unnest
_CLAIMS = (
    "SELECT * FROM tickless_begin_runs(%s::text[], %s::timestamptz[], %s::text[], %s::timestamptz[], %s::interval[],"
    " %s::boolean[], %s::boolean[])"
)
Asked = tuple[str, datetime, str, datetime, timedelta, bool, bool]  # one claim: job, slot, replica, now, lease, retry, force
Answer = tuple[Any, ...]  # status, run_id, at1, at2, who, was_retry
_STORE_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout, OSError)  # the store failed, not this code
_WARM_UP_JOB = " warm-up"  # no job is named so (jobs.yaml refuses spaces); its claim is rolled back
_ENDED = (RunOutcome.OK, RunOutcome.FAILED, RunOutcome.ABANDONED_AT_SHUTDOWN)  # an added row of these moves its job's standing
_RUN_COLUMNS = (
    "job, scheduled_for, outcome, started_at, finished_at, status, error_type, attempts, duration_s, error, retry, replica"
)
_INTERRUPTED = "the process running it stopped (crash, kill -9, lost host); its lease expired"


class _Refused(Exception):
    """The server answered the claims' statement with an error (its transaction rolled back)."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


def _hung_up(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server may have closed this idle connection: it has something to read (the
    server's goodbye, or the end of the stream), which a live idle connection has not. A poll, no
    round trip."""
    if conn.closed:
        return True
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, psycopg.Error):
        return True


def _answers(conn: psycopg.Connection[Any]) -> bool:
    """Whether a connection that had something to read still works (an empty query): almost
    always a goodbye, but whatever else it was must not cost the connection."""
    try:
        conn.execute("")
    except psycopg.Error:
        return False
    return True


def redacted(url: str) -> str:
    """The URL without its password (safe for logs, errors and ``list --json``)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparseable URL, not shown)"
    user = str(params.get("user") or "")
    host = params.get("host") or "localhost"
    port = params.get("port")
    database = params.get("dbname") or ""
    where = f"{host}:{port}" if port else str(host)
    return f"postgresql://{user + '@' if user else ''}{where}/{database}"


class PostgresStore:
    """The state store in a PostgreSQL database, shared by every replica."""

    def __init__(
        self, url: str, history_per_job: int = 100, *, pool_size: int = 10, connect_timeout: float = 10.0,
    ) -> None:
        self.location = redacted(url)
        self.history_per_job = history_per_job
        self.readonly = False
        self.failures = FailureStreak(self.location)
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            params = {}
        self._secret = str(params["password"]) if params.get("password") else None
        try:
            # The URL may name the connections itself (?application_name=...); pg_stat_activity shows "tickless" otherwise.
            named = {} if params.get("application_name") else {"application_name": "tickless"}
            conninfo = make_conninfo(url, connect_timeout=max(1, int(connect_timeout)), **named)
            # One connection first, outside the pool: an unreachable server is reported at once and
            # with its reason, where the pool would retry for connect_timeout and say only that it timed out.
            # It migrates, so that the pool's connections find the claim function to warm up.
            with psycopg.connect(conninfo, autocommit=True) as first:
                self._migrate(first)
            self._pool = psycopg_pool.ConnectionPool(
                # Opened full: a pool growing one connection at a time made the first
                # rounds of many jobs due together late enough to skip slots. No check on
                # checkout (a round trip on every claim): _connection() sees a connection the
                # server closed without one, and the pool replaces one that breaks in use.
                conninfo, min_size=pool_size, max_size=pool_size, open=False, timeout=connect_timeout,
                kwargs={"autocommit": True}, configure=self._warm_up, name="tickless-state",
            )
            self._pool.open(wait=True, timeout=connect_timeout)
            self._rounds = Rounds[Asked, Answer](self._claim_round)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._close_quietly()
            raise StateError(self.location, self._clean(exc), variable="SCHEDULER_STATE_URL",
                             hint="check that PostgreSQL is up and the URL, user and database are right") from None

    def _clean(self, error: BaseException | str) -> str:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return text.replace(self._secret, "***") if self._secret else text

    def _close_quietly(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close(timeout=1)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS tickless_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM tickless_meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise psycopg.DataError(
                    f"schema version {version} is newer than this tickless understands ({SCHEMA_VERSION}): upgrade this replica"
                )
            for statement in (_SCHEMA + ";" + (_MIGRATE_TO_2 if version < 2 else "")).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(_BEGIN_RUN_FUNCTION)
            conn.execute(_BEGIN_RUNS_FUNCTION)
            conn.execute(
                "INSERT INTO tickless_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    def _warm_up(self, conn: psycopg.Connection[Any]) -> None:
        """Claim a slot of no job on each new connection, rolled back. PL/pgSQL compiles the claim
        functions and plans their statements once per connection: about 3 ms, against 0.2 ms for
        each claim after that, and a run's start should not pay for it."""
        pid = conn.info.backend_pid  # a slot and lock of its own: warm-ups never wait for each other
        asked: Asked = (f"{_WARM_UP_JOB} {pid}", datetime.fromtimestamp(pid, UTC), "warm-up", datetime.now(UTC),
                        timedelta(seconds=1), False, False)
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(_CLAIMS, [[value] for value in asked])
        except psycopg.Error as exc:
            if conn.broken:
                raise  # the pool tries another connection
            logger.warning("state store %s: warming up a new connection failed (%s); its first claim will be slower",
                           self.location, self._clean(exc))

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool, in autocommit. One the server closed while it sat in the pool
        (a restart, pg_terminate_backend, idle_session_timeout) is replaced before it is used, seen
        without a round trip; one that breaks in use is replaced by the pool when it comes back."""
        conn = self._pool.getconn()
        while _hung_up(conn) and not _answers(conn):
            conn.close()
            self._pool.putconn(conn)  # discarded: the pool opens another in the background
            conn = self._pool.getconn()
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    @contextmanager
    def _transaction(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """One transaction; any failure is counted and raised as StoreUnavailable."""
        try:
            with self._connection() as conn, conn.transaction():
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            self.failures.failed(what, self._clean(exc))
            raise StoreUnavailable(self.location, self._clean(exc)) from None
        self.failures.succeeded()

    def close(self) -> None:
        self._pool.close(timeout=5)

    # -- seed -------------------------------------------------------------------------
    def jitter_seed(self) -> int | None:
        with self._transaction("reading the jitter seed") as conn:
            row = conn.execute("SELECT value FROM tickless_meta WHERE key = 'jitter_seed'").fetchone()
        return int(row[0]) if row else None

    def claim_jitter_seed(self, candidate: int) -> int:
        with self._transaction("the jitter seed") as conn:
            conn.execute("INSERT INTO tickless_meta (key, value) VALUES ('jitter_seed', %s) ON CONFLICT DO NOTHING", (str(candidate),))
            row = conn.execute("SELECT value FROM tickless_meta WHERE key = 'jitter_seed'").fetchone()
        assert row is not None
        return int(row[0])

    # -- jobs -------------------------------------------------------------------------
    def job_states(self) -> dict[str, JobState]:
        with self._transaction("reading job states") as conn:
            rows = conn.execute(
                "SELECT name, fingerprint, anchor, last_nominal, last_outcome, last_success_at FROM tickless_jobs"
            ).fetchall()
        return {
            name: JobState(fingerprint, anchor, nominal, outcome, success)
            for name, fingerprint, anchor, nominal, outcome, success in rows
        }

    def claim_grid(self, name: str, fingerprint: str, anchor: datetime) -> datetime:
        with self._transaction(f"the grid of job {name}") as conn:
            conn.execute(
                "INSERT INTO tickless_jobs (name, fingerprint, anchor) VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, anchor = excluded.anchor WHERE tickless_jobs.fingerprint <> excluded.fingerprint",
                (name, fingerprint, anchor),
            )
            row = conn.execute("SELECT anchor FROM tickless_jobs WHERE name = %s", (name,)).fetchone()
        assert row is not None
        stored: datetime = row[0]
        return stored

    # -- runs -------------------------------------------------------------------------
    def begin_run(
        self, job: str, scheduled_for: datetime, *, replica: str, now: datetime, lease_seconds: float,
        retry: bool = False, force: bool = False,
    ) -> Claim:
        what = f"the claim of a run of {job}"
        ask = self._rounds.ask((job, scheduled_for, replica, now, timedelta(seconds=lease_seconds), retry, force))
        if ask.answer is None:
            error = ask.error or StoreUnavailable(self.location, "no answer")
            if not isinstance(error, _STORE_ERRORS):
                raise error  # a fault of this code, not of the store: not hidden as an outage
            self.failures.failed(what, self._clean(error))
            raise StoreUnavailable(self.location, self._clean(error)) from None
        self.failures.succeeded()
        status, run_id, at1, at2, who, was_retry = ask.answer
        if status == "paused":
            return Claim(ClaimStatus.PAUSED, paused=PausedJob(job, at1, who))
        if status == "in_flight":
            return Claim(ClaimStatus.IN_FLIGHT, holder=InFlightRun(job, at1, at2, who, was_retry) if at1 is not None else None)
        if status == "taken":
            return Claim(ClaimStatus.TAKEN)
        return Claim(ClaimStatus.WON, run_id=int(run_id), previous=LastResult(who, at1) if who is not None else None)

    def _claim_round(self, asks: list[Ask[Asked, Answer]]) -> None:
        """One round of claims, each answered or given its error. Should the server refuse the
        statement (the whole round is rolled back), each claim is asked alone, so that one claim's
        failure, or a statement_timeout a round exceeds, is not the others'."""
        try:
            answers = self._claims([ask.asked for ask in asks])
        except _Refused as refused:
            if len(asks) > 1:
                for ask in asks:
                    self._claim_round([ask])
                return
            asks[0].error = refused.error
            return
        except Exception as exc:  # the store's failure, or a fault of this code: each claim raises it
            for ask in asks:
                ask.error = exc
            return
        for ask, answer in zip(asks, answers, strict=True):
            ask.answer = answer

    def _claims(self, asked: list[Asked]) -> list[Answer]:
        """Claims in one statement (one round trip, one transaction), prepared on each connection at
        its first use. When the connection breaks under it the answers are lost, maybe after the
        commit: they are asked again once, on another connection, and the function answers a
        repeated call (same replica, same now) as it answered the first."""
        query, params = (_CLAIM, list(asked[0])) if len(asked) == 1 else (_CLAIMS, [list(column) for column in zip(*asked, strict=True)])
        for attempt in (1, 2):
            with self._connection() as conn:
                try:
                    rows = conn.execute(query, params, prepare=True).fetchall()
                except psycopg.Error as exc:
                    if not conn.broken:
                        raise _Refused(exc) from None
                    if attempt == 2:
                        raise
                    logger.info("state store %s: the connection broke under %d claim(s) (%s); asking again",
                                self.location, len(asked), self._clean(exc))
                    continue
            by_index = {row[0]: tuple(row[1:]) for row in rows}
            return [by_index[index] for index in range(1, len(asked) + 1)]
        raise AssertionError("unreachable")

    def claim_skip(self, job: str, scheduled_for: datetime, *, replica: str, now: datetime) -> bool:
        with self._transaction(f"a skipped run of {job}") as conn:
            claimed = conn.execute(
                "INSERT INTO tickless_claims (job, scheduled_for, retry, claimed_by, claimed_at)"
                " VALUES (%s, %s, FALSE, %s, %s) ON CONFLICT DO NOTHING",
                (job, scheduled_for, replica, now),
            ).rowcount
            if claimed:
                self._insert(conn, RunRecord(job, scheduled_for, RunOutcome.SKIPPED_IN_FLIGHT, replica=replica))
        return bool(claimed)

    def in_flight(self, job: str, now: datetime) -> InFlightRun | None:
        with self._transaction(f"reading runs of {job} in flight") as conn:
            return self._in_flight(conn, job)

    @staticmethod
    def _in_flight(conn: psycopg.Connection[Any], job: str) -> InFlightRun | None:
        row = conn.execute(
            "SELECT scheduled_for, started_at, replica, retry FROM tickless_runs"
            " WHERE job = %s AND outcome = 'running' AND lease_until > clock_timestamp() ORDER BY id DESC LIMIT 1",
            (job,),
        ).fetchone()
        return None if row is None else InFlightRun(job, row[0], row[1], row[2], row[3])

    def renew(self, run_ids: Sequence[int], now: datetime, lease_seconds: float) -> None:
        """Extend the leases of these in-flight runs to ``lease_seconds`` from now (the database's clock)."""
        if not run_ids:
            return
        with self._transaction("lease renewal") as conn:
            conn.execute(
                "UPDATE tickless_runs SET lease_until = clock_timestamp() + %s WHERE id = ANY(%s) AND outcome = 'running'",
                (timedelta(seconds=lease_seconds), list(run_ids)),
            )

    def finish_runs(self, finished: Sequence[tuple[RowId, RunRecord]]) -> None:
        """Complete in-flight rows, add the others, move each job's standing and prune: six
        statements per batch however many runs it holds, sent together (the batch's runs end
        together, while later runs of the same instant are still being claimed on the same cores)."""
        completed: dict[int, RunRecord] = {}
        added: list[RunRecord] = []
        standing: dict[str, tuple[str, datetime | None, datetime | None]] = {}  # job -> last outcome, success, slot added
        for row, record in finished:
            run_id = row_id(row)  # claims here are atomic statements: a row is always written before its run
            if run_id is None:
                added.append(record)
                if record.outcome not in _ENDED:
                    continue
            else:
                completed[run_id] = record
            _, success, slot = standing.get(record.job, (None, None, None))
            if record.outcome == RunOutcome.OK and record.finished_at is not None:
                success = record.finished_at
            if run_id is None:
                slot = max(slot or record.scheduled_for, record.scheduled_for)
            standing[record.job] = (record.outcome, success, slot)  # in batch order: the last one stands
        jobs = sorted({record.job for _, record in finished})
        # Sent together: one round trip for the batch, not one per statement.
        with self._transaction(f"{len(finished)} run record(s)") as conn, conn.pipeline():
            self._lock_jobs(conn, jobs)
            if added:
                conn.cursor().executemany(
                    f"INSERT INTO tickless_runs ({_RUN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
                    [(run.job, run.scheduled_for, str(run.outcome), run.started_at, run.finished_at, run.status, run.error_type,
                      run.attempts, run.duration_s, run.error, run.retry, run.replica) for run in added],
                )
            if completed:
                records = list(completed.values())
                conn.execute(
                    "UPDATE tickless_runs r SET outcome = f.outcome, finished_at = f.finished_at, status = f.status,"
                    " error_type = f.error_type, attempts = f.attempts, duration_s = f.duration_s, error = f.error, lease_until = NULL"
                    " FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::integer[], %s::text[], %s::integer[],"
                    " %s::double precision[], %s::text[]) AS f(id, outcome, finished_at, status, error_type, attempts, duration_s, error)"
                    " WHERE r.id = f.id",
                    (list(completed), [str(r.outcome) for r in records], [r.finished_at for r in records],
                     [r.status for r in records], [r.error_type for r in records], [r.attempts for r in records],
                     [r.duration_s for r in records], [r.error for r in records]),
                )
            if standing:
                conn.execute(
                    "UPDATE tickless_jobs j SET last_outcome = s.outcome, last_success_at = COALESCE(s.success, j.last_success_at),"
                    " last_nominal = GREATEST(j.last_nominal, s.slot)"
                    " FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[]) AS s(job, outcome, success, slot)"
                    " WHERE j.name = s.job",
                    (list(standing), [str(value[0]) for value in standing.values()], [value[1] for value in standing.values()],
                     [value[2] for value in standing.values()]),
                )
            self._prune(conn, jobs)

    def record_many(self, runs: Sequence[RunRecord]) -> None:
        self.finish_runs([(None, run) for run in runs])

    def expire_in_flight(self, now: datetime, *, all_rows: bool) -> list[Interrupted]:
        """Close as interrupted the in-flight rows whose lease has expired (``all_rows`` is not
        safe with replicas: a live replica's rows would be closed; it is ignored here)."""
        with self._transaction("closing interrupted runs") as conn:
            expired = [job for job, in conn.execute(
                "SELECT DISTINCT job FROM tickless_runs WHERE outcome = 'running' AND lease_until <= clock_timestamp()",
            ).fetchall()]
            if not expired:
                return []
            self._lock_jobs(conn, expired)
            rows = conn.execute(
                "UPDATE tickless_runs SET outcome = 'interrupted', finished_at = %s, lease_until = NULL, error = %s"
                " WHERE outcome = 'running' AND lease_until <= clock_timestamp() AND job = ANY(%s)"
                " RETURNING job, scheduled_for, started_at, replica, retry",
                (now, _INTERRUPTED, expired),
            ).fetchall()
            conn.execute("UPDATE tickless_jobs SET last_outcome = 'interrupted' WHERE name = ANY(%s)",
                         (sorted({job for job, *_ in rows}),))
        return [Interrupted(job, slot, started, replica, retry) for job, slot, started, replica, retry in rows]

    @staticmethod
    def _lock_jobs(conn: psycopg.Connection[Any], jobs: list[str]) -> None:
        """Lock these jobs' rows in name order, as a round of claims does: transactions that lock
        several jobs then wait for each other, and never deadlock."""
        conn.execute('SELECT 1 FROM tickless_jobs WHERE name = ANY(%s) ORDER BY name COLLATE "C" FOR UPDATE', (jobs,))

    def _insert(self, conn: psycopg.Connection[Any], run: RunRecord) -> None:
        conn.execute(
            f"INSERT INTO tickless_runs ({_RUN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
            (run.job, run.scheduled_for, run.outcome, run.started_at, run.finished_at, run.status, run.error_type,
             run.attempts, run.duration_s, run.error, run.retry, run.replica),
        )

    def _prune(self, conn: psycopg.Connection[Any], jobs: list[str]) -> None:
        """Keep each job's newest finished runs (and every run in flight) and the claims a catch-up could need."""
        conn.execute(
            "DELETE FROM tickless_runs WHERE id IN (SELECT old.id FROM unnest(%s::text[]) AS j(job) CROSS JOIN LATERAL"
            " (SELECT id FROM tickless_runs WHERE job = j.job AND outcome <> 'running' ORDER BY id DESC OFFSET %s) AS old)",
            (jobs, self.history_per_job),
        )
        conn.execute(
            "DELETE FROM tickless_claims c USING unnest(%s::text[]) AS j(job) CROSS JOIN LATERAL"
            " (SELECT scheduled_for FROM tickless_claims WHERE job = j.job ORDER BY scheduled_for DESC LIMIT 1 OFFSET %s) AS k"
            " WHERE c.job = j.job AND c.scheduled_for < k.scheduled_for",
            (jobs, claims_kept(self.history_per_job)),
        )

    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = f"SELECT {_RUN_COLUMNS} FROM tickless_runs"  # noqa: S608
        params: tuple[object, ...] = ()
        if job is not None:
            query += " WHERE job = %s"
            params = (job,)
        with self._transaction("reading the run history") as conn:
            rows = conn.execute(query + " ORDER BY id DESC LIMIT %s", (*params, limit)).fetchall()
        return [
            RunRecord(name, slot, RunOutcome(outcome), started, finished, status, error_type, attempts, duration, error, retry, replica)
            for name, slot, outcome, started, finished, status, error_type, attempts, duration, error, retry, replica in rows
        ]

    # -- replicas ---------------------------------------------------------------------
    def heartbeat(self, replica: str, config_fingerprint: str, now: datetime, stale_after: float) -> list[str]:
        """Say this replica is alive; return the other live replicas whose jobs.yaml differs from ours."""
        with self._transaction("the replica heartbeat") as conn:
            conn.execute(
                "INSERT INTO tickless_replicas (replica, started_at, heartbeat_at, config_fingerprint)"
                " VALUES (%s, %s, clock_timestamp(), %s) ON CONFLICT (replica) DO UPDATE SET"
                " heartbeat_at = clock_timestamp(), config_fingerprint = excluded.config_fingerprint",
                (replica, now, config_fingerprint),
            )
            conn.execute("DELETE FROM tickless_replicas WHERE heartbeat_at < clock_timestamp() - %s",
                         (timedelta(seconds=stale_after * 10),))
            rows = conn.execute(
                "SELECT replica FROM tickless_replicas WHERE replica <> %s AND config_fingerprint <> %s"
                " AND heartbeat_at > clock_timestamp() - %s ORDER BY replica",
                (replica, config_fingerprint, timedelta(seconds=stale_after)),
            ).fetchall()
        return [row[0] for row in rows]

    def leave(self, replica: str) -> None:
        with self._transaction("leaving the replica set") as conn:
            conn.execute("DELETE FROM tickless_replicas WHERE replica = %s", (replica,))

    # -- pause ------------------------------------------------------------------------
    def pause(self, job: str, *, by: str, now: datetime) -> PausedJob:
        """Pause ``job`` for every replica (kept as it was when it is paused already); the pause in force."""
        with self._transaction(f"pausing {job}") as conn:
            conn.execute(
                "INSERT INTO tickless_paused (job, paused_at, paused_by) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (job, now, by),
            )
            paused = self._paused(conn, job)
        assert paused is not None
        return paused

    def resume(self, job: str) -> PausedJob | None:
        """Resume ``job``; the pause it had, or None when it was not paused."""
        with self._transaction(f"resuming {job}") as conn:
            row = conn.execute("DELETE FROM tickless_paused WHERE job = %s RETURNING paused_at, paused_by", (job,)).fetchone()
        return None if row is None else PausedJob(job, row[0], row[1])

    def paused_jobs(self) -> dict[str, PausedJob]:
        with self._transaction("reading paused jobs") as conn:
            rows = conn.execute("SELECT job, paused_at, paused_by FROM tickless_paused").fetchall()
        return {job: PausedJob(job, at, by) for job, at, by in rows}

    @staticmethod
    def _paused(conn: psycopg.Connection[Any], job: str) -> PausedJob | None:
        row = conn.execute("SELECT paused_at, paused_by FROM tickless_paused WHERE job = %s", (job,)).fetchone()
        return None if row is None else PausedJob(job, row[0], row[1])
