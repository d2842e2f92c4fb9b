"""The catalog's one exception hierarchy.

Every error builds its own message, so callers never format them; ``cli.py``
is the only place that turns them into exit codes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tickless.config.problems import Problem, as_problem


class CatalogError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CatalogError):
    """One or more configuration problems, collected and raised once.

    ``problems`` are located ``Problem``s; each reads as one line
    (``FILE:LINE: table 'ID': field: what is wrong`` or ``NAME=value: rule``).
    """

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems: list[Problem] = [as_problem(problem) for problem in problems]
        super().__init__("\n".join(str(problem) for problem in self.problems))


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
    ``permanent`` says whether asking again could help. ``summary`` is the
    message without the request URL and job id the client adds: the same
    failure always reads the same.
    """

    def __init__(self, message: str, *, reason: str | None, status: int | None, permanent: bool, summary: str | None = None) -> None:
        self.reason = reason
        self.status = status
        self.permanent = permanent
        self.summary = summary or message
        super().__init__(message)


class RefreshFailed(CatalogError):
    """A refresh finished, but at least one table failed.

    Raised by ``refresh_all``/``refresh_one`` so a scheduled ``call`` job is
    reported as failed; ``summary`` holds the full outcome.
    """

    def __init__(self, summary: object, failed: int, total: int) -> None:
        self.summary = summary
        super().__init__(f"catalog refresh: {failed} of {total} table(s) failed; see error_msg in 'catalog status'")


def bytes_text(count: int) -> str:
    """``10737418240`` -> ``10.0 GiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class QueryGuardError(CatalogError):
    """The cost guard refused a query.

    ``detail`` is the JSON document ``catalog guard --json`` prints:
    ``{"allowed": false, "reason": ..., "message": ..., ...}``; ``reason`` is
    one of the subclasses' ``REASON``.
    """

    REASON = "refused"

    def __init__(self, message: str, **fields: object) -> None:
        self.reason = self.REASON
        self.detail: dict[str, object] = {"allowed": False, "reason": self.REASON, "message": message, **fields}
        super().__init__(message)


# A parser's internals (``<class 'sqlglot.expressions.core.Mul'>``) read as their last name (``Mul``).
_CLASS = re.compile(r"<class '(?:[\w]+\.)*(\w+)'>")


class InvalidSql(QueryGuardError):
    REASON = "invalid_sql"

    def __init__(self, problem: str, line: int | None, column: int | None, *, suggestion: str | None = None) -> None:
        where = f" at line {line}, column {column}" if line is not None and column is not None else ""
        problem = _CLASS.sub(r"\1", problem)
        super().__init__(
            f"SQL does not parse (BigQuery dialect): {problem}{where}", line=line, column=column, tables=[],
            suggestion=suggestion or "Fix the SQL at the position given; the guard reads GoogleSQL (standard SQL), not legacy SQL.",
        )


class DynamicSql(QueryGuardError):
    """EXECUTE IMMEDIATE: the SQL it runs is a value known only when the script runs."""

    REASON = "dynamic_sql"

    def __init__(self, line: int | None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(
            f"EXECUTE IMMEDIATE{where} runs SQL that is only known when the script runs: the tables it reads and the "
            "bytes it scans cannot be known beforehand, and BigQuery's dry run does not estimate it",
            line=line, tables=[],
            suggestion="Write the statement out (with @parameters for the values) and ask the guard about that SQL.",
        )


class ScriptNotEstimable(QueryGuardError):
    """A script whose dry run does not cover everything it would run (CALL, statements after DDL)."""

    REASON = "script_not_estimable"

    def __init__(self, why: str, tables: list[str], suggestion: str) -> None:
        super().__init__(f"BigQuery cannot estimate this script as a whole: {why}", tables=tables, suggestion=suggestion)


class ExternalQueryNotAllowed(QueryGuardError):
    REASON = "external_query_not_allowed"

    def __init__(self, tables: list[str]) -> None:
        super().__init__(
            "EXTERNAL_QUERY sends SQL to another database (Cloud SQL, Spanner, AlloyDB): BigQuery's dry run does not "
            "estimate what it reads there, and this catalog does not allow it (allow_external_query in catalog.yaml)",
            tables=tables,
            suggestion="Query BigQuery tables instead, or ask the operator to set 'allow_external_query: true' in catalog.yaml.",
        )


class MixedLocations(QueryGuardError):
    REASON = "mixed_locations"

    def __init__(self, locations: dict[str, str], tables: list[str]) -> None:
        listed = ", ".join(f"{dataset} ({location})" for dataset, location in locations.items())
        super().__init__(
            f"the query reads datasets in more than one location: {listed}; BigQuery runs a query in one location and "
            "cannot read the others from there",
            locations=locations, tables=tables,
            suggestion="Query the datasets of one location at a time (copy or replicate the data into one location to join it).",
        )


class ParameterError(CatalogError):
    """A ``--param NAME=TYPE:VALUE`` that is not one."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"--param {text!r}: {problem} (expected NAME=TYPE:VALUE, e.g. country=STRING:CZ)")


class PathNotRegistered(QueryGuardError):
    REASON = "bq_path_not_registered"

    def __init__(self, paths: list[str], tables: list[str], suggestion: str) -> None:
        super().__init__(
            f"not tracked in the catalog registry: {', '.join(paths)}", paths=paths, tables=tables, suggestion=suggestion,
        )


class EstimateFailed(QueryGuardError):
    """No estimate could be had (BigQuery unreachable, erroring, or rejecting the dry run): not a verdict on the query."""

    REASON = "remote_estimate_failed"

    def __init__(self, tables: list[str], underlying: str, underlying_original: str | None, suggestion: str) -> None:
        extra = {"underlying_original": underlying_original} if underlying_original else {}
        super().__init__(
            f"BigQuery could not estimate the query: {underlying}", tables=tables, underlying=underlying, **extra,
            suggestion=suggestion,
        )


class ScanTooLarge(QueryGuardError):
    REASON = "remote_scan_too_large"

    def __init__(
        self, scan_bytes: int, limit_bytes: int, accuracy: str | None, tables: list[str], view_targets: list[str], suggestion: str,
    ) -> None:
        super().__init__(
            f"the query would scan {bytes_text(scan_bytes)} ({scan_bytes} bytes), over the cap of "
            f"{bytes_text(limit_bytes)} ({limit_bytes} bytes; CATALOG_MAX_SCAN_BYTES or max_scan_bytes in catalog.yaml)",
            scan_bytes=scan_bytes, limit_bytes=limit_bytes, scan_bytes_accuracy=accuracy, tables=tables,
            view_targets=view_targets, suggestion=suggestion,
        )
