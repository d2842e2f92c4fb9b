"""`catalog list --json` prints exactly what it always printed: the listing's rows through ``json.dumps``.

The command writes its compact JSON from the cache's stored text (bench/catalog_reads.py times it) rather
than building every row as a dict first; these tests pin its output, byte for byte, against
``json.dumps`` of ``Catalog.listing()`` (compact for a script, indented at a terminal, ASCII only) on a
cache full of awkward rows, and pin some of those rows literally so the documented shape cannot drift with it.
"""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog.cache import Cache
from catalog.cli import main, write_listing_json
from catalog.library import Catalog
from catalog.models import EntityType, PartitionRange, TableMetadata, TrackedTable
from catalog.registry import load_registry
from catalog.settings import CatalogSettings
from tests.catalog.support import write_registry

THRESHOLD = 2 * 14400  # the settings fixture's refresh interval, twice
NOW = datetime(2026, 11, 29, 15, 0, 0, 123456, tzinfo=UTC)  # microseconds: the freshness cut-off is not on a millisecond
REGISTRY = """
    bigquery: {project: data-proj, billing_project: bill-proj}
    tables:
      Orders:
        dataset: shop
        table: orders
        name: "Commandes — été"
        description: "Prix en € \\"TTC\\"\\nligne 2 \\\\ fin \\t\\u007f"
        where_examples: ["country_code = 'CZ'", "`naïve` IS NOT NULL"]
      orders_alias: {dataset: shop, table: orders}
      orders_v: {dataset: shop, table: orders_v, description: "a view"}
      events: {dataset: analytics, table: events_*, where_examples: ["platform = 'web'"]}
      cold: {dataset: shop, table: cold}
      broken: {dataset: shop, table: broken}
      stale_err: {dataset: shop, table: stale_err}
      ranged: {dataset: shop, table: ranged}
      looked: {dataset: shop, table: looked}
      legacy: {dataset: shop, table: legacy}
      edge_stale: {dataset: shop, table: edge_stale}
      edge_fresh: {dataset: shop, table: edge_fresh}
      future: {project: other-proj, dataset: shop, table: future}
      wh_events: {dataset: wh, table: events}
    datasets: [wh, lake]
    where_examples:
      - "country_code = 'CZ'"
      - "event_date > DATE '2026-01-01'"
"""
ODD_COLUMNS = ["country_code", "naïve", 'a"b', "back\\slash", "tab\tcol", "\x7f", "emoji😀", "created at", "event_date"]


def meta(**overrides: Any) -> TableMetadata:
    values: dict[str, Any] = {
        "entity_type": EntityType.BASE_TABLE, "rows": 10, "size_bytes": 100, "partition_by": None, "partition_type": None,
        "partition_range": None, "clustered_by": [], "known_columns": ["country_code"],
    }
    values.update(overrides)
    return TableMetadata(**values)


def table(table_id: str, dataset: str, name: str, project: str = "data-proj") -> TrackedTable:
    return TrackedTable(table_id, project, dataset, name, table_id, discovered="." in table_id)


def fill(cache: Cache, now: datetime) -> None:
    """Every kind of row the listing has to get right."""
    recent = now - timedelta(hours=1)
    cache.record_success(table("Orders", "shop", "orders"), meta(
        rows=5000, size_bytes=300 * 1024**2, partition_by="created at", partition_type="TIMESTAMP",
        clustered_by=["naïve", 'a"b'], known_columns=ODD_COLUMNS), recent)
    cache.record_success(table("orders_alias", "shop", "orders"), meta(rows=5000, size_bytes=300 * 1024**2), recent)
    cache.record_success(table("orders_v", "shop", "orders_v"), meta(
        entity_type=EntityType.VIEW, rows=None, size_bytes=None, known_columns=["event_date", "Country_Code"]), recent)
    cache.record_success(table("events", "analytics", "events_*"), meta(
        rows=10**9, size_bytes=20 * 1024**3, partition_by="event_date", partition_type="DATE", clustered_by=["platform"],
        known_columns=["event_date", "platform", "country_code"], shard_count=31, newest_shard="events_20260131"), recent)
    cache.record_error(table("broken", "shop", "broken"), "403 accessDenied: l'accès est refusé “quoted”", recent)
    cache.record_success(table("stale_err", "shop", "stale_err"), meta(size_bytes=GIB + 1), now - timedelta(days=3))
    cache.record_error(table("stale_err", "shop", "stale_err"), "backendError\nsecond line", recent)
    cache.record_success(table("ranged", "shop", "ranged"), meta(
        partition_by="bucket", partition_type="INT64", partition_range=PartitionRange(0, 100, 10),
        known_columns=["bucket", "country_code"], size_bytes=0, rows=0), recent)
    cache.record_lookup(table("looked", "shop", "looked"), EntityType.CLONE, "day", ["a", "b"])
    # At the threshold: stored to the millisecond (.123), so just over it; one millisecond later, just within.
    cache.record_success(table("edge_stale", "shop", "edge_stale"), meta(), now - timedelta(seconds=THRESHOLD))
    cache.record_success(table("edge_fresh", "shop", "edge_fresh"), meta(),
                         now - timedelta(seconds=THRESHOLD) + timedelta(milliseconds=1))
    cache.record_success(table("future", "shop", "future", "other-proj"), meta(size_bytes=10 * GIB), now + timedelta(days=1))
    cache.record_success(table("gone", "shop", "gone"), meta(), recent)  # no longer in the registry: not listed
    # Discovered in datasets tracked whole: two that differ only in case, one the registry also names (wh_events
    # shows it), one with a name BigQuery allows and JSON escapes; and two not listed: one in a dataset tracked
    # whole but of another project, one in a dataset that is not tracked whole.
    for discovered, project in (("wh.Events", "data-proj"), ("wh.events", "data-proj"), ("wh.Ärger", "data-proj"),
                                ("wh.zeta", "data-proj"), ("lake.raw", "other-proj"), ("shop.loose", "data-proj")):
        dataset, name = discovered.split(".")
        cache.record_success(table(discovered, dataset, name, project), meta(known_columns=["x"], size_bytes=2 * 1024**2),
                             recent)
    cache.record_success(table("wh_events", "wh", "events"), meta(known_columns=["event_date"]), recent)


GIB = 1024**3


def legacy_row(path: Path) -> None:
    """A row written as an older tickless (or BigQuery's API spelling) could: underscored type, a huge count."""
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO tables (key, id, project, dataset, table_name, entity_type, rows, size_bytes, clustered_by, "
                   "known_columns, refreshed_at) VALUES ('legacy', 'legacy', 'data-proj', 'shop', 'legacy', "
                   "'MATERIALIZED_VIEW', ?, ?, '[]', '[\"country_code\"]', '2026-11-29T14:00:00.000Z')", (2**40, 2**62))
    db.close()


@pytest.fixture
def catalog(tmp_path: Path, settings: CatalogSettings) -> Catalog:
    write_registry(tmp_path, REGISTRY)
    registry = load_registry(settings.config_path, {})
    with Cache(settings.db_path) as cache:
        fill(cache, NOW)
    legacy_row(settings.db_path)
    return Catalog(settings, registry, clock=lambda: NOW)


def printed(catalog: Catalog, *, terminal: bool = False) -> str:
    out = _Terminal() if terminal else io.StringIO()
    with catalog:
        write_listing_json(catalog, out)
    return out.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_compact_output_is_json_dumps_of_the_listing_byte_for_byte(catalog: Catalog) -> None:
    with Catalog(catalog.settings, catalog.registry, clock=lambda: NOW) as other:
        expected = json.dumps(other.listing()) + "\n"
    assert printed(catalog) == expected
    assert expected.isascii()  # ensure_ascii, as before: a script may read it as ASCII


def test_indented_output_at_a_terminal_is_unchanged(catalog: Catalog) -> None:
    with Catalog(catalog.settings, catalog.registry, clock=lambda: NOW) as other:
        expected = json.dumps(other.listing(), indent=2) + "\n"
    assert printed(catalog, terminal=True) == expected


def test_freshness_exactly_at_the_threshold(tmp_path: Path, settings: CatalogSettings) -> None:
    # now on a whole millisecond: a row refreshed exactly THRESHOLD seconds ago is still fresh.
    now = NOW.replace(microsecond=123000)
    write_registry(tmp_path, REGISTRY)
    with Cache(settings.db_path) as cache:
        fill(cache, now)
    listed = json.loads(printed(Catalog(settings, load_registry(settings.config_path, {}), clock=lambda: now)))
    freshness = {row["id"]: row["metadata_freshness"] for row in listed["tables"]}
    assert (freshness["edge_stale"], freshness["edge_fresh"]) == ("fresh", "fresh")
    with Catalog(settings, load_registry(settings.config_path, {}), clock=lambda: now + timedelta(microseconds=1)) as later:
        assert [row["metadata_freshness"] for row in later.rows() if row["id"] == "edge_stale"] == ["stale"]
        assert printed(later) == json.dumps(later.listing()) + "\n"


def test_the_rows_listed_and_their_shape(catalog: Catalog) -> None:
    document = json.loads(printed(catalog))
    assert document["server_time"] == "2026-11-29T15:00:00.123Z"
    rows = {row["id"]: row for row in document["tables"]}
    assert [row["id"] for row in document["tables"]] == [
        "Orders", "orders_alias", "orders_v", "events", "cold", "broken", "stale_err", "ranged", "looked", "legacy",
        "edge_stale", "edge_fresh", "future", "wh_events",  # the registry's, in its order
        "wh.Events", "wh.zeta", "wh.Ärger",  # then the discovered ones by id; wh.events is listed as wh_events
    ]
    assert rows["Orders"] == {
        "id": "Orders", "name": "Commandes — été", "description": 'Prix en € "TTC"\nligne 2 \\ fin \t\x7f',
        "source_type": "bigquery", "sql_flavor": "bigquery", "project": "data-proj", "dataset": "shop", "table": "orders",
        "entity_type": "BASE TABLE", "rows": 5000, "size_bytes": 300 * 1024**2, "rough_size_hint": "medium",
        "partition_by": "created at", "clustered_by": ["naïve", 'a"b'], "known_columns": ODD_COLUMNS,
        "shard_count": None, "newest_shard": None,
        "where_examples": ["country_code = 'CZ'", "event_date > DATE '2026-01-01'", "`naïve` IS NOT NULL",
                           "`created at` >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)"],
        "metadata_freshness": "fresh", "refreshed_at": "2026-11-29T14:00:00.123Z", "error_msg": None,
    }
    assert (rows["orders_alias"]["name"], rows["orders_alias"]["table"], rows["orders_alias"]["where_examples"]) == (
        "orders_alias", "orders", ["country_code = 'CZ'"])
    view = rows["orders_v"]
    assert (view["entity_type"], view["rows"], view["size_bytes"], view["rough_size_hint"]) == ("VIEW", None, None, None)
    assert view["where_examples"] == ["country_code = 'CZ'", "event_date > DATE '2026-01-01'"]
    family = rows["events"]
    assert (family["shard_count"], family["newest_shard"], family["rough_size_hint"]) == (31, "events_20260131", "very_large")
    assert family["where_examples"] == ["country_code = 'CZ'", "event_date > DATE '2026-01-01'", "platform = 'web'",
                                        "event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)"]
    assert rows["cold"] == {
        "id": "cold", "name": "cold", "description": None, "source_type": "bigquery", "sql_flavor": "bigquery",
        "project": "data-proj", "dataset": "shop", "table": "cold", "entity_type": None, "rows": None, "size_bytes": None,
        "rough_size_hint": None, "partition_by": None, "clustered_by": None, "known_columns": None, "shard_count": None,
        "newest_shard": None, "where_examples": [], "metadata_freshness": "never_fetched", "refreshed_at": None,
        "error_msg": None,
    }
    assert all(list(row) == list(rows["cold"]) for row in document["tables"])  # one key order for every row
    assert (rows["broken"]["metadata_freshness"], rows["broken"]["error_msg"]) == (
        "error", "403 accessDenied: l'accès est refusé “quoted”")
    assert (rows["stale_err"]["metadata_freshness"], rows["stale_err"]["rough_size_hint"]) == ("stale", "large")
    assert rows["ranged"]["where_examples"] == ["country_code = 'CZ'", "bucket >= 0 AND bucket < 10"]
    assert rows["ranged"]["rough_size_hint"] == "small"
    looked = rows["looked"]
    assert (looked["entity_type"], looked["clustered_by"], looked["known_columns"], looked["metadata_freshness"]) == (
        "CLONE", ["a", "b"], None, "never_fetched")
    assert (rows["legacy"]["entity_type"], rows["legacy"]["rows"], rows["legacy"]["rough_size_hint"]) == (
        "MATERIALIZED VIEW", 2**40, "very_large")
    assert (rows["edge_stale"]["metadata_freshness"], rows["edge_fresh"]["metadata_freshness"]) == ("stale", "fresh")
    assert rows["future"]["metadata_freshness"] == "fresh" and rows["future"]["project"] == "other-proj"
    assert rows["wh.Ärger"]["name"] == "wh.Ärger" and rows["wh.Ärger"]["description"] is None


def test_the_command_prints_the_listing(catalog: Catalog, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CATALOG_CONFIG", str(catalog.settings.config_path))
    monkeypatch.setenv("CATALOG_DB", str(catalog.settings.db_path))
    assert main(["list", "--json"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    with Catalog(catalog.settings, catalog.registry, clock=lambda: datetime.fromisoformat(
            document["server_time"].replace("Z", "+00:00"))) as same_time:
        assert out == json.dumps(same_time.listing()) + "\n"


@pytest.mark.parametrize("batch", [1, 2, 3, 1000])
def test_the_pieces_join_into_the_same_text_whatever_their_size(catalog: Catalog, batch: int) -> None:
    with catalog:
        assert "".join(catalog.listing_json(batch)) == json.dumps(catalog.listing())


@pytest.mark.parametrize("registry_text", [
    "bigquery: {project: data-proj}\ndatasets: [wh]\n",  # only discovered tables
    "bigquery: {project: data-proj}\ntables:\n  cold: {dataset: shop, table: cold}\n",  # only the registry's
    "bigquery: {project: data-proj}\ndatasets: [empty]\n",  # nothing at all
])
def test_a_listing_of_one_kind_of_table_or_none(tmp_path: Path, settings: CatalogSettings, registry_text: str) -> None:
    write_registry(tmp_path, registry_text)
    with Cache(settings.db_path) as cache:
        fill(cache, NOW)
    with Catalog(settings, load_registry(settings.config_path, {}), clock=lambda: NOW) as listed:
        expected = json.dumps(listed.listing())
        assert "".join(listed.listing_json(2)) == expected
    assert json.loads(expected)["tables"] or registry_text.endswith("[empty]\n")


def test_a_threshold_reaching_before_year_one_keeps_every_row_fresh(tmp_path: Path, settings: CatalogSettings) -> None:
    write_registry(tmp_path, REGISTRY)
    with Cache(settings.db_path) as cache:
        fill(cache, NOW)
    long_ago = CatalogSettings(settings.config_path, settings.db_path, 4, 10**11, None)  # refreshed within 6,000 years
    with Catalog(long_ago, load_registry(settings.config_path, {}), clock=lambda: NOW) as listed:
        text = "".join(listed.listing_json())
        assert text == json.dumps(listed.listing())
    assert {row["metadata_freshness"] for row in json.loads(text)["tables"]} == {"fresh", "never_fetched", "error"}
