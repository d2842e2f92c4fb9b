"""Tracked tables: the one place that says which tables the catalog tracks and finds one by id or path.

A table is tracked when the registry names it (``tables:`` in catalog.yaml,
by registry id, ids ignore case) or when it lives in a dataset the registry
tracks whole (``datasets:``); such a discovered table's id is
``dataset.table`` and it is known once a refresh has cached it. Every lookup
(``catalog show``, ``catalog refresh --table``, the guard reading a query's
table paths, a refresh matching what BigQuery listed) goes through
``TrackedTables``, and an unknown id gets one did-you-mean.
"""

from __future__ import annotations

from collections.abc import Sequence

from catalog.cache import Cache, StoredRow
from catalog.errors import UnknownTableError
from catalog.identifiers import family_problem, table_problem
from catalog.models import TrackedTable, discovered_table
from catalog.registry import Registry
from tickless.config.problems import closest


class TrackedTables:
    """The registry's tables plus those discovered in whole datasets (read from ``cache`` when given)."""

    def __init__(self, registry: Registry, cache: Cache | None = None) -> None:
        self.registry = registry
        self.cache = cache

    @property
    def data_projects(self) -> set[str]:
        """Every project the registry holds data in: a path in another project is not the catalog's."""
        return self.registry.data_projects

    def explicit(self, table_id: str) -> TrackedTable | None:
        """A table the registry names, by registry id, ignoring case."""
        wanted = table_id.lower()
        return next((table for table in self.registry.tables if table.id.lower() == wanted), None)

    def discovered(self, cached: Sequence[StoredRow] | None = None, *, project: str | None = None,
                   dataset: str | None = None) -> list[TrackedTable]:
        """Cached tables of the datasets tracked whole (of one dataset, when given), by id.

        ``cached`` is ``cache.stored_rows()`` when the caller has already read them.
        """
        whole = {pair for pair in self.registry.datasets if project is None or pair == (project, dataset)}
        return [discovered_table(row.project, row.dataset, row.table) for row in self._discovered_rows(cached, whole)]

    def listed_discovered(self, cached: Sequence[StoredRow] | None = None) -> list[StoredRow]:
        """The cached rows of the discovered tables ``all`` lists: those the registry does not also name, by id."""
        explicit = {(table.project, table.dataset, table.table) for table in self.registry.tables}
        return [row for row in self._discovered_rows(cached, set(self.registry.datasets))
                if (row.project, row.dataset, row.table) not in explicit]

    def all(self, cached: Sequence[StoredRow] | None = None) -> list[TrackedTable]:
        """Explicit tables in registry order, then the discovered ones the registry does not also name, by id."""
        found = [discovered_table(row.project, row.dataset, row.table) for row in self.listed_discovered(cached)]
        return list(self.registry.tables) + found

    def _discovered_rows(self, cached: Sequence[StoredRow] | None, whole: set[tuple[str, str]]) -> list[StoredRow]:
        if not whole:
            return []
        if cached is None:
            cached = self.cache.stored_rows() if self.cache is not None else []
        # A discovered table's id is its "dataset.table" (discovered_table); any other row is a registry id's.
        return [row for row in cached if (row.project, row.dataset) in whole and row.id == f"{row.dataset}.{row.table}"]

    def find(self, table_id: str) -> TrackedTable:
        """Any tracked table by id: exactly as written, else ignoring case; UnknownTableError (with a did-you-mean) otherwise.

        Exact first: ``analytics.Events`` and ``analytics.events`` can both be tracked (BigQuery names keep case).
        """
        tables = self.all()
        wanted = table_id.lower()
        for table in sorted(tables, key=lambda table: table.id != table_id):
            if table.id.lower() == wanted:
                return table
        known = [table.id for table in tables]
        raise UnknownTableError(table_id, known, closest(table_id, known))

    def require(self, table_id: str) -> TrackedTable:
        """A table the registry names (any case); UnknownTableError naming the registry ids otherwise."""
        return self._explicit_or_unknown(table_id, [])

    def to_refresh(self, table_id: str) -> TrackedTable:
        """What ``catalog refresh --table ID`` means: a registry id, or ``dataset.table`` in a dataset tracked whole.

        A ``dataset.table`` need not be cached yet: refreshing it is how it becomes known.
        """
        explicit = self.explicit(table_id)
        if explicit is not None:
            return explicit
        dataset, dot, name = table_id.partition(".")
        for project, tracked in self.registry.datasets:
            if dot and name and tracked.lower() == dataset.lower():
                # BigQuery table names are case-sensitive; a known row knows the real spelling.
                return discovered_table(project, tracked, self._spelling(project, tracked, name))
        return self._explicit_or_unknown(table_id, [f"{dataset}.*" for _, dataset in self.registry.datasets])

    def at_path(self, project: str | None, dataset: str, name: str) -> TrackedTable | None:
        """The tracked table at an exact BigQuery path, as a query writes it; ``project`` None for ``dataset.table``.

        A wildcard table (``events_*``, ``events_2026*``) or one shard (``events_20260101``) is tracked when a
        registered family (``events_*``) covers it; an exact registry entry wins over a family.
        """
        wildcard = name.endswith("*")
        if (family_problem(name) if wildcard else table_problem(name)):
            return None
        for table in self.registry.tables:
            if (table.dataset, table.table) == (dataset, name) and project in (None, table.project):
                return table
        for table in self.registry.tables:
            if table.dataset == dataset and project in (None, table.project) and table.covers(name):
                return table
        if wildcard:
            return None
        for owner, tracked in self.registry.datasets:
            if tracked == dataset and project in (None, owner):
                return discovered_table(owner, tracked, name)
        return None

    def _explicit_or_unknown(self, table_id: str, extra_ids: list[str]) -> TrackedTable:
        table = self.explicit(table_id)
        if table is not None:
            return table
        known = [table.id for table in self.registry.tables] + extra_ids
        raise UnknownTableError(table_id, known, closest(table_id, known))

    def _spelling(self, project: str, dataset: str, name: str) -> str:
        """The cached table name ``name`` means: the exact one, else the only one differing in case, else ``name``."""
        rows = [row for row in (self.cache.find_ignoring_case(f"{dataset}.{name}") if self.cache is not None else [])
                if (row.project, row.dataset) == (project, dataset) and row.id == f"{row.dataset}.{row.table}"]
        names = [row.table for row in rows]
        return name if name in names or len(names) != 1 else names[0]


def dedupe(tables: list[TrackedTable]) -> list[TrackedTable]:
    """Each table once, by id ignoring case (``--table orders --table ORDERS`` refreshes it once)."""
    return list({table.id.lower(): table for table in tables}.values())
