"""Presenting tracked tables: a table and its cache row -> the JSON row of ``catalog list|show|status``.

Freshness, the rough size hint and the advertised where_examples are worked
out here, from the cache alone: nothing here calls BigQuery. ``catalog list
--json`` writes its rows as text straight from the stored rows
(``ListingText``), the same bytes ``json.dumps`` makes of ``table_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from json.encoder import encode_basestring_ascii  # json's own (C) encoder of a str, as json.dumps uses it
from typing import Any

from catalog.cache import StoredRow, parse_partition_range
from catalog.examples import Example, ExampleProblem, advertised, advertised_in_json, parse_example, partition_example
from catalog.models import CatalogRow, PartitionRange, TrackedTable, parse_entity_type
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
    examples = registry.examples_for(table)
    if row is not None and row.partition_by:
        examples += partition_examples(row.partition_by, row.partition_type, row.partition_range)
    texts = advertised(examples, known)
    return list(dict.fromkeys(texts))


@lru_cache(maxsize=1024)
def partition_examples(column: str, data_type: str | None, bounds: PartitionRange | None) -> tuple[Example, ...]:
    """The example filtering on the partitioning column, when there is one sqlglot can read back."""
    generated = partition_example(column, data_type, bounds)
    if generated:
        try:
            return (parse_example(generated),)
        except ExampleProblem:  # a column name sqlglot cannot read back: advertise nothing rather than guess
            pass
    return ()


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


class ListingText:
    """The rows of ``catalog list --json`` as compact JSON text, written from the cache's stored rows.

    Byte for byte ``json.dumps(table_json(...))`` with json's defaults (``", "`` and ``": "``, ASCII only),
    without building the row: the stored lists (``json.dumps`` text) and times (``iso()`` text) are copied
    as they are, freshness compares stored text with a cut-off, and only ``known_columns`` is decoded, when
    an example has to be checked against it. tests/catalog/test_list_output.py holds the two to each other.
    """

    def __init__(self, registry: Registry, now: datetime, threshold_seconds: int) -> None:
        self.registry = registry
        self.cutoff = fresh_cutoff(now, threshold_seconds)
        self._advertised: dict[tuple[str, ...], str] = {}

    def explicit(self, table: TrackedTable, stored: StoredRow | None) -> str:
        """The row of a table the registry names, with its cache row (None: never cached)."""
        head = (f'{{"id": {_text(table.id)}, "name": {_text(table.name)}, "description": {_text(table.description)}, '
                f'"source_type": "bigquery", "sql_flavor": "bigquery", "project": {_text(table.project)}, '
                f'"dataset": {_text(table.dataset)}, "table": {_text(table.table)}, ')
        if stored is None:
            return head + _NEVER_CACHED
        return head + self._cached(stored, self.registry.examples_for(table))

    def discovered(self, rows: Iterable[StoredRow]) -> list[str]:
        """The rows of tables found in datasets tracked whole: named by their id, without a description (``discovered_table``)."""
        encode, cached, examples_for = encode_basestring_ascii, self._cached, self.registry.examples_for_id
        return [
            f'{{"id": {encode(stored.id)}, "name": {encode(stored.id)}, "description": null, '
            f'"source_type": "bigquery", "sql_flavor": "bigquery", "project": {encode(stored.project)}, '
            f'"dataset": {encode(stored.dataset)}, "table": {encode(stored.table)}, {cached(stored, examples_for(stored.id))}'
            for stored in rows
        ]

    def _cached(self, stored: StoredRow, examples: tuple[Example, ...]) -> str:
        """From ``entity_type`` to the end of a row that is in the cache."""
        (_, _, _, _, entity, count, size, partition_by, partition_type, bounds, clustered_by, known_columns,
         refreshed_at, error_at, error_msg, shard_count, newest_shard) = stored
        if partition_by:
            examples += partition_examples(partition_by, partition_type, parse_partition_range(bounds))
        if refreshed_at:
            fresh = '"fresh"' if refreshed_at >= self.cutoff else '"stale"'
        else:
            fresh = '"error"' if error_at else '"never_fetched"'
        # Integers are written as json.dumps writes them (int.__repr__); anything else goes through _value.
        return (
            f'"entity_type": {_entity_text(entity)}, "rows": {count if type(count) is int else _value(count)}, '
            f'"size_bytes": {size if type(size) is int else _value(size)}, '
            f'"rough_size_hint": {_HINT_TEXT[rough_size_hint(size)]}, "partition_by": {_text(partition_by)}, '
            f'"clustered_by": {clustered_by or "null"}, "known_columns": {known_columns or "null"}, '
            f'"shard_count": {_value(shard_count)}, "newest_shard": {_text(newest_shard)}, '
            f'"where_examples": {self._examples_text(examples, known_columns) if examples and known_columns else "[]"}, '
            f'"metadata_freshness": {fresh}, "refreshed_at": {_text(refreshed_at or None)}, "error_msg": {_text(error_msg)}}}'
        )

    def _examples_text(self, examples: tuple[Example, ...], known_columns: str) -> str:
        texts = tuple(dict.fromkeys(advertised_in_json(examples, known_columns)))
        text = self._advertised.get(texts)
        if text is None:
            text = self._advertised[texts] = json.dumps(list(texts))
        return text


def fresh_cutoff(now: datetime, threshold_seconds: int) -> str:
    """The oldest stored ``refreshed_at`` that is fresh at ``now`` (``freshness``), as text to compare stored text with.

    ``iso()`` text sorts as the times it names, and it holds milliseconds: now - refreshed_at <= threshold
    exactly when refreshed_at >= now - threshold, rounded up to the millisecond.
    """
    try:
        oldest = now - timedelta(seconds=threshold_seconds)
    except OverflowError:  # before year 1: every time is within the threshold
        return ""
    if oldest.microsecond % 1000:
        oldest += timedelta(microseconds=1000 - oldest.microsecond % 1000)
    return iso(oldest)


def _value(value: object) -> str:
    """One stored value as ``json.dumps`` writes it."""
    if value is None:
        return "null"
    if type(value) is str:
        return encode_basestring_ascii(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value)


def _text(value: str | None) -> str:
    """A stored text (or null) as ``json.dumps`` writes it."""
    return "null" if value is None else encode_basestring_ascii(value)


@lru_cache(maxsize=64)
def _entity_text(stored: str | None) -> str:
    return json.dumps(parse_entity_type(stored).value) if stored else "null"


_HINT_TEXT = {hint: _value(hint) for hint in (None, *(name for _, name in SIZE_HINTS), "very_large")}
# A registry table that no refresh (nor the guard) has written a row for yet: everything after "table" is null but these.
_NEVER_CACHED = ", ".join(
    [f'"{key}": null' for key in ("entity_type", "rows", "size_bytes", "rough_size_hint", "partition_by", "clustered_by",
                                  "known_columns", "shard_count", "newest_shard")]
    + ['"where_examples": []', '"metadata_freshness": "never_fetched"', '"refreshed_at": null', '"error_msg": null']) + "}"
