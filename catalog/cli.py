"""The command line, ``catalog refresh | list | show | status | guard``: a thin shell over ``catalog.Catalog``.

Parses arguments, prints, and is the only place errors become exit codes:
0 ok (or a query allowed), 1 a refresh finished with failed tables,
2 bad configuration or usage, 3 the cost guard refused the query on its
merits, 4 the guard could not get an estimate (``remote_estimate_failed``).
Reads never call BigQuery (nor import its client).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from catalog.errors import CatalogError, ConfigError, EstimateFailed, ParameterError, QueryGuardError, bytes_text
from catalog.guard import guard_query
from catalog.library import Catalog
from catalog.refresh import refresh_catalog
from catalog.refresh.run import RefreshStatus

EXIT_OK, EXIT_RUN_FAILED, EXIT_CONFIG, EXIT_REFUSED, EXIT_NO_ESTIMATE = 0, 1, 2, 3, 4


def _print_json(document: object, *, ascii_only: bool = True) -> None:
    # Indented for a person at a terminal; compact for a script, where
    # json.dumps(indent=...) would cost three times as long on a 10,000-row list.
    indent = 2 if sys.stdout.isatty() else None
    print(json.dumps(document, indent=indent, ensure_ascii=ascii_only))


def cmd_refresh(args: argparse.Namespace) -> int:
    with Catalog.from_env() as catalog:
        summary = refresh_catalog(catalog, args.table or None)
    if args.json:
        _print_json(summary.to_json())
    elif summary.status is RefreshStatus.ALREADY_RUNNING:
        print(f"a refresh is already running (run_id {summary.run_id}, started {summary.started_at}); nothing done")
    else:
        print(
            f"refreshed {summary.total} table(s): {summary.succeeded} ok, {summary.no_data} no data, "
            f"{summary.failed} failed; {summary.bigquery_calls} BigQuery calls in {summary.duration_ms} ms (run {summary.run_id})"
        )
        for table_id, message in sorted(summary.failures.items()):
            print(f"  {table_id}: {message}")
    return EXIT_RUN_FAILED if summary.failed else EXIT_OK


def write_listing_json(catalog: Catalog, out: TextIO) -> None:
    """``catalog list --json`` into ``out``: indented at a terminal, compact otherwise, as ``_print_json`` prints.

    The compact text, for a script, is streamed from the cache's stored rows (``Catalog.listing_json``):
    10,000 rows in a fraction of the time building and dumping them takes.
    """
    if out.isatty():
        out.write(json.dumps(catalog.listing(), indent=2))
    else:
        for piece in catalog.listing_json():
            out.write(piece)
    out.write("\n")


def cmd_list(args: argparse.Namespace) -> int:
    with Catalog.from_env() as catalog:
        if args.json:
            write_listing_json(catalog, sys.stdout)
            return EXIT_OK
        document = catalog.listing()
    rows = document["tables"]
    width = max([len(row["id"]) for row in rows] + [2])
    print(f"{'id':<{width}}  {'entity_type':<17}  {'rows':>12}  {'size':<10}  freshness")
    for row in rows:
        count = "-" if row["rows"] is None else str(row["rows"])
        print(f"{row['id']:<{width}}  {row['entity_type'] or '-':<17}  {count:>12}  {row['rough_size_hint'] or '-':<10}  "
              f"{row['metadata_freshness']}{'  error: ' + row['error_msg'] if row['error_msg'] else ''}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    with Catalog.from_env() as catalog:
        row = catalog.row(args.id)
    if args.json:
        _print_json(row)
        return EXIT_OK
    for key, value in row.items():
        # JSON for everything that is not plain text: null, never Python's None; true, never True.
        print(f"{key}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with Catalog.from_env() as catalog:
        document = catalog.status()
    if args.json:
        _print_json(document)
        return EXIT_OK
    print(f"fresh = refreshed within {document['fresh_threshold_seconds']}s (2 x SCHEDULER_BQ_METADATA_REFRESH_INTERVAL)")
    for table in document["tables"]:
        age = "-" if table["age_seconds"] is None else f"{table['age_seconds']}s ago"
        error = f"  error at {table['error_at']}: {table['error_msg']}" if table["error_msg"] else ""
        print(f"{table['id']}: {table['metadata_freshness']} ({age}){error}")
    return EXIT_OK


def _parameters(texts: list[str]) -> Sequence[object]:
    """``--param NAME=TYPE:VALUE`` -> query parameters (ParameterError, a usage error, for a bad one)."""
    if not texts:
        return []
    from catalog.bigquery import query_parameter  # a guard with parameters is about to dry-run: the client is loaded anyway

    found: list[object] = []
    for text in texts:
        name, equals, typed = text.partition("=")
        type_name, colon, value = typed.partition(":")
        if not equals or not colon or not name.strip().isidentifier():
            raise ParameterError(text, "not NAME=TYPE:VALUE")
        try:
            found.append(query_parameter(name.strip(), type_name, value))
        except ValueError as exc:
            raise ParameterError(text, str(exc)) from None
    return found


def cmd_guard(args: argparse.Namespace) -> int:
    # stdin as bytes: text that is not UTF-8 is the guard's to refuse (invalid_sql), not a traceback here.
    sql: str | bytes = sys.stdin.buffer.read() if args.sql == "-" else args.sql
    if not sql.strip():
        print("catalog guard: no SQL given (pass it as the argument, or '-' to read it from stdin)", file=sys.stderr)
        return EXIT_CONFIG
    parameters = _parameters(args.param or [])
    try:
        with Catalog.from_env() as catalog:
            result = guard_query(sql, catalog, parameters)
    except QueryGuardError as refused:
        if args.json:
            _print_json(refused.detail, ascii_only=False)  # the suggestion is prose for people too
        else:
            print(f"refused ({refused.reason}): {refused}")
            print(f"suggestion: {refused.detail.get('suggestion')}")
        return EXIT_NO_ESTIMATE if isinstance(refused, EstimateFailed) else EXIT_REFUSED
    if args.json:
        _print_json(result.to_json())
        return EXIT_OK
    if result.scan_bytes is None:
        why = ("the cost guard is off (max_scan_bytes 0)" if not result.limit_bytes
               else "it reads only tables of projects allowed unestimated" if result.untracked_tables
               else "it reads no table")
        print(f"allowed without an estimate: {why}")
    else:
        print(f"allowed: the query would scan {bytes_text(result.scan_bytes)} ({result.scan_bytes} bytes) "
              f"of the {bytes_text(result.limit_bytes)} cap")
    for label, value in (("tables", ", ".join(result.tables)), ("untracked tables", ", ".join(result.untracked_tables)),
                         ("maximum_bytes_billed", result.maximum_bytes_billed()), ("note", result.note), ("sql", result.sql)):
        if value:
            print(f"{label}: {value}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catalog", description="BigQuery metadata cache (CATALOG_CONFIG registry, CATALOG_DB SQLite file)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    refresh_cmd = commands.add_parser("refresh", help="fetch metadata from BigQuery into the cache")
    refresh_cmd.add_argument("--table", action="append", metavar="ID", help="only this table (repeatable)")
    refresh_cmd.set_defaults(handler=cmd_refresh)
    commands.add_parser("list", help="every tracked table from the cache").set_defaults(handler=cmd_list)
    show = commands.add_parser("show", help="one table from the cache")
    show.add_argument("id", metavar="ID")
    show.set_defaults(handler=cmd_show)
    commands.add_parser("status", help="freshness of every tracked table").set_defaults(handler=cmd_status)
    guard = commands.add_parser("guard", help="estimate a query and refuse it when it would scan more than the cap")
    guard.add_argument("sql", metavar="SQL", help="the query, or '-' to read it from stdin")
    guard.add_argument("--param", action="append", metavar="NAME=TYPE:VALUE",
                       help="a query parameter @NAME, e.g. country=STRING:CZ or ids=ARRAY<INT64>:[1,2] (repeatable)")
    guard.set_defaults(handler=cmd_guard)
    for sub in (refresh_cmd, show, guard, *[commands.choices[name] for name in ("list", "status")]):
        sub.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to a Command" notes are the guard's to judge
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"catalog: {len(exc.problems)} configuration problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return EXIT_CONFIG
    except CatalogError as exc:
        print(f"catalog: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
