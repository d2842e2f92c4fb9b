"""The SQLite state store: run history, each job's grid and last run, the jitter seed.

SQLite in WAL mode (readers such as ``scheduler history`` never block the
service). The schema is versioned with ``PRAGMA user_version``.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import threading
from datetime import datetime
from pathlib import Path

from scheduler.errors import StateError
from scheduler.execution.run import RunOutcome
from scheduler.state.records import JobState, RunRecord
from tickless.clock import parse_iso

logger = logging.getLogger("scheduler.state")  # the name logs have always carried

SCHEMA_VERSION = 1
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
# Outcomes of runs that started: they move a job's last run forward.
STARTED_OUTCOMES = (RunOutcome.OK, RunOutcome.FAILED, RunOutcome.ABANDONED_AT_SHUTDOWN)


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def check_state_path(path: Path) -> None:
    """What ``run`` will need of the state store, without changing it.

    An existing file is opened read-only (a corrupt or too-new file fails
    here); otherwise its folder is created if missing and must take a file.
    Raises StateError naming the path.
    """
    if path.exists():
        StateStore(path, readonly=True).close()
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise StateError(path, exc) from None


class StateStore:
    def __init__(self, path: Path, history_per_job: int = 100, *, readonly: bool = False) -> None:
        self.path = path
        self.history_per_job = history_per_job
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
                self._check_version()
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts the file; a power cut may lose
            # the last few run records, which costs at most one extra catch-up run.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._check_version()
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                # A real write now, so a read-only file or folder fails at start, not at the first run.
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', datetime('now'))")
        except (sqlite3.Error, OSError) as exc:
            raise StateError(path, exc) from None

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this tickless understands ({SCHEMA_VERSION})")

    def close(self) -> None:
        self._db.close()

    # -- seed -----------------------------------------------------------------
    def jitter_seed(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'jitter_seed'").fetchone()
        return int(row[0]) if row else None

    def save_jitter_seed(self, seed: int) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('jitter_seed', ?)", (str(seed),))

    # -- jobs -----------------------------------------------------------------
    def job_states(self) -> dict[str, JobState]:
        rows = self._db.execute(
            "SELECT name, fingerprint, anchor, last_nominal, last_outcome, last_success_at FROM jobs"
        ).fetchall()
        return {
            name: JobState(fingerprint, datetime.fromisoformat(anchor), parse_iso(nominal), outcome, parse_iso(success))
            for name, fingerprint, anchor, nominal, outcome, success in rows
        }

    def save_grid(self, name: str, fingerprint: str, anchor: datetime) -> None:
        """Remember where a job's grid starts; a failure is logged and never raised."""
        try:
            with self._lock, self._db:
                self._db.execute(
                    "INSERT INTO jobs (name, fingerprint, anchor) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, anchor = excluded.anchor",
                    (name, fingerprint, anchor.isoformat()),
                )
        except sqlite3.Error as exc:
            logger.error("could not save the grid of job %s in %s: %s", name, self.path, exc)

    # -- runs -----------------------------------------------------------------
    def record(self, run: RunRecord) -> None:
        """Store one run; a failure is logged and never raised (the scheduler goes on)."""
        self.record_many([run])

    def record_many(self, runs: list[RunRecord]) -> None:
        """Store several runs in one transaction (one disk sync for all of them)."""
        try:
            with self._lock, self._db:
                for run in runs:
                    self._insert(run)
                for job in {run.job for run in runs}:
                    # Keep the newest N: everything at or below the (N+1)th newest id goes.
                    self._db.execute(
                        "DELETE FROM runs WHERE job = ? AND id <= "
                        "(SELECT id FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (job, job, self.history_per_job),
                    )
        except sqlite3.Error as exc:
            names = ", ".join(sorted({run.job for run in runs}))
            logger.error("could not record %d run(s) of %s in %s: %s", len(runs), names, self.path, exc)

    def _insert(self, run: RunRecord) -> None:
        self._db.execute(
            "INSERT INTO runs (job, scheduled_for, started_at, finished_at, outcome, status, error_type,"
            " attempts, duration_s, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.job, run.scheduled_for.isoformat(), _text(run.started_at), _text(run.finished_at), run.outcome,
             run.status, run.error_type, run.attempts, run.duration_s, run.error),
        )
        if run.outcome in STARTED_OUTCOMES:
            success = _text(run.finished_at) if run.outcome == RunOutcome.OK else None
            self._db.execute(
                "UPDATE jobs SET last_nominal = MAX(COALESCE(last_nominal, ''), ?), last_outcome = ?,"
                " last_success_at = COALESCE(?, last_success_at) WHERE name = ?",
                (run.scheduled_for.isoformat(), run.outcome, success, run.job),
            )

    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = (
            "SELECT job, scheduled_for, outcome, started_at, finished_at, status, error_type, attempts, duration_s, error"
            " FROM runs"
        )
        params: tuple[object, ...] = ()
        if job is not None:
            query += " WHERE job = ?"
            params = (job,)
        rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [
            RunRecord(name, datetime.fromisoformat(nominal), RunOutcome(outcome), parse_iso(started), parse_iso(finished),
                      status, error_type, attempts, duration, error)
            for name, nominal, outcome, started, finished, status, error_type, attempts, duration, error in rows
        ]
