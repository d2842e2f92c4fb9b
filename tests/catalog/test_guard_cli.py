"""``catalog guard``: end to end in a subprocess against a real HTTP server on 127.0.0.1, exit codes and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.cli import main
from tests.catalog.support import Column, FakeBigQuery, FakeServer, Table, subprocess_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GIB = 1024**3
REGISTRY = """
    bigquery:
      project: ${BIGQUERY_PROJECT}
      billing_project: bill-proj
    tables:
      unit_economics: {dataset: finance, table: unit_economics}
      orders: {dataset: sales, table: orders_v}
    max_scan_bytes: ${GUARD_CAP:-5368709120}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return subprocess_env(tmp_path, REGISTRY)


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[FakeBigQuery]:
    fake = FakeBigQuery()
    fake.add("finance", Table("unit_economics", columns=[Column("event_date", "DATE", partitioning=True), Column("margin_eur")]))
    fake.add("sales", Table("orders_v", "VIEW", rows=None, size=None, columns=[Column("status")]))
    running = FakeServer(fake)
    env["BIGQUERY_EMULATOR_HOST"] = running.host
    yield fake
    running.close()


def catalog(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "catalog", *args], cwd=REPO, env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_allowed_then_refused_for_a_view_end_to_end(env: dict[str, str], server: FakeBigQuery) -> None:
    allowed = catalog(env, "guard", "SELECT margin_eur FROM unit_economics WHERE event_date = '2026-01-01'", "--json")
    assert allowed.returncode == 0, allowed.stderr
    document = json.loads(allowed.stdout)
    assert list(document)[:4] == ["allowed", "scan_bytes", "limit_bytes", "tables"]
    assert (document["allowed"], document["scan_bytes"], document["limit_bytes"]) == (True, 123456789, 5368709120)
    assert document["tables"] == ["finance.unit_economics"]
    assert document["sql"] == "SELECT margin_eur FROM `data-proj.finance.unit_economics` WHERE event_date = '2026-01-01'"
    assert server.kinds() == ["dry_run"] and server.seen[0].sql == document["sql"]

    server.scan_bytes = 10 * GIB
    refused = catalog(env, "guard", "-", "--json", stdin="SELECT * FROM orders LIMIT 1\n")
    assert refused.returncode == 3, refused.stderr
    detail = json.loads(refused.stdout)
    assert {key: detail[key] for key in ("allowed", "reason", "scan_bytes", "limit_bytes", "tables", "view_targets")} == {
        "allowed": False, "reason": "remote_scan_too_large", "scan_bytes": 10 * GIB, "limit_bytes": 5368709120,
        "tables": ["sales.orders_v"], "view_targets": ["orders"]}
    assert detail["suggestion"].startswith("Target(s) orders are VIEW or MATERIALIZED VIEW. BigQuery does not push LIMIT")
    assert server.kinds() == ["dry_run", "dry_run", "tables.get"]  # a cold cache: looked up once

    again = catalog(env, "guard", "SELECT * FROM orders LIMIT 1")  # human output this time
    assert again.returncode == 3
    assert again.stdout.startswith("refused (remote_scan_too_large): the query would scan 10.0 GiB")
    assert "suggestion: Target(s) orders are VIEW" in again.stdout
    assert server.kinds() == ["dry_run", "dry_run", "tables.get", "dry_run"]  # the lookup was kept

    shown = catalog(env, "show", "orders", "--json")
    assert json.loads(shown.stdout)["entity_type"] == "VIEW"


def test_estimate_failures_through_the_wire(env: dict[str, str], server: FakeBigQuery) -> None:
    server.fail("dry_run", status=400, reason="invalidQuery", message="Unrecognized name: statuz at [1:8]")
    server.fail("dry_run", status=400, reason="invalidQuery", message="Table name \"orders\" missing dataset")
    result = catalog(env, "guard", "SELECT statuz FROM orders", "--json")
    assert result.returncode == 4, result.stderr  # no estimate could be had: not "too expensive" (3)
    detail = json.loads(result.stdout)
    assert detail["reason"] == "remote_estimate_failed"
    assert detail["underlying"] == "BigQuery 400 invalidQuery: Unrecognized name: statuz at [1:8]"
    assert detail["underlying_original"] == "BigQuery 400 invalidQuery: Table name \"orders\" missing dataset"
    assert [seen.sql for seen in server.seen] == ["SELECT statuz FROM `data-proj.sales.orders_v` AS orders", "SELECT statuz FROM orders"]


def test_cap_0_turns_the_guard_off_end_to_end(env: dict[str, str], server: FakeBigQuery) -> None:
    server.scan_bytes = 1024 * GIB
    env["CATALOG_MAX_SCAN_BYTES"] = "0"
    result = catalog(env, "guard", "SELECT * FROM orders", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["allowed"], document["scan_bytes"], document["limit_bytes"]) == (True, None, 0)
    assert server.http_requests == 0


def run(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_refusals_that_need_no_bigquery(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(env, monkeypatch, capsys, "guard", "SELECT *\nFROM unit_economics\nWHERE (", "--json")
    detail = json.loads(out)
    assert code == 3 and (detail["reason"], detail["line"], detail["column"]) == ("invalid_sql", 3, 7)

    code, out, _ = run(env, monkeypatch, capsys, "guard", "SELECT * FROM `data-proj.finance.secret`", "--json")
    detail = json.loads(out)
    assert code == 3 and (detail["reason"], detail["paths"]) == ("bq_path_not_registered", ["data-proj.finance.secret"])

    code, out, _ = run(env, monkeypatch, capsys, "guard", "SELECT 1")
    assert code == 0 and out.startswith("allowed without an estimate: it reads no table")


def test_the_cap_comes_from_the_environment_then_catalog_yaml_then_the_default(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    def limit() -> int:
        code, out, err = run(env, monkeypatch, capsys, "guard", "SELECT 1", "--json")
        assert code == 0, err
        return int(json.loads(out)["limit_bytes"])

    assert limit() == 5368709120
    env["GUARD_CAP"] = "1000"  # through ${GUARD_CAP} in catalog.yaml
    assert limit() == 1000
    env["CATALOG_MAX_SCAN_BYTES"] = "2_000"
    assert limit() == 2000


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("CATALOG_MAX_SCAN_BYTES", "5GB", "CATALOG_MAX_SCAN_BYTES='5GB' must be a non-negative integer (bytes; 0 disables the cost guard)"),
    ("CATALOG_MAX_SCAN_BYTES", "-1", "CATALOG_MAX_SCAN_BYTES='-1' must be a non-negative integer"),
    ("CATALOG_MAX_SCAN_BYTES", "", "CATALOG_MAX_SCAN_BYTES='' must be a non-negative integer"),
    ("GUARD_CAP", "lots", "catalog.yaml:7: max_scan_bytes: must be a non-negative integer (bytes; 0 disables the cost guard), "
                          "got 'lots' (from '${GUARD_CAP:-5368709120}')"),
])
def test_a_bad_cap_is_a_configuration_error(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, message: str,
) -> None:
    env[variable] = value
    code, out, err = run(env, monkeypatch, capsys, "guard", "SELECT 1", "--json")
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_usage_errors_exit_2(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(env, monkeypatch, capsys, "guard", "   ")
    assert code == 2 and "no SQL given" in err
    with pytest.raises(SystemExit) as usage:
        main(["guard"])
    assert usage.value.code == 2


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bigquery_unreachable_is_exit_4_within_the_guard_timeout_and_names_no_url(env: dict[str, str]) -> None:
    host = f"127.0.0.1:{_closed_port()}"
    env.update({"BIGQUERY_EMULATOR_HOST": host, "CATALOG_GUARD_TIMEOUT_SECONDS": "2"})
    started = time.monotonic()
    result = catalog(env, "guard", "SELECT margin_eur FROM unit_economics", "--json")
    assert time.monotonic() - started < 15  # 2 s of retries plus interpreter start-up on a loaded machine
    assert result.returncode == 4, result.stderr
    detail = json.loads(result.stdout)
    assert detail["reason"] == "remote_estimate_failed" and detail["underlying"].startswith("BigQuery unreachable")
    assert host not in result.stdout + result.stderr and "http://" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_param_declares_query_parameters_and_a_bad_one_is_a_usage_error(
    env: dict[str, str], server: FakeBigQuery, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    sql = "SELECT margin_eur FROM unit_economics WHERE country = @country AND event_date >= @since AND id IN UNNEST(@ids)"
    code, out, err = run(env, monkeypatch, capsys, "guard", sql, "--json", "--param", "country=STRING:CZ",
                         "--param", "since=DATE:2026-01-01", "--param", "ids=ARRAY<INT64>:[1, 2]")
    assert code == 0, err
    assert set(server.seen[-1].params) == {"country", "since", "ids"}
    for bad, problem in (("country", "not NAME=TYPE:VALUE"), ("since=DATE:yesterday", "is not a DATE value"),
                         ("n=INTEGRAL:1", "unknown type 'INTEGRAL'")):
        code, out, err = run(env, monkeypatch, capsys, "guard", sql, "--param", bad)
        assert code == 2 and out == "" and problem in err and "Traceback" not in err


def test_stdin_that_is_not_utf8_is_invalid_sql_exit_3(env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "catalog", "guard", "-", "--json"], cwd=REPO, env=env,
                            input=b"SELECT '\xff\xfe' FROM unit_economics", capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["reason"] == "invalid_sql" and b"Traceback" not in result.stderr


def test_show_prints_json_null_never_python_none(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(env, monkeypatch, capsys, "show", "orders")
    assert code == 0
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["entity_type"] == "null" and lines["rows"] == "null" and lines["where_examples"] == "[]"
    assert "None" not in out
