"""Fetching for a refresh: BigQuery metadata for one dataset in a fixed number of calls, whatever its table count.

Per dataset: one INFORMATION_SCHEMA.TABLES query (table_type) and one
INFORMATION_SCHEMA.COLUMNS query (columns in ordinal order, partitioning,
clustering). Rows and bytes come from the region's TABLE_STORAGE view (one
query per project and region, done by the caller), else ``__TABLES__`` for
the dataset, else tables.get per table; a table missing from the region's
answer (a dataset in another region, a table a few minutes old: the view
lags) falls back the same way. Only tables that have storage ask for sizes:
views and external tables get null; materialized views keep theirs (from
TABLE_STORAGE or tables.get: ``__TABLES__`` reports 0 for them).

A wildcard family (``events_*``) is every table whose name starts with its
prefix: its rows and bytes are the shards' sums, its columns the newest
shard's (by name), and it records how many shards there are and which is
the newest.
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
    location: str | None = None  # where BigQuery ran the dataset's queries: the dataset's location


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


def fetch_region_storage(
    source: BigQuerySource, project: str, location: str, datasets: Iterable[str],
) -> dict[str, Sizes]:
    """Rows and logical bytes for every table of ``datasets`` (all in ``location``) in one query; dataset -> sizes."""
    sql = _select(
        "table_schema, table_name, total_rows, total_logical_bytes",
        f"{quote_region(project, location)}.INFORMATION_SCHEMA.TABLE_STORAGE",
        "WHERE table_schema IN UNNEST(@datasets) AND NOT deleted",
    )
    found: dict[str, Sizes] = {}
    for row in source.query(sql, {"datasets": sorted(set(datasets))}, location=location):
        found.setdefault(row["table_schema"], {})[row["table_name"]] = (_int(row["total_rows"]), _int(row["total_logical_bytes"]))
    return found


def fetch_dataset(
    source: BigQuerySource, project: str, dataset: str, names: list[str] | None, storage: Sizes | None,
    location: str | None = None, families: Iterable[str] = (),
) -> DatasetResult:
    """Metadata of ``names`` (or of every table when None; a name ending in ``*`` is a family) in one dataset.

    Raises BigQueryError when the dataset-level queries fail: then every
    table of the dataset has failed. Per-table failures land in ``errors``.
    """
    families = sorted({*families, *(name for name in names or [] if name.endswith("*"))})
    plain = None if names is None else [name for name in names if not name.endswith("*")]
    # A family's shards are not known by name: list the dataset's tables and keep the ones that match.
    where, params = ("WHERE table_name IN UNNEST(@tables)", {"tables": plain}) if plain is not None and not families else ("", {})
    types: dict[str, tuple[EntityType, str | None]] = {}
    sql = _select(
        "table_name, table_type, IF(table_type = 'BASE TABLE', ddl, NULL) AS ddl",
        quote_path(project, dataset, "INFORMATION_SCHEMA.TABLES"), where,
    )
    unknown: dict[str, BigQueryError] = {}
    rows, ran_in = source.query_located(sql, params, location=location)
    wanted = None if plain is None else set(plain)
    for row in rows:
        name = row["table_name"]
        if wanted is not None and name not in wanted and not any(name.startswith(family[:-1]) for family in families):
            continue
        try:
            types[name] = (parse_entity_type(row["table_type"]), row["ddl"])
        except ValueError:
            # Listed, so not deleted: a failure of this table (its last good row stays), never "no data".
            message = f"unknown table_type {row['table_type']!r} in {project}.{dataset}.INFORMATION_SCHEMA.TABLES"
            logger.warning("dataset %s.%s: table %s: %s", project, dataset, name, message)
            unknown[name] = BigQueryError(message, reason="unknownTableType", status=None, permanent=True)
    shards = {family: sorted(name for name in types if name.startswith(family[:-1])) for family in families}
    result = DatasetResult(missing=[name for name in plain or [] if name not in types and name not in unknown], location=ran_in)
    result.missing += [family for family, found in shards.items() if not found]
    result.errors.update(unknown)
    if not types:
        return result
    plain_names = [name for name in types if wanted is None or name in wanted]
    newest = {family: found[-1] for family, found in shards.items() if found}
    columns = _columns(source, project, dataset, sorted(set(plain_names) | set(newest.values())), location or ran_in)
    sized = sorted({name for name in plain_names if types[name][0].has_storage}
                   | {shard for found in shards.values() for shard in found if types[shard][0].has_storage})
    sizes = _sizes(source, project, dataset, sized, storage, result, {name for name in sized
                                                                       if types[name][0] is EntityType.MATERIALIZED_VIEW},
                   location or ran_in) if sized else {}
    for name in plain_names:
        entity, ddl = types[name]
        if name in result.errors:
            continue
        facts = columns.get(name, _Columns())
        rows_count, size = sizes.get(name, (None, None)) if entity.has_storage else (None, None)
        bounds = _range_of(ddl, facts.partition_by) if facts.partition_type in ("INT64", "INTEGER") else None
        result.tables[name] = TableMetadata(
            entity, rows_count, size, facts.partition_by, facts.partition_type, bounds, facts.clustered_by, facts.known,
        )
    for family, last in newest.items():
        facts = columns.get(last, _Columns())
        counted = [sizes.get(shard, (None, None)) for shard in shards[family]]
        total_rows = None if any(value is None for value, _ in counted) else sum(value or 0 for value, _ in counted)
        total_bytes = None if any(value is None for _, value in counted) else sum(value or 0 for _, value in counted)
        result.tables[family] = TableMetadata(
            EntityType.BASE_TABLE, total_rows, total_bytes, facts.partition_by, facts.partition_type, None,
            facts.clustered_by, facts.known, shard_count=len(shards[family]), newest_shard=last,
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


def _columns(source: BigQuerySource, project: str, dataset: str, names: list[str], location: str | None) -> dict[str, _Columns]:
    sql = _select(
        "table_name, column_name, data_type, is_partitioning_column, clustering_ordinal_position",
        quote_path(project, dataset, "INFORMATION_SCHEMA.COLUMNS"),
        "WHERE table_name IN UNNEST(@tables) ORDER BY table_name, ordinal_position",
    )
    found: dict[str, _Columns] = {}
    for row in source.query(sql, {"tables": names}, location=location):
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
    materialized: set[str], location: str | None,
) -> Sizes:
    """Rows and bytes of ``names``: the region's TABLE_STORAGE answer, then ``__TABLES__``, then tables.get."""
    sizes: Sizes = {name: storage[name] for name in names if storage is not None and name in storage}
    missing = [name for name in names if name not in sizes]
    if not missing:
        return sizes
    if storage is not None:
        logger.info("dataset %s.%s: %d table(s) not in the region's TABLE_STORAGE (another region, or just created); "
                    "asking __TABLES__", project, dataset, len(missing))
    # __TABLES__ reports 0 rows and 0 bytes for a materialized view: ask tables.get for those.
    listed = [name for name in missing if name not in materialized]
    one_by_one = [name for name in missing if name in materialized]
    if listed:
        try:
            sql = _select("table_id, row_count, size_bytes", quote_path(project, dataset, "__TABLES__"),
                          "WHERE table_id IN UNNEST(@tables)")
            rows = source.query(sql, {"tables": listed}, location=location)
            sizes.update({row["table_id"]: (_int(row["row_count"]), _int(row["size_bytes"])) for row in rows})
        except BigQueryError as exc:
            if not exc.permanent:
                raise
            logger.warning("dataset %s.%s: __TABLES__ unavailable (%s); asking tables.get per table", project, dataset,
                           exc.summary)
            one_by_one += listed
    for name in one_by_one:
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
