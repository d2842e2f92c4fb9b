"""tickless catalog: a local SQLite cache of BigQuery table metadata.

Reads (``catalog list``/``show``/``status``) never call BigQuery; only
``catalog refresh`` (or ``catalog.refresh.refresh_all`` from a jobs.yaml
``call`` job) does.
"""

from __future__ import annotations
