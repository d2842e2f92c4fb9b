"""The catalog CLI: JSON shapes, exit codes, and end to end in a subprocess against 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog.cache import Cache
from catalog.cli import main
from catalog.models import EntityType, TableMetadata, TrackedTable
from catalog.rows import rough_size_hint
from tests.catalog.support import Column, FakeBigQuery, FakeServer, Table, subprocess_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROW_KEYS = [
    "id", "name", "description", "source_type", "sql_flavor", "project", "dataset", "table", "entity_type", "rows",
    "size_bytes", "rough_size_hint", "partition_by", "clustered_by", "known_columns", "shard_count", "newest_shard",
    "where_examples",
    "metadata_freshness", "refreshed_at", "error_msg",
]
REGISTRY = """
    bigquery:
      project: ${BIGQUERY_PROJECT}
      billing_project: bill-proj
    tables:
      unit_economics: {dataset: finance, table: unit_economics, description: "Per-order margin"}
      orders_v: {dataset: sales, table: orders_v}
      events: {dataset: analytics, table: events}
    where_examples:
      - "event_date > DATE '2026-01-01'"
      - "country_code = 'CZ' AND platform = 'web'"
"""


def shop() -> FakeBigQuery:
    fake = FakeBigQuery()
    fake.add("finance", Table("unit_economics", rows=5000, size=300 * 1024 * 1024,
                              columns=[Column("order_id", "INT64"), Column("margin_eur", "NUMERIC"), Column("platform")]))
    fake.add("sales", Table("orders_v", "VIEW", rows=None, size=None,
                            columns=[Column("event_date", "DATE"), Column("Country_Code"), Column("PLATFORM")]))
    fake.add("analytics", Table("events", rows=10**9, size=20 * 1024**3, columns=[
        Column("event_date", "DATE", partitioning=True), Column("country_code", clustering=1), Column("platform", clustering=2),
        Column("payload", "STRUCT<user STRUCT<id INT64>>"),
    ]))
    return fake


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return subprocess_env(tmp_path, REGISTRY)


@pytest.fixture
def server() -> Iterator[tuple[FakeBigQuery, FakeServer]]:
    fake = shop()
    running = FakeServer(fake)
    yield fake, running
    running.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "catalog", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_end_to_end_refresh_then_list(env: dict[str, str], server: tuple[FakeBigQuery, FakeServer]) -> None:
    fake, running = server
    env["BIGQUERY_EMULATOR_HOST"] = running.host

    refreshed = cli(env, "refresh", "--json")
    assert refreshed.returncode == 0, refreshed.stderr
    summary = json.loads(refreshed.stdout)
    assert list(summary) == ["run_id", "started_at", "status", "total", "succeeded", "no_data", "failed", "duration_ms",
                             "bigquery_calls"]
    assert (summary["total"], summary["succeeded"], summary["failed"], summary["status"]) == (3, 3, 0, "completed")
    assert summary["bigquery_calls"] == fake.http_requests == 8  # 3 x (TABLES + COLUMNS), 2 x __TABLES__ (not for the view)

    listed = cli(env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert set(document) == {"server_time", "tables"}
    rows = {row["id"]: row for row in document["tables"]}
    assert all(list(row) == ROW_KEYS for row in rows.values())

    economics = rows["unit_economics"]
    assert (economics["entity_type"], economics["rows"], economics["rough_size_hint"]) == ("BASE TABLE", 5000, "medium")
    assert economics["known_columns"] == ["order_id", "margin_eur", "platform"]
    assert economics["where_examples"] == []  # no event_date, no country_code: nothing advertised
    assert economics["description"] == "Per-order margin" and economics["metadata_freshness"] == "fresh"

    view = rows["orders_v"]
    assert (view["entity_type"], view["rows"], view["size_bytes"], view["rough_size_hint"]) == ("VIEW", None, None, None)
    assert view["where_examples"] == ["event_date > DATE '2026-01-01'", "country_code = 'CZ' AND platform = 'web'"]

    events = rows["events"]
    assert (events["partition_by"], events["clustered_by"]) == ("event_date", ["country_code", "platform"])
    assert events["rough_size_hint"] == "very_large"
    assert events["where_examples"][-1] == "event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)"
    assert "payload.user.id" in events["known_columns"]
    assert (events["source_type"], events["sql_flavor"]) == ("bigquery", "bigquery")


def test_refresh_exits_1_when_a_table_failed_and_reads_never_call_bigquery(
    env: dict[str, str], server: tuple[FakeBigQuery, FakeServer], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    fake, running = server
    fake.fail("TABLES", dataset="sales", status=403, reason="accessDenied")
    for key, value in {**env, "BIGQUERY_EMULATOR_HOST": running.host}.items():
        monkeypatch.setenv(key, value)

    assert main(["refresh"]) == 1
    out = capsys.readouterr().out
    assert "2 ok" in out and "1 failed" in out and "orders_v: BigQuery 403 accessDenied" in out

    before = fake.http_requests
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert list(status) == ["scheduler_interval_seconds", "fresh_threshold_seconds", "server_time", "tables"]
    assert (status["scheduler_interval_seconds"], status["fresh_threshold_seconds"]) == (14400, 28800)
    states = {row["id"]: row["metadata_freshness"] for row in status["tables"]}
    assert states == {"unit_economics": "fresh", "orders_v": "error", "events": "fresh"}

    assert main(["show", "ORDERS_V", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == "orders_v" and "accessDenied" in shown["error_msg"] and shown["known_columns"] is None
    assert main(["list"]) == 0 and "orders_v" in capsys.readouterr().out
    assert fake.http_requests == before  # list, show and status read the cache only


def test_usage_and_configuration_errors_exit_2(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    assert main(["show", "unit_economic"]) == 2
    assert "did you mean 'unit_economics'" in capsys.readouterr().err

    monkeypatch.setenv("BIGQUERY_PROJECT", "")
    assert main(["list", "--json"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'catalog.yaml'}:2: bigquery.project: BIGQUERY_PROJECT is set but empty" in err
    assert "Traceback" not in err

    monkeypatch.setenv("BIGQUERY_PROJECT", "data-proj")
    monkeypatch.setenv("CATALOG_REFRESH_CONCURRENCY", "lots")
    assert main(["refresh", "--table", "events"]) == 2
    assert "CATALOG_REFRESH_CONCURRENCY='lots'" in capsys.readouterr().err

    monkeypatch.delenv("CATALOG_REFRESH_CONCURRENCY")
    db = tmp_path / "corrupt.sqlite"
    db.write_bytes(b"garbage" * 1000)
    monkeypatch.setenv("CATALOG_DB", str(db))
    assert main(["status"]) == 2
    assert str(db) in capsys.readouterr().err

    with pytest.raises(SystemExit) as usage:
        main(["frobnicate"])
    assert usage.value.code == 2


def test_refresh_without_credentials_is_one_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "no-such-key.json")
    result = cli(env, "refresh")
    assert result.returncode == 2
    assert "no Google credentials for BigQuery" in result.stderr and "Traceback" not in result.stderr


def test_list_of_a_cold_cache(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with Cache(Path(env["CATALOG_DB"])) as cache:  # one table known, the rest never fetched
        cache.record_success(TrackedTable("events", "data-proj", "analytics", "events", "events"), TableMetadata(
            EntityType.BASE_TABLE, 1, 1, None, None, None, [], ["country_code", "platform"]), datetime(2020, 1, 1, tzinfo=UTC))

    assert main(["list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)["tables"]}
    assert rows["events"]["metadata_freshness"] == "stale"
    assert rows["events"]["where_examples"] == ["country_code = 'CZ' AND platform = 'web'"]
    assert rows["unit_economics"]["metadata_freshness"] == "never_fetched"
    assert rows["unit_economics"]["where_examples"] == [] and rows["unit_economics"]["known_columns"] is None


def test_rough_size_hint_buckets() -> None:
    mib, gib = 1024 * 1024, 1024**3
    assert [rough_size_hint(value) for value in (None, 0, 100 * mib, 100 * mib + 1, gib, gib + 1, 10 * gib, 10 * gib + 1)] == [
        None, "small", "small", "medium", "medium", "large", "large", "very_large"]


def test_reads_never_import_the_bigquery_client(env: dict[str, str]) -> None:
    # The point of the lazy client: list/show/status start fast (bench/catalog_reads.py times `catalog list`).
    script = (
        "import sys\n"
        "from catalog.cli import main\n"
        "for args in (['list', '--json'], ['status', '--json'], ['show', 'events', '--json']):\n"
        "    assert main(args) == 0, args\n"
        "loaded = sorted(name for name in sys.modules if name.startswith('google.cloud.bigquery'))\n"
        "print('LOADED', loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "LOADED []"
