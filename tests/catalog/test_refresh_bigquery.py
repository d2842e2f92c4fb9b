"""Refresh through the real google-cloud-bigquery client against the REST wire format."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource, connect
from catalog.cache import Cache
from catalog.errors import RefreshFailed
from catalog.models import EntityType
from catalog.refresh import RefreshSummary, refresh, refresh_all, refresh_one
from catalog.registry import Registry, load_registry
from catalog.settings import CatalogSettings
from tests.catalog.conftest import FAST
from tests.catalog.support import BILLING, ENDPOINT, PROJECT, Column, FakeBigQuery, Table, mocked, write_registry


def registry_for(tmp_path: Path, tables: dict[str, tuple[str, str]], *, location: str = "", datasets: str = "") -> Registry:
    lines = ["bigquery:", f"  project: {PROJECT}", "  billing_project: bill-proj"]
    if location:
        lines.append(f"  location: {location}")
    lines.append("tables:" if tables else "tables: {}")
    lines += [f"  {table_id}: {{dataset: {dataset}, table: {name}}}" for table_id, (dataset, name) in tables.items()]
    if datasets:
        lines.append(f"datasets: [{datasets}]")
    return load_registry(write_registry(tmp_path, "\n".join(lines) + "\n"), {})


def run(settings: CatalogSettings, registry: Registry, source: BigQuerySource, ids: list[str] | None = None) -> RefreshSummary:
    return refresh(ids, settings=settings, registry=registry, source=source, env={})


def cached(settings: CatalogSettings, table_id: str):  # type: ignore[no-untyped-def]
    with Cache(settings.db_path) as cache:
        return cache.get(table_id)


def test_entity_types_and_null_sizes_for_views(tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                               settings: CatalogSettings) -> None:
    fake.add("shop",
             Table("orders", "BASE TABLE", rows=1200, size=50_000),
             Table("orders_v", "VIEW", rows=None, size=None),
             Table("orders_mv", "MATERIALIZED VIEW", rows=40, size=900),
             Table("orders_ext", "EXTERNAL", rows=None, size=None),
             Table("orders_snap", "SNAPSHOT", rows=5, size=70))
    registry = registry_for(tmp_path, {name: ("shop", name) for name in ("orders", "orders_v", "orders_mv", "orders_ext", "orders_snap")})

    summary = run(settings, registry, source)

    assert (summary.total, summary.succeeded, summary.failed, summary.no_data) == (5, 5, 0, 0)
    rows = {table_id: cached(settings, table_id) for table_id in registry_ids(registry)}
    assert rows["orders"].entity_type is EntityType.BASE_TABLE
    assert (rows["orders"].rows, rows["orders"].size_bytes) == (1200, 50_000)
    assert rows["orders_snap"].entity_type is EntityType.SNAPSHOT and rows["orders_snap"].rows == 5
    for view in ("orders_v", "orders_ext"):
        assert (rows[view].rows, rows[view].size_bytes) == (None, None), view  # never __TABLES__'s misleading 0
    # A materialized view stores its result: its size comes from tables.get (__TABLES__ would say 0).
    assert (rows["orders_mv"].rows, rows["orders_mv"].size_bytes) == (40, 900)
    assert ("tables.get", ["orders_mv"]) in [(seen.kind, seen.params.get("table")) for seen in fake.seen]
    assert rows["orders_mv"].entity_type is EntityType.MATERIALIZED_VIEW
    assert rows["orders_ext"].entity_type is EntityType.EXTERNAL
    # Sizes are asked only for tables that have storage.
    sized = [seen.params["tables"] for seen in fake.seen if seen.kind == "__TABLES__"]
    assert sized == [["orders", "orders_snap"]]


def registry_ids(registry: Registry) -> list[str]:
    return [table.id for table in registry.tables]


def test_columns_in_ordinal_order_with_struct_paths_partition_and_clustering(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("events", Table("clicks", columns=[
        Column("zeta", "STRING", clustering=2),
        Column("event_date", "DATE", partitioning=True),
        Column("payload", "STRUCT<user STRUCT<id INT64, Name STRING>, tags ARRAY<STRING>>"),
        Column("items", "ARRAY<STRUCT<sku STRING>>"),
        Column("alpha", "INT64", clustering=1),
    ]))
    registry = registry_for(tmp_path, {"clicks": ("events", "clicks")})

    run(settings, registry, source)

    row = cached(settings, "clicks")
    assert row.known_columns == [
        "zeta", "event_date", "payload", "payload.user", "payload.user.id", "payload.user.Name", "payload.tags",
        "items", "alpha",
    ]  # ordinal order, not alphabetical; no path into an ARRAY
    assert row.partition_by == "event_date" and row.partition_type == "DATE"
    assert row.clustered_by == ["alpha", "zeta"]  # clustering order, not column order


def test_integer_range_partition_is_read_from_the_ddl(tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                                      settings: CatalogSettings) -> None:
    ddl = ("CREATE TABLE `data-proj.crm.customers` (customer_id INT64) "
           "PARTITION BY RANGE_BUCKET(customer_id, GENERATE_ARRAY(0, 100000, 1000))")
    fake.add("crm", Table("customers", columns=[Column("customer_id", "INT64", partitioning=True)], ddl=ddl))
    registry = registry_for(tmp_path, {"customers": ("crm", "customers")})

    run(settings, registry, source)

    row = cached(settings, "customers")
    assert row.partition_by == "customer_id"
    assert (row.partition_range.start, row.partition_range.end, row.partition_range.interval) == (0, 100000, 1000)


def test_rate_limit_is_retried_then_succeeds(tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                             settings: CatalogSettings) -> None:
    fake.add("shop", Table("orders"))
    fake.fail("COLUMNS", status=403, reason="rateLimitExceeded", times=2)
    registry = registry_for(tmp_path, {"orders": ("shop", "orders")})

    summary = run(settings, registry, source)

    assert (summary.succeeded, summary.failed) == (1, 0)
    assert fake.kinds().count("COLUMNS") == 3  # two 403s, then the answer
    assert summary.bigquery_calls == 5  # TABLES + 3 x COLUMNS + __TABLES__: retries are counted
    assert cached(settings, "orders").error_msg is None


@pytest.mark.parametrize("reason", ["quotaExceeded", "accessDenied", "invalidQuery"])
def test_permanent_errors_are_not_retried(reason: str, tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                          settings: CatalogSettings) -> None:
    fake.add("shop", Table("orders"))
    fake.fail("TABLES", status=400 if reason == "invalidQuery" else 403, reason=reason, times=5)
    registry = registry_for(tmp_path, {"orders": ("shop", "orders")})

    summary = run(settings, registry, source)

    assert fake.kinds() == ["TABLES"]
    assert (summary.failed, summary.succeeded) == (1, 0)
    row = cached(settings, "orders")
    assert reason in row.error_msg and row.refreshed_at is None


@pytest.mark.integration  # waits out a real retry deadline
def test_transient_errors_give_up_at_the_deadline(tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                                  settings: CatalogSettings) -> None:
    fake.add("shop", Table("orders"))
    fake.fail("TABLES", status=503, reason="backendError", times=10_000)
    registry = registry_for(tmp_path, {"orders": ("shop", "orders")})

    summary = run(settings, registry, source)

    assert summary.failed == 1
    assert fake.kinds().count("TABLES") > 1
    assert "still failing after retrying" in cached(settings, "orders").error_msg


def test_a_404_on_one_table_keeps_the_others_and_its_last_good_data(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders", rows=10, size=100, columns=[Column("id", "INT64"), Column("amount", "NUMERIC")]),
             Table("refunds", rows=3, size=30))
    registry = registry_for(tmp_path, {"orders": ("shop", "orders"), "refunds": ("shop", "refunds")})
    assert run(settings, registry, source).succeeded == 2
    good = cached(settings, "orders")

    # Second refresh: the first one learned the dataset's location, so sizes are asked of the region's
    # TABLE_STORAGE; it and __TABLES__ are not readable, so sizes come from tables.get, and tables.get says orders is gone.
    fake.datasets[(PROJECT, "shop")]["refunds"].rows = 4
    fake.fail("TABLE_STORAGE", status=403, reason="accessDenied")
    fake.fail("__TABLES__", status=403, reason="accessDenied")
    fake.fail("tables.get", table="orders", status=404, reason="notFound")
    summary = run(settings, registry, source)

    assert (summary.succeeded, summary.failed) == (1, 1)
    assert summary.failures["orders"].startswith("BigQuery 404 notFound")
    orders = cached(settings, "orders")
    assert orders.error_msg.startswith("BigQuery 404 notFound") and orders.error_at is not None
    assert (orders.rows, orders.size_bytes, orders.known_columns, orders.refreshed_at) == (
        good.rows, good.size_bytes, ["id", "amount"], good.refreshed_at)
    refunds = cached(settings, "refunds")
    assert refunds.rows == 4 and refunds.error_msg is None
    assert [seen.params["table"] for seen in fake.seen if seen.kind == "tables.get"] == [["orders"], ["refunds"]]


def test_a_missing_dataset_fails_only_its_tables(tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                                 settings: CatalogSettings) -> None:
    fake.add("shop", Table("orders"))
    registry = registry_for(tmp_path, {"orders": ("shop", "orders"), "gone": ("archive", "old")})

    summary = run(settings, registry, source)

    assert (summary.succeeded, summary.failed) == (1, 1)
    assert "notFound" in cached(settings, "gone").error_msg
    assert cached(settings, "orders").refreshed_at is not None


def test_a_table_bigquery_says_nothing_about_is_no_data_not_failed(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders"))
    registry = registry_for(tmp_path, {"orders": ("shop", "orders"), "renamed": ("shop", "orders_old")})

    summary = run(settings, registry, source)

    assert (summary.succeeded, summary.no_data, summary.failed) == (1, 1, 0)
    assert "returned no metadata" in cached(settings, "renamed").error_msg


def _three_datasets(fake: FakeBigQuery, tables_each: int) -> dict[str, tuple[str, str]]:
    tables = {}
    for dataset in ("ds_a", "ds_b", "ds_c"):
        fake.add(dataset, *[Table(f"t{number:02d}", columns=[Column("id", "INT64"), Column("v", "STRING")])
                            for number in range(tables_each)])
        tables.update({f"{dataset}-t{number:02d}": (dataset, f"t{number:02d}") for number in range(tables_each)})
    return tables


@pytest.mark.parametrize("location", ["", "EU"])
def test_call_count_grows_with_datasets_not_tables(location: str, tmp_path: Path, settings: CatalogSettings) -> None:
    calls = {}
    for tables_each in (2, 40):
        fake = FakeBigQuery()
        directory = tmp_path / str(tables_each)
        directory.mkdir()
        registry = registry_for(directory, _three_datasets(fake, tables_each), location=location)
        with mocked(fake):
            source = connect(BILLING, registry.location, emulator_endpoint=ENDPOINT, policy=FAST)
            summary = run(CatalogSettings(directory / "c.yaml", directory / "c.sqlite", 4, 14400, ENDPOINT), registry, source)
        assert summary.succeeded == 3 * tables_each
        assert summary.bigquery_calls == fake.http_requests
        calls[tables_each] = summary.bigquery_calls
    # Per dataset: TABLES + COLUMNS, plus __TABLES__ -- or one TABLE_STORAGE query for the region.
    assert calls[2] == calls[40] == (3 * 3 if not location else 1 + 3 * 2)


def test_pages_of_results_are_followed_and_counted(tmp_path: Path, settings: CatalogSettings) -> None:
    fake = FakeBigQuery(page_size=25)
    registry = registry_for(tmp_path, _three_datasets(fake, 20))
    with mocked(fake):
        source = connect(BILLING, None, emulator_endpoint=ENDPOINT, policy=FAST)
        summary = run(settings, registry, source)

    assert summary.succeeded == 60
    assert cached(settings, "ds_c-t19").known_columns == ["id", "v"]
    # COLUMNS has 40 rows per dataset: first page in jobs.query, then jobs.get + one getQueryResults page.
    assert summary.bigquery_calls == fake.http_requests == 3 * (3 + 2)


def test_datasets_tracked_whole_discover_their_tables(tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                                      settings: CatalogSettings) -> None:
    fake.add("analytics", Table("sessions"), Table("daily_v", "VIEW", rows=None, size=None))
    registry = registry_for(tmp_path, {}, datasets="analytics")

    summary = run(settings, registry, source)

    assert summary.succeeded == 2
    assert cached(settings, "analytics.daily_v").entity_type is EntityType.VIEW
    tables_query = next(seen for seen in fake.seen if seen.kind == "TABLES")
    assert "tables" not in tables_query.params  # the whole dataset, unfiltered

    # A table that disappears from a tracked dataset is reported, not silently kept fresh.
    # One of them by its "dataset.table" id, in any case.
    one = run(settings, registry, source, ["ANALYTICS.Daily_V"])
    assert (one.total, one.succeeded) == (1, 1)
    last_tables_query = [seen for seen in fake.seen if seen.kind == "TABLES"][-1]
    assert last_tables_query.params == {"tables": ["daily_v"]}  # the real spelling, from the cache

    fake.drop("analytics", "sessions")
    again = run(settings, registry, source)
    assert (again.succeeded, again.no_data) == (1, 1)


def test_refresh_all_raises_after_recording_when_a_table_failed(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders"))
    registry = registry_for(tmp_path, {"orders": ("shop", "orders"), "gone": ("archive", "old")})

    with pytest.raises(RefreshFailed) as caught:
        refresh_all(settings=settings, registry=registry, source=source, env={})

    assert caught.value.summary.failed == 1  # type: ignore[attr-defined]
    assert cached(settings, "orders").refreshed_at is not None
    quiet = refresh_all(settings=settings, registry=registry, source=source, env={}, raise_on_failure=False)
    assert quiet.failed == 1


def test_refresh_one_takes_an_id_in_any_case(tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource,
                                             settings: CatalogSettings) -> None:
    fake.add("shop", Table("orders"), Table("refunds"))
    registry = registry_for(tmp_path, {"Orders": ("shop", "orders"), "refunds": ("shop", "refunds")})

    summary = refresh_one("ORDERS", settings=settings, registry=registry, source=source, env={})

    assert (summary.total, summary.succeeded) == (1, 1)
    assert next(seen for seen in fake.seen if seen.kind == "TABLES").params["tables"] == ["orders"]
    assert cached(settings, "refunds") is None
