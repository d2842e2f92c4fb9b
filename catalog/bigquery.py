"""The only module that imports google.cloud.bigquery: client, retries, errors, call counting.

``BIGQUERY_EMULATOR_HOST=host:port`` points the client at a plain-HTTP local
endpoint with anonymous credentials; otherwise Application Default
Credentials are used. Every HTTP request sent to the BigQuery API is counted
(retries and result pages included), so a refresh can report its cost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
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


def _translate(exc: BaseException, policy: RetryPolicy) -> BigQueryError:
    suffix = ""
    if isinstance(exc, api_exceptions.RetryError):
        suffix = f" (still failing after retrying for {policy.deadline:g}s)"
        exc = exc.cause or exc
    reason = reason_of(exc)
    status = exc.code if isinstance(exc, api_exceptions.GoogleAPICallError) else None
    summary = None
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        label = " ".join(str(part) for part in (status, reason) if part)
        message = f"BigQuery {label}: {exc.message}{suffix}"
        said = [str(error["message"]) for error in exc.errors if isinstance(error, Mapping) and error.get("message")]
        summary = f"BigQuery {label}: {said[0]}{suffix}" if said else None
    else:
        message = f"BigQuery request failed: {type(exc).__name__}: {exc}{suffix}"
    return BigQueryError(message, reason=reason, status=status, permanent=not is_transient(exc), summary=summary)


_FAILURES: tuple[type[BaseException], ...] = (api_exceptions.GoogleAPIError, requests.RequestException, GoogleAuthError)


@dataclass(frozen=True)
class TableFacts:
    """What tables.get says about sizes, type, partitioning and clustering."""

    table_type: str | None
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
        session.hooks["response"].append(self._count)
        self._retry = Retry(
            predicate=is_transient, initial=policy.initial, maximum=policy.maximum,
            multiplier=policy.multiplier, timeout=policy.deadline, on_error=self._log_retry,
        )
        # A job that was accepted and then failed (backendError, rateLimitExceeded, ...) runs again, as a new
        # job, within the same deadline; the request retry above never sees that failure.
        self._job_retry = DEFAULT_JOB_RETRY.with_predicate(is_transient_job_failure).with_timeout(policy.deadline).with_delay(
            initial=policy.initial, maximum=policy.maximum, multiplier=policy.multiplier,
        )

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._calls_lock:
            self._calls += 1

    @property
    def calls(self) -> int:
        with self._calls_lock:
            return self._calls

    @staticmethod
    def _log_retry(exc: BaseException) -> None:
        logger.warning("BigQuery transient error, retrying: %s", reason_of(exc) or exc)

    def query(self, sql: str, params: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
        """Run one read-only query; array-of-string parameters only (values never go in SQL text)."""
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter(name, "STRING", list(values)) for name, values in (params or {}).items()],
            use_legacy_sql=False,
        )
        try:
            rows = self.client.query_and_wait(
                sql, job_config=config, location=self.location, retry=self._retry, job_retry=self._job_retry,
                api_timeout=self.policy.request_timeout, wait_timeout=self.policy.query_timeout,
            )
            return [dict(row.items()) for row in rows]
        except _FAILURES as exc:
            raise _translate(exc, self.policy) from None
        except TimeoutError:  # concurrent.futures.TimeoutError: waited query_timeout; the client cancels the job
            message = f"BigQuery query did not finish within {self.policy.query_timeout:g}s (cancel requested)"
            raise BigQueryError(message, reason="timeout", status=None, permanent=False) from None

    def get_table(self, project: str, dataset: str, table: str) -> TableFacts:
        reference = bigquery.TableReference(bigquery.DatasetReference(project, dataset), table)
        try:
            found = self.client.get_table(reference, retry=self._retry, timeout=self.policy.request_timeout)
        except _FAILURES as exc:
            raise _translate(exc, self.policy) from None
        return TableFacts(found.table_type, found.num_rows, found.num_bytes, _partition_column(found),
                          tuple(found.clustering_fields or ()))

    def estimate(self, sql: str, parameters: Sequence[Any] = ()) -> ScanEstimate:
        """What ``sql`` would scan, from one dry run (free, runs nothing); ``parameters`` declare its @names."""
        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, use_legacy_sql=False,
                                         query_parameters=list(parameters))
        try:
            job = self.client.query(sql, job_config=config, location=self.location, retry=self._retry, job_retry=None,
                                    timeout=self.policy.request_timeout)
        except _FAILURES as exc:
            raise _translate(exc, self.policy) from None
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
