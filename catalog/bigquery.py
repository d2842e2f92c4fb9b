"""The only module that imports google.cloud.bigquery: client, retries, errors, call counting.

``BIGQUERY_EMULATOR_HOST=host:port`` points the client at a plain-HTTP local
endpoint with anonymous credentials; otherwise Application Default
Credentials are used. Every HTTP request sent to the BigQuery API is counted
(retries and result pages included), so a refresh can report its cost.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
from google.auth.transport.requests import AuthorizedSession
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

from catalog.errors import BigQueryError, CredentialsError

logger = logging.getLogger("catalog.bigquery")

SCOPES = ("https://www.googleapis.com/auth/bigquery",)
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError"})
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# A query job BigQuery accepted and then failed for one of these is worth running again.
JOB_RETRY_REASONS = frozenset({"jobBackendError", "jobInternalError", "jobRateLimitExceeded"})
# Reasons that will fail again however often we ask, whatever the status says.
PERMANENT_REASONS = frozenset({
    "quotaExceeded", "accessDenied", "notFound", "invalidQuery", "invalid", "billingNotEnabled", "responseTooLarge",
})


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for transient BigQuery errors, bounded by ``deadline`` seconds per call."""

    initial: float = 1.0
    maximum: float = 16.0
    multiplier: float = 2.0
    deadline: float = 60.0
    request_timeout: float = 60.0  # one HTTP request
    query_timeout: float = 300.0  # waiting for one query job to finish


def reason_of(exc: BaseException) -> str | None:
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        for error in exc.errors:
            if isinstance(error, Mapping) and error.get("reason"):
                return str(error["reason"])
        reason = exc.reason
        return str(reason) if reason else None
    return None


def is_transient(exc: BaseException) -> bool:
    """rateLimitExceeded, backendError, 5xx/429 and lost connections; never quota, access or bad queries."""
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        reason = reason_of(exc)
        if reason in TRANSIENT_REASONS:
            return True
        if reason in PERMANENT_REASONS:
            return False
        return exc.code in TRANSIENT_STATUSES
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def is_transient_job_failure(exc: BaseException) -> bool:
    """A failed query job worth running again: what is_transient says, plus BigQuery's job* reasons."""
    if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        exc = exc.cause
    return is_transient(exc) or reason_of(exc) in JOB_RETRY_REASONS


# What a client error may carry that must never reach an error message, a log line or the cache:
# request URLs (they name the endpoint and may carry user:password@ or a key=), and credentials in any form.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>)]+", re.IGNORECASE)
_WITH_URL = re.compile(r"\s*(?:with url|for url|url):\s*\S+", re.IGNORECASE)
_USERINFO = re.compile(r"[^\s/@:'\"]+:[^\s/@'\"]+@")
_SECRET = re.compile(r"\b(access_token|key|token|password|secret)=[^\s&'\"]+", re.IGNORECASE)
_CONNECTION_WORDS = (
    ("Connection refused", "connection refused"), ("Name or service not known", "host not found"),
    ("timed out", "timed out"), ("Temporary failure in name resolution", "host not found"),
    ("RemoteDisconnected", "connection closed by the server"), ("Connection reset", "connection reset"),
)


def redact(text: str) -> str:
    """``text`` without request URLs or credentials: what a BigQuery error may say in public."""
    text = _WITH_URL.sub("", text)
    text = _URL.sub("<url>", text)
    text = _USERINFO.sub("", text)
    return _SECRET.sub(r"\1=<redacted>", text)


def _network_summary(exc: BaseException) -> str:
    """A lost connection in a few stable words: which kind, never the URL the client put in its text."""
    text = str(exc)
    why = next((words for marker, words in _CONNECTION_WORDS if marker in text), None)
    return f"BigQuery unreachable: {type(exc).__name__}{f' ({why})' if why else ''}"


def _network_error(exc: BaseException) -> BaseException | None:
    """The lost connection behind ``exc`` (a RetryError's cause, or an exception it was raised from), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (requests.ConnectionError, requests.Timeout)):
            return current
        nested = current.cause if isinstance(current, api_exceptions.RetryError) else None
        current = nested or current.__cause__ or current.__context__
    return None


def _translate(exc: BaseException, policy: RetryPolicy, waited: float | None = None) -> BigQueryError:
    suffix = ""
    if isinstance(exc, api_exceptions.RetryError):
        suffix = f" (still failing after retrying for {waited if waited is not None else policy.deadline:g}s)"
        exc = exc.cause or _network_error(exc) or exc
    reason = reason_of(exc)
    status = exc.code if isinstance(exc, api_exceptions.GoogleAPICallError) else None
    summary = None
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        label = " ".join(str(part) for part in (status, reason) if part)
        message = redact(f"BigQuery {label}: {exc.message}{suffix}")
        said = [str(error["message"]) for error in exc.errors if isinstance(error, Mapping) and error.get("message")]
        summary = redact(f"BigQuery {label}: {said[0]}{suffix}") if said else None
    elif (network := _network_error(exc)) is not None or "Failed to establish a new connection" in str(exc):
        message = summary = _network_summary(network or exc) + suffix
        reason = "unreachable"
    else:
        message = redact(f"BigQuery request failed: {type(exc).__name__}: {exc}{suffix}")
    permanent = not is_transient(exc) and reason != "unreachable"
    return BigQueryError(message, reason=reason, status=status, permanent=permanent, summary=summary)


def _deadline_error(what: str, seconds: float | None) -> BigQueryError:
    limit = f" of {seconds:g}s" if seconds is not None else ""
    message = f"BigQuery {what}: no answer within the time limit{limit}"
    return BigQueryError(message, reason="deadlineExceeded", status=None, permanent=False)


_FAILURES: tuple[type[BaseException], ...] = (api_exceptions.GoogleAPIError, requests.RequestException, GoogleAuthError)


@dataclass(frozen=True)
class TableFacts:
    """What tables.get says about sizes, type, partitioning and clustering."""

    table_type: str | None  # tables.get's type, CLONE for a table with a cloneDefinition
    num_rows: int | None
    num_bytes: int | None
    partition_by: str | None = None
    clustered_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanEstimate:
    """A dry run's ``statistics.query``: bytes and, when BigQuery says, how exact they are."""

    scan_bytes: int
    accuracy: str | None  # totalBytesProcessedAccuracy: PRECISE, UPPER_BOUND, LOWER_BOUND, UNKNOWN


QueryJobConfig = bigquery.QueryJobConfig  # for type hints outside this module
QueryParameter = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter

# GoogleSQL parameter types -> how a command-line value becomes the Python value the client sends.
_SCALAR_TYPES: dict[str, Any] = {
    "STRING": str, "BYTES": lambda text: text.encode(), "INT64": int, "FLOAT64": float,
    "NUMERIC": decimal.Decimal, "BIGNUMERIC": decimal.Decimal,
    "BOOL": lambda text: {"true": True, "false": False}[text.strip().lower()],
    "DATE": dt.date.fromisoformat, "DATETIME": dt.datetime.fromisoformat, "TIME": dt.time.fromisoformat,
    "TIMESTAMP": lambda text: dt.datetime.fromisoformat(text.replace("Z", "+00:00")),
}
_TYPE_ALIASES = {"INT": "INT64", "INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "DECIMAL": "NUMERIC",
                 "BIGDECIMAL": "BIGNUMERIC"}
PARAMETER_TYPES = tuple(_SCALAR_TYPES)


def query_parameter(name: str, type_name: str, value: str) -> QueryParameter:
    """``country``, ``STRING``, ``CZ`` -> a parameter for a query's ``@country``; ``ARRAY<INT64>`` takes a JSON list.

    ValueError naming the rule when the type is unknown or the value is not of it.
    """
    wanted = type_name.strip().upper()
    element = wanted.removeprefix("ARRAY<").removesuffix(">") if wanted.startswith("ARRAY<") and wanted.endswith(">") else None
    scalar = _TYPE_ALIASES.get(element or wanted, element or wanted)
    if scalar not in _SCALAR_TYPES:
        raise ValueError(f"unknown type {type_name!r} (one of {', '.join(PARAMETER_TYPES)}, or ARRAY<type> with a JSON list)")
    convert = _SCALAR_TYPES[scalar]
    try:
        if element is None:
            return bigquery.ScalarQueryParameter(name, scalar, None if value.upper() == "NULL" else convert(value))
        items = json.loads(value)
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return bigquery.ArrayQueryParameter(name, scalar, [convert(str(item)) if scalar != "BOOL" else convert(json.dumps(item))
                                                           for item in items])
    except (ValueError, KeyError, decimal.InvalidOperation) as exc:
        kind = f"ARRAY<{scalar}> (a JSON list)" if element is not None else scalar
        raise ValueError(f"{value!r} is not a {kind} value ({exc})") from None


def capped_job_config(maximum_bytes_billed: int, **options: Any) -> bigquery.QueryJobConfig:
    """A QueryJobConfig that makes BigQuery fail the job instead of billing more than ``maximum_bytes_billed``."""
    if maximum_bytes_billed <= 0:
        raise ValueError(f"maximum_bytes_billed must be > 0, got {maximum_bytes_billed!r}")
    options.setdefault("use_legacy_sql", False)
    return bigquery.QueryJobConfig(maximum_bytes_billed=maximum_bytes_billed, **options)


def _partition_column(table: bigquery.Table) -> str | None:
    if table.range_partitioning is not None:
        return str(table.range_partitioning.field)
    if table.time_partitioning is not None:
        # No field: partitioned by ingestion time, filtered through the pseudo column.
        return str(table.time_partitioning.field or "_PARTITIONTIME")
    return None


class BigQuerySource:
    """Thin, counted, retried access to the few BigQuery calls the catalog makes."""

    def __init__(self, client: bigquery.Client, session: requests.Session, policy: RetryPolicy, location: str | None) -> None:
        self.client = client
        self.policy = policy
        self.location = location
        self._calls = 0
        self._calls_lock = threading.Lock()
        self._until: float | None = None  # time.monotonic() by which every call must have answered
        self._limit: float | None = None
        self._count_requests(session)
        self._retry = Retry(
            predicate=is_transient, initial=policy.initial, maximum=policy.maximum,
            multiplier=policy.multiplier, timeout=policy.deadline, on_error=self._log_retry,
        )
        # A job that was accepted and then failed (backendError, rateLimitExceeded, ...) runs again, as a new
        # job, within the same deadline; the request retry above never sees that failure.
        self._job_retry = DEFAULT_JOB_RETRY.with_predicate(is_transient_job_failure).with_timeout(policy.deadline).with_delay(
            initial=policy.initial, maximum=policy.maximum, multiplier=policy.multiplier,
        )

    def _count_requests(self, session: requests.Session) -> None:
        """Count every HTTP request as it is sent: also those that never get an answer (a refused connection)."""
        send = session.request

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._calls_lock:
                self._calls += 1
            return send(*args, **kwargs)

        session.request = counted  # type: ignore[method-assign]

    @contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Every call inside answers (or fails with ``deadlineExceeded``) within ``seconds`` from now, retries included."""
        previous = self._until, self._limit
        if seconds is not None:
            self._until, self._limit = time.monotonic() + seconds, seconds
        try:
            yield
        finally:
            self._until, self._limit = previous

    def remaining(self) -> float | None:
        """Seconds left before the time limit (None: no limit)."""
        return None if self._until is None else self._until - time.monotonic()

    def _budget(self, what: str, wanted: float) -> float:
        """``wanted`` seconds, cut to what the time limit leaves; deadlineExceeded when nothing is left."""
        left = self.remaining()
        if left is None:
            return wanted
        if left <= 0.05:
            raise _deadline_error(what, self._limit)
        return min(wanted, left)

    def _retry_within(self, seconds: float) -> Retry:
        return self._retry.with_timeout(seconds)

    @property
    def calls(self) -> int:
        with self._calls_lock:
            return self._calls

    @staticmethod
    def _log_retry(exc: BaseException) -> None:
        # Debug, not warning: an unreachable BigQuery would print one line per attempt; the caller
        # logs the failure once (per dataset, or the guard's answer) when retrying ends.
        logger.debug("BigQuery transient error, retrying: %s", reason_of(exc) or type(exc).__name__)

    def query(self, sql: str, params: Mapping[str, Sequence[str]] | None = None, *, location: str | None = None) -> list[dict[str, Any]]:
        """Run one read-only query; array-of-string parameters only (values never go in SQL text)."""
        return self.query_located(sql, params, location=location)[0]

    def query_located(
        self, sql: str, params: Mapping[str, Sequence[str]] | None = None, *, location: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``query``, and the location BigQuery ran it in (that of the datasets it read)."""
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter(name, "STRING", list(values)) for name, values in (params or {}).items()],
            use_legacy_sql=False,
        )
        wait = self._budget("query", self.policy.query_timeout)
        retry_for = self._budget("query", self.policy.deadline)
        started = time.monotonic()
        try:
            rows = self.client.query_and_wait(
                sql, job_config=config, location=location or self.location, retry=self._retry_within(retry_for),
                job_retry=self._job_retry.with_timeout(retry_for),
                api_timeout=self._budget("query", self.policy.request_timeout), wait_timeout=wait,
            )
            return [dict(row.items()) for row in rows], rows.location
        except _FAILURES as exc:
            raise _translate(exc, self.policy, round(time.monotonic() - started, 1)) from None
        except TimeoutError:  # concurrent.futures.TimeoutError: waited query_timeout; the client cancels the job
            message = f"BigQuery query did not finish within {wait:g}s (cancel requested)"
            raise BigQueryError(message, reason="timeout", status=None, permanent=False) from None

    def get_table(self, project: str, dataset: str, table: str) -> TableFacts:
        reference = bigquery.TableReference(bigquery.DatasetReference(project, dataset), table)
        retry_for = self._budget("tables.get", self.policy.deadline)
        started = time.monotonic()
        try:
            found = self.client.get_table(reference, retry=self._retry_within(retry_for),
                                          timeout=self._budget("tables.get", self.policy.request_timeout))
        except _FAILURES as exc:
            raise _translate(exc, self.policy, round(time.monotonic() - started, 1)) from None
        # tables.get spells a clone "TABLE" and says what it is through cloneDefinition.
        kind = "CLONE" if found._properties.get("cloneDefinition") else found.table_type
        return TableFacts(kind, found.num_rows, found.num_bytes, _partition_column(found), tuple(found.clustering_fields or ()))

    def dataset_location(self, project: str, dataset: str) -> str | None:
        """Where a dataset lives (``EU``, ``us-central1``), from datasets.get."""
        retry_for = self._budget("datasets.get", self.policy.deadline)
        started = time.monotonic()
        try:
            found = self.client.get_dataset(bigquery.DatasetReference(project, dataset), retry=self._retry_within(retry_for),
                                            timeout=self._budget("datasets.get", self.policy.request_timeout))
        except _FAILURES as exc:
            raise _translate(exc, self.policy, round(time.monotonic() - started, 1)) from None
        return str(found.location) if found.location else None

    def estimate(self, sql: str, parameters: Sequence[Any] = (), *, location: str | None = None) -> ScanEstimate:
        """What ``sql`` would scan, from one dry run (free, runs nothing); ``parameters`` declare its @names.

        ``location`` is that of the datasets the query reads (BigQuery requires the dry run to run there).
        """
        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, use_legacy_sql=False,
                                         query_parameters=list(parameters))
        retry_for = self._budget("dry run", self.policy.deadline)
        started = time.monotonic()
        try:
            job = self.client.query(sql, job_config=config, location=location or self.location,
                                    retry=self._retry_within(retry_for), job_retry=None,
                                    timeout=self._budget("dry run", self.policy.request_timeout))
        except _FAILURES as exc:
            raise _translate(exc, self.policy, round(time.monotonic() - started, 1)) from None
        # The client has no property for totalBytesProcessedAccuracy; read the job resource it parsed.
        statistics = job._properties.get("statistics", {}).get("query", {})
        accuracy = statistics.get("totalBytesProcessedAccuracy")
        if job.total_bytes_processed is None:  # never "free": an answer without the figure is no estimate
            message = "BigQuery's dry run answer has no statistics.query.totalBytesProcessed"
            raise BigQueryError(message, reason="missingStatistics", status=None, permanent=True)
        return ScanEstimate(int(job.total_bytes_processed), str(accuracy) if accuracy else None)

    def dry_run(self, sql: str) -> int:
        """Bytes ``sql`` would scan, from a dry run (free, runs nothing)."""
        return self.estimate(sql).scan_bytes

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]


def connect(
    billing_project: str, location: str | None, *, emulator_endpoint: str | None, policy: RetryPolicy | None = None,
) -> BigQuerySource:
    """A counted client billing ``billing_project``; one clear error when there are no credentials."""
    policy = policy or RetryPolicy()
    credentials: Credentials
    if emulator_endpoint:
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        options = ClientOptions(api_endpoint=emulator_endpoint)
    else:
        try:
            credentials, _ = google.auth.default(scopes=list(SCOPES))
        except DefaultCredentialsError as exc:
            raise CredentialsError(
                "no Google credentials for BigQuery: run 'gcloud auth application-default login', "
                "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, "
                f"or set BIGQUERY_EMULATOR_HOST=host:port for a local emulator ({exc})"
            ) from None
        options = ClientOptions()
    session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    client = bigquery.Client(project=billing_project, credentials=credentials, client_options=options, _http=session)
    return BigQuerySource(client, session, policy, location)
