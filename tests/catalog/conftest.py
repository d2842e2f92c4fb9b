"""Fixtures for the catalog tests: a fake BigQuery behind the real client, SQLite in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource, RetryPolicy, connect
from catalog.settings import CatalogSettings
from tests.catalog.support import BILLING, ENDPOINT, FakeBigQuery, mocked

# Tiny backoff so retry tests take milliseconds; a deadline so nothing can hang.
FAST = RetryPolicy(initial=0.01, maximum=0.02, multiplier=2.0, deadline=3.0, request_timeout=5.0, query_timeout=10.0)


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
