"""The catalog as a library object: ``Catalog`` holds settings, registry, cache and BigQuery client.

Everything the catalog does starts from one: reading the cache (``rows``,
``listing_json``, ``row``, ``status`` here), refreshing it (``catalog.refresh.refresh_catalog``)
and guarding a query (``catalog.guard.guard_query``), both of which take a
``Catalog``. The CLI is a thin shell over them, and the function entry points
(``catalog.refresh.refresh_all``, ``catalog.guard.check_query``) build one
from the environment. This module imports neither ``refresh`` nor ``guard``,
so the packages depend on it and never the other way round.

The cache is opened and the BigQuery client connected only when first
needed, so reads never import google-cloud-bigquery and a guard decision
that needs no dry run never opens a connection. Dependencies given to the
constructor (a test's cache or client) are used as they are and left open;
what the catalog opened itself, ``close()`` closes.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from itertools import chain
from types import TracebackType
from typing import TYPE_CHECKING, Any

from catalog.cache import Cache, cache_key, decode_row
from catalog.models import CatalogRow, TrackedTable
from catalog.registry import Registry, load_registry
from catalog.rows import ListingText, status_json, table_json
from catalog.settings import DEFAULT_MAX_SCAN_BYTES, CatalogSettings, load_settings
from catalog.tracked import TrackedTables
from tickless.clock import Clock, iso, utc_now

if TYPE_CHECKING:  # the client module imports google-cloud-bigquery: loaded by ``client`` when first needed
    from catalog.bigquery import BigQuerySource, RetryPolicy



class Catalog:
    """One catalog: its settings and registry, its cache, and (when needed) a BigQuery client."""

    def __init__(
        self,
        settings: CatalogSettings,
        registry: Registry,
        *,
        cache: Cache | None = None,
        source: BigQuerySource | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.policy = policy
        self.clock = clock
        self._cache = cache
        self._source = source
        self._own_cache = cache is None
        self._own_source = source is None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        settings: CatalogSettings | None = None,
        registry: Registry | None = None,
        cache: Cache | None = None,
        source: BigQuerySource | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
    ) -> Catalog:
        """Settings from ``env`` (default ``os.environ``) and the registry they name, unless given.

        Raises ConfigError naming every bad variable or catalog.yaml problem.
        """
        env = os.environ if env is None else env
        settings = settings or load_settings(env)
        registry = registry or load_registry(settings.config_path, env)
        return cls(settings, registry, cache=cache, source=source, policy=policy, clock=clock)

    # -- what it holds ---------------------------------------------------------------

    @property
    def cache(self) -> Cache:
        """The SQLite cache (``CATALOG_DB``), opened (and migrated) on first use."""
        if self._cache is None:
            self._cache = Cache(self.settings.db_path)
        return self._cache

    @property
    def client(self) -> BigQuerySource:
        """The BigQuery client, connected on first use (this is what imports google-cloud-bigquery)."""
        if self._source is None:
            from catalog.bigquery import connect  # only the commands that call BigQuery pay for the import

            self._source = connect(self.registry.billing_project, self.registry.location,
                                   emulator_endpoint=self.settings.emulator_endpoint, policy=self.policy)
        return self._source

    @property
    def tracked(self) -> TrackedTables:
        """Every tracked table, found by id or path: the registry's and those discovered in the cache."""
        return TrackedTables(self.registry, self.cache)

    @property
    def max_scan_bytes(self) -> int:
        """The guard's cap: CATALOG_MAX_SCAN_BYTES, else max_scan_bytes in catalog.yaml, else 5 GiB; 0 turns it off."""
        for value in (self.settings.max_scan_bytes, self.registry.max_scan_bytes):
            if value is not None:
                return value
        return DEFAULT_MAX_SCAN_BYTES

    @property
    def guard_timeout_seconds(self) -> int:
        """How long the guard may wait for BigQuery in all (CATALOG_GUARD_TIMEOUT_SECONDS)."""
        return self.settings.guard_timeout_seconds

    # -- reading the cache (never calls BigQuery) -------------------------------------

    def rows(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """The ``catalog list`` row of every tracked table, from one read of the cache."""
        now = now or self.clock()
        threshold = self.settings.fresh_threshold_seconds
        with _collector_paused():
            return [table_json(self.registry, table, row, now, threshold) for table, row in self._tables_and_rows()]

    def listing(self) -> dict[str, Any]:
        """``catalog list --json``'s document, ``{"server_time", "tables"}`` (``listing_json`` writes it as text)."""
        tables = self.rows()
        return {"server_time": iso(self.clock()), "tables": tables}

    def listing_json(self, batch: int = 1000) -> Iterator[str]:
        """``catalog list --json`` as compact JSON text, in pieces of ``batch`` rows: ``json.dumps(self.listing())``, byte for byte.

        Written from the stored rows (``ListingText``), from one read of the cache, without building the rows
        as dicts: 10,000 rows in under a third of the time (bench/catalog_reads.py).
        """
        now = self.clock()
        cached = self.cache.stored_rows()
        by_key = {cache_key(row.id): row for row in cached}
        text = ListingText(self.registry, now, self.settings.fresh_threshold_seconds)
        # The tables TrackedTables.all() lists, in its order: the registry's, then the discovered ones.
        explicit = [text.explicit(table, by_key.get(cache_key(table.id))) for table in self.registry.tables]
        discovered = TrackedTables(self.registry).listed_discovered(cached)
        batches = (text.discovered(discovered[start:start + batch]) for start in range(0, len(discovered), batch))
        yield f'{{"server_time": {json.dumps(iso(now))}, "tables": ['
        separator = ""
        for rows in chain([explicit], batches):
            if rows:
                yield separator + ", ".join(rows)
                separator = ", "
        yield "]}"

    def row(self, table_id: str, now: datetime | None = None) -> dict[str, Any]:
        """The ``catalog show`` row of one tracked table; UnknownTableError (with a did-you-mean) for an unknown id."""
        table = self.tracked.find(table_id)
        return table_json(self.registry, table, self.cache.get(table.id), now or self.clock(),
                          self.settings.fresh_threshold_seconds)

    def status(self, now: datetime | None = None) -> dict[str, Any]:
        """``catalog status --json``: the freshness rule and every tracked table's freshness."""
        now = now or self.clock()
        threshold = self.settings.fresh_threshold_seconds
        return {
            "scheduler_interval_seconds": self.settings.refresh_interval_seconds,
            "fresh_threshold_seconds": threshold,
            "server_time": iso(now),
            "tables": [status_json(table, row, now, threshold) for table, row in self._tables_and_rows()],
        }

    def _tables_and_rows(self) -> list[tuple[TrackedTable, CatalogRow | None]]:
        """Every tracked table with its cache row, from one read of the cache (not one query per table)."""
        cached = self.cache.stored_rows()
        by_key = {cache_key(row.id): row for row in cached}
        found = [(table, by_key.get(cache_key(table.id))) for table in TrackedTables(self.registry).all(cached)]
        return [(table, None if row is None else decode_row(row)) for table, row in found]

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close what this catalog opened itself; a cache or client it was given stays open."""
        if self._own_source and self._source is not None:
            self._source.close()
            self._source = None
        if self._own_cache and self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@contextmanager
def _collector_paused() -> Iterator[None]:
    # Building 10,000 rows allocates a few hundred thousand objects that all
    # live until the caller uses them; pausing the cyclic collector spares
    # it repeated full scans of them (measured: about a third of building them).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
