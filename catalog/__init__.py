"""tickless catalog: a local SQLite cache of BigQuery table metadata, and a cost guard for queries.

``Catalog`` (``catalog.library``) is the library object: settings, registry,
cache and a BigQuery client made only when needed. Reads (``catalog
list``/``show``/``status``) never call BigQuery; ``catalog refresh`` (or
``catalog.refresh.refresh_all`` from a jobs.yaml ``call`` job) and ``catalog
guard`` (``catalog.guard.check_query``) do.

Where things live:

* ``library``: ``Catalog``; ``cli``: the command line over it.
* ``settings``: environment variables; ``registry``: catalog.yaml.
* ``tracked``: which tables are tracked, and finding one by id or path.
* ``cache``: the SQLite cache; ``rows``: cache rows as the JSON rows the commands print.
* ``refresh/``: BigQuery -> cache (run, fetch, single-flight lock).
* ``guard/``: the cost guard (check, targets, SQL scopes, suggestions).
* ``bigquery``: the only module importing google-cloud-bigquery.
* ``models``, ``errors``, ``identifiers``, ``examples``: value types, the
  error hierarchy, BigQuery naming rules, where_examples.
"""

from __future__ import annotations

from catalog.library import Catalog

__all__ = ["Catalog"]
