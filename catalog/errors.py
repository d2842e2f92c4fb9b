"""The catalog's one exception hierarchy.

Every error builds its own message, so callers never format them; ``cli.py``
is the only place that turns them into exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable


class CatalogError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CatalogError):
    """One or more configuration problems, collected and raised once.

    ``problems`` holds one line per problem, already located
    (``FILE:LINE: table 'ID': field: what is wrong`` or ``NAME=value: rule``).
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UnknownTableError(CatalogError):
    def __init__(self, table_id: str, known: list[str], hint: str | None) -> None:
        self.table_id = table_id
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        message = f"no tracked table with id {table_id!r} (ids: {shown or 'none'})"
        if hint:
            message += f"; did you mean {hint!r}?"
        super().__init__(message)


class CacheError(CatalogError):
    """The SQLite cache cannot be opened, read or migrated."""

    def __init__(self, path: str, problem: str, hint: str | None = None) -> None:
        self.path = path
        message = f"catalog cache {path}: {problem}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class CredentialsError(CatalogError):
    """No way to authenticate to BigQuery."""


class BigQueryError(CatalogError):
    """One BigQuery API call failed (after any retries).

    ``reason`` is BigQuery's ``errors[].reason`` (``notFound``,
    ``accessDenied``, ``rateLimitExceeded``, ...) when it gave one;
    ``permanent`` says whether asking again could help.
    """

    def __init__(self, message: str, *, reason: str | None, status: int | None, permanent: bool) -> None:
        self.reason = reason
        self.status = status
        self.permanent = permanent
        super().__init__(message)


class RefreshFailed(CatalogError):
    """A refresh finished, but at least one table failed.

    Raised by ``refresh_all``/``refresh_one`` so a scheduled ``call`` job is
    reported as failed; ``summary`` holds the full outcome.
    """

    def __init__(self, summary: object, failed: int, total: int) -> None:
        self.summary = summary
        super().__init__(f"catalog refresh: {failed} of {total} table(s) failed; see error_msg in 'catalog status'")
