"""The guard's failure cases from issue 12: hostile input, accuracy, locations, EXTERNAL_QUERY, families, deadlines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource, connect
from catalog.cache import Cache
from catalog.errors import EstimateFailed, InvalidSql, MixedLocations, QueryGuardError
from catalog.guard import check_query
from catalog.models import EntityType, TableMetadata
from catalog.registry import Registry, load_registry
from catalog.settings import CatalogSettings
from catalog.tracked import TrackedTables
from tests.catalog.conftest import FAST
from tests.catalog.support import BILLING, ENDPOINT, FakeBigQuery, write_registry

GIB = 1024**3
CAP = 5 * GIB
REGISTRY = """
    bigquery: {project: data-proj, billing_project: bill-proj}
    tables:
      unit_economics: {dataset: finance, table: unit_economics}
      orders: {dataset: sales, table: orders_v}
      events: {dataset: analytics, table: events_*}
      us_orders: {dataset: us_sales, table: orders}
    locations: {finance: EU, us_sales: US}
"""


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return load_registry(write_registry(tmp_path, REGISTRY), {})


@pytest.fixture
def cache(settings: CatalogSettings) -> Iterator[Cache]:
    with Cache(settings.db_path) as opened:
        yield opened


def refused(sql: str | bytes, settings: CatalogSettings, registry: Registry, source: BigQuerySource | None,
            cache: Cache) -> QueryGuardError:
    with pytest.raises(QueryGuardError) as caught:
        check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    return caught.value


@pytest.mark.parametrize("sql", [
    "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    "SELECT * FROM " + "(SELECT * FROM " * 300 + "unit_economics" + ")" * 300,
    "SELECT CASE " + "WHEN TRUE THEN CASE " * 150 + "1" + " END" * 151,
    "SELECT 1 AS x, '" + "x" * (1024 * 1024) + "' AS padding",
])
def test_hostile_sql_is_invalid_sql_quickly_and_never_a_recursion_error(
    fake: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str,
) -> None:
    started = time.monotonic()
    error = refused(sql, settings, registry, None, cache)
    assert isinstance(error, InvalidSql) and error.detail["reason"] == "invalid_sql"
    assert time.monotonic() - started < 5  # generous for a loaded machine; it is milliseconds to a second
    assert fake.http_requests == 0


def test_a_long_flat_expression_is_decided_without_a_recursion_error(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    sql = "SELECT " + " + ".join(["margin_eur"] * 3000) + " FROM unit_economics"
    try:
        result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    except InvalidSql as refusal:  # either is fine; a RecursionError (or any other exception) is not
        assert "nested too deeply" in str(refusal)
    else:
        assert result.tables == ["finance.unit_economics"]


@pytest.mark.parametrize("sql", [b"SELECT * FROM unit_economics WHERE name = '\xff\xfe'", "SELECT '\udcff'"])
def test_text_that_is_not_utf8_is_invalid_sql(
    fake: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str | bytes,
) -> None:
    error = refused(sql, settings, registry, None, cache)
    assert error.detail["reason"] == "invalid_sql" and "not UTF-8" in str(error)


def test_utf8_bytes_are_read_as_text(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    result = check_query("SELECT * FROM unit_economics WHERE city = 'Plzeň'".encode(), settings=settings, registry=registry,
                         source=source, cache=cache)
    assert result.tables == ["finance.unit_economics"] and "Plzeň" in result.sql


def test_parser_internals_never_reach_the_message(fake: FakeBigQuery, settings: CatalogSettings, registry: Registry,
                                                   cache: Cache) -> None:
    for sql in ("SELECT 1 *", "SELECT * FROM unit_economics WHERE (a", "SELECT 1 + * 2"):
        error = refused(sql, settings, registry, None, cache)
        assert error.detail["reason"] == "invalid_sql" and "<class" not in str(error) and "sqlglot." not in str(error)


def test_a_lower_bound_under_the_cap_is_allowed_only_capped_at_the_cap(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    fake.scan_bytes, fake.scan_accuracy = GIB, "LOWER_BOUND"
    result = check_query("SELECT margin_eur FROM unit_economics", settings=settings, registry=registry, source=source, cache=cache)
    assert result.requires_maximum_bytes_billed and result.scan_bytes_accuracy == "LOWER_BOUND"
    assert result.maximum_bytes_billed() == CAP and result.job_config().maximum_bytes_billed == CAP  # not 1.25 GiB
    document = result.to_json()
    assert document["requires_maximum_bytes_billed"] is True and "lower bound" in document["note"]

    fake.scan_accuracy = "PRECISE"
    precise = check_query("SELECT margin_eur FROM unit_economics", settings=settings, registry=registry, source=source,
                          cache=cache)
    assert not precise.requires_maximum_bytes_billed and precise.maximum_bytes_billed() == int(1.25 * GIB)
    assert precise.note is None

    fake.scan_bytes, fake.scan_accuracy = 6 * GIB, "LOWER_BOUND"  # already over the cap: refused as usual
    assert refused("SELECT margin_eur FROM unit_economics", settings, registry, source, cache).reason == "remote_scan_too_large"


def test_the_dry_run_runs_in_the_datasets_location_and_mixed_locations_are_refused(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    result = check_query("SELECT * FROM us_orders", settings=settings, registry=registry, source=source, cache=cache)
    assert result.location == "US" and fake.seen[-1].location == "US"

    error = refused("SELECT * FROM unit_economics JOIN us_orders USING (id)", settings, registry, source, cache)
    assert isinstance(error, MixedLocations)
    assert error.detail["locations"] == {"data-proj.finance": "EU", "data-proj.us_sales": "US"}
    assert "more than one location" in str(error) and fake.kinds() == ["dry_run"]  # no dry run for the mixed one


def test_a_discovered_location_is_asked_once_and_kept(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    fake.locations[("data-proj", "sales")] = "europe-west3"
    error = refused("SELECT * FROM unit_economics JOIN orders USING (id)", settings, registry, source, cache)
    assert error.detail["locations"] == {"data-proj.finance": "EU", "data-proj.sales": "europe-west3"}
    assert fake.kinds() == ["datasets.get"] and cache.dataset_location("data-proj", "sales") == "europe-west3"
    refused("SELECT * FROM unit_economics JOIN orders USING (id)", settings, registry, source, cache)
    assert fake.kinds() == ["datasets.get"]  # the second time from the cache


def test_external_query_only_when_the_operator_allows_it(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, tmp_path: Path, cache: Cache,
) -> None:
    sql = "SELECT * FROM EXTERNAL_QUERY('data-proj.eu.crm', 'SELECT * FROM customers')"
    closed = load_registry(write_registry(tmp_path, REGISTRY), {})
    assert refused(sql, settings, closed, source, cache).reason == "external_query_not_allowed"
    assert fake.http_requests == 0
    opened = load_registry(write_registry(tmp_path, REGISTRY + "    allow_external_query: true\n"), {})
    result = check_query(sql, settings=settings, registry=opened, source=source, cache=cache)
    assert result.scan_bytes == fake.scan_bytes and fake.kinds() == ["dry_run"]  # estimated, never free


def test_a_family_too_large_is_told_to_filter_on_table_suffix(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    family = TrackedTables(registry).require("events")
    cache.record_success(family, TableMetadata(EntityType.BASE_TABLE, 30, 3000, None, None, None, [], ["event_name"],
                                               shard_count=3, newest_shard="events_20260103"), datetime(2026, 1, 3, tzinfo=UTC))
    fake.scan_bytes = 10 * GIB
    error = refused("SELECT * FROM `data-proj.analytics.events_*`", settings, registry, source, cache)
    suggestion = str(error.detail["suggestion"])
    assert "_TABLE_SUFFIX >= FORMAT_DATE('%Y%m%d', DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY))" in suggestion
    assert "events_20260103" in suggestion and error.detail["tables"] == ["analytics.events_*"]
    assert fake.kinds() == ["dry_run"]  # no tables.get of a wildcard


@pytest.mark.integration
def test_bigquery_failing_transiently_ends_in_remote_estimate_failed_within_the_guard_timeout(
    fake: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    patient = connect(BILLING, None, emulator_endpoint=ENDPOINT, policy=replace(FAST, deadline=60.0, maximum=0.2))
    fake.fail("dry_run", status=503, reason="backendError", times=10_000)
    started = time.monotonic()
    with pytest.raises(EstimateFailed) as caught:
        check_query("SELECT * FROM unit_economics", settings=replace(settings, guard_timeout_seconds=1), registry=registry,
                    source=patient, cache=cache)
    assert time.monotonic() - started < 5  # the guard's 1 s, not the policy's 60 s
    assert "CATALOG_GUARD_TIMEOUT_SECONDS" in str(caught.value.detail["suggestion"])
    assert "http" not in str(caught.value.detail)
    patient.close()
