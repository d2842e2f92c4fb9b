"""BigQuery -> cache: ``refresh_all()`` and ``refresh_one(table_id)``.

Callable in-process (a jobs.yaml ``call: catalog.refresh:refresh_all`` job)
and from ``catalog refresh``. Work is batched per dataset, datasets run
concurrently (``CATALOG_REFRESH_CONCURRENCY``), and only one refresh runs at
a time per cache file. Errors are per table and never abort the run.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog.bigquery import BigQuerySource, RetryPolicy, connect
from catalog.cache import ERROR_MSG_LIMIT, Cache
from catalog.errors import BigQueryError, RefreshFailed
from catalog.fetch import DatasetResult, Sizes, fetch_dataset, fetch_region_storage
from catalog.models import TrackedTable, discovered_table
from catalog.registry import Registry, load_registry
from catalog.resolve import dedupe, resolve
from catalog.settings import CatalogSettings, load_settings
from catalog.singleflight import AlreadyRunning, RefreshLock
from tickless.clock import Clock, iso, utc_now

logger = logging.getLogger("catalog.refresh")

@dataclass
class RefreshSummary:
    run_id: str
    started_at: str
    status: str = "completed"  # or "already_running"
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


class Refresher:
    def __init__(self, registry: Registry, cache: Cache, source: BigQuerySource, concurrency: int, clock: Clock = utc_now) -> None:
        self.registry = registry
        self.cache = cache
        self.source = source
        self.concurrency = concurrency
        self.clock = clock

    def run(self, summary: RefreshSummary, only: list[TrackedTable] | None) -> RefreshSummary:
        started = time.monotonic()
        calls_before = self.source.calls
        units = self._plan(only)
        storage = self._region_storage(units)
        workers = max(1, min(self.concurrency, len(units)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catalog-refresh") as pool:
            futures = [(unit, pool.submit(self._refresh_unit, unit, storage.get(unit.project))) for unit in units]
            for unit, future in futures:
                try:
                    outcomes = future.result()
                except Exception as exc:  # a bug or a surprise in one dataset must not abort the others
                    logger.exception("dataset %s.%s: unexpected error", unit.project, unit.dataset)
                    outcomes = self._fail_unit(unit, f"unexpected error: {type(exc).__name__}: {exc}")
                for table_id, outcome, message in outcomes:
                    summary.total += 1
                    if outcome == "succeeded":
                        summary.succeeded += 1
                    elif outcome == "no_data":
                        summary.no_data += 1
                    else:
                        summary.failed += 1
                        summary.failures[table_id] = message
        summary.duration_ms = int((time.monotonic() - started) * 1000)
        summary.bigquery_calls = self.source.calls - calls_before
        return summary

    def _plan(self, only: list[TrackedTable] | None) -> list[_Unit]:
        units: dict[tuple[str, str], _Unit] = {}
        if only is None:
            for project, dataset in self.registry.datasets:
                units[(project, dataset)] = _Unit(project, dataset, whole=True)
        for table in self.registry.tables if only is None else only:
            unit = units.setdefault(table.location, _Unit(table.project, table.dataset))
            unit.tables.setdefault(table.table, []).append(table)
        return list(units.values())

    def _region_storage(self, units: list[_Unit]) -> dict[str, dict[str, Sizes]]:
        """One TABLE_STORAGE query per project when the location is known; {} means use __TABLES__."""
        location = self.registry.location
        if not location:
            return {}
        found: dict[str, dict[str, Sizes]] = {}
        for project in sorted({unit.project for unit in units}):
            try:
                datasets = [unit.dataset for unit in units if unit.project == project]
                found[project] = fetch_region_storage(self.source, project, location, datasets)
            except BigQueryError as exc:
                logger.warning("project %s: region-%s TABLE_STORAGE unavailable (%s); using __TABLES__ per dataset", project, location, exc)
        return found

    def _refresh_unit(self, unit: _Unit, storage: dict[str, Sizes] | None) -> list[tuple[str, str, str]]:
        names = None if unit.whole else sorted(unit.tables)
        try:
            sizes = None if storage is None else storage.get(unit.dataset, {})
            result = fetch_dataset(self.source, unit.project, unit.dataset, names, sizes)
        except BigQueryError as exc:
            logger.warning("dataset %s.%s failed: %s", unit.project, unit.dataset, exc)
            return self._fail_unit(unit, exc.summary)
        return self._record(unit, result)

    def _fail_unit(self, unit: _Unit, message: str) -> list[tuple[str, str, str]]:
        known = self._known_tables(unit)
        outcomes = [self._fail(table, message) for tables in known.values() for table in tables]
        if unit.whole and not any(table.discovered for tables in known.values() for table in tables):
            # Tracked whole, and none of its tables is known yet: no row would carry the failure.
            key = f"dataset:{unit.project}.{unit.dataset}"
            logger.warning("%s failed before any of its tables was known: %s", key, message)
            outcomes.append((key, "failed", message[:ERROR_MSG_LIMIT]))
        return outcomes

    def _known_tables(self, unit: _Unit) -> dict[str, list[TrackedTable]]:
        """BigQuery name -> the tracked tables (registry ids, or the discovered one) it stands for."""
        tables = {name: list(tracked) for name, tracked in unit.tables.items()}
        if unit.whole:
            for row in self.cache.rows():
                if (row.project, row.dataset) == (unit.project, unit.dataset) and row.id == f"{row.dataset}.{row.table}":
                    tables.setdefault(row.table, [discovered_table(unit.project, unit.dataset, row.table)])
        return tables

    def _record(self, unit: _Unit, result: DatasetResult) -> list[tuple[str, str, str]]:
        now = self.clock()
        outcomes: list[tuple[str, str, str]] = []
        tables = self._known_tables(unit)
        for name, meta in result.tables.items():
            for table in tables.pop(name, None) or [discovered_table(unit.project, unit.dataset, name)]:
                self.cache.record_success(table, meta, now)
                outcomes.append((table.id, "succeeded", ""))
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
                outcomes.append((table.id, "failed", message))
                continue
            # Not in INFORMATION_SCHEMA.TABLES: BigQuery had nothing to say about it.
            message = (
                f"BigQuery returned no metadata: {unit.dataset}.{table.table} is not in "
                f"{unit.project}.{unit.dataset}.INFORMATION_SCHEMA.TABLES (deleted, renamed, or not visible to these credentials)"
            )
            self.cache.record_error(table, message, now)
            logger.warning("table %s: %s", table.id, message)
            outcomes.append((table.id, "no_data", message))
        return outcomes

    def _unknown(self, table: TrackedTable) -> bool:
        """A discovered table with no cache row: nothing says it exists."""
        return table.discovered and self.cache.get(table.id) is None

    def _fail(self, table: TrackedTable, message: str, *, listed: bool = False) -> tuple[str, str, str]:
        """The stable text (no request URL or job id: the same failure always reads the same), at most 512 characters.

        ``listed``: BigQuery named the table. A discovered table it did not name gets no row until it does.
        """
        message = message[:ERROR_MSG_LIMIT]
        if listed or not self._unknown(table):
            self.cache.record_error(table, message, self.clock())
        logger.warning("table %s failed: %s", table.id, message)
        return (table.id, "failed", message)


def refresh(
    table_ids: list[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    settings: CatalogSettings | None = None,
    registry: Registry | None = None,
    source: BigQuerySource | None = None,
    policy: RetryPolicy | None = None,
    clock: Clock = utc_now,
    raise_on_failure: bool = False,
) -> RefreshSummary:
    """Refresh ``table_ids`` (every tracked table when None); the summary of the run.

    Returns status ``already_running`` at once when another refresh of the
    same cache file is in progress, in this process or another.
    """
    env = os.environ if env is None else env
    settings = settings or load_settings(env)
    registry = registry or load_registry(settings.config_path, env)
    only = None
    if table_ids is not None:
        with Cache(settings.db_path) as cache:
            only = dedupe([resolve(registry, table_id, cache) for table_id in table_ids])
    started_at = clock()
    summary = RefreshSummary(run_id=uuid.uuid4().hex, started_at=iso(started_at))
    try:
        with RefreshLock(Path(settings.db_path), summary.run_id, summary.started_at):
            with Cache(settings.db_path) as cache:
                own = source is None
                source = source or connect(registry.billing_project, registry.location,
                                           emulator_endpoint=settings.emulator_endpoint, policy=policy)
                try:
                    Refresher(registry, cache, source, settings.concurrency, clock).run(summary, only)
                finally:
                    if own:
                        source.close()
    except AlreadyRunning as running:
        logger.info("catalog refresh skipped: run %s (started %s) is still running", running.holder.run_id, running.holder.started_at)
        return RefreshSummary(run_id=running.holder.run_id or "", started_at=running.holder.started_at or "", status="already_running")
    logger.info(
        "catalog refresh %s: %d tables, %d succeeded, %d no data, %d failed, %d BigQuery calls, %d ms",
        summary.run_id, summary.total, summary.succeeded, summary.no_data, summary.failed, summary.bigquery_calls, summary.duration_ms,
    )
    if raise_on_failure and summary.failed:
        raise RefreshFailed(summary, summary.failed, summary.total)
    return summary


def refresh_all(
    *,
    env: Mapping[str, str] | None = None,
    settings: CatalogSettings | None = None,
    registry: Registry | None = None,
    source: BigQuerySource | None = None,
    policy: RetryPolicy | None = None,
    clock: Clock = utc_now,
    raise_on_failure: bool = True,
) -> RefreshSummary:
    """Every tracked table.

    Raises RefreshFailed (after recording everything) when a table failed, so
    a scheduled ``call`` job is reported as failed; ``raise_on_failure=False``
    only returns the summary.
    """
    return refresh(None, env=env, settings=settings, registry=registry, source=source, policy=policy,
                   clock=clock, raise_on_failure=raise_on_failure)


def refresh_one(
    table_id: str,
    *,
    env: Mapping[str, str] | None = None,
    settings: CatalogSettings | None = None,
    registry: Registry | None = None,
    source: BigQuerySource | None = None,
    policy: RetryPolicy | None = None,
    clock: Clock = utc_now,
    raise_on_failure: bool = True,
) -> RefreshSummary:
    """One table by registry id (case-insensitive) or ``dataset.table``; same contract as refresh_all."""
    return refresh([table_id], env=env, settings=settings, registry=registry, source=source, policy=policy,
                   clock=clock, raise_on_failure=raise_on_failure)
