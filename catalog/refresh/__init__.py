"""Refresh: BigQuery metadata -> the cache.

``refresh_all()`` and ``refresh_one(table_id)`` are what a jobs.yaml ``call``
job names (``call: catalog.refresh:refresh_all``); ``refresh(table_ids)`` is
both. Each builds a ``catalog.Catalog`` from the environment (or from the
dependencies given, for tests) and runs ``Catalog.refresh``.

* ``run``: one run: plan per dataset, fetch concurrently, record outcomes; the summary.
* ``fetch``: one dataset's metadata in a fixed number of BigQuery calls.
* ``lock``: one refresh at a time per cache file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from catalog.refresh.run import RefreshOutcome, RefreshStatus, RefreshSummary
from catalog.registry import Registry
from catalog.settings import CatalogSettings
from tickless.clock import Clock, utc_now

if TYPE_CHECKING:  # the client module imports google-cloud-bigquery: only Catalog.client loads it, when first needed
    from catalog.bigquery import BigQuerySource, RetryPolicy

__all__ = ["RefreshOutcome", "RefreshStatus", "RefreshSummary", "refresh", "refresh_all", "refresh_one"]


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
    # catalog.library builds on this package's modules: imported at the top,
    # ``import catalog.library`` would re-enter this package half-made.
    from catalog.library import Catalog

    with Catalog.from_env(env, settings=settings, registry=registry, source=source, policy=policy, clock=clock) as catalog:
        return catalog.refresh(table_ids, raise_on_failure=raise_on_failure)


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
