"""Harness 6, catalog reads and the guard's own decision time.

`catalog list --json` with 10,000 cached rows (filled by a real `catalog
refresh` against the local fake endpoint), timed in-process and as a command;
and `check_query` timed with the dry run's own time taken out (the dry run is
BigQuery's cost, not the guard's). Baseline in the same run: `json.dumps` of
the same rows, the floor any list command pays. Usage: python -m bench.catalog_reads [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, header, python, table, write_result
from catalog import cli
from catalog.bigquery import connect
from catalog.cache import Cache
from catalog.errors import QueryGuardError
from catalog.guard import check_query
from catalog.registry import load_registry
from catalog.settings import load_settings
from tests.catalog.support import BILLING, PROJECT, Column, FakeBigQuery, FakeServer, Table


def main() -> None:
    quick = "--quick" in sys.argv
    datasets, per_dataset = 10, (100 if quick else 1000)
    print(header("catalog reads and guard"))
    fake = FakeBigQuery()
    columns = [Column("event_date", "DATE", partitioning=True), Column("user_id", "INT64", clustering=1), Column("country_code")]
    for d in range(datasets):
        fake.add(f"d{d}", *[Table(f"t{t:04d}", columns=columns, rows=t, size=t * 1000) for t in range(per_dataset)])
    fake.add("views", Table("orders_v", "VIEW", rows=None, size=None, columns=[Column("order_date", "DATE")]))
    fake.scan_bytes = 10 * 1024**3
    server = FakeServer(fake)
    folder = Path(tempfile.mkdtemp())
    config = folder / "catalog.yaml"
    names = ", ".join(f"d{d}" for d in range(datasets))
    config.write_text(
        f"bigquery:\n  project: {PROJECT}\n  billing_project: {BILLING}\n"
        f"tables:\n  orders_v: {{dataset: views, table: orders_v}}\n"
        f"datasets: [{names}]\nwhere_examples:\n  - \"country_code = 'CZ'\"\n"
    )
    env = {**os.environ, "BIGQUERY_EMULATOR_HOST": server.host, "CATALOG_CONFIG": str(config),
           "CATALOG_DB": str(folder / "catalog.sqlite"), "PYTHONPATH": str(ROOT)}
    subprocess.run([python(), "-m", "catalog", "refresh", "--json"], env=env, check=True, capture_output=True)

    settings = load_settings(env)
    registry = load_registry(settings.config_path, env)
    in_process = []
    for _ in range(5):
        started = time.perf_counter()
        rows = cli._rows(settings, registry)
        json.dumps({"tables": rows})
        in_process.append(time.perf_counter() - started)
    floor = []
    for _ in range(5):
        started = time.perf_counter()
        json.dumps({"tables": rows})
        floor.append(time.perf_counter() - started)
    command = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([python(), "-m", "catalog", "list", "--json"], env=env, check=True, capture_output=True)
        command.append(time.perf_counter() - started)

    source = connect(BILLING, None, emulator_endpoint=settings.emulator_endpoint)
    spent_estimating = 0.0
    estimate = source.estimate

    def timed_estimate(sql: str):  # type: ignore[no-untyped-def]
        nonlocal spent_estimating
        started = time.perf_counter()
        try:
            return estimate(sql)
        finally:
            spent_estimating += time.perf_counter() - started

    source.estimate = timed_estimate  # type: ignore[method-assign]
    decisions: dict[str, list[float]] = {"refused (base table)": [], "refused (view)": [], "no tracked table": []}
    queries = {
        "refused (base table)": "SELECT * FROM `d3.t0042` WHERE country_code = 'CZ'",
        "refused (view)": "SELECT * FROM orders_v LIMIT 1",
        "no tracked table": "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    }
    with Cache(settings.db_path) as cache:
        for label, sql in queries.items():
            for _ in range(30 if quick else 200):
                spent_estimating = 0.0
                started = time.perf_counter()
                try:
                    check_query(sql, env=env, settings=settings, registry=registry, cache=cache, source=source)
                except QueryGuardError:
                    pass
                decisions[label].append(time.perf_counter() - started - spent_estimating)
    source.close()
    server.close()

    count = len(rows)
    figures = {
        "rows": count,
        "list_in_process_ms": round(statistics.median(in_process) * 1000, 1),
        "json_dumps_floor_ms": round(statistics.median(floor) * 1000, 1),
        "list_command_ms": round(statistics.median(command) * 1000, 1),
        "guard_decision_ms": {label: round(statistics.median(values) * 1000, 3) for label, values in decisions.items()},
    }
    print(f"{count:,} cached rows")
    print(table(["read", "median ms", "target"], [
        ["catalog list --json, in-process", figures["list_in_process_ms"], "< 200"],
        ["  of which json.dumps alone (floor)", figures["json_dumps_floor_ms"], ""],
        ["catalog list --json, as a command", figures["list_command_ms"], ""],
        *[[f"guard decision, {label}", value, "< 5"] for label, value in figures["guard_decision_ms"].items()],
    ]))
    path = write_result("catalog_reads", {"quick": quick, **figures})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
