"""Which names in a query are tables: array paths through JOIN, CTEs by scope, wildcard tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource
from catalog.cache import Cache
from catalog.errors import InvalidSql, PathNotRegistered, QueryGuardError
from catalog.guard import check_query
from catalog.guard.targets import parse
from catalog.registry import Registry, load_registry
from catalog.settings import CatalogSettings
from tests.catalog.support import FakeBigQuery, write_registry

REGISTRY = """
    bigquery: {project: data-proj, billing_project: bill-proj}
    tables:
      unit_economics: {dataset: finance, table: unit_economics}
      orders: {dataset: sales, table: orders_v}
    datasets: [analytics]
"""
ECONOMICS = "`data-proj.finance.unit_economics`"
ORDERS = "`data-proj.sales.orders_v` AS orders"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return load_registry(write_registry(tmp_path, REGISTRY), {})


@pytest.fixture
def cache(settings: CatalogSettings) -> Iterator[Cache]:
    with Cache(settings.db_path) as opened:
        yield opened


@pytest.mark.parametrize(("sql", "sent"), [
    ("SELECT * FROM unit_economics AS u JOIN u.items AS i ON TRUE", f"SELECT * FROM {ECONOMICS} AS u JOIN u.items AS i ON TRUE"),
    ("SELECT * FROM unit_economics u LEFT JOIN u.items", f"SELECT * FROM {ECONOMICS} u LEFT JOIN u.items"),
    ("SELECT * FROM unit_economics AS U JOIN u.items ON TRUE", f"SELECT * FROM {ECONOMICS} AS U JOIN u.items ON TRUE"),
    ("SELECT (SELECT COUNT(*) FROM u.items) AS n FROM unit_economics AS u",
     f"SELECT (SELECT COUNT(*) FROM u.items) AS n FROM {ECONOMICS} AS u"),
])
def test_an_array_path_through_an_alias_is_not_a_table(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str, sent: str,
) -> None:
    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert result.tables == ["finance.unit_economics"] and result.sql == sent
    assert fake.kinds() == ["dry_run"]


@pytest.mark.parametrize(("sql", "sent"), [
    # The CTE lives inside the derived table; the outer orders is the registry id.
    ("SELECT * FROM (WITH orders AS (SELECT 1 AS a) SELECT * FROM orders) JOIN orders USING (a)",
     f"SELECT * FROM (WITH orders AS (SELECT 1 AS a) SELECT * FROM orders) JOIN {ORDERS} USING (a)"),
    ("SELECT (SELECT COUNT(*) FROM orders) AS n FROM (WITH orders AS (SELECT 1) SELECT * FROM orders)",
     f"SELECT (SELECT COUNT(*) FROM {ORDERS}) AS n FROM (WITH orders AS (SELECT 1) SELECT * FROM orders)"),
    ("WITH Orders AS (SELECT 1 AS a) SELECT * FROM orders JOIN unit_economics USING (a)",
     f"WITH Orders AS (SELECT 1 AS a) SELECT * FROM orders JOIN {ECONOMICS} USING (a)"),
    # A (non-recursive) CTE is not visible in its own body.
    ("WITH orders AS (SELECT * FROM orders) SELECT * FROM orders",
     f"WITH orders AS (SELECT * FROM {ORDERS}) SELECT * FROM orders"),
])
def test_cte_names_hide_a_registry_id_only_where_they_are_visible(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str, sent: str,
) -> None:
    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert result.sql == sent and result.tables == (["finance.unit_economics"] if "Orders" in sql else ["sales.orders_v"])


@pytest.mark.parametrize("path", ["`analytics.events_*`", "`data-proj.analytics.events_*`", "analytics.`events_2026*`"])
def test_a_wildcard_table_is_refused_as_not_registered_not_a_crash(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, path: str,
) -> None:
    sql = f"SELECT * FROM {path} WHERE _TABLE_SUFFIX > '2026'"
    with pytest.raises(PathNotRegistered) as caught:
        check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert caught.value.detail["paths"] == [path.replace("`", "")]
    assert "Wildcard tables" in str(caught.value.detail["suggestion"])
    assert fake.http_requests == 0

    off = check_query(sql, settings=replace(settings, max_scan_bytes=0), registry=registry, source=source, cache=cache)
    assert off.untracked_tables == [path.replace("`", "")] and off.scan_bytes is None


def test_a_typo_that_parses_as_an_expression_is_refused_not_allowed() -> None:
    with pytest.raises(InvalidSql) as caught:
        parse("SELEC * FRM unit_economics")
    assert caught.value.detail["reason"] == "invalid_sql"
    assert "is not a query, DML, DDL or script statement" in str(caught.value)


@pytest.mark.parametrize(("sql", "reason"), [
    ("EXECUTE IMMEDIATE 'SELECT * FROM unit_economics'", "dynamic_sql"),
    ("CALL p.q()", "script_not_estimable"),
])
def test_statements_whose_tables_are_unknowable_are_refused_for_what_they_are(
    fake: FakeBigQuery, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str, reason: str,
) -> None:
    with pytest.raises(QueryGuardError) as caught:
        check_query(sql, settings=settings, registry=registry, source=None, cache=cache)
    assert caught.value.detail["reason"] == reason and fake.http_requests == 0


@pytest.mark.parametrize(("sql", "path"), [
    ("SELECT * FROM finance.recent_economics(7)", "finance.recent_economics"),
    ("SELECT * FROM `data-proj.finance.recent_economics`(7)", "data-proj.finance.recent_economics"),
    ("SELECT * FROM `data-proj`.finance.recent_economics(7)", "data-proj.finance.recent_economics"),
])
def test_a_table_function_in_the_data_project_is_a_path_not_skipped(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str, path: str,
) -> None:
    with pytest.raises(PathNotRegistered) as caught:
        check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert caught.value.detail["paths"] == [path]
    assert fake.http_requests == 0


def test_a_table_function_in_a_tracked_dataset_is_dry_run_with_its_full_path(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    result = check_query("SELECT * FROM analytics.recent(7) AS r", settings=settings, registry=registry, source=source, cache=cache)
    assert result.tables == ["analytics.recent"] and result.sql == "SELECT * FROM `data-proj.analytics.recent`(7) AS r"
    assert fake.kinds() == ["dry_run"]


@pytest.mark.parametrize("sql", ["SELECT * FROM UNNEST([1, 2]) AS n", "SELECT * FROM ML.WEIGHTS(MODEL `data-proj.finance.m`)"])
def test_an_unqualified_table_valued_built_in_reads_no_table(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str,
) -> None:
    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert result.tables == [] and fake.http_requests == 0


@pytest.mark.parametrize("sql", [
    "SELECT * FROM finance.unit_economics, UNNEST([1]) AS finance",
    "SELECT * FROM finance.unit_economics CROSS JOIN UNNEST([1, 2]) AS finance",
    "WITH finance AS (SELECT 1 AS x) SELECT * FROM finance.unit_economics CROSS JOIN finance",
    "SELECT * FROM finance.unit_economics JOIN `bigquery-public-data.samples.shakespeare` AS finance ON TRUE",
    "SELECT * FROM finance.unit_economics, (SELECT 1 AS x) AS finance",
])
def test_an_alias_declared_later_does_not_turn_a_tracked_table_into_an_array_path(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str,
) -> None:
    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert result.tables == ["finance.unit_economics"]
    assert fake.kinds()[-1] == "dry_run" and fake.kinds().count("dry_run") == 1


def test_an_array_path_of_an_earlier_item_is_not_a_table_even_after_a_join(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    sql = "SELECT * FROM unit_economics AS u JOIN orders ON TRUE, UNNEST([1]) AS n, u.items"
    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert result.tables == ["finance.unit_economics", "sales.orders_v"]


@pytest.mark.parametrize(("sql", "sent"), [
    ("CREATE TEMP FUNCTION f(x INT64) AS (x * 2); SELECT f(margin_eur) FROM unit_economics",
     f"CREATE TEMP FUNCTION f(x INT64) AS (x * 2); SELECT f(margin_eur) FROM {ECONOMICS}"),
    ("DECLARE n INT64; CREATE TEMP TABLE tmp AS SELECT margin_eur FROM unit_economics; DROP TABLE tmp",
     f"DECLARE n INT64; CREATE TEMP TABLE tmp AS SELECT margin_eur FROM {ECONOMICS}; DROP TABLE tmp"),
    ("INSERT INTO scratch.x SELECT * FROM unit_economics", f"INSERT INTO scratch.x SELECT * FROM {ECONOMICS}"),
    ("CREATE TABLE scratch.x AS SELECT * FROM unit_economics", f"CREATE TABLE scratch.x AS SELECT * FROM {ECONOMICS}"),
    ("MERGE scratch.x T USING unit_economics S ON T.a = S.a WHEN MATCHED THEN DELETE",
     f"MERGE scratch.x T USING {ECONOMICS} S ON T.a = S.a WHEN MATCHED THEN DELETE"),
    ("UPDATE scratch.x SET a = 1 WHERE b IN (SELECT b FROM unit_economics)",
     f"UPDATE scratch.x SET a = 1 WHERE b IN (SELECT b FROM {ECONOMICS})"),
    ("CREATE TEMP FUNCTION g() AS ((SELECT COUNT(*) FROM unit_economics)); SELECT g()",
     f"CREATE TEMP FUNCTION g() AS ((SELECT COUNT(*) FROM {ECONOMICS})); SELECT g()"),
])
def test_a_script_dry_runs_its_reads_and_does_not_refuse_its_own_names_or_destinations(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str, sent: str,
) -> None:
    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert result.tables == ["finance.unit_economics"] and result.sql == sent
    assert fake.kinds() == ["dry_run"]  # one dataset read: no location to compare, none asked for


def test_a_tracked_dml_destination_is_still_dry_run(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache,
) -> None:
    result = check_query("DELETE FROM unit_economics WHERE TRUE", settings=settings, registry=registry, source=source, cache=cache)
    assert result.tables == ["finance.unit_economics"] and fake.kinds() == ["dry_run"]
    with pytest.raises(PathNotRegistered):  # a read of an untracked path in a script is still refused
        check_query("INSERT INTO scratch.x SELECT * FROM finance.other", settings=settings, registry=registry, source=source, cache=cache)


@pytest.mark.parametrize(("sql", "path"), [
    ("SELECT column_name FROM finance.INFORMATION_SCHEMA.COLUMNS", "finance.INFORMATION_SCHEMA.COLUMNS"),
    ("SELECT * FROM `region-eu`.INFORMATION_SCHEMA.JOBS", "region-eu.INFORMATION_SCHEMA.JOBS"),
    ("SELECT * FROM `data-proj.finance.INFORMATION_SCHEMA.COLUMNS`", "data-proj.finance.INFORMATION_SCHEMA.COLUMNS"),
])
def test_an_information_schema_view_is_dry_run_not_refused(
    fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry, cache: Cache, sql: str, path: str,
) -> None:
    result = check_query(sql, settings=settings, registry=registry, source=source, cache=cache)
    assert (result.tables, result.untracked_tables, result.scan_bytes) == ([], [path], fake.scan_bytes)
    assert [seen.sql for seen in fake.seen] == [sql] and fake.kinds() == ["dry_run"]
