"""The SQLite state store, the embedded default: one service per file.

SQLite in WAL mode (readers such as ``scheduler history`` never block the
service); the schema is versioned with ``PRAGMA user_version`` and migrated
forward at start. ``scheduler run`` holds an exclusive lock beside the file
(``state.instance_lock``), so every in-flight row found at start belongs to a
process that died: it is closed as interrupted.

Times are stored as ISO-8601 text in UTC with microseconds, so text order is
time order.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    RowRef,
    RunRecord,
)
from scheduler.state.store import FailureStreak, claims_kept

SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    status INTEGER,
    error_type TEXT,
    attempts INTEGER,
    duration_s REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, id);
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    anchor TEXT NOT NULL,
    last_nominal TEXT,
    last_outcome TEXT,
    last_success_at TEXT
);
"""
# Version 2: runs are recorded when they start (in-flight rows with a lease),
# and each slot is claimed once.
_MIGRATE_TO_2 = """
ALTER TABLE runs ADD COLUMN retry INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN replica TEXT;
ALTER TABLE runs ADD COLUMN lease_until TEXT;
CREATE INDEX IF NOT EXISTS runs_in_flight ON runs (job) WHERE outcome = 'running';
CREATE TABLE IF NOT EXISTS claims (
    job TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    retry INTEGER NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (job, scheduled_for, retry)
);
"""
# Version 3: jobs paused with ``scheduler pause``.
_MIGRATE_TO_3 = """
CREATE TABLE IF NOT EXISTS paused (job TEXT PRIMARY KEY, paused_at TEXT NOT NULL, paused_by TEXT NOT NULL);
"""
# Version 4: each job's finished runs in an index of their own, so that keeping the newest
# SCHEDULER_HISTORY_PER_JOB of them reads the index alone (it read every row's outcome).
_MIGRATE_TO_4 = """
CREATE INDEX IF NOT EXISTS runs_finished ON runs (job, id) WHERE outcome <> 'running';
"""
_RUN_COLUMNS = (
    "job, scheduled_for, outcome, started_at, finished_at, status, error_type, attempts, duration_s, error, retry, replica"
)


def text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def check_state_path(path: Path) -> None:
    """What ``run`` will need of the state store, without changing it.

    An existing file is opened read-only (a corrupt or too-new file fails
    here); otherwise its folder is created if missing and must take a file.
    Raises StateError naming the path.
    """
    if path.exists():
        SqliteStore(path, readonly=True).close()
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise StateError(str(path), exc) from None


class SqliteStore:
    """The state store in one SQLite file."""

    def __init__(self, path: Path, history_per_job: int = 100, *, readonly: bool = False) -> None:
        self.path = path
        self.location = str(path)
        self.history_per_job = history_per_job
        self.readonly = readonly
        self.failures = FailureStreak(self.location)
        self._lock = threading.Lock()
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
                self._version = self._check_version()
                self._identity = None
                return
            _create_owner_only(path)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=5, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts the file; a power cut may lose
            # the last few run records, which costs at most one extra catch-up run.
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._check_version()
            with self._transaction():
                # executescript would commit first: statements one by one keep the migration in one transaction.
                migrations = "".join(script for since, script in ((2, _MIGRATE_TO_2), (3, _MIGRATE_TO_3), (4, _MIGRATE_TO_4))
                                     if version < since)
                for statement in _statements(_SCHEMA + migrations):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                # A real write now, so a read-only file or folder fails at start, not at the first run.
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', datetime('now'))")
            self._identity = _identity(path)
            self._version = SCHEMA_VERSION
        except (sqlite3.Error, OSError) as exc:
            raise StateError(str(path), exc, hint=_corrupt_hint(path, exc)) from None

    def _check_version(self) -> int:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this tickless understands ({SCHEMA_VERSION})")
        return version

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock at once: a claim and its
        # in-flight check see no other writer in between (``scheduler fire``
        # may write from another process).
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; a failure is counted and raised as StoreUnavailable."""
        with self._lock:
            try:
                if self._identity is not None and _identity(self.path) != self._identity:
                    raise sqlite3.OperationalError("the file was deleted or replaced under the service")
                with self._transaction() as db:
                    yield db
            except (sqlite3.Error, OSError) as exc:
                self.failures.failed(what, exc)
                raise StoreUnavailable(self.location, exc) from None
        self.failures.succeeded()

    def close(self) -> None:
        self._db.close()

    # -- seed -------------------------------------------------------------------------
    def jitter_seed(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'jitter_seed'").fetchone()
        return int(row[0]) if row else None

    def claim_jitter_seed(self, candidate: int) -> int:
        with self._write("the jitter seed") as db:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('jitter_seed', ?)", (str(candidate),))
            return int(db.execute("SELECT value FROM meta WHERE key = 'jitter_seed'").fetchone()[0])

    # -- jobs -------------------------------------------------------------------------
    def job_states(self) -> dict[str, JobState]:
        rows = self._db.execute("SELECT name, fingerprint, anchor, last_nominal, last_outcome, last_success_at FROM jobs").fetchall()
        return {
            name: JobState(fingerprint, datetime.fromisoformat(anchor), moment(nominal), outcome, moment(success))
            for name, fingerprint, anchor, nominal, outcome, success in rows
        }

    def claim_grid(self, name: str, fingerprint: str, anchor: datetime) -> datetime:
        """Where the job's grid starts: the stored anchor when the schedule is the same, else ``anchor``."""
        with self._write(f"the grid of job {name}") as db:
            db.execute(
                "INSERT INTO jobs (name, fingerprint, anchor) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, anchor = excluded.anchor WHERE jobs.fingerprint <> excluded.fingerprint",
                (name, fingerprint, anchor.isoformat()),
            )
            return datetime.fromisoformat(db.execute("SELECT anchor FROM jobs WHERE name = ?", (name,)).fetchone()[0])

    # -- runs -------------------------------------------------------------------------
    def begin_run(
        self, job: str, scheduled_for: datetime, *, replica: str, now: datetime, lease_seconds: float,
        retry: bool = False, force: bool = False,
    ) -> Claim:
        """Claim the slot and, unless a run of the job is in flight (and not ``force``), record this run as in flight."""
        with self._write(f"the start of a run of {job}") as db:
            paused = None if force else self._paused(db, job)
            if paused is not None:
                return Claim(ClaimStatus.PAUSED, paused=paused)
            if retry and not force and (holder := self._in_flight(db, job, now)) is not None:
                # A retry waits for the job rather than becoming a skip: it takes no claim while a run is in flight.
                return Claim(ClaimStatus.IN_FLIGHT, holder=holder)
            claimed = db.execute(
                "INSERT INTO claims (job, scheduled_for, retry, claimed_by, claimed_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (job, text(scheduled_for), int(retry), replica, text(now)),
            ).rowcount
            if not claimed:
                return Claim(ClaimStatus.TAKEN)
            holder = None if force else self._in_flight(db, job, now)
            if holder is not None:
                self._insert(db, RunRecord(job, scheduled_for, RunOutcome.SKIPPED_IN_FLIGHT, retry=retry, replica=replica))
                return Claim(ClaimStatus.IN_FLIGHT, holder=holder)
            previous = db.execute(
                "SELECT outcome, scheduled_for FROM runs WHERE job = ? AND outcome IN ('ok', 'failed') ORDER BY id DESC LIMIT 1",
                (job,),
            ).fetchone()
            cursor = db.execute(
                "INSERT INTO runs (job, scheduled_for, started_at, outcome, retry, replica, lease_until)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (job, text(scheduled_for), text(now), int(retry), replica, text(now + timedelta(seconds=lease_seconds))),
            )
            db.execute(
                "UPDATE jobs SET last_nominal = MAX(COALESCE(last_nominal, ''), ?) WHERE name = ?",
                (scheduled_for.isoformat(), job),
            )
            last = LastResult(previous[0], datetime.fromisoformat(previous[1])) if previous else None
            return Claim(ClaimStatus.WON, run_id=cursor.lastrowid, previous=last)

    @staticmethod
    def _insert_in_flight(db: sqlite3.Connection, record: RunRecord) -> int | None:
        db.execute(
            "INSERT INTO claims (job, scheduled_for, retry, claimed_by, claimed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (record.job, text(record.scheduled_for), int(record.retry), record.replica, text(record.started_at)),
        )
        cursor = db.execute(
            "INSERT INTO runs (job, scheduled_for, started_at, outcome, retry, replica, lease_until)"
            " VALUES (?, ?, ?, 'running', ?, ?, ?)",
            (record.job, text(record.scheduled_for), text(record.started_at), int(record.retry), record.replica,
             text(record.lease_until)),
        )
        db.execute(
            "UPDATE jobs SET last_nominal = MAX(COALESCE(last_nominal, ''), ?) WHERE name = ?",
            (record.scheduled_for.isoformat(), record.job),
        )
        return cursor.lastrowid

    def runs_in_flight(self, now: datetime) -> list[InFlightRun]:
        """Every run in flight now (lease not expired), of any process: ``scheduler fire`` included."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT job, scheduled_for, started_at, replica, retry FROM runs WHERE outcome = 'running' AND lease_until > ?",
                    (text(now),),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(self.location, exc) from None
        return [InFlightRun(job, datetime.fromisoformat(slot), datetime.fromisoformat(started), replica, bool(retry))
                for job, slot, started, replica, retry in rows]

    def claim_skip(self, job: str, scheduled_for: datetime, *, replica: str, now: datetime) -> bool:
        """Claim a slot this process skips (its own run of the job is still in flight) and record the skip."""
        with self._write(f"a skipped run of {job}") as db:
            claimed = db.execute(
                "INSERT INTO claims (job, scheduled_for, retry, claimed_by, claimed_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT DO NOTHING",
                (job, text(scheduled_for), replica, text(now)),
            ).rowcount
            if claimed:
                self._insert(db, RunRecord(job, scheduled_for, RunOutcome.SKIPPED_IN_FLIGHT, replica=replica))
            return bool(claimed)

    def in_flight(self, job: str, now: datetime) -> InFlightRun | None:
        """The run of ``job`` in flight now (its lease not expired), if any."""
        return self._in_flight(self._db, job, now)

    @staticmethod
    def _in_flight(db: sqlite3.Connection, job: str, now: datetime) -> InFlightRun | None:
        row = db.execute(
            "SELECT scheduled_for, started_at, replica, retry FROM runs"
            " WHERE job = ? AND outcome = 'running' AND lease_until > ? ORDER BY id DESC LIMIT 1",
            (job, text(now)),
        ).fetchone()
        if row is None:
            return None
        return InFlightRun(job, datetime.fromisoformat(row[0]), datetime.fromisoformat(row[1]), row[2], bool(row[3]))

    def renew(self, run_ids: Sequence[int], now: datetime, lease_seconds: float) -> None:
        if not run_ids:
            return
        until = text(now + timedelta(seconds=lease_seconds))
        with self._write("lease renewal") as db:
            db.executemany("UPDATE runs SET lease_until = ? WHERE id = ? AND outcome = 'running'", [(until, i) for i in run_ids])

    def heartbeat(self, replica: str, config_fingerprint: str, now: datetime, stale_after: float) -> list[str]:
        """One service per file: there are no other replicas to compare with."""
        return []

    def leave(self, replica: str) -> None:
        pass

    # -- pause ------------------------------------------------------------------------
    def pause(self, job: str, *, by: str, now: datetime) -> PausedJob:
        """Pause ``job`` (kept as it was when it is paused already); the pause in force."""
        with self._write(f"pausing {job}") as db:
            db.execute("INSERT OR IGNORE INTO paused (job, paused_at, paused_by) VALUES (?, ?, ?)", (job, text(now), by))
            paused = self._paused(db, job)
        assert paused is not None
        return paused

    def resume(self, job: str) -> PausedJob | None:
        """Resume ``job``; the pause it had, or None when it was not paused."""
        with self._write(f"resuming {job}") as db:
            paused = self._paused(db, job)
            db.execute("DELETE FROM paused WHERE job = ?", (job,))
        return paused

    def paused_jobs(self) -> dict[str, PausedJob]:
        if self._version < 3:
            return {}  # a read-only look at a file from before pausing existed: nothing is paused
        try:
            with self._lock:
                rows = self._db.execute("SELECT job, paused_at, paused_by FROM paused").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(self.location, exc) from None
        return {job: PausedJob(job, datetime.fromisoformat(at), by) for job, at, by in rows}

    @staticmethod
    def _paused(db: sqlite3.Connection, job: str) -> PausedJob | None:
        row = db.execute("SELECT paused_at, paused_by FROM paused WHERE job = ?", (job,)).fetchone()
        return None if row is None else PausedJob(job, datetime.fromisoformat(row[0]), row[1])

    def finish_runs(self, finished: Sequence[tuple[RowId, RunRecord]]) -> None:
        """Complete in-flight rows (or add rows for runs without one), in one transaction.

        A ``RowRef`` with a ``running`` record is a run the service started without a
        transaction of its own (alone on the file, it decides its claims in memory): its
        claim and in-flight row are written here, in order, and the RowRef learns the
        row's id, which the run's end (later in the same or a later batch) completes.
        """
        added: dict[int, tuple[RowRef, int | None]] = {}  # ids become known to the RowRefs only once committed
        finished_jobs: set[str] = set()
        with self._write(f"{len(finished)} run record(s)") as db:
            for row, record in finished:
                if isinstance(row, RowRef):
                    if record.outcome == RunOutcome.RUNNING:
                        if row.id is None and id(row) not in added:
                            added[id(row)] = (row, self._insert_in_flight(db, record))
                        continue
                    run_id = row.id if row.id is not None else added.get(id(row), (row, None))[1]
                else:
                    run_id = row
                finished_jobs.add(record.job)
                if run_id is None:
                    self._insert(db, record)
                else:
                    db.execute(
                        "UPDATE runs SET outcome = ?, finished_at = ?, status = ?, error_type = ?, attempts = ?,"
                        " duration_s = ?, error = ?, lease_until = NULL WHERE id = ?",
                        (record.outcome, text(record.finished_at), record.status, record.error_type, record.attempts,
                         record.duration_s, record.error, run_id),
                    )
                    self._update_job(db, record)
            for job in finished_jobs:  # a batch of runs that only started adds no finished row: nothing to trim
                self._prune(db, job)
        for row, new_id in added.values():
            row.id = new_id

    def record(self, run: RunRecord) -> None:
        """Store one finished run with no in-flight row (``scheduler fire`` of an old store, tests)."""
        self.finish_runs([(None, run)])

    def record_many(self, runs: Sequence[RunRecord]) -> None:
        self.finish_runs([(None, run) for run in runs])

    def expire_in_flight(self, now: datetime, *, all_rows: bool) -> list[Interrupted]:
        """Close in-flight rows whose process died as interrupted: every one (``all_rows``, at
        start, under the instance lock) or those whose lease has expired."""
        with self._write("closing interrupted runs") as db:
            condition = "outcome = 'running'" + ("" if all_rows else " AND lease_until <= ?")
            rows = db.execute(
                f"SELECT id, job, scheduled_for, started_at, replica, retry FROM runs WHERE {condition}",  # noqa: S608
                () if all_rows else (text(now),),
            ).fetchall()
            for row in rows:
                db.execute(
                    "UPDATE runs SET outcome = 'interrupted', finished_at = ?, lease_until = NULL,"
                    " error = 'the process running it stopped (crash, kill -9 or power loss)' WHERE id = ?",
                    (text(now), row[0]),
                )
                db.execute("UPDATE jobs SET last_outcome = 'interrupted' WHERE name = ?", (row[1],))
        return [Interrupted(job, datetime.fromisoformat(slot), moment(started), replica, bool(retry))
                for _, job, slot, started, replica, retry in rows]

    def _insert(self, db: sqlite3.Connection, run: RunRecord) -> None:
        db.execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (run.job, text(run.scheduled_for), run.outcome, text(run.started_at), text(run.finished_at), run.status,
             run.error_type, run.attempts, run.duration_s, run.error, int(run.retry), run.replica),
        )
        if run.outcome in (RunOutcome.OK, RunOutcome.FAILED, RunOutcome.ABANDONED_AT_SHUTDOWN):
            db.execute(
                "UPDATE jobs SET last_nominal = MAX(COALESCE(last_nominal, ''), ?) WHERE name = ?",
                (run.scheduled_for.isoformat(), run.job),
            )
            self._update_job(db, run)

    @staticmethod
    def _update_job(db: sqlite3.Connection, run: RunRecord) -> None:
        success = text(run.finished_at) if run.outcome == RunOutcome.OK else None
        db.execute(
            "UPDATE jobs SET last_outcome = ?, last_success_at = COALESCE(?, last_success_at) WHERE name = ?",
            (run.outcome, success, run.job),
        )

    def _prune(self, db: sqlite3.Connection, job: str) -> None:
        # Keep the newest N finished runs; in-flight rows always stay.
        db.execute(
            "DELETE FROM runs WHERE job = ? AND outcome <> 'running' AND id <= "
            "(SELECT id FROM runs WHERE job = ? AND outcome <> 'running' ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (job, job, self.history_per_job),
        )
        db.execute(
            "DELETE FROM claims WHERE job = ? AND scheduled_for < "
            "(SELECT scheduled_for FROM claims WHERE job = ? ORDER BY scheduled_for DESC LIMIT 1 OFFSET ?)",
            (job, job, claims_kept(self.history_per_job)),
        )

    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = f"SELECT {_RUN_COLUMNS} FROM runs"  # noqa: S608
        params: tuple[object, ...] = ()
        if job is not None:
            query += " WHERE job = ?"
            params = (job,)
        rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [
            RunRecord(name, datetime.fromisoformat(slot), RunOutcome(outcome), moment(started), moment(finished),
                      status, error_type, attempts, duration, error, bool(retry), replica)
            for name, slot, outcome, started, finished, status, error_type, attempts, duration, error, retry, replica in rows
        ]


def _create_owner_only(path: Path) -> None:
    """Create the folder (0700) and the file (0600) for the owner alone: the runs table keeps
    response-body previews. SQLite gives its -wal and -shm files the database file's mode.
    An existing file or folder keeps the mode it has."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


# SQLITE_CORRUPT and SQLITE_NOTADB: the bytes on disk are not a database SQLite can read.
_DAMAGED = (11, 26)


def _corrupt_hint(path: Path, exc: BaseException) -> str:
    """For a damaged file, what to do: move it aside and start with an empty state."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _DAMAGED:
        return ""
    return (
        f"the file is damaged: stop every scheduler using it, move it aside with its -wal and -shm files "
        f"(mv {path} {path}.corrupt) and start again: the service starts with an empty state "
        "(new grids, no history, missed slots not caught up); keep the moved file to inspect or recover it"
    )


def _statements(script: str) -> list[str]:
    return [statement for statement in script.split(";") if statement.strip()]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino
