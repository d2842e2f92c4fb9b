"""Refresh failures that must stay per dataset: slow jobs, failed jobs, crashes, cold datasets, aliases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource, connect
from catalog.cache import Cache
from catalog.errors import RefreshFailed
from catalog.refresh import refresh, refresh_all
from catalog.settings import CatalogSettings
from catalog.tracked import TrackedTables
from tests.catalog.conftest import FAST
from tests.catalog.support import BILLING, ENDPOINT, Column, FakeBigQuery, Seen, Table
from tests.catalog.test_refresh_bigquery import cached, registry_for, run

# Waiting for a query job gives up after half a second.
IMPATIENT = replace(FAST, query_timeout=0.5)


@pytest.fixture
def impatient(fake: FakeBigQuery) -> Iterator[BigQuerySource]:
    client = connect(BILLING, None, emulator_endpoint=ENDPOINT, policy=IMPATIENT)
    yield client
    client.close()


def test_a_query_that_does_not_finish_in_time_fails_its_dataset_only(
    tmp_path: Path, fake: FakeBigQuery, impatient: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("slow", Table("a"))
    fake.add("quick", Table("b"))
    fake.stall("TABLES", dataset="slow")
    registry = registry_for(tmp_path, {"a": ("slow", "a"), "b": ("quick", "b")})

    started = time.monotonic()
    summary = run(settings, registry, impatient)

    assert time.monotonic() - started < 10
    assert (summary.succeeded, summary.failed) == (1, 1)
    assert summary.failures["a"] == "BigQuery query did not finish within 0.5s (cancel requested)"
    assert cached(settings, "a").error_msg == summary.failures["a"]
    assert cached(settings, "b").refreshed_at is not None
    assert fake.cancelled  # the client cancels the job it stopped waiting for


def test_an_unexpected_error_in_one_dataset_fails_that_dataset_only(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("broken", Table("a"))
    fake.add("fine", Table("b"))

    def crash(seen: Seen) -> None:
        if seen.dataset == "broken":
            raise RuntimeError("something nobody expected")

    fake.before_query = crash
    registry = registry_for(tmp_path, {"a": ("broken", "a"), "b": ("fine", "b")})

    summary = run(settings, registry, source)

    assert (summary.succeeded, summary.failed) == (1, 1)
    assert summary.failures["a"] == "unexpected error: RuntimeError: something nobody expected"
    assert cached(settings, "a").error_msg == summary.failures["a"]


def test_a_job_that_fails_with_backend_error_after_it_was_accepted_is_run_again(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders"))
    fake.fail_job("COLUMNS", reason="backendError", message="Backend error. Retrying the job may solve the problem.")
    registry = registry_for(tmp_path, {"orders": ("shop", "orders")})

    summary = run(settings, registry, source)

    assert (summary.succeeded, summary.failed) == (1, 0)
    assert fake.kinds().count("COLUMNS") == 2  # the failed job, then the new one


def test_a_job_that_fails_for_good_is_not_run_again(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders"))
    fake.fail_job("COLUMNS", reason="accessDenied", times=5, message="Access Denied: Table data-proj:shop.orders")
    registry = registry_for(tmp_path, {"orders": ("shop", "orders")})

    summary = run(settings, registry, source)

    assert summary.failed == 1 and fake.kinds().count("COLUMNS") == 1
    assert summary.failures["orders"] == "BigQuery 403 accessDenied: Access Denied: Table data-proj:shop.orders"


def test_a_dataset_tracked_whole_that_fails_on_a_cold_cache_is_a_failure(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("analytics", Table("sessions"))
    fake.fail("TABLES", dataset="analytics", status=403, reason="accessDenied", message="Access Denied: Dataset analytics")
    registry = registry_for(tmp_path, {}, datasets="analytics")

    with pytest.raises(RefreshFailed) as caught:
        refresh_all(settings=settings, registry=registry, source=source, env={})

    summary = caught.value.summary
    assert (summary.total, summary.failed) == (1, 1)  # type: ignore[attr-defined]
    assert summary.failures == {  # type: ignore[attr-defined]
        "dataset:data-proj.analytics": "BigQuery 403 accessDenied: Access Denied: Dataset analytics"}

    # Once its tables are known, they fail one by one instead.
    assert run(settings, registry, source).succeeded == 1
    fake.fail("TABLES", dataset="analytics", status=403, reason="accessDenied", message="Access Denied: Dataset analytics")
    again = run(settings, registry, source)
    assert list(again.failures) == ["analytics.sessions"]


def test_two_registry_ids_for_one_table_are_both_refreshed(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders", rows=7))
    registry = registry_for(tmp_path, {"orders": ("shop", "orders"), "orders_alias": ("shop", "orders"), "gone": ("shop", "x"),
                                       "gone_too": ("shop", "x")})

    summary = run(settings, registry, source)

    assert (summary.total, summary.succeeded, summary.no_data) == (4, 2, 2)
    assert cached(settings, "orders").rows == cached(settings, "orders_alias").rows == 7
    assert "returned no metadata" in cached(settings, "gone_too").error_msg
    assert next(seen for seen in fake.seen if seen.kind == "TABLES").params["tables"] == ["orders", "x"]  # asked once

    fake.fail("COLUMNS", dataset="shop", status=403, reason="accessDenied")
    failed = refresh(["orders", "ORDERS_ALIAS"], settings=settings, registry=registry, source=source, env={})
    assert sorted(failed.failures) == ["orders", "orders_alias"]


def test_discovered_tables_whose_names_differ_only_in_case_are_two_rows(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("analytics", Table("Events", columns=[Column("a")]), Table("events", columns=[Column("b")]))
    registry = registry_for(tmp_path, {}, datasets="analytics")

    summary = run(settings, registry, source)

    assert (summary.total, summary.succeeded) == (2, 2)
    assert cached(settings, "analytics.Events").known_columns == ["a"]
    assert cached(settings, "analytics.events").known_columns == ["b"]
    one = refresh(["analytics.Events"], settings=settings, registry=registry, source=source, env={})
    assert one.total == 1 and fake.seen[-1].params == {"tables": ["Events"]}
    with Cache(settings.db_path) as cache:
        tracked = TrackedTables(registry, cache)
        assert [table.id for table in tracked.all()] == ["analytics.Events", "analytics.events"]
        assert tracked.find("analytics.events").table == "events"
        assert tracked.find("analytics.Events").table == "Events"


def test_a_typo_of_a_table_in_a_dataset_tracked_whole_leaves_no_phantom_row(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("wh", Table("events"))
    registry = registry_for(tmp_path, {}, datasets="wh")

    typo = refresh(["wh.evnets"], settings=settings, registry=registry, source=source, env={})

    assert (typo.total, typo.failed, typo.no_data) == (1, 1, 0)
    assert typo.failures["wh.evnets"].startswith("unknown table: wh.evnets is not in data-proj.wh.INFORMATION_SCHEMA.TABLES")
    with Cache(settings.db_path) as cache:
        assert cache.get("wh.evnets") is None
    full = refresh(None, settings=settings, registry=registry, source=source, env={})
    assert (full.total, full.succeeded, full.no_data) == (1, 1, 0)
    with Cache(settings.db_path) as cache:
        assert [table.id for table in TrackedTables(registry, cache).all()] == ["wh.events"]

    # A table that was cached and then disappeared keeps its row, reported as no_data.
    fake.drop("wh", "events")
    gone = refresh(["wh.events"], settings=settings, registry=registry, source=source, env={})
    assert (gone.no_data, gone.failed) == (1, 0)


def test_an_unknown_table_type_fails_the_table_and_keeps_its_last_good_data(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("orders", rows=7))
    registry = registry_for(tmp_path, {"orders": ("shop", "orders")})
    assert refresh(None, settings=settings, registry=registry, source=source, env={}).succeeded == 1

    fake.datasets[("data-proj", "shop")]["orders"].table_type = "FUTURE TYPE"
    summary = refresh(None, settings=settings, registry=registry, source=source, env={})

    assert (summary.failed, summary.no_data, summary.succeeded) == (1, 0, 0)
    assert summary.failures["orders"] == "unknown table_type 'FUTURE TYPE' in data-proj.shop.INFORMATION_SCHEMA.TABLES"
    row = cached(settings, "orders")
    assert row.error_msg == summary.failures["orders"] and row.rows == 7
