"""The SQLite metadata cache: one row per tracked table.

WAL mode, so readers never block a refresh and several processes can share
the file. The schema is versioned with ``PRAGMA user_version`` and migrated
forward when the file is opened. ``[]`` and null stay distinct: lists are
stored as JSON text and NULL means "never learned".

Values are stored in the form ``catalog list --json`` prints them: lists as
``json.dumps`` text (ASCII, default separators), times as ``iso()`` text
(UTC, milliseconds, fixed width, so they sort as the times they name). Every
version of the cache has written them so, and the listing copies them as they
are (``StoredRow``) instead of decoding and encoding them again.

Rows are keyed by ``cache_key(id)``: a registry id ignores case, while a
discovered ``dataset.table`` id is a BigQuery path and keeps it, so
``analytics.Events`` and ``analytics.events`` are two rows.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from catalog.errors import CacheError
from catalog.models import CatalogRow, EntityType, PartitionRange, TableMetadata, TrackedTable, parse_entity_type
from tickless.clock import iso, parse_iso

logger = logging.getLogger("catalog.cache")

ERROR_MSG_LIMIT = 512

def cache_key(table_id: str) -> str:
    """The row key: registry ids (never a dot) ignore case; ``dataset.table`` ids are BigQuery paths and keep it."""
    return table_id if "." in table_id else table_id.lower()


# MIGRATIONS[n] takes a file from user_version n to n + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the shape before entity types: sizes, partitioning, clustering, errors.
    (
        """CREATE TABLE tables (
            id TEXT PRIMARY KEY COLLATE NOCASE,
            project TEXT NOT NULL,
            dataset TEXT NOT NULL,
            table_name TEXT NOT NULL,
            rows INTEGER,
            size_bytes INTEGER,
            partition_by TEXT,
            clustered_by TEXT,
            refreshed_at TEXT,
            error_at TEXT,
            error_msg TEXT
        )""",
    ),
    # 2: what a view is, which columns exist, and how the partition column is typed.
    (
        "ALTER TABLE tables ADD COLUMN entity_type TEXT",
        "ALTER TABLE tables ADD COLUMN known_columns TEXT",
        "ALTER TABLE tables ADD COLUMN partition_type TEXT",
        "ALTER TABLE tables ADD COLUMN partition_range TEXT",
    ),
    # 3: keyed by cache_key(id), not by id COLLATE NOCASE, which merged analytics.Events into analytics.events.
    (
        """CREATE TABLE tables_v3 (
            key TEXT PRIMARY KEY,
            id TEXT NOT NULL,
            project TEXT NOT NULL,
            dataset TEXT NOT NULL,
            table_name TEXT NOT NULL,
            rows INTEGER,
            size_bytes INTEGER,
            partition_by TEXT,
            clustered_by TEXT,
            refreshed_at TEXT,
            error_at TEXT,
            error_msg TEXT,
            entity_type TEXT,
            known_columns TEXT,
            partition_type TEXT,
            partition_range TEXT
        )""",
        """INSERT INTO tables_v3 (key, id, project, dataset, table_name, rows, size_bytes, partition_by,
               clustered_by, refreshed_at, error_at, error_msg, entity_type, known_columns, partition_type, partition_range)
           SELECT CASE WHEN instr(id, '.') > 0 THEN id ELSE lower(id) END, id, project, dataset, table_name, rows,
               size_bytes, partition_by, clustered_by, refreshed_at, error_at, error_msg, entity_type, known_columns,
               partition_type, partition_range
           FROM tables""",
        "DROP TABLE tables",
        "ALTER TABLE tables_v3 RENAME TO tables",
    ),
    # 4: wildcard families (how many shards, the newest), and where each dataset lives, learned once.
    (
        "ALTER TABLE tables ADD COLUMN shard_count INTEGER",
        "ALTER TABLE tables ADD COLUMN newest_shard TEXT",
        """CREATE TABLE dataset_locations (
            project TEXT NOT NULL,
            dataset TEXT NOT NULL,
            location TEXT NOT NULL,
            learned_at TEXT NOT NULL,
            PRIMARY KEY (project, dataset)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _json_list(text: str | None) -> list[str] | None:
    return None if text is None else list(json.loads(text))


class Cache:
    """One connection, shared by the refresh threads under a lock."""

    def __init__(self, path: Path, *, target_version: int = SCHEMA_VERSION) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(str(path), f"cannot create its folder: {exc.strerror or exc}") from None
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise CacheError(str(path), f"cannot open it: {exc}", "check the path and its permissions (CATALOG_DB)") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._migrate(target_version)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CacheError(
                str(path), f"unreadable or corrupt ({exc})",
                "move the file away and run 'catalog refresh' to rebuild it",
            ) from None

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @property
    def user_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, target: int) -> None:
        if self.user_version >= target:
            if self.user_version > SCHEMA_VERSION:
                raise CacheError(
                    str(self.path), f"schema version {self.user_version} is newer than this tickless understands ({SCHEMA_VERSION})",
                    "upgrade tickless or point CATALOG_DB at another file",
                )
            return
        # IMMEDIATE: two processes opening an old file migrate it once, in turn.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self.user_version
            for number in range(version, target):
                for statement in MIGRATIONS[number]:
                    self._db.execute(statement)
                logger.info("catalog cache %s migrated to schema version %d", self.path, number + 1)
            self._db.execute(f"PRAGMA user_version = {int(target)}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                self._db.row_factory = sqlite3.Row
                return list(self._db.execute(sql, params).fetchall())
            except sqlite3.DatabaseError as exc:
                raise CacheError(str(self.path), f"{exc}") from None

    def record_success(self, table: TrackedTable, meta: TableMetadata, at: datetime) -> None:
        """Write every field from the fetch and clear any error."""
        bounds = meta.partition_range
        self._execute(
            """INSERT INTO tables (key, id, project, dataset, table_name, rows, size_bytes, partition_by, clustered_by,
                   refreshed_at, error_at, error_msg, entity_type, known_columns, partition_type, partition_range,
                   shard_count, newest_shard)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(key) DO UPDATE SET
                   id = excluded.id, project = excluded.project, dataset = excluded.dataset,
                   table_name = excluded.table_name, rows = excluded.rows, size_bytes = excluded.size_bytes,
                   partition_by = excluded.partition_by, clustered_by = excluded.clustered_by,
                   refreshed_at = excluded.refreshed_at, error_at = NULL, error_msg = NULL,
                   entity_type = excluded.entity_type, known_columns = excluded.known_columns,
                   partition_type = excluded.partition_type, partition_range = excluded.partition_range,
                   shard_count = excluded.shard_count, newest_shard = excluded.newest_shard""",
            (
                cache_key(table.id), table.id, table.project, table.dataset, table.table, meta.rows, meta.size_bytes, meta.partition_by,
                json.dumps(meta.clustered_by), iso(at), meta.entity_type.value, json.dumps(meta.known_columns),
                meta.partition_type, json.dumps([bounds.start, bounds.end, bounds.interval]) if bounds else None,
                meta.shard_count, meta.newest_shard,
            ),
        )

    def dataset_location(self, project: str, dataset: str) -> str | None:
        """Where a dataset lives, as learned from BigQuery (None: not learned yet)."""
        rows = self._execute("SELECT location FROM dataset_locations WHERE project = ? AND dataset = ?", (project, dataset))
        return str(rows[0][0]) if rows else None

    def record_dataset_location(self, project: str, dataset: str, location: str, at: datetime) -> None:
        """Keep what BigQuery said about where a dataset lives (a dataset never moves: it is asked once)."""
        self._execute(
            """INSERT INTO dataset_locations (project, dataset, location, learned_at) VALUES (?, ?, ?, ?)
               ON CONFLICT(project, dataset) DO UPDATE SET location = excluded.location, learned_at = excluded.learned_at""",
            (project, dataset, location, iso(at)),
        )

    def record_error(self, table: TrackedTable, message: str, at: datetime) -> None:
        """Touch only error_at/error_msg; the last good data stays."""
        self._execute(
            """INSERT INTO tables (key, id, project, dataset, table_name, error_at, error_msg) VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(key) DO UPDATE SET error_at = excluded.error_at, error_msg = excluded.error_msg""",
            (cache_key(table.id), table.id, table.project, table.dataset, table.table, iso(at), message[:ERROR_MSG_LIMIT]),
        )

    def record_lookup(self, table: TrackedTable, entity_type: EntityType, partition_by: str | None, clustered_by: list[str]) -> None:
        """What the cost guard looked up for a cold row; fills only fields no refresh has set.

        refreshed_at stays as it was, so a row known only this way is still ``never_fetched``.
        """
        self._execute(
            """INSERT INTO tables (key, id, project, dataset, table_name, entity_type, partition_by, clustered_by)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(key) DO UPDATE SET
                   entity_type = COALESCE(tables.entity_type, excluded.entity_type),
                   partition_by = COALESCE(tables.partition_by, excluded.partition_by),
                   clustered_by = COALESCE(tables.clustered_by, excluded.clustered_by)""",
            (cache_key(table.id), table.id, table.project, table.dataset, table.table, entity_type.value, partition_by,
             json.dumps(clustered_by)),
        )

    def get(self, table_id: str) -> CatalogRow | None:
        """The row of a registry id (any case) or of a discovered ``dataset.table`` (exact)."""
        rows = self._execute(f"{_SELECT} WHERE key = ?", (cache_key(table_id),))
        return _row(tuple(rows[0])) if rows else None

    def find_ignoring_case(self, table_id: str) -> list[CatalogRow]:
        """Every row whose id equals ``table_id`` ignoring case (several for ``dataset.table`` ids differing in case)."""
        return [_row(tuple(row)) for row in self._execute(f"{_SELECT} WHERE id = ? COLLATE NOCASE ORDER BY id", (table_id,))]

    def rows(self) -> list[CatalogRow]:
        """Every row, decoded, by id."""
        return [decode_row(row) for row in self.stored_rows()]

    def stored_rows(self) -> list[StoredRow]:
        """Every row as the file holds it (nothing decoded), by id: what ``catalog list`` reads."""
        with self._lock:
            try:
                cursor = self._db.cursor()
                cursor.row_factory = None  # plain tuples: by-name access cost a quarter of list's time on 10,000 rows
                return list(map(StoredRow._make, cursor.execute(f"{_SELECT} ORDER BY id").fetchall()))
            except sqlite3.DatabaseError as exc:
                raise CacheError(str(self.path), f"{exc}") from None


class StoredRow(NamedTuple):
    """One cached row as stored: lists as ``json.dumps`` text, times as ``iso()`` text, the type as BigQuery spelled it."""

    id: str
    project: str
    dataset: str
    table: str
    entity_type: str | None
    rows: int | None
    size_bytes: int | None
    partition_by: str | None
    partition_type: str | None
    partition_range: str | None  # "[start, end, interval]"
    clustered_by: str | None
    known_columns: str | None
    refreshed_at: str | None
    error_at: str | None
    error_msg: str | None
    shard_count: int | None
    newest_shard: str | None


# The columns of StoredRow, in its order.
_SELECT = (
    "SELECT id, project, dataset, table_name, entity_type, rows, size_bytes, partition_by, partition_type,"
    " partition_range, clustered_by, known_columns, refreshed_at, error_at, error_msg, shard_count, newest_shard FROM tables"
)


def _row(values: tuple[Any, ...]) -> CatalogRow:
    return decode_row(StoredRow._make(values))


def decode_row(stored: StoredRow) -> CatalogRow:
    """A stored row -> CatalogRow: the type parsed, lists and times decoded."""
    (table_id, project, dataset, table, entity, rows, size_bytes, partition_by, partition_type,
     bounds, clustered_by, known_columns, refreshed_at, error_at, error_msg, shard_count, newest_shard) = stored
    return CatalogRow(
        id=table_id, project=project, dataset=dataset, table=table,
        entity_type=parse_entity_type(entity) if entity else None,
        rows=rows, size_bytes=size_bytes, partition_by=partition_by, partition_type=partition_type,
        partition_range=parse_partition_range(bounds),
        clustered_by=_json_list(clustered_by), known_columns=_json_list(known_columns),
        refreshed_at=parse_iso(refreshed_at), error_at=parse_iso(error_at), error_msg=error_msg,
        shard_count=shard_count, newest_shard=newest_shard,
    )


@lru_cache(maxsize=256)
def parse_partition_range(text: str | None) -> PartitionRange | None:
    """The stored ``[start, end, interval]`` of integer-range partitioning; None when there is none."""
    return PartitionRange(*json.loads(text)) if text else None
