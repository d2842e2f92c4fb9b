"""Refresh: BigQuery metadata -> the cache.

``refresh_catalog(catalog, tables)`` refreshes one ``catalog.Catalog``.
``refresh_all()`` and ``refresh_one(table_id)`` are what a jobs.yaml ``call``
job names (``call: catalog.refresh:refresh_all``); ``refresh(table_ids)`` is
both. Each builds a ``Catalog`` from the environment (or from the
dependencies given, for tests) and runs ``refresh_catalog``.

* ``run``: one run: plan per dataset, fetch concurrently, record outcomes; the summary.
* ``fetch``: one dataset's metadata in a fixed number of BigQuery calls.
* ``lock``: one refresh at a time per cache file.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from catalog.errors import RefreshFailed
from catalog.library import Catalog
from catalog.refresh.lock import AlreadyRunning, RefreshLock
from catalog.refresh.run import Refresher, RefreshOutcome, RefreshStatus, RefreshSummary
from catalog.registry import Registry
from catalog.settings import CatalogSettings
from catalog.tracked import dedupe
from tickless.clock import Clock, iso, utc_now

if TYPE_CHECKING:  # the client module imports google-cloud-bigquery: only Catalog.client loads it, when first needed
    from catalog.bigquery import BigQuerySource, RetryPolicy

__all__ = ["RefreshOutcome", "RefreshStatus", "RefreshSummary", "refresh", "refresh_all", "refresh_catalog", "refresh_one"]

logger = logging.getLogger("catalog.refresh")


def refresh_catalog(catalog: Catalog, tables: Sequence[str] | None = None, *, raise_on_failure: bool = False) -> RefreshSummary:
    """Refresh ``tables`` of ``catalog`` (registry ids or ``dataset.table``; every tracked table when None).

    Returns status ``already_running`` at once when another refresh of the
    same cache file is in progress, in this process or another. With
    ``raise_on_failure``, raises RefreshFailed (after recording everything)
    when a table failed.
    """
    only = None if tables is None else dedupe([catalog.tracked.to_refresh(table_id) for table_id in tables])
    summary = RefreshSummary(run_id=uuid.uuid4().hex, started_at=iso(catalog.clock()))
    try:
        # The lock first: a refresh that loses it returns at once, without opening the cache or connecting.
        with RefreshLock(catalog.settings.db_path, summary.run_id, summary.started_at):
            Refresher(catalog.registry, catalog.cache, catalog.client, catalog.settings.concurrency, catalog.clock).run(
                summary, only, catalog.settings.refresh_timeout_seconds)
    except AlreadyRunning as running:
        logger.info("catalog refresh skipped: run %s (started %s) is still running", running.holder.run_id, running.holder.started_at)
        return RefreshSummary(run_id=running.holder.run_id or "", started_at=running.holder.started_at or "",
                              status=RefreshStatus.ALREADY_RUNNING)
    logger.info(
        "catalog refresh %s: %d tables, %d succeeded, %d no data, %d failed, %d BigQuery calls, %d ms",
        summary.run_id, summary.total, summary.succeeded, summary.no_data, summary.failed, summary.bigquery_calls, summary.duration_ms,
    )
    if raise_on_failure and summary.failed:
        raise RefreshFailed(summary, summary.failed, summary.total)
    return summary


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
    with Catalog.from_env(env, settings=settings, registry=registry, source=source, policy=policy, clock=clock) as catalog:
        return refresh_catalog(catalog, table_ids, raise_on_failure=raise_on_failure)


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
