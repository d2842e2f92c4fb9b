"""Harness 5, catalog refresh cost: BigQuery calls and wall time, batched vs per table.

A local BigQuery REST endpoint (the test suite's wire-format fake on a real
socket, given as BIGQUERY_EMULATOR_HOST) adds 50 ms to every call; 10 datasets
x 100 tables. This project: `python -m catalog refresh --json` as a command.
Baseline, in the same run: the reference's per-table strategy (columns, table
type and size queried per table, 4 at a time as its default concurrency),
through the same google-cloud-bigquery client and endpoint.
Self-checks: every table refreshed by both strategies, the per-table baseline
made its three calls per table, wall times positive.
Usage: python -m bench.catalog_refresh [--quick|--smoke]
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from bench.checks import CheckFailed, check_exit, run
from bench.common import ROOT, Mode, header, python, table, write_result
from tests.catalog.support import BILLING, PROJECT, Column, FakeBigQuery, FakeServer, Table

NAME = "catalog_refresh"
LATENCY = 0.050


class SlowFake(FakeBigQuery):
    """Every call takes LATENCY seconds, like a real round trip to BigQuery."""

    def handle(self, method: str, url: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        time.sleep(LATENCY)
        return super().handle(method, url, body)


def build_fake(datasets: int, tables: int) -> SlowFake:
    fake = SlowFake()
    columns = [Column("event_date", "DATE", partitioning=True), Column("user_id", "INT64", clustering=1),
               Column("country_code"), Column("amount", "NUMERIC")]
    for d in range(datasets):
        fake.add(f"d{d}", *[Table(f"t{t:03d}", columns=columns, rows=1000 + t, size=10_000 + t) for t in range(tables)])
    return fake


def run_ours(host: str, datasets: int, folder: Path) -> dict[str, Any]:
    config = folder / "catalog.yaml"
    names = ", ".join(f"d{d}" for d in range(datasets))
    config.write_text(f"bigquery:\n  project: {PROJECT}\n  billing_project: {BILLING}\ndatasets: [{names}]\n")
    env = {**os.environ, "BIGQUERY_EMULATOR_HOST": host, "CATALOG_CONFIG": str(config),
           "CATALOG_DB": str(folder / "catalog.sqlite"), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run([python(), "-m", "catalog", "refresh", "--json"], env=env, capture_output=True, text=True,
                            check=False)
    wall = time.perf_counter() - started
    check_exit(NAME, "catalog refresh --json", result.returncode, f"{result.stdout}\n{result.stderr}")
    summary = json.loads(result.stdout)
    return {"wall_seconds": round(wall, 3), "bigquery_calls": summary["bigquery_calls"], "tables": summary["total"],
            "succeeded": summary["succeeded"]}


def run_per_table(host: str, datasets: int, tables: int) -> dict[str, Any]:
    client = bigquery.Client(project=BILLING, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=f"http://{host}"))
    calls = 0
    lock = threading.Lock()

    def ask(sql: str, name: str) -> list[Any]:
        nonlocal calls
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("tables", "STRING", [name])])
        rows = list(client.query_and_wait(sql, job_config=config))
        with lock:
            calls += 1
        return rows

    def one(dataset: str, name: str) -> None:
        path = f"`{PROJECT}`.`{dataset}`"
        ask(f"SELECT table_name, column_name, data_type FROM {path}.INFORMATION_SCHEMA.COLUMNS "
            "WHERE table_name IN UNNEST(@tables)", name)
        ask(f"SELECT table_name, table_type FROM {path}.INFORMATION_SCHEMA.TABLES WHERE table_name IN UNNEST(@tables)", name)
        ask(f"SELECT table_id, row_count, size_bytes FROM {path}.__TABLES__ WHERE table_id IN UNNEST(@tables)", name)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda job: one(*job), [(f"d{d}", f"t{t:03d}") for d in range(datasets) for t in range(tables)]))
    wall = time.perf_counter() - started
    client.close()
    return {"wall_seconds": round(wall, 3), "bigquery_calls": calls, "tables": datasets * tables}


def check_figures(ours: dict[str, Any], baseline: dict[str, Any], datasets: int, tables: int) -> None:
    """Both strategies refreshed every table, and the counts they report are the calls they made."""
    total = datasets * tables
    if ours["tables"] != total or ours["succeeded"] != total:
        raise CheckFailed(NAME, "every table refreshed",
                          f"tickless refreshed {ours['succeeded']} of {ours['tables']} tables, expected {total} of {total}")
    if not 0 < ours["bigquery_calls"]:
        raise CheckFailed(NAME, "calls counted", f"tickless reports {ours['bigquery_calls']} BigQuery calls")
    if baseline["tables"] != total or baseline["bigquery_calls"] != 3 * total:
        raise CheckFailed(NAME, "every table refreshed",
                          f"per-table baseline made {baseline['bigquery_calls']} calls for {baseline['tables']} tables, "
                          f"expected {3 * total} for {total}")
    for label, figures in (("tickless", ours), ("per table", baseline)):
        if not figures["wall_seconds"] > 0:
            raise CheckFailed(NAME, "positive wall time", f"{label}: {figures['wall_seconds']} s")


def main() -> None:
    mode = Mode.from_argv()
    datasets, tables = mode.pick(full=(10, 100), quick=(10, 20), smoke=(2, 3))
    print(header("catalog refresh cost") + ("  [smoke]" if mode is Mode.SMOKE else ""))
    fake = build_fake(datasets, tables)
    server = FakeServer(fake)
    try:
        ours = run_ours(server.host, datasets, Path(tempfile.mkdtemp()))
        baseline = run_per_table(server.host, datasets, tables)
    finally:
        server.close()
    check_figures(ours, baseline, datasets, tables)
    speedup = baseline["wall_seconds"] / ours["wall_seconds"]
    print(f"{datasets} datasets x {tables} tables, {LATENCY * 1000:.0f} ms per BigQuery call")
    print(table(
        ["strategy", "tables", "BigQuery calls", "calls per dataset", "wall s"],
        [["tickless (batched per dataset)", ours["tables"], ours["bigquery_calls"], ours["bigquery_calls"] / datasets,
          ours["wall_seconds"]],
         ["per table (reference)", baseline["tables"], baseline["bigquery_calls"], baseline["bigquery_calls"] / datasets,
          baseline["wall_seconds"]]],
    ))
    print(f"wall time: {speedup:.1f}x lower (targets: <= 3 calls per dataset + 1 per region; >= 20x lower wall time)")
    write_result(NAME, {"quick": mode is Mode.QUICK, "datasets": datasets, "tables_per_dataset": tables,
                        "latency_ms": LATENCY * 1000, "tickless": ours, "per_table": baseline,
                        "wall_time_ratio": round(speedup, 2)}, mode)


if __name__ == "__main__":
    raise SystemExit(run(NAME, main))
