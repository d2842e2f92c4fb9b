"""The catalog's value types: what is tracked, what BigQuery said, what is cached."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache


class EntityType(StrEnum):
    """BigQuery's ``table_type``, in INFORMATION_SCHEMA.TABLES spelling."""

    BASE_TABLE = "BASE TABLE"
    VIEW = "VIEW"
    MATERIALIZED_VIEW = "MATERIALIZED VIEW"
    EXTERNAL = "EXTERNAL"
    SNAPSHOT = "SNAPSHOT"
    CLONE = "CLONE"

    @property
    def has_storage(self) -> bool:
        # A view and an external table store nothing in BigQuery: their rows and size are unknown, never 0.
        # A materialized view does store its result, and BigQuery reports its rows and bytes.
        return self not in (EntityType.VIEW, EntityType.EXTERNAL)


# tables.get spells a base table "TABLE" and uses underscores.
_ALIASES = {"TABLE": EntityType.BASE_TABLE}


@lru_cache(maxsize=64)
def parse_entity_type(text: str) -> EntityType:
    """``MATERIALIZED_VIEW`` and ``materialized view`` both -> MATERIALIZED VIEW."""
    spaced = " ".join(text.strip().upper().replace("_", " ").split())
    if spaced in _ALIASES:
        return _ALIASES[spaced]
    try:
        return EntityType(spaced)
    except ValueError:
        raise ValueError(f"unknown BigQuery table_type {text!r}") from None


@dataclass(frozen=True)
class PartitionRange:
    """Integer-range partitioning: ``RANGE_BUCKET(col, GENERATE_ARRAY(start, end, interval))``."""

    start: int
    end: int
    interval: int


@dataclass(frozen=True)
class TableMetadata:
    """Everything one refresh learns about one table."""

    entity_type: EntityType
    rows: int | None
    size_bytes: int | None
    partition_by: str | None
    partition_type: str | None  # data type of the partitioning column
    partition_range: PartitionRange | None
    clustered_by: list[str]
    known_columns: list[str]
    shard_count: int | None = None  # a wildcard family: how many tables it matches
    newest_shard: str | None = None  # ... and the last of them by name (events_20260131)


@dataclass(frozen=True)
class TrackedTable:
    """One table the registry asks to track.

    ``id`` is the registry key (explicit tables) or ``dataset.table`` for
    tables found through ``datasets:``; lookups ignore case.
    """

    id: str
    project: str
    dataset: str
    table: str
    name: str
    description: str | None = None
    discovered: bool = False

    @property
    def location(self) -> tuple[str, str]:
        """(project, dataset): where the table is, as a pair (not its BigQuery region)."""
        return (self.project, self.dataset)

    @property
    def is_family(self) -> bool:
        """A wildcard table family (``events_*``): every table whose name starts with the prefix."""
        return self.table.endswith("*")

    def covers(self, name: str) -> bool:
        """Whether ``name`` (a table, or a narrower wildcard such as ``events_2026*``) belongs to this family."""
        return self.is_family and name.startswith(self.table[:-1])


@dataclass(frozen=True)
class CatalogRow:
    """One cached row. ``None`` means never learned; ``[]`` means learned and empty."""

    id: str
    project: str
    dataset: str
    table: str
    entity_type: EntityType | None = None
    rows: int | None = None
    size_bytes: int | None = None
    partition_by: str | None = None
    partition_type: str | None = None
    partition_range: PartitionRange | None = None
    clustered_by: list[str] | None = None
    known_columns: list[str] | None = None
    refreshed_at: datetime | None = None
    error_at: datetime | None = None
    error_msg: str | None = None
    shard_count: int | None = None
    newest_shard: str | None = None


def discovered_table(project: str, dataset: str, name: str) -> TrackedTable:
    """A table found in a dataset tracked whole: its id is ``dataset.table``."""
    return TrackedTable(f"{dataset}.{name}", project, dataset, name, f"{dataset}.{name}", discovered=True)
