"""The cost guard: ask before running SQL against tracked BigQuery tables.

``guard_query(sql, catalog)`` decides for one ``catalog.Catalog`` (or any
``GuardContext``); ``check_query(sql)`` builds a ``Catalog`` from the
environment (or from the dependencies given, for tests) and runs it.

* ``check``: the decision: one dry run against the cap; ``GuardResult``.
* ``targets``: SQL -> the tracked tables it reads, and the rewrite the dry run needs.
* ``sql_scopes``: which table names in a query are CTEs or array paths, by SQL scope.
* ``suggestions``: what a refused query should do instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from catalog.cache import Cache
from catalog.guard.check import HEADROOM, MIN_BILLED_PER_TABLE, GuardContext, GuardResult, guard_query
from catalog.library import Catalog
from catalog.registry import Registry
from catalog.settings import CatalogSettings

if TYPE_CHECKING:  # the client module imports google-cloud-bigquery: only Catalog.client loads it, when first needed
    from catalog.bigquery import BigQuerySource, RetryPolicy

__all__ = ["HEADROOM", "MIN_BILLED_PER_TABLE", "GuardContext", "GuardResult", "check_query", "guard_query"]


def check_query(
    sql: str,
    *,
    env: Mapping[str, str] | None = None,
    settings: CatalogSettings | None = None,
    registry: Registry | None = None,
    cache: Cache | None = None,
    source: BigQuerySource | None = None,
    policy: RetryPolicy | None = None,
    parameters: Sequence[Any] = (),
) -> GuardResult:
    """Allow ``sql`` (a GuardResult) or raise QueryGuardError saying why not and what to do.

    ``parameters`` are the query's ``@name`` parameters as the caller will run
    it (google-cloud-bigquery ``ScalarQueryParameter``/``ArrayQueryParameter``
    objects): the dry run needs them declared, or BigQuery rejects the query.

    Raises InvalidSql, PathNotRegistered, EstimateFailed or ScanTooLarge (all
    QueryGuardError); ConfigError or CredentialsError when the guard itself
    cannot work.
    """
    with Catalog.from_env(env, settings=settings, registry=registry, cache=cache, source=source, policy=policy) as catalog:
        return guard_query(sql, catalog, parameters)
