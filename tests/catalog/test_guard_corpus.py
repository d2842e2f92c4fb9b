"""The cost guard on a corpus of real-world-shaped BigQuery SQL (tests/catalog/corpus/guard_corpus.yaml).

Every case runs through ``check_query`` and the real google-cloud-bigquery client against the fake
BigQuery at the REST wire level: the targets found, the tables left untracked, and the decision
(allowed, or the refusal reason) must be what the corpus says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog.bigquery import BigQuerySource
from catalog.cache import Cache
from catalog.cli import _parameters
from catalog.errors import QueryGuardError
from catalog.guard import check_query
from catalog.registry import Registry, load_registry
from catalog.settings import CatalogSettings
from tests.catalog.support import FakeBigQuery, write_registry

CORPUS = Path(__file__).parent / "corpus" / "guard_corpus.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
GIB = 1024**3
CORPUS_REGISTRY = """
    bigquery: {project: data-proj, billing_project: bill-proj, location: EU}
    tables:
      unit_economics: {dataset: finance, table: unit_economics}
      orders: {dataset: sales, table: orders_v}
      customers: {dataset: sales, table: customers}
      events: {dataset: analytics, table: events_*}
      us_orders: {dataset: us_sales, table: orders}
    datasets: [warehouse]
    locations: {us_sales: US}
    allow_unestimated_projects: [open-data-proj]
"""
CLASSES = {"scripts", "ml", "wildcards", "information_schema", "merge", "pivot", "arrays", "parameters", "other_projects",
           "mixed_locations"}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return load_registry(write_registry(tmp_path, CORPUS_REGISTRY), {})


@pytest.fixture
def cache(settings: CatalogSettings) -> Iterator[Cache]:
    with Cache(settings.db_path) as opened:
        yield opened


def test_the_corpus_is_large_and_covers_every_class() -> None:
    classes = Counter(case["class"] for case in CASES)
    assert len(CASES) >= 150, len(CASES)
    assert CLASSES <= set(classes), CLASSES - set(classes)
    assert all(classes[name] >= 5 for name in CLASSES), classes
    assert len({case["sql"] for case in CASES}) == len(CASES)  # no case twice


@pytest.mark.parametrize("case", CASES, ids=[f"{index:03d}-{case['class']}" for index, case in enumerate(CASES)])
def test_corpus_case(
    case: dict[str, Any], fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings, registry: Registry,
    cache: Cache,
) -> None:
    fake.scan_bytes = GIB
    fake.locations[("bigquery-public-data", "samples")] = "US"  # BigQuery's public datasets live in the US
    parameters = _parameters(case.get("params", []))
    try:
        result = check_query(case["sql"], settings=settings, registry=registry, source=source, cache=cache,
                             parameters=parameters)
    except QueryGuardError as refused:
        assert refused.reason == case["decision"], refused.detail
        assert "<class" not in str(refused) and "Traceback" not in str(refused)
        if "tables" in refused.detail:
            assert refused.detail["tables"] == case["targets"]
        return
    assert case["decision"] == "allowed", result
    assert result.tables == case["targets"]
    assert result.untracked_tables == case.get("untracked", result.untracked_tables)
    dry_runs = [seen for seen in fake.seen if seen.kind == "dry_run"]
    if case.get("estimated", bool(case["targets"] or case.get("untracked"))):
        assert result.scan_bytes == GIB and len(dry_runs) == 1 and dry_runs[0].sql == result.sql
    else:
        assert result.scan_bytes is None and not dry_runs
    if "accuracy" in case:
        assert result.scan_bytes_accuracy == case["accuracy"] and result.requires_maximum_bytes_billed
    if "location" in case:
        assert dry_runs[0].location == case["location"] and result.location == case["location"]
