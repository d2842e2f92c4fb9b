"""The SQLite cache on a real file in tmp_path."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog.cache import ERROR_MSG_LIMIT, SCHEMA_VERSION, Cache
from catalog.errors import CacheError
from catalog.models import EntityType, PartitionRange, TableMetadata, TrackedTable
from catalog.rows import freshness

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ORDERS = TrackedTable("orders", "data-proj", "shop", "orders", "orders")


def meta(**overrides: object) -> TableMetadata:
    values: dict[str, object] = {
        "entity_type": EntityType.BASE_TABLE, "rows": 10, "size_bytes": 100, "partition_by": "day",
        "partition_type": "DATE", "partition_range": None, "clustered_by": ["a"], "known_columns": ["day", "a"],
    }
    values.update(overrides)
    return TableMetadata(**values)  # type: ignore[arg-type]


def test_round_trip_keeps_empty_lists_and_nulls_apart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "catalog.sqlite"
    with Cache(path) as cache:
        cache.record_success(ORDERS, meta(clustered_by=[], known_columns=[], rows=None, size_bytes=None,
                                          partition_by=None, partition_type=None), T0)
    with Cache(path) as cache:  # a fresh connection reads what the file holds
        row = cache.get("orders")
    assert row is not None
    assert row.clustered_by == [] and row.known_columns == []
    assert row.rows is None and row.size_bytes is None and row.partition_by is None
    assert row.entity_type is EntityType.BASE_TABLE and row.refreshed_at == T0


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        cache.record_success(ORDERS, meta(entity_type=EntityType.MATERIALIZED_VIEW, partition_type="INT64",
                                          partition_range=PartitionRange(0, 100, 10), known_columns=["p", "p.q"]), T0)
        row = cache.get("ORDERS")  # ids ignore case
    assert row is not None
    assert row.entity_type is EntityType.MATERIALIZED_VIEW
    assert row.partition_range == PartitionRange(0, 100, 10)
    assert (row.project, row.dataset, row.table) == ("data-proj", "shop", "orders")
    assert row.known_columns == ["p", "p.q"] and row.clustered_by == ["a"]


def test_error_then_success_then_error(tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        cache.record_error(ORDERS, "boom " * 300, T0)
        first = cache.get("orders")
        assert first is not None and first.refreshed_at is None and first.known_columns is None
        assert len(first.error_msg or "") == ERROR_MSG_LIMIT
        assert freshness(first, T0, 3600) == "error"

        cache.record_success(ORDERS, meta(), T0 + timedelta(minutes=1))
        good = cache.get("orders")
        assert good is not None and good.error_msg is None and good.error_at is None
        assert freshness(good, T0 + timedelta(minutes=2), 3600) == "fresh"

        cache.record_error(ORDERS, "403 accessDenied", T0 + timedelta(hours=1))
        after = cache.get("orders")
    assert after is not None
    assert after.error_msg == "403 accessDenied" and after.error_at == T0 + timedelta(hours=1)
    # The error touched only the error fields.
    assert (after.rows, after.known_columns, after.refreshed_at) == (10, ["day", "a"], T0 + timedelta(minutes=1))


def test_freshness_rules() -> None:
    assert freshness(None, T0, 60) == "never_fetched"
    from catalog.models import CatalogRow

    row = CatalogRow("x", "p", "d", "t", refreshed_at=T0)
    assert freshness(row, T0 + timedelta(seconds=60), 60) == "fresh"
    assert freshness(row, T0 + timedelta(seconds=61), 60) == "stale"
    assert freshness(CatalogRow("x", "p", "d", "t"), T0, 60) == "never_fetched"


def test_migrates_a_version_1_file_forward(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Cache(path, target_version=1).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO tables (id, project, dataset, table_name, rows, size_bytes, clustered_by, refreshed_at) "
            "VALUES ('orders', 'data-proj', 'shop', 'orders', 7, 70, '[]', '2026-01-01T00:00:00.000Z')"
        )
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()

    with Cache(path) as cache:
        assert cache.user_version == SCHEMA_VERSION == 4
        row = cache.get("orders")
        assert row is not None and row.rows == 7 and row.clustered_by == []
        assert row.entity_type is None and row.known_columns is None  # not learned yet, not "no columns"
        cache.record_success(ORDERS, meta(), T0)  # the new columns are writable
        assert cache.get("orders").known_columns == ["day", "a"]  # type: ignore[union-attr]


def test_wal_mode(tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite"):
        pass
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_corrupt_file_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(CacheError) as caught:
        Cache(path)
    assert str(path) in str(caught.value) and "corrupt" in str(caught.value)


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(CacheError, match="newer"):
        Cache(path)


def test_unusable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError) as caught:
        Cache(blocker / "catalog.sqlite")
    assert str(blocker / "catalog.sqlite") in str(caught.value)


def test_migrates_a_version_2_file_to_rows_keyed_so_discovered_ids_keep_their_case(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    Cache(path, target_version=2).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO tables (id, project, dataset, table_name, rows, known_columns) "
                   "VALUES ('Orders', 'data-proj', 'shop', 'orders', 7, '[\"id\"]')")
        db.execute("INSERT INTO tables (id, project, dataset, table_name, rows, known_columns) "
                   "VALUES ('analytics.Events', 'data-proj', 'analytics', 'Events', 1, '[\"a\"]')")
        with pytest.raises(sqlite3.IntegrityError):  # the version 2 key: one row for both spellings
            db.execute("INSERT INTO tables (id, project, dataset, table_name) VALUES ('analytics.events', 'p', 'd', 't')")
    db.close()

    lower = TrackedTable("analytics.events", "data-proj", "analytics", "events", "analytics.events", discovered=True)
    with Cache(path) as cache:
        assert cache.user_version == 4
        orders = cache.get("ORDERS")  # registry ids still ignore case
        assert orders is not None and (orders.id, orders.rows, orders.known_columns) == ("Orders", 7, ["id"])
        cache.record_success(lower, meta(known_columns=["b"]), T0)
        upper, other = cache.get("analytics.Events"), cache.get("analytics.events")
        assert upper is not None and other is not None
        assert (upper.table, upper.known_columns, other.table, other.known_columns) == ("Events", ["a"], "events", ["b"])
        assert cache.get("ANALYTICS.EVENTS") is None  # a BigQuery path matches exactly
        assert [row.id for row in cache.find_ignoring_case("ANALYTICS.EVENTS")] == ["analytics.Events", "analytics.events"]
        cache.record_success(ORDERS, meta(), T0)  # the registry now spells it "orders": the same row
        assert [row.id for row in cache.rows()] == ["analytics.Events", "analytics.events", "orders"]
