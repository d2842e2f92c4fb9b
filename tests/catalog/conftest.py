"""Fixtures for the catalog tests: a fake BigQuery behind the real client, SQLite in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource, RetryPolicy, connect
from catalog.settings import CatalogSettings
from tests.catalog.support import BILLING, ENDPOINT, FakeBigQuery, mocked

# The developer's own settings must not change what the tests see (CATALOG_MAX_SCAN_BYTES=0
# would turn the guard off in the in-process CLI tests).
ISOLATED_PREFIXES = ("CATALOG_", "BIGQUERY_", "GOOGLE_", "SCHEDULER_")

# Tiny backoff so retry tests take milliseconds; a deadline so nothing can hang.
FAST = RetryPolicy(initial=0.01, maximum=0.02, multiplier=2.0, deadline=3.0, request_timeout=5.0, query_timeout=10.0)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    bigquery = FakeBigQuery()
    with mocked(bigquery):
        yield bigquery


@pytest.fixture
def source(fake: FakeBigQuery) -> Iterator[BigQuerySource]:
    client = connect(BILLING, None, emulator_endpoint=ENDPOINT, policy=FAST)
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> CatalogSettings:
    return CatalogSettings(
        config_path=tmp_path / "catalog.yaml", db_path=tmp_path / "db" / "catalog.sqlite",
        concurrency=4, refresh_interval_seconds=14400, emulator_endpoint=ENDPOINT,
    )
