"""Harness 6, catalog reads and the guard's own decision time.

`catalog list --json` with 10,000 cached rows (filled by a real `catalog
refresh` against the local fake endpoint), timed in-process (the command's own
`write_listing_json` into an in-memory text stream, as it writes to a pipe) and
as a command; and the guard (`Catalog.guard`) timed with the dry run's own time
taken out (the dry run is BigQuery's cost, not the guard's). Baselines in the
same run: `json.dumps` of the same rows, the floor a list that builds its rows
pays, and `Catalog.rows()` + `json.dumps` (the rows as dicts, as list printed
them before it wrote from the stored rows).
Self-checks: every cached table listed (in-process and by the command), the
in-process text byte for byte `json.dumps` of the listing, each guard query
decided the way its label says, the dry run actually taken out of the refused
queries' time, no negative time. Usage: python -m bench.catalog_reads [--quick|--smoke]
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.checks import CheckFailed, check_exit, check_nonempty, run
from bench.common import ROOT, Mode, header, python, table, write_result
from catalog import Catalog
from catalog.bigquery import connect
from catalog.cli import write_listing_json
from catalog.errors import QueryGuardError
from catalog.guard import guard_query
from catalog.registry import Registry
from catalog.settings import CatalogSettings
from tests.catalog.support import BILLING, PROJECT, Column, FakeBigQuery, FakeServer, Table

NAME = "catalog_reads"


def main() -> None:
    mode = Mode.from_argv()
    datasets, per_dataset = mode.pick(full=(10, 1000), quick=(10, 100), smoke=(2, 5))
    repeats, commands, decisions_per_query = mode.pick(full=(5, 3, 200), quick=(5, 3, 30), smoke=(2, 1, 3))
    print(header("catalog reads and guard") + ("  [smoke]" if mode is Mode.SMOKE else ""))
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
    refreshed = subprocess.run([python(), "-m", "catalog", "refresh", "--json"], env=env, check=False, capture_output=True,
                               text=True)
    check_exit(NAME, "catalog refresh (filling the cache)", refreshed.returncode, refreshed.stdout + refreshed.stderr)
    expected_rows = datasets * per_dataset + 1  # every table of every dataset, and the tracked view

    configured = Catalog.from_env(env)
    settings, registry = configured.settings, configured.registry
    in_process = []
    for _ in range(repeats):
        out = io.StringIO()  # not a terminal: the compact text a script reads
        started = time.perf_counter()
        with Catalog(settings, registry) as catalog:  # as `catalog list --json` does: open the cache, write every row
            write_listing_json(catalog, out)
        in_process.append(time.perf_counter() - started)
        count = _listed_tables(out.getvalue())
        if count != expected_rows:
            raise CheckFailed(NAME, "every cached table listed", f"in-process list printed {count} tables, expected {expected_rows}")
    _check_same_text(settings, registry)
    as_dicts = []
    rows: list[dict[str, Any]] = []
    for _ in range(repeats):
        started = time.perf_counter()
        with Catalog(settings, registry) as catalog:
            rows = catalog.rows()
        json.dumps({"tables": rows})
        as_dicts.append(time.perf_counter() - started)
    floor = []
    for _ in range(repeats):
        started = time.perf_counter()
        json.dumps({"tables": rows})
        floor.append(time.perf_counter() - started)
    command = []
    for _ in range(commands):
        started = time.perf_counter()
        listed = subprocess.run([python(), "-m", "catalog", "list", "--json"], env=env, check=False, capture_output=True,
                                text=True)
        command.append(time.perf_counter() - started)
        check_exit(NAME, "catalog list --json", listed.returncode, listed.stderr)
        count = _listed_tables(listed.stdout)
        if count != expected_rows:
            raise CheckFailed(NAME, "every cached table listed", f"catalog list --json printed {count} tables, expected {expected_rows}")

    source = connect(BILLING, None, emulator_endpoint=settings.emulator_endpoint)
    spent_estimating = 0.0
    estimate = source.estimate

    def timed_estimate(*args: Any, **kwargs: Any) -> Any:
        # Passes everything through: the estimate's signature is the client's business (it gained
        # `parameters`, and a wrapper that named only `sql` crashed the harness), its time is ours.
        nonlocal spent_estimating
        started = time.perf_counter()
        try:
            return estimate(*args, **kwargs)
        finally:
            spent_estimating += time.perf_counter() - started

    source.estimate = timed_estimate  # type: ignore[method-assign]
    decisions: dict[str, list[float]] = {"refused (base table)": [], "refused (view)": [], "no tracked table": []}
    base = mode.pick(full="d3.t0042", quick="d3.t0042", smoke="d1.t0004")
    queries = {  # label: (sql, refused?)
        "refused (base table)": (f"SELECT * FROM `{base}` WHERE country_code = 'CZ'", True),
        "refused (view)": ("SELECT * FROM orders_v LIMIT 1", True),
        "no tracked table": ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", False),
    }
    estimated: dict[str, float] = {}
    with Catalog(settings, registry, source=source) as catalog:
        for label, (sql, refused) in queries.items():
            for _ in range(decisions_per_query):
                spent_estimating = 0.0
                started = time.perf_counter()
                outcome = "allowed"
                try:
                    guard_query(sql, catalog)
                except QueryGuardError:
                    outcome = "refused"
                decisions[label].append(time.perf_counter() - started - spent_estimating)
                estimated[label] = estimated.get(label, 0.0) + spent_estimating
                if (outcome == "refused") != refused:
                    raise CheckFailed(NAME, "guard decided as labelled", f"{label!r}: {sql!r} was {outcome}")
    source.close()
    server.close()

    _check_decisions(decisions, estimated)
    count = len(rows)
    guard_ms = {label: round(statistics.median(values) * 1000, 3) for label, values in decisions.items()}
    figures: dict[str, Any] = {
        "rows": count,
        "list_in_process_ms": round(statistics.median(in_process) * 1000, 1),
        "json_dumps_floor_ms": round(statistics.median(floor) * 1000, 1),
        "rows_as_dicts_ms": round(statistics.median(as_dicts) * 1000, 1),
        "list_command_ms": round(statistics.median(command) * 1000, 1),
        "guard_decision_ms": guard_ms,
    }
    print(f"{count:,} cached rows")
    print(table(["read", "median ms", "target"], [
        ["catalog list --json, in-process", figures["list_in_process_ms"], "< 200"],
        ["json.dumps of the rows alone (floor)", figures["json_dumps_floor_ms"], ""],
        ["Catalog.rows() + json.dumps (as dicts)", figures["rows_as_dicts_ms"], ""],
        ["catalog list --json, as a command", figures["list_command_ms"], ""],
        *[[f"guard decision, {label}", value, "< 5"] for label, value in guard_ms.items()],
    ]))
    write_result(NAME, {"quick": mode is Mode.QUICK, **figures}, mode)


def _listed_tables(stdout: str) -> int:
    document = json.loads(stdout)
    tables = document["tables"] if isinstance(document, dict) else document
    return len(tables)


def _check_same_text(settings: CatalogSettings, registry: Registry) -> None:
    """What list writes is, byte for byte, json.dumps of the listing's rows at the same time."""
    now = datetime.now(UTC)
    out = io.StringIO()
    with Catalog(settings, registry, clock=lambda: now) as catalog:
        write_listing_json(catalog, out)
        expected = json.dumps(catalog.listing()) + "\n"
    if out.getvalue() != expected:
        at = next((i for i, (a, b) in enumerate(zip(out.getvalue(), expected, strict=False)) if a != b), len(expected))
        raise CheckFailed(NAME, "list prints json.dumps of its rows",
                          f"differs at character {at}: {out.getvalue()[at - 40:at + 40]!r} != {expected[at - 40:at + 40]!r}")


def _check_decisions(decisions: dict[str, list[float]], estimated: dict[str, float]) -> None:
    """The timed figure is the guard's own time: non-negative, and a refusal by dry run had its dry run taken out."""
    for label, values in decisions.items():
        check_nonempty(NAME, f"guard decision, {label}", values)
        if min(values) < 0:
            raise CheckFailed(NAME, "non-negative decision time", f"{label!r}: {min(values) * 1000:.3f} ms")
    if estimated.get("refused (base table)", 0.0) <= 0:
        raise CheckFailed(NAME, "dry run timed", "'refused (base table)' never called the timed estimate: its dry run "
                          "was not taken out (the guard no longer calls source.estimate?)")


if __name__ == "__main__":
    raise SystemExit(run(NAME, main))
