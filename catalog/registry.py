"""catalog.yaml -> the tracked tables, every problem reported at once.

Validated like jobs.yaml: unknown keys, bad identifiers, unset variables and
where_examples that are not one boolean expression are all collected and
raised once as ``FILE:LINE: ...`` lines.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog import identifiers
from catalog.errors import ConfigError, UnknownTableError
from catalog.examples import Example, ExampleProblem, parse_example
from catalog.models import TrackedTable
from catalog.settings import MAX_SCAN_BYTES_RULE, parse_scan_bytes
from scheduler.interpolate import InterpolationError, expand
from scheduler.yamlfile import LineList, LineMap, YamlProblem, load_yaml

TOP_KEYS = ("bigquery", "tables", "datasets", "where_examples", "max_scan_bytes")
BIGQUERY_KEYS = ("project", "billing_project", "location")
TABLE_KEYS = ("dataset", "table", "project", "name", "description", "where_examples")
# Explicit ids have no dot, so they never collide with "dataset.table" ids of discovered tables.
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")


@dataclass(frozen=True)
class Registry:
    path: Path
    project: str
    billing_project: str
    location: str | None
    tables: tuple[TrackedTable, ...]
    datasets: tuple[tuple[str, str], ...]  # (project, dataset) tracked whole
    examples: tuple[Example, ...]  # global where_examples
    table_examples: Mapping[str, tuple[Example, ...]] = field(default_factory=dict)
    max_scan_bytes: int | None = None  # the cost guard's cap when CATALOG_MAX_SCAN_BYTES is unset

    def find(self, table_id: str) -> TrackedTable | None:
        """Explicit table by registry id, ignoring case."""
        wanted = table_id.lower()
        return next((table for table in self.tables if table.id.lower() == wanted), None)

    def require(self, table_id: str, extra_ids: list[str] | None = None) -> TrackedTable:
        table = self.find(table_id)
        if table is not None:
            return table
        known = [table.id for table in self.tables] + (extra_ids or [])
        close = difflib.get_close_matches(table_id, known, n=1, cutoff=0.6)
        raise UnknownTableError(table_id, known, close[0] if close else None)

    def examples_for(self, table: TrackedTable) -> tuple[Example, ...]:
        return self.examples + tuple(self.table_examples.get(table.id, ()))


class _Reader:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.problems: list[tuple[int, str]] = []

    def add(self, line: int | None, where: str, message: str) -> None:
        location = f"{self.path}:{line}:" if line else f"{self.path}:"
        self.problems.append((line or 0, f"{location} {where}: {message}" if where else f"{location} {message}"))

    def keys(self, mapping: LineMap, allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(mapping.line_of(key), f"{where}{key}", f"unknown key{hint}; allowed: {', '.join(allowed)}")

    def text(self, mapping: LineMap, key: str, where: str, *, required: bool) -> str | None:
        """A string value with ${VAR} expanded; '' (e.g. ${X:-}) counts as absent."""
        line = mapping.line_of(key)
        raw = mapping.get(key)
        if raw is None:
            if required:
                self.add(mapping.line, where + key, "is required")
            return None
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            self.add(line, where + key, f"must be a string, got {raw!r}")
            return None
        try:
            value = expand(raw, self.env).text.strip()
        except InterpolationError as exc:
            self.add(line, where + key, str(exc))
            return None
        if not value and required:
            self.add(line, where + key, f"must not be empty, got {raw!r}")
        return value or None

    def identifier(self, mapping: LineMap, key: str, where: str, check: Any, *, required: bool) -> str | None:
        value = self.text(mapping, key, where, required=required)
        if value is not None and (problem := check(value)):
            self.add(mapping.line_of(key), where + key, problem)
            return None
        return value

    def examples(self, mapping: LineMap, key: str, where: str) -> tuple[Example, ...]:
        raw = mapping.get(key)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.add(mapping.line_of(key), where + key, f"must be a list of SQL boolean expressions, got {raw!r}")
            return ()
        parsed = []
        for index, item in enumerate(raw):
            # Each problem points at the example's own line in a block list.
            line = raw.line_of(index) if isinstance(raw, LineList) else mapping.line_of(key)
            if not isinstance(item, str) or not item.strip():
                self.add(line, where + key, f"each example must be a non-empty string, got {item!r}")
                continue
            try:
                parsed.append(parse_example(item.strip()))
            except ExampleProblem as exc:
                self.add(line, where + key, str(exc))
        return tuple(parsed)


def load_registry(path: Path, env: Mapping[str, str]) -> Registry:
    """Read and validate ``path``; raise ConfigError with every problem found."""
    reader = _Reader(path, env)
    try:
        document, duplicates = load_yaml(path)
    except YamlProblem as exc:
        reader.add(exc.line, "", exc.message)
        raise ConfigError([message for _, message in reader.problems]) from None
    for duplicate in duplicates:
        reader.add(duplicate.line, "", duplicate.message)
    if not isinstance(document, LineMap) or "bigquery" not in document:
        reader.add(getattr(document, "line", 1), "", "the file needs a top-level 'bigquery:' mapping with at least 'project'")
        raise ConfigError([message for _, message in reader.problems])
    reader.keys(document, TOP_KEYS, "")

    project, billing, location = _read_bigquery(reader, document)
    tables = _read_tables(reader, document, project)
    datasets = _read_datasets(reader, document, project)
    examples = reader.examples(document, "where_examples", "")
    max_scan_bytes = _read_max_scan_bytes(reader, document)
    if not tables and not datasets and not any(key in document for key in ("tables", "datasets")):
        reader.add(document.line, "", "nothing to track: add a 'tables:' mapping or a 'datasets:' list")
    if reader.problems or project is None:
        raise ConfigError([message for _, message in sorted(reader.problems, key=lambda item: item[0])])
    return Registry(
        path=path, project=project, billing_project=billing or project, location=location,
        tables=tuple(table for table, _ in tables), datasets=datasets, examples=examples,
        table_examples={table.id: own for table, own in tables if own}, max_scan_bytes=max_scan_bytes,
    )


def _read_max_scan_bytes(reader: _Reader, document: LineMap) -> int | None:
    raw = document.get("max_scan_bytes")
    if raw is None:
        return None
    text = raw
    if isinstance(raw, str):
        try:
            text = expand(raw, reader.env).text
        except InterpolationError as exc:
            reader.add(document.line_of("max_scan_bytes"), "max_scan_bytes", str(exc))
            return None
    value = parse_scan_bytes(text)
    if value is None:
        source = f" (from {raw!r})" if text != raw else ""
        reader.add(document.line_of("max_scan_bytes"), "max_scan_bytes", f"{MAX_SCAN_BYTES_RULE}, got {text!r}{source}")
    return value


def _read_bigquery(reader: _Reader, document: LineMap) -> tuple[str | None, str | None, str | None]:
    section = document["bigquery"]
    if not isinstance(section, LineMap):
        reader.add(document.line_of("bigquery"), "bigquery", f"must be a mapping with 'project', got {section!r}")
        return None, None, None
    reader.keys(section, BIGQUERY_KEYS, "bigquery.")
    project = reader.identifier(section, "project", "bigquery.", identifiers.project_problem, required=True)
    billing = reader.identifier(section, "billing_project", "bigquery.", identifiers.project_problem, required=False)
    location = reader.identifier(section, "location", "bigquery.", identifiers.location_problem, required=False)
    return project, billing, location


def _read_tables(reader: _Reader, document: LineMap, project: str | None) -> list[tuple[TrackedTable, tuple[Example, ...]]]:
    raw = document.get("tables")
    if raw is None:
        return []
    if not isinstance(raw, LineMap):
        reader.add(document.line_of("tables"), "tables", f"must be a mapping of id -> {{dataset, table}}, got {raw!r}")
        return []
    seen: dict[str, str] = {}
    found = []
    for table_id, spec in raw.items():
        where = f"table {table_id!r}: "
        line = raw.line_of(table_id)
        if not _ID.match(table_id):
            reader.add(line, f"table {table_id!r}", "id must start with a letter and use letters, digits, '_' or '-' (no dots)")
            continue
        if table_id.lower() in seen:
            reader.add(line, f"table {table_id!r}", f"id differs only in case from {seen[table_id.lower()]!r}; ids ignore case")
            continue
        seen[table_id.lower()] = table_id
        if not isinstance(spec, LineMap):
            reader.add(line, f"table {table_id!r}", f"must be a mapping with 'dataset' and 'table', got {spec!r}")
            continue
        reader.keys(spec, TABLE_KEYS, where)
        own_project = reader.identifier(spec, "project", where, identifiers.project_problem, required=False) or project
        dataset = reader.identifier(spec, "dataset", where, identifiers.dataset_problem, required=True)
        table = reader.identifier(spec, "table", where, identifiers.table_problem, required=True)
        name = reader.text(spec, "name", where, required=False)
        description = reader.text(spec, "description", where, required=False)
        own_examples = reader.examples(spec, "where_examples", where)
        if own_project and dataset and table:
            tracked = TrackedTable(table_id, own_project, dataset, table, name or table_id, description)
            found.append((tracked, own_examples))
    return found


def _read_datasets(reader: _Reader, document: LineMap, project: str | None) -> tuple[tuple[str, str], ...]:
    raw = document.get("datasets")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.add(document.line_of("datasets"), "datasets", f"must be a list of dataset names, got {raw!r}")
        return ()
    found: list[tuple[str, str]] = []
    for item in raw:
        name = item
        if isinstance(item, str):
            try:
                name = expand(item, reader.env).text.strip()
            except InterpolationError as exc:
                reader.add(document.line_of("datasets"), "datasets", str(exc))
                continue
        if not isinstance(name, str):
            reader.add(document.line_of("datasets"), "datasets", f"each entry must be a dataset name, got {item!r}")
            continue
        if problem := identifiers.dataset_problem(name):
            reader.add(document.line_of("datasets"), "datasets", problem)
            continue
        if project and (project, name) not in found:
            found.append((project, name))
    return tuple(found)
