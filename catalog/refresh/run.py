"""One refresh run: plan the work per dataset, fetch concurrently, record each table's outcome in the cache.

Work is batched per dataset (``catalog.refresh.fetch``), datasets run
concurrently (``CATALOG_REFRESH_CONCURRENCY``), and errors are per table:
they never abort the run. The run's counts are a ``RefreshSummary``; each
table ends as one ``RefreshOutcome``. ``refresh_catalog`` runs a
``Refresher`` under the single-flight lock (``catalog.refresh.lock``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from catalog.cache import ERROR_MSG_LIMIT, Cache
from catalog.errors import BigQueryError
from catalog.models import TrackedTable, discovered_table
from catalog.refresh.fetch import DatasetResult, Sizes, fetch_dataset, fetch_region_storage
from catalog.registry import Registry
from catalog.tracked import TrackedTables
from tickless.clock import Clock, utc_now

if TYPE_CHECKING:  # the client module imports google-cloud-bigquery; a run is handed a client, never makes one
    from catalog.bigquery import BigQuerySource

logger = logging.getLogger("catalog.refresh")

class RefreshStatus(StrEnum):
    """How a refresh call ended: it ran, or another refresh of the same cache file was running."""

    COMPLETED = "completed"
    ALREADY_RUNNING = "already_running"


class RefreshOutcome(StrEnum):
    """How one table ended in a run; each is counted under its own name in the summary."""

    SUCCEEDED = "succeeded"
    NO_DATA = "no_data"  # BigQuery does not list it (deleted, renamed, or not visible)
    FAILED = "failed"


# Per table: (table id, outcome, message; "" when it succeeded).
Outcome = tuple[str, RefreshOutcome, str]


@dataclass
class RefreshSummary:
    """What ``catalog refresh --json`` prints (``failures`` stays out of it: the text form lists them)."""

    run_id: str
    started_at: str
    status: RefreshStatus = RefreshStatus.COMPLETED
    total: int = 0
    succeeded: int = 0
    no_data: int = 0
    failed: int = 0
    duration_ms: int = 0
    bigquery_calls: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        document = asdict(self)
        document.pop("failures")
        return document


@dataclass
class _Unit:
    """One dataset's work: explicit tables by BigQuery name, and whether to take every table.

    Several registry ids may name one BigQuery table (aliases): each is refreshed and counted.
    """

    project: str
    dataset: str
    tables: dict[str, list[TrackedTable]] = field(default_factory=dict)
    whole: bool = False
    region: str | None = None  # the dataset's location, when known before the run


class Refresher:
    """One run over the tracked tables (or ``only`` some), filling ``summary``."""

    def __init__(self, registry: Registry, cache: Cache, source: BigQuerySource, concurrency: int, clock: Clock = utc_now) -> None:
        self.registry = registry
        self.cache = cache
        self.tracked = TrackedTables(registry, cache)
        self.source = source
        self.concurrency = concurrency
        self.clock = clock

    def run(self, summary: RefreshSummary, only: list[TrackedTable] | None, timeout: float | None = None) -> RefreshSummary:
        started = time.monotonic()
        calls_before = self.source.calls
        with self.source.time_limit(timeout):
            self._run(summary, only)
        summary.duration_ms = int((time.monotonic() - started) * 1000)
        summary.bigquery_calls = self.source.calls - calls_before
        return summary

    def _run(self, summary: RefreshSummary, only: list[TrackedTable] | None) -> None:
        units = self._plan(only)
        for unit in units:
            unit.region = self._location(unit.project, unit.dataset)
        storage = self._region_storage(units)
        workers = max(1, min(self.concurrency, len(units)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catalog-refresh") as pool:
            futures = [(unit, pool.submit(self._refresh_unit, unit, storage.get((unit.project, unit.region or ""))))
                       for unit in units]
            for unit, future in futures:
                try:
                    outcomes = future.result()
                except Exception as exc:  # a bug or a surprise in one dataset must not abort the others
                    logger.exception("dataset %s.%s: unexpected error", unit.project, unit.dataset)
                    outcomes = self._fail_unit(unit, f"unexpected error: {type(exc).__name__}: {exc}")
                for table_id, outcome, message in outcomes:
                    summary.total += 1
                    if outcome is RefreshOutcome.SUCCEEDED:
                        summary.succeeded += 1
                    elif outcome is RefreshOutcome.NO_DATA:
                        summary.no_data += 1
                    else:
                        summary.failed += 1
                        summary.failures[table_id] = message

    def _location(self, project: str, dataset: str) -> str | None:
        """Where a dataset lives: catalog.yaml, else what an earlier refresh or guard learned; None: BigQuery finds it."""
        return self.registry.configured_location(project, dataset) or self.cache.dataset_location(project, dataset)

    def _plan(self, only: list[TrackedTable] | None) -> list[_Unit]:
        units: dict[tuple[str, str], _Unit] = {}
        if only is None:
            for project, dataset in self.registry.datasets:
                units[(project, dataset)] = _Unit(project, dataset, whole=True)
        for table in self.registry.tables if only is None else only:
            unit = units.setdefault(table.location, _Unit(table.project, table.dataset))
            unit.tables.setdefault(table.table, []).append(table)
        return list(units.values())

    def _region_storage(self, units: list[_Unit]) -> dict[tuple[str, str], dict[str, Sizes]]:
        """One TABLE_STORAGE query per project and region whose datasets' location is known; the others use __TABLES__."""
        regions = sorted({(unit.project, unit.region) for unit in units if unit.region})
        found: dict[tuple[str, str], dict[str, Sizes]] = {}
        for project, region in regions:
            if region is None:
                continue
            try:
                datasets = [unit.dataset for unit in units if (unit.project, unit.region) == (project, region)]
                found[(project, region)] = fetch_region_storage(self.source, project, region, datasets)
            except BigQueryError as exc:
                logger.warning("project %s: region-%s TABLE_STORAGE unavailable (%s); using __TABLES__ per dataset",
                               project, region, exc.summary)
        return found

    def _refresh_unit(self, unit: _Unit, storage: dict[str, Sizes] | None) -> list[Outcome]:
        names = None if unit.whole else sorted(unit.tables)
        families = [name for name in unit.tables if name.endswith("*")]
        try:
            left = self.source.remaining()
            if left is not None and left <= 0:
                raise BigQueryError("the refresh ran out of time before this dataset (CATALOG_REFRESH_TIMEOUT_SECONDS)",
                                    reason="deadlineExceeded", status=None, permanent=False)
            sizes = None if storage is None else storage.get(unit.dataset)  # absent: another region, or too new
            result = fetch_dataset(self.source, unit.project, unit.dataset, names, sizes, unit.region, families)
        except BigQueryError as exc:
            logger.warning("dataset %s.%s failed: %s", unit.project, unit.dataset, exc.summary)
            return self._fail_unit(unit, exc.summary)
        if result.location and unit.region is None and self.registry.configured_location(unit.project, unit.dataset) is None:
            self.cache.record_dataset_location(unit.project, unit.dataset, result.location, self.clock())
        return self._record(unit, result)

    def _fail_unit(self, unit: _Unit, message: str) -> list[Outcome]:
        known = self._known_tables(unit)
        outcomes = [self._fail(table, message, log=False) for tables in known.values() for table in tables]
        if unit.whole and not any(table.discovered for tables in known.values() for table in tables):
            # Tracked whole, and none of its tables is known yet: no row would carry the failure.
            key = f"dataset:{unit.project}.{unit.dataset}"
            logger.warning("%s failed before any of its tables was known: %s", key, message)
            outcomes.append((key, RefreshOutcome.FAILED, message[:ERROR_MSG_LIMIT]))
        return outcomes

    def _known_tables(self, unit: _Unit) -> dict[str, list[TrackedTable]]:
        """BigQuery name -> the tracked tables (registry ids, or the discovered one) it stands for."""
        tables = {name: list(tracked) for name, tracked in unit.tables.items()}
        if unit.whole:
            for table in self.tracked.discovered(project=unit.project, dataset=unit.dataset):
                tables.setdefault(table.table, [table])
        return tables

    def _record(self, unit: _Unit, result: DatasetResult) -> list[Outcome]:
        now = self.clock()
        outcomes: list[Outcome] = []
        tables = self._known_tables(unit)
        for name, meta in result.tables.items():
            for table in tables.pop(name, None) or [discovered_table(unit.project, unit.dataset, name)]:
                self.cache.record_success(table, meta, now)
                outcomes.append((table.id, RefreshOutcome.SUCCEEDED, ""))
        for name, error in result.errors.items():
            for failed in tables.pop(name, None) or [discovered_table(unit.project, unit.dataset, name)]:
                outcomes.append(self._fail(failed, error.summary, listed=True))
        for table in (table for group in tables.values() for table in group):
            if self._unknown(table):
                # Asked for by name (catalog refresh --table wh.evnets), never listed, never cached: a typo
                # or a table that does not exist. Reported, but no row, or every later refresh would keep it.
                message = (f"unknown table: {unit.dataset}.{table.table} is not in "
                           f"{unit.project}.{unit.dataset}.INFORMATION_SCHEMA.TABLES and has never been cached")
                logger.warning("table %s: %s", table.id, message)
                outcomes.append((table.id, RefreshOutcome.FAILED, message))
                continue
            # Not in INFORMATION_SCHEMA.TABLES: BigQuery had nothing to say about it.
            message = (
                f"BigQuery returned no metadata: {unit.dataset}.{table.table} is not in "
                f"{unit.project}.{unit.dataset}.INFORMATION_SCHEMA.TABLES (deleted, renamed, or not visible to these credentials)"
            )
            self.cache.record_error(table, message, now)
            logger.warning("table %s: %s", table.id, message)
            outcomes.append((table.id, RefreshOutcome.NO_DATA, message))
        return outcomes

    def _unknown(self, table: TrackedTable) -> bool:
        """A discovered table with no cache row: nothing says it exists."""
        return table.discovered and self.cache.get(table.id) is None

    def _fail(self, table: TrackedTable, message: str, *, listed: bool = False, log: bool = True) -> Outcome:
        """The stable text (no request URL or job id: the same failure always reads the same), at most 512 characters.

        ``listed``: BigQuery named the table. A discovered table it did not name gets no row until it does.
        """
        message = message[:ERROR_MSG_LIMIT]
        if listed or not self._unknown(table):
            self.cache.record_error(table, message, self.clock())
        if log:  # a whole dataset's failure is one line (in _refresh_unit), not one per table
            logger.warning("table %s failed: %s", table.id, message)
        return (table.id, RefreshOutcome.FAILED, message)
