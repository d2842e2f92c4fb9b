"""Refresh per region, families, sizes that fall back, and a refresh against an unreachable or slow BigQuery."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource, connect
from catalog.cache import Cache
from catalog.models import EntityType
from catalog.refresh import refresh
from catalog.registry import load_registry
from catalog.settings import CatalogSettings
from tests.catalog.conftest import FAST
from tests.catalog.support import BILLING, ENDPOINT, Column, FakeBigQuery, Table, write_registry


def cached(settings: CatalogSettings, table_id: str):  # type: ignore[no-untyped-def]
    with Cache(settings.db_path) as cache:
        return cache.get(table_id)


def test_one_table_storage_query_per_region_and_each_dataset_queried_in_its_location(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("finance", Table("ledger", rows=5, size=50))
    fake.add("us_sales", Table("orders", rows=7, size=70), location="US")
    registry = load_registry(write_registry(tmp_path, """
        bigquery: {project: data-proj, billing_project: bill-proj, location: EU}
        tables:
          ledger: {dataset: finance, table: ledger}
          us_orders: {dataset: us_sales, table: orders}
        locations: {us_sales: US}
    """), {})
    summary = refresh(None, settings=settings, registry=registry, source=source, env={})
    assert (summary.succeeded, summary.failed) == (2, 0)
    storage = sorted((seen.dataset, seen.location) for seen in fake.seen if seen.kind == "TABLE_STORAGE")
    assert storage == [("region-eu", "EU"), ("region-us", "US")]
    assert {(seen.dataset, seen.location) for seen in fake.seen if seen.kind == "TABLES"} == {("finance", "EU"), ("us_sales", "US")}
    assert (cached(settings, "us_orders").rows, cached(settings, "ledger").size_bytes) == (7, 50)
    assert "__TABLES__" not in fake.kinds()


def test_a_location_learned_by_one_refresh_makes_the_next_one_regional(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders", rows=3, size=30), location="europe-west3")
    registry = load_registry(write_registry(tmp_path, """
        bigquery: {project: data-proj, billing_project: bill-proj}
        tables: {orders: {dataset: shop, table: orders}}
    """), {})
    refresh(None, settings=settings, registry=registry, source=source, env={})
    assert "__TABLES__" in fake.kinds() and "TABLE_STORAGE" not in fake.kinds()
    with Cache(settings.db_path) as cache:
        assert cache.dataset_location("data-proj", "shop") == "europe-west3"
    fake.seen.clear()
    refresh(None, settings=settings, registry=registry, source=source, env={})
    assert fake.kinds() == ["TABLE_STORAGE", "TABLES", "COLUMNS"]
    assert fake.seen[0].dataset == "region-europe-west3"


def test_tables_missing_from_table_storage_fall_back_and_are_never_silently_null(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders", rows=3, size=30), Table("fresh", rows=2, size=20),
             Table("orders_mv", "MATERIALIZED VIEW", rows=4, size=40))
    fake.storage_lag = {"fresh", "orders_mv"}  # created minutes ago: the region's view has not caught up
    registry = load_registry(write_registry(tmp_path, """
        bigquery: {project: data-proj, billing_project: bill-proj, location: EU}
        datasets: [shop]
    """), {})
    refresh(None, settings=settings, registry=registry, source=source, env={})
    assert (cached(settings, "shop.orders").rows, cached(settings, "shop.fresh").rows) == (3, 2)
    mv = cached(settings, "shop.orders_mv")
    assert (mv.entity_type, mv.rows, mv.size_bytes) == (EntityType.MATERIALIZED_VIEW, 4, 40)
    dunder = [seen.params["tables"] for seen in fake.seen if seen.kind == "__TABLES__"]
    assert dunder == [["fresh"]]  # only the missing base table; the materialized view via tables.get
    assert [seen.params["table"] for seen in fake.seen if seen.kind == "tables.get"] == [["orders_mv"]]


def test_a_wildcard_family_is_refreshed_as_one_entry(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("analytics",
             Table("events_20260101", rows=10, size=100, columns=[Column("event_name")]),
             Table("events_20260102", rows=20, size=200, columns=[Column("event_name")]),
             Table("events_20260103", rows=30, size=300, columns=[Column("event_name"), Column("user_id")]),
             Table("sessions", rows=1, size=1))
    registry = load_registry(write_registry(tmp_path, """
        bigquery: {project: data-proj, billing_project: bill-proj}
        tables:
          events: {dataset: analytics, table: events_*}
          missing: {dataset: analytics, table: clicks_*}
    """), {})
    summary = refresh(None, settings=settings, registry=registry, source=source, env={})
    assert (summary.succeeded, summary.no_data, summary.failed) == (1, 1, 0)
    row = cached(settings, "events")
    assert (row.shard_count, row.newest_shard, row.rows, row.size_bytes) == (3, "events_20260103", 60, 600)
    assert row.known_columns == ["event_name", "user_id"] and row.entity_type is EntityType.BASE_TABLE
    columns = [seen.params["tables"] for seen in fake.seen if seen.kind == "COLUMNS"]
    assert columns == [["events_20260103"]]  # the newest shard's columns only, not every shard's


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_an_unreachable_bigquery_fails_each_dataset_once_counts_every_attempt_and_never_shows_the_url(
    tmp_path: Path, settings: CatalogSettings, caplog: pytest.LogCaptureFixture,
) -> None:
    host = f"127.0.0.1:{_closed_port()}"
    unreachable = connect(BILLING, None, emulator_endpoint=f"http://{host}", policy=replace(FAST, deadline=1.0))
    registry = load_registry(write_registry(tmp_path, """
        bigquery: {project: data-proj, billing_project: bill-proj}
        tables:
          a: {dataset: one, table: a}
          b: {dataset: two, table: b}
    """), {})
    caplog.set_level(logging.DEBUG, logger="catalog")
    started = time.monotonic()
    summary = refresh(None, settings=settings, registry=registry, source=unreachable, env={})
    assert time.monotonic() - started < 10
    assert (summary.failed, summary.succeeded) == (2, 0)
    assert summary.bigquery_calls >= 4  # every attempt (2 datasets, retried), though none was answered
    for message in summary.failures.values():
        assert message.startswith("BigQuery unreachable: ConnectionError") and host not in message and "http" not in message
    assert host not in cached(settings, "a").error_msg
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 2 and all("dataset" in record.getMessage() for record in warnings)  # one per dataset
    assert all(host not in record.getMessage() for record in caplog.records)
    unreachable.close()


@pytest.mark.integration
def test_the_refresh_ends_within_its_total_deadline(
    tmp_path: Path, fake: FakeBigQuery, settings: CatalogSettings,
) -> None:
    patient = connect(BILLING, None, emulator_endpoint=ENDPOINT, policy=replace(FAST, query_timeout=60.0))
    fake.add("slow", Table("a"))
    fake.stall("TABLES", dataset="slow")
    registry = load_registry(write_registry(tmp_path, """
        bigquery: {project: data-proj, billing_project: bill-proj}
        tables: {a: {dataset: slow, table: a}}
    """), {})
    started = time.monotonic()
    summary = refresh(None, settings=replace(settings, refresh_timeout_seconds=1), registry=registry, source=patient, env={})
    assert time.monotonic() - started < 8  # the run's 1 s deadline, not the 60 s query wait
    assert summary.failed == 1 and "did not finish within" in summary.failures["a"]
    patient.close()
