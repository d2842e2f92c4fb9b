"""The state store on real SQLite files in tmp_path."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.errors import StateError, StoreUnavailable
from scheduler.state.records import RunRecord
from scheduler.state.sqlite import SqliteStore as StateStore

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_creates_its_folder_uses_wal_and_versions_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.sqlite"
    StateStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == 4


def test_runs_and_job_state_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    store.claim_grid("a", "every 15m tz=UTC", T0)
    store.record_many([RunRecord("a", T0, "ok", T0, T0 + timedelta(seconds=2), status=200, attempts=1, duration_s=2.0)])
    store.record_many([RunRecord("a", T0 + timedelta(minutes=15), "failed", T0 + timedelta(minutes=15), status=503, attempts=3,
                           error="HTTP 503")])
    store.record_many([RunRecord("a", T0 + timedelta(minutes=30), "skipped_in_flight")])
    store.close()

    again = StateStore(path)
    state = again.job_states()["a"]
    assert state.anchor == T0 and state.fingerprint == "every 15m tz=UTC"
    assert state.last_nominal == T0 + timedelta(minutes=15)  # a skipped run is not a run
    assert state.last_outcome == "failed"
    assert state.last_success_at == T0 + timedelta(seconds=2)
    runs = again.history("a", 10)
    assert [run.outcome for run in runs] == ["skipped_in_flight", "failed", "ok"]
    assert runs[1].status == 503 and runs[1].attempts == 3 and runs[1].error == "HTTP 503"


def test_history_is_bounded_per_job(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite", history_per_job=5)
    store.claim_grid("a", "f", T0)
    for minute in range(12):
        store.record_many([RunRecord("a", T0 + timedelta(minutes=minute), "ok", T0)])
    store.record_many([RunRecord("b", T0, "ok", T0)])
    assert len(store.history("a", 100)) == 5
    assert store.history("a", 1)[0].scheduled_for == T0 + timedelta(minutes=11)
    assert len(store.history(None, 100)) == 6
    # The job's last run is kept even when its history rolls over.
    assert store.job_states()["a"].last_nominal == T0 + timedelta(minutes=11)


def test_a_version_3_file_gains_the_finished_runs_index_and_keeps_its_runs(tmp_path: Path) -> None:
    from scheduler.state import sqlite as schema

    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.executescript(schema._SCHEMA + schema._MIGRATE_TO_2 + schema._MIGRATE_TO_3 + "PRAGMA user_version = 3;")
    db.executemany("INSERT INTO runs (job, scheduled_for, outcome, started_at) VALUES ('a', ?, 'ok', ?)",
                   [((T0 + timedelta(minutes=m)).isoformat(), T0.isoformat()) for m in range(3)])
    db.commit()
    db.close()
    store = StateStore(path, history_per_job=2)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 4
    # Trimming the history reads the finished runs' index, not every row of the job.
    plan = " ".join(row[3] for row in store._db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE job = 'a' AND outcome <> 'running' ORDER BY id DESC LIMIT 1 OFFSET 2"))
    assert "runs_finished" in plan
    assert len(store.history("a", 10)) == 3  # kept as they were until the next run of the job is recorded
    store.record_many([RunRecord("a", T0 + timedelta(minutes=3), "ok", T0)])
    assert [run.scheduled_for for run in store.history("a", 10)] == [T0 + timedelta(minutes=3), T0 + timedelta(minutes=2)]


def test_runs_in_flight_are_never_trimmed_and_their_ends_trim_to_the_newest(tmp_path: Path) -> None:
    from scheduler.execution.events import RowRef

    store = StateStore(tmp_path / "state.sqlite", history_per_job=2)
    store.record_many([RunRecord("a", T0 + timedelta(minutes=m), "ok", T0) for m in range(2)])
    refs = [RowRef(), RowRef()]
    started = [RunRecord("a", T0 + timedelta(minutes=10 + m), "running", T0, replica="r", lease_until=T0) for m in range(2)]
    store.finish_runs(list(zip(refs, started, strict=True)))
    assert [run.outcome for run in store.history("a", 10)] == ["running", "running", "ok", "ok"]
    store.finish_runs([(ref, RunRecord(run.job, run.scheduled_for, "ok", T0, T0)) for ref, run in zip(refs, started, strict=True)])
    kept = store.history("a", 10)
    assert [run.scheduled_for for run in kept] == [T0 + timedelta(minutes=11), T0 + timedelta(minutes=10)]


def test_the_seed_is_stored_once(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    assert store.jitter_seed() is None
    assert store.claim_jitter_seed(1234) == 1234
    assert store.claim_jitter_seed(99) == 1234  # a later drawn seed never replaces the stored one
    store.close()
    assert StateStore(tmp_path / "state.sqlite").jitter_seed() == 1234


def test_a_corrupt_file_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a database, it is a shopping list" * 100)
    with pytest.raises(StateError) as caught:
        StateStore(path)
    assert str(caught.value).startswith(f"SCHEDULER_STATE_PATH='{path}': cannot use the state store: file is not a database; ")


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    # Root ignores file modes, so use a place nobody can create files in.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StateError) as caught:
        StateStore(blocker / "state.sqlite")
    assert str(caught.value).startswith(f"SCHEDULER_STATE_PATH='{blocker / 'state.sqlite'}': cannot use the state store:")


def test_a_read_only_handle_reads_what_the_service_wrote(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.sqlite"
    writer = StateStore(path)
    writer.claim_grid("a", "f", T0)
    writer.record_many([RunRecord("a", T0, "ok", T0)])
    reader = StateStore(path, readonly=True)
    assert [run.job for run in reader.history()] == ["a"]
    with pytest.raises(StoreUnavailable):
        reader.claim_grid("b", "f", T0)  # refused by SQLite: counted and logged
    assert "failed (the grid of job b)" in caplog.text
    assert set(reader.job_states()) == {"a"}


def test_failed_writes_are_logged_once_per_streak_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    store.claim_grid("a", "f", T0)
    path.unlink()  # deleted under the service: SQLite would go on writing to the unlinked file
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="deleted or replaced"):
            store.record_many([RunRecord("a", T0, "ok", T0)])
    assert store.failures.total == 3 and store.failures.failing
    assert caplog.text.count("failed (1 run record(s))") == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 9")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="schema version 9 is newer"):
        StateStore(path)


def test_the_state_file_and_its_folder_are_created_for_the_owner_only(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)  # a usual umask would make them 0644 and 0755
    try:
        path = tmp_path / "data" / "state.sqlite"
        store = StateStore(path)
        store.record_many([RunRecord("a", T0, "ok", T0, T0, status=200, attempts=1, duration_s=0.1)])
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert modes["state.sqlite"] == 0o600
    assert modes["state.sqlite-wal"] == 0o600  # SQLite copies the database file's mode


def test_a_damaged_file_says_how_to_move_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not a database, it was overwritten by mistake" * 100)
    for readonly in (False, True):
        with pytest.raises(StateError) as caught:
            StateStore(path, readonly=readonly)
        message = str(caught.value)
        assert message.startswith(f"SCHEDULER_STATE_PATH={str(path)!r}: cannot use the state store: file is not a database; ")
        assert f"move it aside with its -wal and -shm files (mv {path} {path}.corrupt) and start again" in message


def test_a_file_from_a_newer_tickless_gets_no_corruption_hint(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StateError) as caught:
        StateStore(path)
    assert "newer than this tickless understands" in str(caught.value) and "move it aside" not in str(caught.value)


def test_an_in_flight_row_written_by_the_background_writer_is_completed_by_its_run_end(tmp_path: Path) -> None:
    """Alone on its file the service claims in memory: the writer adds the claim and in-flight row
    (a RowRef learns its id), and the run's end completes that row, in the same batch or a later one."""
    from scheduler.execution.run import RunOutcome
    from scheduler.state.records import RowRef

    store = StateStore(tmp_path / "state.db")
    slot = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
    now = slot + timedelta(milliseconds=2)
    store.claim_grid("job", "fp", slot)
    first, second = RowRef(), RowRef()
    start = RunRecord("job", slot, RunOutcome.RUNNING, started_at=now, replica="me", lease_until=now + timedelta(seconds=60))
    store.finish_runs([(first, start)])
    assert first.id is not None
    in_flight = store.in_flight("job", now)
    assert in_flight is not None and in_flight.scheduled_for == slot and in_flight.replica == "me"
    assert [(run.job, run.started_at) for run in store.runs_in_flight(now)] == [("job", now)]
    store.finish_runs([(first, RunRecord("job", slot, RunOutcome.OK, started_at=now, finished_at=now, status=200))])
    later = slot + timedelta(hours=1)
    store.finish_runs([  # start and end in one batch: the end finds the row added just before
        (second, RunRecord("job", later, RunOutcome.RUNNING, started_at=later, replica="me", lease_until=later + timedelta(seconds=60))),
        (second, RunRecord("job", later, RunOutcome.FAILED, started_at=later, finished_at=later, error="boom")),
    ])
    assert second.id is not None and second.id != first.id
    assert [(run.scheduled_for, run.outcome) for run in store.history("job")] == [(later, "failed"), (slot, "ok")]
    assert store.in_flight("job", later) is None
    assert store.job_states()["job"].last_nominal == later
    claims = sqlite3.connect(tmp_path / "state.db").execute("SELECT scheduled_for, claimed_by FROM claims ORDER BY 1").fetchall()
    assert [by for _, by in claims] == ["me", "me"]
    store.close()
