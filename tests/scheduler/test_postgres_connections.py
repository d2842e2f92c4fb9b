"""PostgreSQL connections that break: killed server-side, cut with an answer in flight, a server
gone and back. No claim is lost to a connection that was already dead, none is made twice when
its answer was lost, and the store answers again when the server does.

A TCP relay between the store and the server stands in for the network: it can cut every
connection, refuse new ones, or drop the one answer a claim is waiting for. The last test puts
a real `scheduler run` behind it, beside a replica that keeps its connection.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from scheduler.errors import StoreUnavailable
from scheduler.execution.run import RunOutcome
from scheduler.state.postgres import PostgresStore
from scheduler.state.records import ClaimStatus, RunRecord
from tests.scheduler.support import ApiServer, Recorded, Service, clean_env, http_get, ops_url, write_jobs

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


class Relay:
    """Forwards 127.0.0.1:port to the PostgreSQL server; can cut, refuse, and drop one answer."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.refusing = False
        self.drop_next_answer = threading.Event()  # the next bytes from the server are not passed on: the connection is cut
        self.dropped = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self._lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self.drop_next_answer.is_set():
                    self.drop_next_answer.clear()
                    self.dropped.set()
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def cut_all(self) -> None:
        with self._lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for end in pair:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0] + "@" if len(netloc) == 2 else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def close(self) -> None:
        self.listener.close()
        self.cut_all()


@pytest.fixture
def relay(postgres_url: str) -> Iterator[Relay]:
    parts = urlsplit(postgres_url)
    forward = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield forward
    forward.close()


def now() -> datetime:
    return datetime.now(UTC)


def claims_and_rows(url: str, job: str) -> tuple[int, list[tuple[str, datetime]]]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM tickless_claims WHERE job = %s", (job,)).fetchone()
        runs = conn.execute("SELECT outcome, scheduled_for FROM tickless_runs WHERE job = %s ORDER BY id", (job,)).fetchall()
    assert row is not None
    return int(row[0]), [(outcome, slot) for outcome, slot in runs]


def named(url: str) -> tuple[str, str]:
    """The URL with an application_name of its own, and that name: this store's connections, found on the server."""
    name = f"tickless-test-{uuid.uuid4().hex[:8]}"
    return f"{url}&application_name={name}", name


def terminate(url: str, application_name: str) -> int:
    """pg_terminate_backend on every connection so named, waiting for each to end; how many there were."""
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = %s", (application_name,),
        ).fetchall()
    assert all(ended for ended, in rows)
    return len(rows)


def test_asking_the_same_claim_twice_answers_it_as_the_first_time(postgres_url: str) -> None:
    # What a replica does when a claim's answer is lost with its connection: it asks again, and
    # the claim that committed is answered as it was, not as taken (which would lose the run).
    store = PostgresStore(postgres_url, pool_size=2)
    try:
        store.record_many([RunRecord("job", T0 - SECOND, RunOutcome.FAILED, T0 - SECOND, T0 - SECOND)])
        asked = now()
        first = store.begin_run("job", T0, replica="a", now=asked, lease_seconds=30)
        again = store.begin_run("job", T0, replica="a", now=asked, lease_seconds=30)
        assert first.status == again.status == ClaimStatus.WON
        assert again.run_id == first.run_id and again.previous == first.previous and first.previous is not None
        # Another replica, or this one at another instant, is refused as ever.
        assert store.begin_run("job", T0, replica="b", now=asked, lease_seconds=30).status == ClaimStatus.TAKEN
        assert store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30).status == ClaimStatus.TAKEN
        # A slot skipped because the run is in flight: asked again, still a skip naming the run, recorded once.
        skipped_at = now()
        skip = store.begin_run("job", T0 + SECOND, replica="a", now=skipped_at, lease_seconds=30)
        skip_again = store.begin_run("job", T0 + SECOND, replica="a", now=skipped_at, lease_seconds=30)
        assert skip.status == skip_again.status == ClaimStatus.IN_FLIGHT
        assert skip.holder is not None and skip_again.holder == skip.holder and skip.holder.scheduled_for == T0
        claims, rows = claims_and_rows(postgres_url, "job")
        assert claims == 2
        assert rows == [("failed", T0 - SECOND), ("running", T0), ("skipped_in_flight", T0 + SECOND)]
    finally:
        store.close()


def test_connections_killed_server_side_are_replaced_without_losing_a_claim(postgres_url: str) -> None:
    url, name = named(postgres_url)
    store = PostgresStore(url, pool_size=3)
    try:
        assert store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30).status == ClaimStatus.WON
        assert terminate(postgres_url, name) == 3, "the pool's connections were not found to kill"
        # Every connection in the pool is dead: each claim still goes through, once.
        for index in range(1, 6):
            assert store.begin_run(f"job{index}", T0, replica="a", now=now(), lease_seconds=30).status == ClaimStatus.WON
        assert store.failures.total == 0 and not store.failures.failing
        store.record_many([RunRecord("job", T0, RunOutcome.OK, T0, T0 + SECOND)])  # the other statements too
        assert store.history("job", limit=1)[0].outcome == RunOutcome.OK
        for index in range(1, 6):
            assert claims_and_rows(postgres_url, f"job{index}") == (1, [("running", T0)])
    finally:
        store.close()


def test_an_idle_connection_with_something_else_to_read_is_kept(postgres_url: str) -> None:
    # Readable while idle almost always means the server hung up, but a notification is harmless:
    # the connection is asked (an empty query) rather than thrown away.
    url, name = named(postgres_url)
    store = PostgresStore(url, pool_size=1)
    try:
        with store._connection() as conn:
            conn.execute("LISTEN tickless_test")
            listening = conn.info.backend_pid
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("NOTIFY tickless_test")
        time.sleep(0.2)
        assert store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30).status == ClaimStatus.WON
        with psycopg.connect(postgres_url) as admin:
            pids = [pid for pid, in admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,))]
        assert pids == [listening]
    finally:
        store.close()


def test_a_claim_whose_answer_is_lost_is_asked_again_and_made_once(postgres_url: str, relay: Relay) -> None:
    store = PostgresStore(relay.url(postgres_url), pool_size=2)
    try:
        relay.drop_next_answer.set()  # the claim reaches the server and commits; its answer never comes back
        claim = store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30)
        assert relay.dropped.is_set(), "the relay did not drop the claim's answer: the test proved nothing"
        assert claim.status == ClaimStatus.WON and claim.run_id is not None
        assert store.failures.total == 0
        assert claims_and_rows(postgres_url, "job") == (1, [("running", T0)])
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT id FROM tickless_runs WHERE job = 'job'").fetchone()
        assert row is not None and row[0] == claim.run_id
        # The next slot is a skip naming that run: the run the lost answer was about is the one in flight.
        assert store.begin_run("job", T0 + SECOND, replica="a", now=now(), lease_seconds=30).status == ClaimStatus.IN_FLIGHT
    finally:
        store.close()


def test_a_server_gone_and_back_fails_claims_meanwhile_and_answers_again(postgres_url: str, relay: Relay) -> None:
    store = PostgresStore(relay.url(postgres_url), pool_size=2, connect_timeout=2)
    try:
        assert store.begin_run("job", T0, replica="a", now=now(), lease_seconds=30).status == ClaimStatus.WON
        relay.refusing = True
        relay.cut_all()
        time.sleep(0.1)
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.begin_run("job", T0 + SECOND, replica="a", now=now(), lease_seconds=30)
        assert time.monotonic() - began < 10, "a claim waited far beyond the connect timeout"
        assert store.failures.failing
        relay.refusing = False
        deadline = time.monotonic() + 30
        while True:  # the pool reconnects with backoff: claims go through once it has
            try:
                claim = store.begin_run("job", T0 + 2 * SECOND, replica="a", now=now(), lease_seconds=30)
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store did not answer again after the server came back"
        assert claim.status == ClaimStatus.IN_FLIGHT  # the run of T0 is still in flight: the store knows it
        assert not store.failures.failing
        claims, rows = claims_and_rows(postgres_url, "job")
        assert claims == 2 and rows == [("running", T0), ("skipped_in_flight", T0 + 2 * SECOND)]
    finally:
        store.close()


def _slot(request: Recorded) -> tuple[str, str]:
    return request.headers["X-Scheduler-Job"], request.headers["X-Scheduler-Scheduled-For"]


def _runs_by(url: str, pid: int, since: datetime) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM tickless_runs WHERE split_part(replica, ':', 2) = %s AND started_at > %s",
                           (str(pid), since)).fetchone()
    return int(row[0]) if row else 0


def test_a_replica_cut_off_from_postgresql_fires_nothing_unclaimed_and_claims_again_when_it_is_back(
    api: ApiServer, tmp_path: Path, start_service: Callable[..., Service], postgres_url: str, relay: Relay,
) -> None:
    config = write_jobs(tmp_path, "jobs:\n" + "".join(f"  t{index}: {{every: 1s, http: {{path: /t}}}}\n" for index in range(3)))
    base = dict(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_STARTUP_SPREAD_SECONDS="0",
                SCHEDULER_LEASE_SECONDS="3", SCHEDULER_STATE_POOL_SIZE="3")
    direct = start_service(["run", "-c", str(config)], clean_env(SCHEDULER_STATE_URL=postgres_url, **base))
    cut = start_service(["run", "-c", str(config)], clean_env(SCHEDULER_STATE_URL=relay.url(postgres_url), **base))
    health = ops_url(cut) + "/healthz"
    api.wait_for("/t", 12)
    assert http_get(health)[0] == 200

    relay.refusing = True
    relay.cut_all()
    cut_at = datetime.now(UTC)
    statuses = []
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and 503 not in statuses:
        statuses.append(http_get(health)[0])
        time.sleep(0.5)
    status, body = http_get(health)
    assert status == 503 and "state store" in body, body
    cut.wait_for_log("run not fired")
    assert _runs_by(postgres_url, cut.proc.pid, cut_at) == 0

    relay.refusing = False
    back_at = datetime.now(UTC)
    deadline = time.monotonic() + 30
    while http_get(health)[0] != 200:
        assert time.monotonic() < deadline, f"/healthz did not recover:\n{cut.log[-3000:]}"
        time.sleep(0.5)
    deadline = time.monotonic() + 20
    while _runs_by(postgres_url, cut.proc.pid, back_at) == 0:
        assert time.monotonic() < deadline, f"the replica did not claim runs again:\n{cut.log[-3000:]}"
        time.sleep(0.5)
    assert direct.terminate()[0] == 0 and cut.terminate()[0] == 0
    assert "works again" in cut.log

    # Every slot that reached the API was fired once: the cut replica fired nothing without its claim
    # (the other replica claimed and fired every slot meanwhile, so an unclaimed run would be a second one).
    slots = [_slot(request) for request in api.calls("/t")]
    assert len(slots) == len(set(slots)), sorted(slot for slot in set(slots) if slots.count(slot) > 1)
    during = [job for job, stamp in slots if cut_at < datetime.fromisoformat(stamp.replace("Z", "+00:00")) < back_at]
    assert all(during.count(f"t{index}") >= 5 for index in range(3)), f"the other replica did not fire meanwhile: {during}"
