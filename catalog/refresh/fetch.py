"""Fetching for a refresh: BigQuery metadata for one dataset in a fixed number of calls, whatever its table count.

Per dataset: one INFORMATION_SCHEMA.TABLES query (table_type) and one
INFORMATION_SCHEMA.COLUMNS query (columns in ordinal order, partitioning,
clustering). Rows and bytes come from the region's TABLE_STORAGE view (one
query per project and region, done by the caller), else ``__TABLES__`` for
the dataset, else tables.get per table. Only tables that have storage ask
for sizes: views, materialized views and external tables get null.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.errors import ParseError

from catalog.errors import BigQueryError
from catalog.identifiers import quote_path, quote_region
from catalog.models import EntityType, PartitionRange, TableMetadata, parse_entity_type

if TYPE_CHECKING:  # the client module imports google-cloud-bigquery; fetching is handed a client, never makes one
    from catalog.bigquery import BigQuerySource

logger = logging.getLogger("catalog.fetch")

Sizes = dict[str, tuple[int | None, int | None]]  # table name -> (rows, bytes)

_RANGE = re.compile(
    r"RANGE_BUCKET\s*\(\s*`?(\w+)`?\s*,\s*GENERATE_ARRAY\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)", re.IGNORECASE,
)


@dataclass
class DatasetResult:
    tables: dict[str, TableMetadata] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # asked for, but BigQuery returned nothing
    errors: dict[str, BigQueryError] = field(default_factory=dict)


def _select(columns: str, source: str, tail: str) -> str:
    """The only SQL builder: ``source`` comes from quote_path/quote_region (checked
    identifiers); every value is a ``@parameter`` in ``tail``."""
    return " ".join(part for part in ("SELECT", columns, "FROM", source, tail) if part)


def struct_paths(column: str, data_type: str) -> list[str]:
    """``payload STRUCT<user STRUCT<id INT64>>`` -> payload.user, payload.user.id.

    Only through STRUCTs: a field inside an ARRAY needs UNNEST, so
    ``items.sku`` is not a filter you can write and is not listed.
    """
    if not data_type.upper().startswith("STRUCT"):
        return []
    try:
        parsed = exp.DataType.build(data_type, dialect="bigquery")
    except (ParseError, ValueError):
        logger.warning("cannot parse the data type of column %s: %r", column, data_type)
        return []
    paths: list[str] = []

    def walk(prefix: str, node: exp.DataType) -> None:
        if not node.is_type(exp.DataType.Type.STRUCT):
            return
        for child in node.expressions:
            if isinstance(child, exp.ColumnDef):
                path = f"{prefix}.{child.name}"
                paths.append(path)
                kind = child.args.get("kind")
                if isinstance(kind, exp.DataType):
                    walk(path, kind)

    walk(column, parsed)
    return paths


def fetch_region_storage(source: BigQuerySource, project: str, location: str, datasets: Iterable[str]) -> dict[str, Sizes]:
    """Rows and logical bytes for every table of ``datasets`` in one query; dataset -> sizes."""
    sql = _select(
        "table_schema, table_name, total_rows, total_logical_bytes",
        f"{quote_region(project, location)}.INFORMATION_SCHEMA.TABLE_STORAGE",
        "WHERE table_schema IN UNNEST(@datasets) AND NOT deleted",
    )
    found: dict[str, Sizes] = {}
    for row in source.query(sql, {"datasets": sorted(set(datasets))}):
        found.setdefault(row["table_schema"], {})[row["table_name"]] = (_int(row["total_rows"]), _int(row["total_logical_bytes"]))
    return found


def fetch_dataset(
    source: BigQuerySource, project: str, dataset: str, names: list[str] | None, storage: Sizes | None,
) -> DatasetResult:
    """Metadata of ``names`` (or of every table when None) in one dataset.

    Raises BigQueryError when the dataset-level queries fail: then every
    table of the dataset has failed. Per-table failures land in ``errors``.
    """
    where, params = ("WHERE table_name IN UNNEST(@tables)", {"tables": names}) if names is not None else ("", {})
    types: dict[str, tuple[EntityType, str | None]] = {}
    sql = _select(
        "table_name, table_type, IF(table_type = 'BASE TABLE', ddl, NULL) AS ddl",
        quote_path(project, dataset, "INFORMATION_SCHEMA.TABLES"), where,
    )
    unknown: dict[str, BigQueryError] = {}
    for row in source.query(sql, params):
        try:
            types[row["table_name"]] = (parse_entity_type(row["table_type"]), row["ddl"])
        except ValueError:
            # Listed, so not deleted: a failure of this table (its last good row stays), never "no data".
            message = f"unknown table_type {row['table_type']!r} in {project}.{dataset}.INFORMATION_SCHEMA.TABLES"
            logger.warning("dataset %s.%s: table %s: %s", project, dataset, row["table_name"], message)
            unknown[row["table_name"]] = BigQueryError(message, reason="unknownTableType", status=None, permanent=True)
    result = DatasetResult(missing=[name for name in names or [] if name not in types and name not in unknown])
    result.errors.update(unknown)
    if not types:
        return result
    columns = _columns(source, project, dataset, sorted(types))
    sized = [name for name, (entity, _) in types.items() if entity.has_storage]
    sizes = _sizes(source, project, dataset, sized, storage, result) if sized else {}
    for name, (entity, ddl) in types.items():
        if name in result.errors:
            continue
        facts = columns.get(name, _Columns())
        rows, size = sizes.get(name, (None, None)) if entity.has_storage else (None, None)
        bounds = _range_of(ddl, facts.partition_by) if facts.partition_type in ("INT64", "INTEGER") else None
        result.tables[name] = TableMetadata(
            entity, rows, size, facts.partition_by, facts.partition_type, bounds, facts.clustered_by, facts.known,
        )
    return result


@dataclass
class _Columns:
    known: list[str] = field(default_factory=list)
    partition_by: str | None = None
    partition_type: str | None = None
    clustering: list[tuple[int, str]] = field(default_factory=list)

    @property
    def clustered_by(self) -> list[str]:
        return [column for _, column in sorted(self.clustering)]


def _columns(source: BigQuerySource, project: str, dataset: str, names: list[str]) -> dict[str, _Columns]:
    sql = _select(
        "table_name, column_name, data_type, is_partitioning_column, clustering_ordinal_position",
        quote_path(project, dataset, "INFORMATION_SCHEMA.COLUMNS"),
        "WHERE table_name IN UNNEST(@tables) ORDER BY table_name, ordinal_position",
    )
    found: dict[str, _Columns] = {}
    for row in source.query(sql, {"tables": names}):
        column, data_type = row["column_name"], str(row["data_type"] or "")
        table = found.setdefault(row["table_name"], _Columns())
        table.known.append(column)
        table.known.extend(struct_paths(column, data_type))
        if str(row["is_partitioning_column"]).upper() == "YES":
            table.partition_by, table.partition_type = column, data_type.upper()
        if row["clustering_ordinal_position"] is not None:
            table.clustering.append((int(row["clustering_ordinal_position"]), column))
    return found


def _sizes(
    source: BigQuerySource, project: str, dataset: str, names: list[str], storage: Sizes | None, result: DatasetResult,
) -> Sizes:
    if storage is not None:
        return storage
    try:
        sql = _select("table_id, row_count, size_bytes", quote_path(project, dataset, "__TABLES__"),
                      "WHERE table_id IN UNNEST(@tables)")
        rows = source.query(sql, {"tables": names})
        return {row["table_id"]: (_int(row["row_count"]), _int(row["size_bytes"])) for row in rows}
    except BigQueryError as exc:
        if not exc.permanent:
            raise
        logger.warning("dataset %s.%s: __TABLES__ unavailable (%s); asking tables.get per table", project, dataset, exc)
    sizes: Sizes = {}
    for name in names:
        try:
            facts = source.get_table(project, dataset, name)
        except BigQueryError as exc:
            result.errors[name] = exc
            continue
        sizes[name] = (facts.num_rows, facts.num_bytes)
    return sizes


def _range_of(ddl: str | None, column: str | None) -> PartitionRange | None:
    match = _RANGE.search(ddl or "")
    if not match or column is None or match.group(1).lower() != column.lower():
        return None
    start, end, interval = (int(group) for group in match.groups()[1:])
    return PartitionRange(start, end, interval) if interval > 0 else None


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))
