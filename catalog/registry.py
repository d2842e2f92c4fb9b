"""The registry: catalog.yaml -> ``Registry`` (what to track, where_examples, the guard's cap).

Validated like jobs.yaml, with the shared toolkit (``tickless.config``):
unknown keys, bad identifiers, unset variables and where_examples that are
not one boolean expression are all collected as located ``Problem``s and
raised once. Finding a tracked table by id is ``catalog.tracked``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catalog import identifiers
from catalog.errors import ConfigError
from catalog.examples import Example, ExampleProblem, parse_example
from catalog.models import TrackedTable
from catalog.settings import MAX_SCAN_BYTES_RULE, parse_scan_bytes
from tickless.config.interpolate import InterpolationError, expand
from tickless.config.problems import Problems
from tickless.config.yamlfile import LineList, LineMap, read_document

TOP_KEYS = ("bigquery", "tables", "datasets", "where_examples", "max_scan_bytes", "locations",
            "allow_unestimated_projects", "allow_external_query")
BIGQUERY_KEYS = ("project", "billing_project", "location")
TABLE_KEYS = ("dataset", "table", "project", "name", "description", "where_examples")
# Explicit ids have no dot, so they never collide with "dataset.table" ids of discovered tables.
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")


@dataclass(frozen=True)
class Registry:
    """catalog.yaml as read: the explicit tables, the datasets tracked whole, the examples and the cap."""

    path: Path
    project: str
    billing_project: str
    location: str | None
    tables: tuple[TrackedTable, ...]
    datasets: tuple[tuple[str, str], ...]  # (project, dataset) tracked whole
    examples: tuple[Example, ...]  # global where_examples
    table_examples: Mapping[str, tuple[Example, ...]] = field(default_factory=dict)
    max_scan_bytes: int | None = None  # the cost guard's cap when CATALOG_MAX_SCAN_BYTES is unset
    # (project, dataset) -> BigQuery location, as catalog.yaml's locations: says; others use location, or are discovered.
    locations: Mapping[tuple[str, str], str] = field(default_factory=dict)
    allow_unestimated_projects: frozenset[str] = frozenset()  # the guard allows their tables without a dry run
    allow_external_query: bool = False  # EXTERNAL_QUERY is refused unless the operator allows it

    def examples_for(self, table: TrackedTable) -> tuple[Example, ...]:
        return self.examples_for_id(table.id)

    def examples_for_id(self, table_id: str) -> tuple[Example, ...]:
        """The global where_examples, then those of the table with this id (a discovered table has none of its own)."""
        own = self.table_examples.get(table_id)
        return self.examples + own if own else self.examples

    @property
    def data_projects(self) -> set[str]:
        """Every project the registry holds data in."""
        return {self.project} | {table.project for table in self.tables} | {project for project, _ in self.datasets}

    def configured_location(self, project: str, dataset: str) -> str | None:
        """A dataset's location as catalog.yaml says: its locations: entry, else bigquery.location for the data projects."""
        explicit = self.locations.get((project, dataset))
        if explicit is not None:
            return explicit
        return self.location if project in self.data_projects else None


class _Fields:
    """Reads the values of catalog.yaml, ``${VAR}`` expanded, into located problems (``Problems``)."""

    def __init__(self, problems: Problems, env: Mapping[str, str]) -> None:
        self.problems = problems
        self.env = env

    def about(self, subject: str | None) -> _Fields:
        return _Fields(self.problems.about(subject), self.env)

    def text(self, mapping: LineMap, key: str, prefix: str = "", *, required: bool) -> str | None:
        """A string value with ${VAR} expanded; '' (e.g. ${X:-}) counts as absent."""
        line = mapping.line_of(key)
        raw = mapping.get(key)
        if raw is None:
            if required:
                self.problems.add(mapping.line, prefix + key, "is required")
            return None
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            self.problems.add(line, prefix + key, f"must be a string, got {raw!r}")
            return None
        try:
            value = expand(raw, self.env).text.strip()
        except InterpolationError as exc:
            self.problems.add(line, prefix + key, str(exc))
            return None
        if not value and required:
            self.problems.add(line, prefix + key, f"must not be empty, got {raw!r}")
        return value or None

    def identifier(self, mapping: LineMap, key: str, prefix: str, check: Callable[[str], str | None], *, required: bool) -> str | None:
        value = self.text(mapping, key, prefix, required=required)
        if value is not None and (problem := check(value)):
            self.problems.add(mapping.line_of(key), prefix + key, problem)
            return None
        return value

    def examples(self, mapping: LineMap, key: str) -> tuple[Example, ...]:
        raw = mapping.get(key)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problems.add(mapping.line_of(key), key, f"must be a list of SQL boolean expressions, got {raw!r}")
            return ()
        parsed = []
        for index, item in enumerate(raw):
            # Each problem points at the example's own line in a block list.
            line = raw.line_of(index) if isinstance(raw, LineList) else mapping.line_of(key)
            if not isinstance(item, str) or not item.strip():
                self.problems.add(line, key, f"each example must be a non-empty string, got {item!r}")
                continue
            try:
                parsed.append(parse_example(item.strip()))
            except ExampleProblem as exc:
                self.problems.add(line, key, str(exc))
        return tuple(parsed)


def load_registry(path: Path, env: Mapping[str, str]) -> Registry:
    """Read and validate ``path``; raise ConfigError with every problem found."""
    problems = Problems(str(path))
    fields = _Fields(problems, env)
    document = read_document(path, problems, "bigquery", "a top-level 'bigquery:' mapping with at least 'project'")
    if document is None:
        raise ConfigError(problems)
    problems.check_keys(document, TOP_KEYS)

    project, billing, location = _read_bigquery(fields, document)
    tables = _read_tables(fields, document, project)
    datasets = _read_datasets(fields, document, project)
    examples = fields.examples(document, "where_examples")
    max_scan_bytes = _read_max_scan_bytes(fields, document)
    locations = _read_locations(fields, document, project)
    unestimated = _read_projects(fields, document, "allow_unestimated_projects")
    external = _read_flag(fields, document, "allow_external_query")
    if not tables and not datasets and not any(key in document for key in ("tables", "datasets")):
        problems.add(document.line, None, "nothing to track: add a 'tables:' mapping or a 'datasets:' list")
    if problems or project is None:
        raise ConfigError(problems.in_order())
    return Registry(
        path=path, project=project, billing_project=billing or project, location=location,
        tables=tuple(table for table, _ in tables), datasets=datasets, examples=examples,
        table_examples={table.id: own for table, own in tables if own}, max_scan_bytes=max_scan_bytes,
        locations=locations, allow_unestimated_projects=frozenset(unestimated), allow_external_query=external,
    )


def _read_locations(fields: _Fields, document: LineMap, project: str | None) -> dict[tuple[str, str], str]:
    """``locations: {analytics: US, other-proj.sales: europe-west3}``: a dataset (default project) -> its location."""
    raw = document.get("locations")
    if raw is None:
        return {}
    if not isinstance(raw, LineMap):
        fields.problems.add(document.line_of("locations"), "locations",
                            f"must be a mapping of dataset (or project.dataset) -> location, got {raw!r}")
        return {}
    found: dict[tuple[str, str], str] = {}
    for key in raw:
        line = raw.line_of(key)
        owner, dot, dataset = str(key).rpartition(".")
        owner = owner if dot else (project or "")
        problem = identifiers.dataset_problem(dataset) or (identifiers.project_problem(owner) if dot else None)
        if problem:
            fields.problems.add(line, f"locations.{key}", problem)
            continue
        location = fields.identifier(raw, key, "locations.", identifiers.location_problem, required=True)
        if location and owner:
            found[(owner, dataset)] = location
    return found


def _read_projects(fields: _Fields, document: LineMap, key: str) -> list[str]:
    raw = document.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        fields.problems.add(document.line_of(key), key, f"must be a list of BigQuery project ids, got {raw!r}")
        return []
    found = []
    for index, item in enumerate(raw):
        line = raw.line_of(index) if isinstance(raw, LineList) else document.line_of(key)
        try:
            name = expand(item, fields.env).text.strip() if isinstance(item, str) else item
        except InterpolationError as exc:
            fields.problems.add(line, key, str(exc))
            continue
        if not isinstance(name, str):
            fields.problems.add(line, key, f"each entry must be a project id, got {item!r}")
            continue
        if problem := identifiers.project_problem(name):
            fields.problems.add(line, key, problem)
            continue
        found.append(name)
    return found


def _read_flag(fields: _Fields, document: LineMap, key: str) -> bool:
    raw = document.get(key)
    if raw is None:
        return False
    text = raw
    if isinstance(raw, str):
        try:
            text = expand(raw, fields.env).text.strip().lower()
        except InterpolationError as exc:
            fields.problems.add(document.line_of(key), key, str(exc))
            return False
        text = {"true": True, "false": False}.get(str(text), text)
    if not isinstance(text, bool):
        fields.problems.add(document.line_of(key), key, f"must be true or false, got {raw!r}")
        return False
    return text


def _read_max_scan_bytes(fields: _Fields, document: LineMap) -> int | None:
    raw = document.get("max_scan_bytes")
    if raw is None:
        return None
    text = raw
    if isinstance(raw, str):
        try:
            text = expand(raw, fields.env).text
        except InterpolationError as exc:
            fields.problems.add(document.line_of("max_scan_bytes"), "max_scan_bytes", str(exc))
            return None
    value = parse_scan_bytes(text)
    if value is None:
        source = f" (from {raw!r})" if text != raw else ""
        fields.problems.add(document.line_of("max_scan_bytes"), "max_scan_bytes", f"{MAX_SCAN_BYTES_RULE}, got {text!r}{source}")
    return value


def _read_bigquery(fields: _Fields, document: LineMap) -> tuple[str | None, str | None, str | None]:
    section = document["bigquery"]
    if not isinstance(section, LineMap):
        fields.problems.add(document.line_of("bigquery"), "bigquery", f"must be a mapping with 'project', got {section!r}")
        return None, None, None
    fields.problems.check_keys(section, BIGQUERY_KEYS, "bigquery.")
    project = fields.identifier(section, "project", "bigquery.", identifiers.project_problem, required=True)
    billing = fields.identifier(section, "billing_project", "bigquery.", identifiers.project_problem, required=False)
    location = fields.identifier(section, "location", "bigquery.", identifiers.location_problem, required=False)
    return project, billing, location


def _table_or_family(name: str) -> str | None:
    """A table name, or a wildcard family (``events_*``) tracked as one entry."""
    return identifiers.family_problem(name) if "*" in name else identifiers.table_problem(name)


def _read_tables(fields: _Fields, document: LineMap, project: str | None) -> list[tuple[TrackedTable, tuple[Example, ...]]]:
    raw = document.get("tables")
    if raw is None:
        return []
    if not isinstance(raw, LineMap):
        fields.problems.add(document.line_of("tables"), "tables", f"must be a mapping of id -> {{dataset, table}}, got {raw!r}")
        return []
    seen: dict[str, str] = {}
    found = []
    for table_id, spec in raw.items():
        line = raw.line_of(table_id)
        table_fields = fields.about(f"table {table_id!r}")
        if not _ID.match(table_id):
            table_fields.problems.add(line, None, "id must start with a letter and use letters, digits, '_' or '-' (no dots)")
            continue
        if table_id.lower() in seen:
            table_fields.problems.add(line, None, f"id differs only in case from {seen[table_id.lower()]!r}; ids ignore case")
            continue
        seen[table_id.lower()] = table_id
        if not isinstance(spec, LineMap):
            table_fields.problems.add(line, None, f"must be a mapping with 'dataset' and 'table', got {spec!r}")
            continue
        table_fields.problems.check_keys(spec, TABLE_KEYS)
        own_project = table_fields.identifier(spec, "project", "", identifiers.project_problem, required=False) or project
        dataset = table_fields.identifier(spec, "dataset", "", identifiers.dataset_problem, required=True)
        table = table_fields.identifier(spec, "table", "", _table_or_family, required=True)
        name = table_fields.text(spec, "name", required=False)
        description = table_fields.text(spec, "description", required=False)
        own_examples = table_fields.examples(spec, "where_examples")
        if own_project and dataset and table:
            tracked = TrackedTable(table_id, own_project, dataset, table, name or table_id, description)
            found.append((tracked, own_examples))
    return found


def _read_datasets(fields: _Fields, document: LineMap, project: str | None) -> tuple[tuple[str, str], ...]:
    raw = document.get("datasets")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        fields.problems.add(document.line_of("datasets"), "datasets", f"must be a list of dataset names, got {raw!r}")
        return ()
    found: list[tuple[str, str]] = []
    for item in raw:
        name = item
        if isinstance(item, str):
            try:
                name = expand(item, fields.env).text.strip()
            except InterpolationError as exc:
                fields.problems.add(document.line_of("datasets"), "datasets", str(exc))
                continue
        if not isinstance(name, str):
            fields.problems.add(document.line_of("datasets"), "datasets", f"each entry must be a dataset name, got {item!r}")
            continue
        if problem := identifiers.dataset_problem(name):
            fields.problems.add(document.line_of("datasets"), "datasets", problem)
            continue
        if project and (project, name) not in found:
            found.append((project, name))
    return tuple(found)
