"""The cost guard through the real google-cloud-bigquery client, with ``responses`` serving dry runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource
from catalog.cache import Cache
from catalog.errors import EstimateFailed, InvalidSql, PathNotRegistered, QueryGuardError, ScanTooLarge
from catalog.guard import MIN_BILLED_PER_TABLE, GuardResult, check_query
from catalog.models import EntityType, TableMetadata
from catalog.registry import Registry, load_registry
from catalog.rows import freshness
from catalog.settings import CatalogSettings
from catalog.tracked import TrackedTables
from tests.catalog.support import Column, FakeBigQuery, Table, write_registry

GIB = 1024**3
CAP = 5 * GIB
REGISTRY = """
    bigquery:
      project: data-proj
      billing_project: bill-proj
    tables:
      unit_economics: {dataset: finance, table: unit_economics}
      orders: {dataset: sales, table: orders_v}
      totals: {dataset: sales, table: totals_mv}
    datasets: [warehouse]
    where_examples:
      - "order_date > DATE '2026-01-01'"
"""
ECONOMICS = Table("unit_economics", columns=[
    Column("event_date", "DATE", partitioning=True), Column("country_code", clustering=1), Column("margin_eur", "NUMERIC"),
])
ORDERS = Table("orders_v", "VIEW", rows=None, size=None, columns=[Column("order_date", "DATE"), Column("status")])
TOTALS = Table("totals_mv", "MATERIALIZED VIEW", rows=None, size=None, columns=[Column("day", "DATE")])


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return load_registry(write_registry(tmp_path, REGISTRY), {})


@pytest.fixture
def shop(fake: FakeBigQuery) -> FakeBigQuery:
    fake.add("finance", ECONOMICS)
    fake.add("sales", ORDERS, TOTALS)
    return fake


@pytest.fixture
def cache(settings: CatalogSettings) -> Iterator[Cache]:
    with Cache(settings.db_path) as opened:
        yield opened


def warm(cache: Cache, registry: Registry) -> None:
    """The cache as a refresh leaves it: types, partitioning, clustering, columns."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    tracked = TrackedTables(registry)
    economics, orders = tracked.require("unit_economics"), tracked.require("orders")
    cache.record_success(economics, TableMetadata(EntityType.BASE_TABLE, 10, 10 * GIB, "event_date", "DATE", None, ["country_code"],
                                                  ["event_date", "country_code", "margin_eur"]), at)
    cache.record_success(orders, TableMetadata(EntityType.VIEW, None, None, None, None, None, [], ["order_date", "status"]), at)


def guard(sql: str, settings: CatalogSettings, registry: Registry, source: BigQuerySource | None, cache: Cache) -> GuardResult:
    return check_query(sql, settings=settings, registry=registry, source=source, cache=cache)


def refused(sql: str, settings: CatalogSettings, registry: Registry, source: BigQuerySource | None, cache: Cache) -> QueryGuardError:
    with pytest.raises(QueryGuardError) as caught:
        guard(sql, settings, registry, source, cache)
    return caught.value


def test_a_10_gib_scan_of_a_base_table_is_refused_naming_its_partition_column(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    warm(cache, registry)
    shop.scan_bytes = 10 * GIB
    error = refused("SELECT * FROM unit_economics", settings, registry, source, cache)

    assert isinstance(error, ScanTooLarge)
    detail = error.detail
    assert {key: detail[key] for key in ("allowed", "reason", "scan_bytes", "limit_bytes", "tables", "view_targets")} == {
        "allowed": False, "reason": "remote_scan_too_large", "scan_bytes": 10 * GIB, "limit_bytes": CAP,
        "tables": ["finance.unit_economics"], "view_targets": []}
    suggestion = str(detail["suggestion"])
    assert "filter on event_date, the partitioning column of finance.unit_economics" in suggestion
    assert "WHERE event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)" in suggestion
    assert "instead of SELECT *" in suggestion and "country_code" in suggestion
    assert "VIEW" not in suggestion
    assert "10.0 GiB" in str(error) and "5.0 GiB" in str(error)
    assert shop.kinds() == ["dry_run"]  # a warm cache needs no lookup


def test_select_star_from_a_view_limit_1_is_refused_with_view_targets(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    warm(cache, registry)
    shop.scan_bytes = 40 * GIB
    error = refused("SELECT * FROM orders LIMIT 1", settings, registry, source, cache)

    assert error.detail["reason"] == "remote_scan_too_large" and error.detail["view_targets"] == ["orders"]
    assert error.detail["tables"] == ["sales.orders_v"]
    assert str(error.detail["suggestion"]).startswith(
        "Target(s) orders are VIEW or MATERIALIZED VIEW. BigQuery does not push LIMIT into the view body "
        "— SELECT * FROM orders LIMIT 1 still runs the full underlying scan. To scan less: "
    )
    assert "one of its where_examples: order_date > DATE '2026-01-01'" in str(error.detail["suggestion"])
    # The id is not the table's name, so the rewrite keeps it as the alias.
    assert shop.seen[0].sql == "SELECT * FROM `data-proj.sales.orders_v` AS orders LIMIT 1"


@pytest.mark.parametrize(("table_id", "entity_type"), [("orders", EntityType.VIEW), ("totals", EntityType.MATERIALIZED_VIEW)])
def test_a_view_on_a_cold_cache_is_looked_up_once_and_cached(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
    table_id: str, entity_type: EntityType,
) -> None:
    shop.scan_bytes = 40 * GIB
    assert cache.get(table_id) is None

    first = refused(f"SELECT * FROM {table_id} LIMIT 1", settings, registry, source, cache)
    assert first.detail["view_targets"] == [table_id]
    assert shop.kinds() == ["dry_run", "tables.get"]
    row = cache.get(table_id)
    assert row is not None and row.entity_type is entity_type
    assert freshness(row, datetime(2026, 1, 1, tzinfo=UTC), 3600) == "never_fetched"  # a lookup is not a refresh

    second = refused(f"SELECT * FROM {table_id} LIMIT 1", settings, registry, source, cache)
    assert second.detail["view_targets"] == [table_id]
    assert shop.kinds() == ["dry_run", "tables.get", "dry_run"]  # answered from the cache the second time


def test_a_cold_base_table_gets_its_partitioning_from_the_lookup(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.scan_bytes = 10 * GIB
    error = refused("SELECT margin_eur FROM unit_economics", settings, registry, source, cache)
    assert error.detail["view_targets"] == []
    assert "filter on event_date, the partitioning column of finance.unit_economics" in str(error.detail["suggestion"])
    assert "select fewer columns" in str(error.detail["suggestion"])
    row = cache.get("unit_economics")
    assert row is not None
    assert (row.entity_type, row.partition_by, row.clustered_by) == (EntityType.BASE_TABLE, "event_date", ["country_code"])


def test_a_failed_lookup_is_said_not_hidden(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.scan_bytes = 10 * GIB
    shop.fail("tables.get", status=403, reason="accessDenied")
    error = refused("SELECT * FROM orders", settings, registry, source, cache)
    assert error.detail["reason"] == "remote_scan_too_large" and error.detail["view_targets"] == []
    assert "Could not tell whether orders are views" in str(error.detail["suggestion"])
    assert "accessDenied" in str(error.detail["suggestion"])
    assert cache.get("orders") is None


def test_a_join_of_two_tracked_tables_is_one_dry_run_with_both_paths_and_the_where(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    sql = ("SELECT u.margin_eur, o.status\nFROM unit_economics AS u\nJOIN `orders` o ON o.order_date = u.event_date\n"
           "WHERE u.event_date >= '2026-01-01' AND o.status = 'paid'  -- recent paid orders")
    result = guard(sql, settings, registry, source, cache)

    # Two datasets: their locations are asked once (and kept), so the dry run runs where both live.
    assert shop.kinds() == ["datasets.get", "datasets.get", "dry_run"] and shop.seen[-1].location == "EU"
    sent = shop.seen[-1].sql
    assert sent == ("SELECT u.margin_eur, o.status\nFROM `data-proj.finance.unit_economics` AS u\n"
                    "JOIN `data-proj.sales.orders_v` o ON o.order_date = u.event_date\n"
                    "WHERE u.event_date >= '2026-01-01' AND o.status = 'paid'  -- recent paid orders")
    assert (result.allowed, result.scan_bytes, result.limit_bytes) == (True, 123456789, CAP)
    assert result.tables == ["finance.unit_economics", "sales.orders_v"] and result.sql == sent

    # Tables are listed as written, also when a CTE reads one of them.
    later = guard("WITH recent AS (SELECT * FROM orders)\nSELECT * FROM recent JOIN unit_economics USING (id)",
                  settings, registry, source, cache)
    assert later.tables == ["sales.orders_v", "finance.unit_economics"]


@pytest.mark.parametrize("sql", [
    "SELECT 1",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "WITH unit_economics AS (SELECT 1 AS a) SELECT a FROM unit_economics",  # a CTE shadows the registry id
    "SELECT n FROM UNNEST([1, 2, 3]) AS n",
])
def test_queries_without_a_tracked_table_make_no_bigquery_call(
    fake: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str,
) -> None:
    # No source given: the guard would have to connect, and the mocked endpoint would see it.
    result = guard(sql, settings, registry, None, cache)
    assert (result.allowed, result.scan_bytes, result.tables, result.sql) == (True, None, [], sql)
    assert fake.http_requests == 0


def test_rewrite_rejected_then_the_original_accepted(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.fail("dry_run", status=400, reason="invalidQuery", message="Syntax error: Unexpected keyword AS at [1:46]")
    sql = "SELECT status FROM orders WHERE status = 'paid'"
    result = guard(sql, settings, registry, source, cache)

    assert [seen.sql for seen in shop.seen] == ["SELECT status FROM `data-proj.sales.orders_v` AS orders WHERE status = 'paid'", sql]
    assert (result.allowed, result.scan_bytes, result.sql) == (True, 123456789, sql)


def test_both_rejected_is_remote_estimate_failed_with_both_errors(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.fail("dry_run", status=400, reason="invalidQuery", message="Unrecognized name: statuz at [1:8]")
    shop.fail("dry_run", status=400, reason="invalidQuery", message="Table name \"orders\" missing dataset")
    error = refused("SELECT statuz FROM orders", settings, registry, source, cache)

    assert isinstance(error, EstimateFailed) and shop.kinds() == ["dry_run", "dry_run"]
    assert error.detail["reason"] == "remote_estimate_failed" and error.detail["tables"] == ["sales.orders_v"]
    assert error.detail["underlying"] == "BigQuery 400 invalidQuery: Unrecognized name: statuz at [1:8]"
    assert error.detail["underlying_original"] == "BigQuery 400 invalidQuery: Table name \"orders\" missing dataset"


def test_a_dry_run_answer_without_total_bytes_processed_is_an_estimate_failure_not_free(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.scan_bytes = None
    error = refused("SELECT margin_eur FROM unit_economics", settings, registry, source, cache)

    assert isinstance(error, EstimateFailed) and shop.kinds() == ["dry_run"]
    assert error.detail["reason"] == "remote_estimate_failed" and error.detail["tables"] == ["finance.unit_economics"]
    assert "totalBytesProcessed" in str(error.detail["underlying"])


def test_no_second_dry_run_when_there_was_nothing_rewritten_or_the_error_is_not_invalid(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.fail("dry_run", status=400, reason="invalidQuery", message="Unrecognized name: x")
    error = refused("SELECT x FROM `data-proj.finance.unit_economics`", settings, registry, source, cache)
    assert error.detail["reason"] == "remote_estimate_failed" and "underlying_original" not in error.detail
    assert shop.kinds() == ["dry_run"]

    shop.fail("dry_run", status=403, reason="accessDenied", message="Access Denied: Table data-proj:sales.orders_v")
    error = refused("SELECT * FROM orders", settings, registry, source, cache)
    assert "accessDenied" in str(error.detail["underlying"]) and shop.kinds() == ["dry_run", "dry_run"]


def test_cap_0_allows_everything_without_a_dry_run(
    shop: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.scan_bytes = 1024 * 1024 * GIB
    off = dataclasses.replace(settings, max_scan_bytes=0)
    result = guard("SELECT * FROM orders LIMIT 1", off, registry, None, cache)
    assert (result.allowed, result.scan_bytes, result.limit_bytes, result.tables) == (True, None, 0, ["sales.orders_v"])
    assert result.sql == "SELECT * FROM `data-proj.sales.orders_v` AS orders LIMIT 1"
    assert guard("SELECT * FROM finance.secret", off, registry, None, cache).untracked_tables == ["finance.secret"]
    assert shop.http_requests == 0


@pytest.mark.parametrize(("sql", "path"), [
    ("SELECT * FROM `data-proj.finance.secret`", "data-proj.finance.secret"),
    ("SELECT * FROM data-proj.finance.secret", "data-proj.finance.secret"),
    ("SELECT * FROM finance.secret", "finance.secret"),
    ("SELECT * FROM secret_table", "secret_table"),  # a bare name that is no registry id
])
def test_an_untracked_path_is_refused_naming_it(
    shop: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str, path: str,
) -> None:
    error = refused(sql, settings, registry, None, cache)
    assert isinstance(error, PathNotRegistered)
    assert error.detail["reason"] == "bq_path_not_registered" and error.detail["paths"] == [path]
    assert path in str(error) and "catalog.yaml" in str(error.detail["suggestion"])
    assert shop.http_requests == 0


def test_paths_match_exactly_and_the_refusal_points_at_the_right_spelling(
    shop: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    error = refused("SELECT * FROM Finance.Unit_Economics", settings, registry, None, cache)
    assert error.detail["paths"] == ["Finance.Unit_Economics"]
    assert "did you mean finance.unit_economics (BigQuery paths are case-sensitive)" in str(error.detail["suggestion"])
    by_name = refused("SELECT * FROM orders_v", settings, registry, None, cache)  # the table's name, not its id
    assert "did you mean orders (the registry id of sales.orders_v)" in str(by_name.detail["suggestion"])
    typo = refused("SELECT * FROM unit_economic", settings, registry, None, cache)
    assert "did you mean unit_economics?" in str(typo.detail["suggestion"])


def test_every_spelling_of_a_tracked_path_is_found(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    spellings = [
        "`data-proj.finance.unit_economics`", "`data-proj`.`finance`.`unit_economics`", "data-proj.finance.unit_economics",
    ]
    for spelling in spellings:
        sql = f"SELECT margin_eur FROM {spelling} AS u, u.items WHERE u.event_date = '2026-01-01'"  # u.items: an implicit UNNEST
        result = guard(sql, settings, registry, source, cache)
        assert (result.tables, result.sql) == (["finance.unit_economics"], sql)  # already full: sent as written
    result = guard("SELECT * FROM finance.unit_economics JOIN warehouse.stock USING (id)", settings, registry, source, cache)
    assert result.tables == ["finance.unit_economics", "warehouse.stock"]  # warehouse is tracked whole
    assert shop.seen[-1].sql == "SELECT * FROM `data-proj.finance.unit_economics` JOIN `data-proj.warehouse.stock` USING (id)"


def test_mixed_case_registry_ids(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    result = guard("SELECT * FROM UNIT_Economics JOIN Orders ON Orders.order_date = UNIT_Economics.event_date",
                   settings, registry, source, cache)
    assert result.tables == ["finance.unit_economics", "sales.orders_v"]
    assert shop.seen[-1].sql == ("SELECT * FROM `data-proj.finance.unit_economics` JOIN `data-proj.sales.orders_v` AS Orders "
                                "ON Orders.order_date = UNIT_Economics.event_date")


def test_a_foreign_project_table_is_dry_run_and_listed_as_untracked(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    fake.scan_bytes = 10 * GIB
    error = refused("SELECT word FROM `bigquery-public-data.samples.shakespeare`", settings, registry, source, cache)
    assert error.detail["reason"] == "remote_scan_too_large" and fake.kinds() == ["dry_run"]
    fake.scan_bytes = GIB
    result = guard("SELECT word FROM `bigquery-public-data.samples.shakespeare`", settings, registry, source, cache)
    assert (result.scan_bytes, result.tables, result.untracked_tables) == (GIB, [], ["bigquery-public-data.samples.shakespeare"])


def test_a_project_the_operator_allows_unestimated_is_not_dry_run(
    fake: FakeBigQuery, settings: CatalogSettings, tmp_path: Path, cache: Cache,
) -> None:
    registry = load_registry(write_registry(tmp_path, REGISTRY + "    allow_unestimated_projects: [bigquery-public-data]\n"), {})
    result = guard("SELECT word FROM `bigquery-public-data.samples.shakespeare`", settings, registry, None, cache)
    assert (result.scan_bytes, result.tables, result.untracked_tables) == (None, [], ["bigquery-public-data.samples.shakespeare"])
    assert result.maximum_bytes_billed() == CAP  # not estimated: run it under the cap at most
    assert fake.http_requests == 0


def test_invalid_sql_is_refused_with_the_parsers_line_and_column(
    fake: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    error = refused("SELECT *\nFROM unit_economics\nWHERE (", settings, registry, None, cache)
    assert isinstance(error, InvalidSql) and error.detail["reason"] == "invalid_sql"
    assert (error.detail["line"], error.detail["column"]) == (3, 7)
    assert "line 3, column 7" in str(error)
    unterminated = refused("SELECT 1,\n 'abc", settings, registry, None, cache)
    assert (unterminated.detail["line"], unterminated.detail["column"]) == (2, 11)
    assert refused("  ;  ", settings, registry, None, cache).detail["reason"] == "invalid_sql"
    assert fake.http_requests == 0


def test_the_estimate_is_the_billing_cap_with_headroom_and_bigquerys_minimum(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    shop.scan_bytes, shop.scan_accuracy = 2 * GIB, "UPPER_BOUND"
    result = guard("SELECT * FROM unit_economics", settings, registry, source, cache)
    assert result.scan_bytes_accuracy == "UPPER_BOUND"
    assert result.maximum_bytes_billed() == int(2.5 * GIB)
    assert result.job_config().maximum_bytes_billed == int(2.5 * GIB)
    assert result.job_config(headroom=10).maximum_bytes_billed == CAP  # never above the cap
    json = result.to_json()
    assert list(json)[:4] == ["allowed", "scan_bytes", "limit_bytes", "tables"] and json["maximum_bytes_billed"] == int(2.5 * GIB)

    shop.scan_bytes = 0
    tiny = guard("SELECT * FROM unit_economics JOIN orders USING (id)", settings, registry, source, cache)
    assert tiny.maximum_bytes_billed() == 2 * MIN_BILLED_PER_TABLE  # 10 MB for each table referenced


def test_query_parameters_are_declared_in_the_dry_run(
    shop: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    from google.cloud.bigquery import ScalarQueryParameter

    warm(cache, registry)
    shop.scan_bytes = GIB
    sql = "SELECT margin_eur FROM unit_economics WHERE country_code = @country"
    # Undeclared, BigQuery rejects the dry run: the guard cannot estimate and refuses.
    error = refused(sql, settings, registry, source, cache)
    assert isinstance(error, EstimateFailed)
    assert "Query parameter 'country' not found" in str(error.detail["underlying"])

    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache,
                         parameters=[ScalarQueryParameter("country", "STRING", "CZ")])
    assert result.allowed and result.scan_bytes == GIB
    assert shop.seen[-1].kind == "dry_run" and set(shop.seen[-1].params) == {"country"}
