"""Presenting tracked tables: a table and its cache row -> the JSON row of ``catalog list|show|status``.

Freshness, the rough size hint and the advertised where_examples are worked
out here, from the cache alone: nothing here calls BigQuery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog.examples import ExampleProblem, advertised, parse_example, partition_example
from catalog.models import CatalogRow, TrackedTable
from catalog.registry import Registry
from tickless.clock import iso

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
        "shard_count": row.shard_count if row else None,
        "newest_shard": row.newest_shard if row else None,
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
