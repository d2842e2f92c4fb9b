"""Cache rows -> the JSON rows of ``catalog list|show|status``. Never calls BigQuery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog.cache import Cache
from catalog.errors import UnknownTableError
from catalog.examples import ExampleProblem, advertised, parse_example, partition_example
from catalog.models import CatalogRow, TrackedTable, discovered_table
from catalog.registry import Registry
from tickless.clock import iso
from tickless.config.problems import closest

MIB = 1024 * 1024
GIB = 1024 * MIB
SIZE_HINTS = ((100 * MIB, "small"), (GIB, "medium"), (10 * GIB, "large"))


def rough_size_hint(size_bytes: int | None) -> str | None:
    if size_bytes is None:
        return None
    for limit, hint in SIZE_HINTS:
        if size_bytes <= limit:
            return hint
    return "very_large"


def freshness(row: CatalogRow | None, now: datetime, threshold_seconds: int) -> str:
    if row is None or (row.refreshed_at is None and row.error_at is None):
        return "never_fetched"
    if row.refreshed_at is None:
        return "error"
    return "fresh" if (now - row.refreshed_at).total_seconds() <= threshold_seconds else "stale"


def tracked_tables(registry: Registry, cache: Cache, cached: list[CatalogRow] | None = None) -> list[TrackedTable]:
    """Explicit tables in registry order, then tables found in tracked datasets, by id.

    ``cached`` is ``cache.rows()`` when the caller has already read them.
    """
    explicit = {(table.project, table.dataset, table.table) for table in registry.tables}
    whole = set(registry.datasets)
    found = [
        discovered_table(row.project, row.dataset, row.table)
        for row in (cache.rows() if cached is None else cached)
        if (row.project, row.dataset) in whole and row.id == f"{row.dataset}.{row.table}"
        and (row.project, row.dataset, row.table) not in explicit
    ]
    return list(registry.tables) + found


def find_tracked(registry: Registry, cache: Cache, table_id: str) -> TrackedTable:
    """A tracked table by id: exactly as written, else ignoring case; UnknownTableError (with a did-you-mean) otherwise.

    Exact first: ``analytics.Events`` and ``analytics.events`` can both be tracked (BigQuery names keep case).
    """
    tables = tracked_tables(registry, cache)
    wanted = table_id.lower()
    for table in sorted(tables, key=lambda table: table.id != table_id):
        if table.id.lower() == wanted:
            return table
    known = [table.id for table in tables]
    raise UnknownTableError(table_id, known, closest(table_id, known))


def where_examples(registry: Registry, table: TrackedTable, row: CatalogRow | None) -> list[str]:
    known = row.known_columns if row else None
    examples = list(registry.examples_for(table))
    if row is not None and row.partition_by:
        generated = partition_example(row.partition_by, row.partition_type, row.partition_range)
        if generated:
            try:
                examples.append(parse_example(generated))
            except ExampleProblem:  # a column name sqlglot cannot read back: advertise nothing rather than guess
                pass
    texts = advertised(examples, known)
    return list(dict.fromkeys(texts))


def table_json(registry: Registry, table: TrackedTable, row: CatalogRow | None, now: datetime, threshold: int) -> dict[str, Any]:
    return {
        "id": table.id,
        "name": table.name,
        "description": table.description,
        "source_type": "bigquery",
        "sql_flavor": "bigquery",
        "project": table.project,
        "dataset": table.dataset,
        "table": table.table,
        "entity_type": row.entity_type.value if row and row.entity_type else None,
        "rows": row.rows if row else None,
        "size_bytes": row.size_bytes if row else None,
        "rough_size_hint": rough_size_hint(row.size_bytes if row else None),
        "partition_by": row.partition_by if row else None,
        "clustered_by": row.clustered_by if row else None,
        "known_columns": row.known_columns if row else None,
        "where_examples": where_examples(registry, table, row),
        "metadata_freshness": freshness(row, now, threshold),
        "refreshed_at": iso(row.refreshed_at) if row and row.refreshed_at else None,
        "error_msg": row.error_msg if row else None,
    }


def status_json(table: TrackedTable, row: CatalogRow | None, now: datetime, threshold: int) -> dict[str, Any]:
    refreshed = row.refreshed_at if row else None
    return {
        "id": table.id,
        "entity_type": row.entity_type.value if row and row.entity_type else None,
        "metadata_freshness": freshness(row, now, threshold),
        "refreshed_at": iso(refreshed) if refreshed else None,
        "age_seconds": int((now - refreshed).total_seconds()) if refreshed else None,
        "error_at": iso(row.error_at) if row and row.error_at else None,
        "error_msg": row.error_msg if row else None,
    }
