"""catalog.bigquery: client construction, retries, error translation, dry runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from google.api_core import exceptions as api_exceptions

from catalog.bigquery import BigQuerySource, connect, is_transient
from catalog.errors import BigQueryError, CredentialsError
from catalog.models import EntityType, parse_entity_type
from tests.catalog.conftest import FAST
from tests.catalog.support import BILLING, FakeBigQuery, FakeServer, Seen, Table, UnmatchedRequest, error_body


def test_emulator_host_means_plain_http_and_anonymous_credentials(fake: FakeBigQuery) -> None:
    source = connect(BILLING, "EU", emulator_endpoint="http://127.0.0.1:9050", policy=FAST)
    try:
        assert source.client._connection.API_BASE_URL == "http://127.0.0.1:9050"
        assert type(source.client._credentials).__name__ == "AnonymousCredentials"
        assert source.client.project == BILLING and source.location == "EU"
    finally:
        source.close()


def test_missing_credentials_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Points ADC at a file that does not exist: google.auth fails without any network call.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with pytest.raises(CredentialsError) as caught:
        connect(BILLING, None, emulator_endpoint=None)
    message = str(caught.value)
    assert "gcloud auth application-default login" in message and "BIGQUERY_EMULATOR_HOST" in message


def test_values_travel_as_query_parameters(fake: FakeBigQuery, source: BigQuerySource) -> None:
    fake.add("shop", Table("o'brien; DROP TABLE x"))
    rows = source.query("SELECT table_name, table_type, ddl FROM `data-proj`.`shop`.INFORMATION_SCHEMA.TABLES "
                        "WHERE table_name IN UNNEST(@tables)", {"tables": ["o'brien; DROP TABLE x"]})
    assert rows == [{"table_name": "o'brien; DROP TABLE x", "table_type": "BASE TABLE", "ddl": None}]
    assert "o'brien" not in fake.seen[0].sql and fake.seen[0].params == {"tables": ["o'brien; DROP TABLE x"]}
    assert source.calls == 1


def test_an_unexpected_request_fails_at_once_and_is_not_retried(fake: FakeBigQuery, source: BigQuerySource) -> None:
    # A query the fake does not understand, and a host nothing is registered
    # for: both raise UnmatchedRequest, which the retry predicate never retries.
    with pytest.raises(UnmatchedRequest, match="does not understand"):
        source.query("SELECT 1")
    elsewhere = connect(BILLING, None, emulator_endpoint="http://elsewhere.test", policy=FAST)
    with pytest.raises(UnmatchedRequest, match=r"unexpected request POST http://elsewhere\.test"):
        elsewhere.query("SELECT 1")
    assert fake.http_requests == 1 and source.calls == 1  # no retries; every attempt is counted, answered or not


def test_dry_run_reports_bytes(fake: FakeBigQuery, source: BigQuerySource) -> None:
    assert source.dry_run("SELECT * FROM `data-proj.shop.orders`") == 123456789
    assert fake.kinds() == ["dry_run"]


def test_transient_classification() -> None:
    def api_error(status: int, reason: str) -> api_exceptions.GoogleAPICallError:
        error = api_exceptions.from_http_status(status, "x", errors=error_body(status, reason, "x")["error"]["errors"])
        return error

    assert is_transient(api_error(403, "rateLimitExceeded"))
    assert is_transient(api_error(500, "backendError"))
    assert is_transient(api_error(503, "unknownThing"))
    assert not is_transient(api_error(403, "quotaExceeded"))
    assert not is_transient(api_error(403, "accessDenied"))
    assert not is_transient(api_error(404, "notFound"))
    assert not is_transient(api_error(400, "invalidQuery"))
    assert not is_transient(UnmatchedRequest("x"))


def test_entity_type_spellings() -> None:
    assert parse_entity_type("MATERIALIZED_VIEW") is EntityType.MATERIALIZED_VIEW
    assert parse_entity_type("materialized view") is EntityType.MATERIALIZED_VIEW
    assert parse_entity_type("TABLE") is EntityType.BASE_TABLE  # tables.get's spelling
    assert not EntityType.VIEW.has_storage and EntityType.CLONE.has_storage
    with pytest.raises(ValueError, match="unknown BigQuery table_type"):
        parse_entity_type("WORMHOLE")


def test_the_developers_variables_do_not_reach_the_tests() -> None:
    # Run as `CATALOG_MAX_SCAN_BYTES=0 make test`: the in-process CLI tests read os.environ.
    assert [name for name in os.environ if name.startswith(("CATALOG_", "BIGQUERY_", "GOOGLE_", "SCHEDULER_"))] == []


def test_a_bug_in_the_fake_server_fails_at_once_instead_of_being_retried() -> None:
    fake = FakeBigQuery()
    fake.add("shop", Table("t"))

    def broken(seen: Seen) -> None:
        raise KeyError("bug in the fake")

    fake.before_query = broken
    running = FakeServer(fake)
    source = connect(BILLING, None, emulator_endpoint=f"http://{running.host}")  # the default 60 s retry deadline
    started = time.monotonic()
    try:
        with pytest.raises(BigQueryError, match="KeyError"):
            source.query("SELECT table_name, table_type, ddl FROM `data-proj`.`shop`.INFORMATION_SCHEMA.TABLES")
    finally:
        source.close()
        running.close()
    assert time.monotonic() - started < 5 and fake.http_requests == 1
