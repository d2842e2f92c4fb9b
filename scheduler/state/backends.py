"""Opening the configured state store: SQLite (``SCHEDULER_STATE_PATH``) or PostgreSQL (``SCHEDULER_STATE_URL``).

The PostgreSQL module (and psycopg) is imported only when a URL is set, so
the embedded default never pays for it.
"""

from __future__ import annotations

from scheduler.config.settings import Settings
from scheduler.state.sqlite import SqliteStore, check_state_path
from scheduler.state.store import StateStore

READING_POOL_SIZE = 2  # list, history, status: reads one after another


def open_store(settings: Settings, *, pool_size: int | None = None) -> StateStore:
    """The store ``run`` and ``fire`` write to; StateError (exit 2) when it cannot be opened."""
    if settings.state_url:
        from scheduler.state.postgres import PostgresStore  # psycopg only for those who use it

        return PostgresStore(settings.state_url, settings.history_per_job, pool_size=pool_size or settings.state_pool_size)
    return SqliteStore(settings.state_path, settings.history_per_job)


def peek_store(settings: Settings) -> StateStore | None:
    """The store for reading (``list``, ``history``, ``status``), or None when a SQLite file does not exist yet.
    On PostgreSQL its pool is small: the replicas' connections are what max_connections must hold."""
    if settings.state_url:
        return open_store(settings, pool_size=min(settings.state_pool_size, READING_POOL_SIZE))
    if not settings.state_path.exists():
        return None
    return SqliteStore(settings.state_path, readonly=True)


def check_store(settings: Settings) -> None:
    """What ``validate`` checks: the store can be used as ``run`` will (connects to PostgreSQL)."""
    if settings.state_url:
        open_store(settings).close()
    else:
        check_state_path(settings.state_path)
