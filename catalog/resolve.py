"""``catalog refresh --table ID``: which tracked table an id on the command line means.

A registry id, or ``dataset.table`` inside a dataset tracked whole; split from
catalog.refresh.
"""

from __future__ import annotations

from catalog.cache import Cache
from catalog.models import TrackedTable, discovered_table
from catalog.registry import Registry


def resolve(registry: Registry, table_id: str, cache: Cache | None = None) -> TrackedTable:
    """A registry id, or ``dataset.table`` inside a dataset tracked whole (case-insensitive)."""
    explicit = registry.find(table_id)
    if explicit is not None:
        return explicit
    dataset, dot, name = table_id.partition(".")
    for project, tracked in registry.datasets:
        if dot and name and tracked.lower() == dataset.lower():
            # BigQuery table names are case-sensitive; a known row knows the real spelling.
            return discovered_table(project, tracked, _spelling(cache, project, tracked, name))
    return registry.require(table_id, [f"{dataset}.*" for _, dataset in registry.datasets])


def _spelling(cache: Cache | None, project: str, dataset: str, name: str) -> str:
    """The cached table name ``name`` means: the exact one, else the only one differing in case, else ``name``."""
    rows = [row for row in (cache.find_ignoring_case(f"{dataset}.{name}") if cache is not None else [])
            if (row.project, row.dataset) == (project, dataset) and row.id == f"{row.dataset}.{row.table}"]
    names = [row.table for row in rows]
    return name if name in names or len(names) != 1 else names[0]


def dedupe(tables: list[TrackedTable]) -> list[TrackedTable]:
    return list({table.id.lower(): table for table in tables}.values())
