"""A fake BigQuery REST API for the catalog tests.

``FakeBigQuery.handle`` answers jobs.query, jobs.get, jobs.getQueryResults
(pagination, and waiting for a job that is not done), jobs.cancel, tables.get
and dry runs (jobs.insert with ``dryRun``) in
BigQuery's real wire format (``schema.fields``,
``rows`` as ``{"f": [{"v": ...}]}``, ``jobComplete``, ``totalRows``,
``pageToken``; errors as ``{"error": {"code", "message", "errors": [{"reason"}]}}``).
The same handler serves the ``responses`` mock (unit tests) and a real HTTP
server on 127.0.0.1 (end-to-end tests). Anything it does not recognise raises
UnmatchedRequest, an AssertionError the catalog never retries or swallows.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses
from responses.registries import FirstMatchRegistry

BILLING = "bill-proj"
PROJECT = "data-proj"
ENDPOINT = "http://bq.test"
_FROM = re.compile(
    r"FROM `([^`]+)`\.`([^`]+)`\.(INFORMATION_SCHEMA\.TABLES|INFORMATION_SCHEMA\.COLUMNS|INFORMATION_SCHEMA\.TABLE_STORAGE|__TABLES__)\b"
)
_KINDS = {
    "INFORMATION_SCHEMA.TABLES": "TABLES", "INFORMATION_SCHEMA.COLUMNS": "COLUMNS",
    "INFORMATION_SCHEMA.TABLE_STORAGE": "TABLE_STORAGE", "__TABLES__": "__TABLES__",
}
_API_TYPES = {"BASE TABLE": "TABLE", "MATERIALIZED VIEW": "MATERIALIZED_VIEW"}


class UnmatchedRequest(AssertionError):
    """A request the test did not expect: fails the test at once (never retried)."""


class StrictRegistry(FirstMatchRegistry):
    def find(self, request: Any) -> Any:
        match, reasons = super().find(request)
        if match is None:
            raise UnmatchedRequest(f"unexpected request {request.method} {request.url}")
        return match, reasons


@dataclass
class Column:
    name: str
    data_type: str = "STRING"
    partitioning: bool = False
    clustering: int | None = None


@dataclass
class Table:
    name: str
    table_type: str = "BASE TABLE"
    columns: list[Column] = field(default_factory=lambda: [Column("id", "INT64")])
    rows: int | None = 10
    size: int | None = 1000
    ddl: str | None = None


@dataclass
class Failure:
    kind: str
    dataset: str | None
    table: str | None
    status: int
    reason: str
    times: int
    message: str | None = None


@dataclass
class Seen:
    kind: str
    project: str
    dataset: str
    params: dict[str, list[str]]
    sql: str = ""
    location: str | None = None  # the location the request asked to run in


def error_body(status: int, reason: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message, "domain": "global"}]}}


def schema(*fields: tuple[str, str]) -> dict[str, Any]:
    return {"fields": [{"name": name, "type": kind, "mode": "NULLABLE"} for name, kind in fields]}


def wire_rows(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [{"f": [{"v": None if value is None else str(value)} for value in row]} for row in rows]


class FakeBigQuery:
    def __init__(self, billing: str = BILLING, page_size: int | None = None) -> None:
        self.billing = billing
        self.page_size = page_size
        self.datasets: dict[tuple[str, str], dict[str, Table]] = {}
        self.failures: list[Failure] = []
        self.seen: list[Seen] = []
        self.http_requests = 0
        self.lock = threading.Lock()
        self.pages: dict[str, dict[str, Any]] = {}
        self.before_query: Callable[[Seen], None] | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        # What a dry run answers: statistics.query.totalBytesProcessed(Accuracy).
        self.scan_bytes: int | None = 123456789  # None: the answer has no totalBytesProcessed
        self.scan_accuracy: str | None = None
        # Queries accepted as a job that never finishes (stall) or that then fails (fail_job).
        self.stalls: list[tuple[str, str | None]] = []
        self.job_failures: list[Failure] = []
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> its status, for jobs not done at once
        self.cancelled: list[str] = []
        # Where each dataset lives (datasets.get, and the location a query on it runs in); EU unless said.
        self.locations: dict[tuple[str, str], str] = {}
        # Tables the region's TABLE_STORAGE view does not show yet (it lags a few minutes behind).
        self.storage_lag: set[str] = set()

    # -- arranging -----------------------------------------------------------
    def add(self, dataset: str, *tables: Table, project: str = PROJECT, location: str | None = None) -> None:
        self.datasets.setdefault((project, dataset), {}).update({table.name: table for table in tables})
        if location:
            self.locations[(project, dataset)] = location

    def location_of(self, project: str, dataset: str) -> str:
        return self.locations.get((project, dataset), "EU")

    def drop(self, dataset: str, name: str, project: str = PROJECT) -> None:
        del self.datasets[(project, dataset)][name]

    def fail(self, kind: str, *, dataset: str | None = None, table: str | None = None,
             status: int = 403, reason: str = "rateLimitExceeded", times: int = 1, message: str | None = None) -> None:
        self.failures.append(Failure(kind, dataset, table, status, reason, times, message))

    def stall(self, kind: str, *, dataset: str | None = None) -> None:
        """Queries of ``kind`` (on ``dataset``) are accepted and then never finish."""
        self.stalls.append((kind, dataset))

    def fail_job(self, kind: str, *, dataset: str | None = None, reason: str = "backendError", times: int = 1,
                 message: str | None = None) -> None:
        """The next ``times`` queries of ``kind`` are accepted, then the job fails with ``reason``."""
        self.job_failures.append(Failure(kind, dataset, None, 500, reason, times, message))

    def kinds(self) -> list[str]:
        with self.lock:
            return [seen.kind for seen in self.seen]

    # -- serving -------------------------------------------------------------
    def handle(self, method: str, url: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        path = parts.path.removeprefix("/bigquery/v2")
        with self.lock:
            self.http_requests += 1
        if method == "POST" and path == f"/projects/{self.billing}/queries":
            return self._query(json.loads(body or b"{}"))
        if method == "POST" and path == f"/projects/{self.billing}/jobs":
            return self._dry_run(json.loads(body or b"{}"))
        match = re.fullmatch(rf"/projects/{re.escape(self.billing)}/jobs/([\w-]+)(/cancel)?", path)
        if match:
            job = match.group(1)
            if method == "POST" and match.group(2):
                with self.lock:
                    self.cancelled.append(job)
                    self.jobs[job] = {"state": "DONE"}
                return 200, {"kind": "bigquery#jobCancelResponse", "job": self._job(job)}
            if method == "GET" and not match.group(2):
                return 200, self._job(job)
        match = re.fullmatch(rf"/projects/{re.escape(self.billing)}/queries/([\w-]+)", path)
        if method == "GET" and match and "pageToken" in query:
            with self.lock:
                return 200, self.pages[f"{match.group(1)}:{query['pageToken'][0]}"]
        if method == "GET" and match and match.group(1) in self.jobs:
            return self._waiting(match.group(1))
        match = re.fullmatch(r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", path)
        if method == "GET" and match:
            return self._tables_get(*match.groups())
        match = re.fullmatch(r"/projects/([^/]+)/datasets/([^/]+)", path)
        if method == "GET" and match:
            return self._datasets_get(*match.groups())
        raise UnmatchedRequest(f"fake BigQuery does not serve {method} {url}")

    def _job(self, job: str) -> dict[str, Any]:
        with self.lock:
            status = self.jobs.get(job, {"state": "DONE"})
        return {"jobReference": {"projectId": self.billing, "jobId": job, "location": "EU"}, "status": status,
                "configuration": {"query": {"query": "SELECT"}}}

    def _waiting(self, job: str) -> tuple[int, dict[str, Any]]:
        """getQueryResults of a job that was not done at once: still running, or failed."""
        with self.lock:
            status = self.jobs[job]
        error = status.get("errorResult")
        if error:
            return 500, error_body(500, error["reason"], error["message"])
        reference = {"projectId": self.billing, "jobId": job, "location": "EU"}
        return 200, {"kind": "bigquery#getQueryResultsResponse", "jobReference": reference, "jobComplete": False}

    def _accepted_only(self, seen: Seen) -> dict[str, Any] | None:
        """A jobs.query answer for a job that is not done (stalled or about to fail), else None."""
        with self.lock:
            stalled = any(kind == seen.kind and dataset in (None, seen.dataset) for kind, dataset in self.stalls)
            failure = next((failure for failure in self.job_failures if failure.kind == seen.kind and failure.times > 0
                            and failure.dataset in (None, seen.dataset)), None)
            if not stalled and failure is None:
                return None
            job = f"job_waiting_{len(self.jobs)}"
            if stalled:
                self.jobs[job] = {"state": "RUNNING"}
            elif failure is not None:
                failure.times -= 1
                message = failure.message or f"{failure.reason} (fake job)"
                self.jobs[job] = {"state": "DONE", "errorResult": {"reason": failure.reason, "message": message},
                                  "errors": [{"reason": failure.reason, "message": message}]}
        reference = {"projectId": self.billing, "jobId": job, "location": "EU"}
        return {"kind": "bigquery#queryResponse", "jobReference": reference, "jobComplete": False}

    def _failure(self, kind: str, dataset: str | None, table: str | None) -> tuple[int, dict[str, Any]] | None:
        with self.lock:
            for failure in self.failures:
                if failure.kind == kind and failure.times > 0 and failure.dataset in (None, dataset) and failure.table in (None, table):
                    failure.times -= 1
                    return failure.status, error_body(failure.status, failure.reason, failure.message or f"{failure.reason} (fake)")
        return None

    def _query(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        sql = request["query"]
        match = _FROM.search(sql)
        if not match:
            raise UnmatchedRequest(f"fake BigQuery does not understand {sql!r}")
        project, dataset, view = match.groups()
        params = {
            param["name"]: [item["value"] for item in param["parameterValue"].get("arrayValues", [])]
            for param in request.get("queryParameters", [])
        }
        seen = Seen(_KINDS[view], project, dataset, params, sql, request.get("location"))
        with self.lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.before_query:
                self.before_query(seen)
            failed = self._failure(seen.kind, dataset, None)
            if failed:
                return failed
            accepted = self._accepted_only(seen)
            if accepted:
                return 200, accepted
            if seen.kind != "TABLE_STORAGE" and (project, dataset) not in self.datasets:
                return 404, error_body(404, "notFound", f"Not found: Dataset {project}:{dataset}")
            handlers = {"TABLES": self._rows_tables, "COLUMNS": self._rows_columns,
                        "__TABLES__": self._rows_dunder_tables, "TABLE_STORAGE": self._rows_table_storage}
            fields, rows = handlers[seen.kind](project, dataset, params)
            where = dataset.removeprefix("region-").upper() if seen.kind == "TABLE_STORAGE" else self.location_of(project, dataset)
            return 200, self._paged(fields, rows, where)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _paged(self, fields: dict[str, Any], rows: list[list[Any]], location: str = "EU") -> dict[str, Any]:
        with self.lock:
            job = f"job_{len(self.seen)}_{len(self.pages)}"
        size = self.page_size or max(len(rows), 1)
        chunks = [rows[start:start + size] for start in range(0, len(rows), size)] or [[]]
        reference = {"projectId": self.billing, "jobId": job, "location": location}
        pages = []
        for number, chunk in enumerate(chunks):
            page: dict[str, Any] = {"kind": "bigquery#queryResponse", "jobReference": reference, "schema": fields,
                                    "rows": wire_rows(chunk), "totalRows": str(len(rows)), "jobComplete": True}
            if number + 1 < len(chunks):
                page["pageToken"] = f"p{number + 1}"
            pages.append(page)
        with self.lock:
            for number, page in enumerate(pages[1:], start=1):
                self.pages[f"{job}:p{number}"] = page
        return pages[0]

    def _tables(self, project: str, dataset: str, params: dict[str, list[str]], key: str = "tables") -> list[Table]:
        tables = list(self.datasets.get((project, dataset), {}).values())
        wanted = params.get(key)
        return [table for table in tables if wanted is None or table.name in wanted]

    def _rows_tables(self, project: str, dataset: str, params: dict[str, list[str]]) -> tuple[dict[str, Any], list[list[Any]]]:
        rows = [[t.name, t.table_type, t.ddl if t.table_type == "BASE TABLE" else None] for t in self._tables(project, dataset, params)]
        return schema(("table_name", "STRING"), ("table_type", "STRING"), ("ddl", "STRING")), rows

    def _rows_columns(self, project: str, dataset: str, params: dict[str, list[str]]) -> tuple[dict[str, Any], list[list[Any]]]:
        rows = [
            [table.name, column.name, column.data_type, "YES" if column.partitioning else "NO", column.clustering]
            for table in sorted(self._tables(project, dataset, params), key=lambda t: t.name)
            for column in table.columns
        ]
        return schema(("table_name", "STRING"), ("column_name", "STRING"), ("data_type", "STRING"),
                      ("is_partitioning_column", "STRING"), ("clustering_ordinal_position", "INTEGER")), rows

    def _rows_dunder_tables(self, project: str, dataset: str, params: dict[str, list[str]]) -> tuple[dict[str, Any], list[list[Any]]]:
        # Like the real __TABLES__: views and external tables report 0, not "unknown".
        rows = [[table.name, table.rows or 0, table.size or 0] for table in self._tables(project, dataset, params)]
        return schema(("table_id", "STRING"), ("row_count", "INTEGER"), ("size_bytes", "INTEGER")), rows

    def _rows_table_storage(self, project: str, region: str, params: dict[str, list[str]]) -> tuple[dict[str, Any], list[list[Any]]]:
        rows = [
            [dataset, table.name, table.rows or 0, table.size or 0]
            for (owner, dataset), tables in self.datasets.items() if owner == project and dataset in params.get("datasets", [])
            for table in tables.values() if table.name not in self.storage_lag
            and self.location_of(owner, dataset).lower() == region.removeprefix("region-").lower()
        ]
        return schema(("table_schema", "STRING"), ("table_name", "STRING"), ("total_rows", "INTEGER"),
                      ("total_logical_bytes", "INTEGER")), rows

    def _tables_get(self, project: str, dataset: str, name: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.seen.append(Seen("tables.get", project, dataset, {"table": [name]}))
        failed = self._failure("tables.get", dataset, name)
        if failed:
            return failed
        table = self.datasets.get((project, dataset), {}).get(name)
        if table is None:
            return 404, error_body(404, "notFound", f"Not found: Table {project}:{dataset}.{name}")
        resource: dict[str, Any] = {
            "kind": "bigquery#table", "id": f"{project}:{dataset}.{name}",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
            "type": _API_TYPES.get(table.table_type, table.table_type),
        }
        for column in table.columns:
            if column.partitioning and column.data_type in ("INT64", "INTEGER"):
                resource["rangePartitioning"] = {"field": column.name, "range": {"start": "0", "end": "100", "interval": "10"}}
            elif column.partitioning:
                resource["timePartitioning"] = {"type": "DAY", "field": column.name}
        clustering = sorted((column.clustering, column.name) for column in table.columns if column.clustering is not None)
        if clustering:
            resource["clustering"] = {"fields": [name for _, name in clustering]}
        if table.rows is not None:
            resource["numRows"] = str(table.rows)
            resource["numBytes"] = str(table.size)
        return 200, resource

    def _datasets_get(self, project: str, dataset: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.seen.append(Seen("datasets.get", project, dataset, {}))
        failed = self._failure("datasets.get", dataset, None)
        if failed:
            return failed
        if (project, dataset) not in self.datasets and (project, dataset) not in self.locations:
            return 404, error_body(404, "notFound", f"Not found: Dataset {project}:{dataset}")
        return 200, {"kind": "bigquery#dataset", "id": f"{project}:{dataset}",
                     "datasetReference": {"projectId": project, "datasetId": dataset}, "location": self.location_of(project, dataset)}

    def _dry_run(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        config = request.get("configuration", {})
        if not config.get("dryRun"):
            raise UnmatchedRequest(f"only dry runs are served on jobs.insert, got {request!r}")
        sql = config["query"]["query"]
        declared = {param.get("name") for param in config["query"].get("queryParameters", [])}
        location = request.get("jobReference", {}).get("location")
        with self.lock:
            self.seen.append(Seen("dry_run", "", "", {name: [] for name in declared if name}, sql, location))
        failed = self._failure("dry_run", None, None)
        if failed:
            return failed
        # Like BigQuery: a named parameter the request does not declare is an invalid query.
        for name in re.findall(r"(?<!@)@(\w+)", re.sub(r"'[^']*'", "", sql)):  # @@system variables are not parameters
            if name not in declared:
                return 400, error_body(400, "invalidQuery", f"Query parameter '{name}' not found at [1:1]")
        statistics: dict[str, Any] = {"totalBytesProcessed": str(self.scan_bytes), "totalBytesBilled": "0", "cacheHit": False,
                                      "statementType": "SELECT"}
        job_statistics: dict[str, Any] = {"creationTime": "1767225600000", "totalBytesProcessed": str(self.scan_bytes),
                                          "query": statistics}
        if self.scan_bytes is None:
            del statistics["totalBytesProcessed"], job_statistics["totalBytesProcessed"]
        if self.scan_accuracy:
            statistics["totalBytesProcessedAccuracy"] = self.scan_accuracy
        return 200, {"kind": "bigquery#job", "jobReference": {"projectId": self.billing, "location": "EU"},
                     "status": {"state": "DONE"}, "configuration": config,
                     "statistics": job_statistics}


@contextmanager
def mocked(fake: FakeBigQuery, endpoint: str = ENDPOINT) -> Iterator[responses.RequestsMock]:
    """Serve ``fake`` through ``responses``; any other request raises UnmatchedRequest at once."""

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        status, document = fake.handle(request.method, request.url, request.body if isinstance(request.body, bytes)
                                       else (request.body or "").encode())
        return status, {"Content-Type": "application/json"}, json.dumps(document)

    with responses.RequestsMock(registry=StrictRegistry, assert_all_requests_are_fired=False) as mock:
        pattern = re.compile(re.escape(endpoint) + r"/bigquery/v2/.*")
        mock.add_callback(responses.POST, pattern, callback=callback)
        mock.add_callback(responses.GET, pattern, callback=callback)
        yield mock


class FakeServer:
    """``fake`` on a real socket at 127.0.0.1, for BIGQUERY_EMULATOR_HOST."""

    def __init__(self, fake: FakeBigQuery) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    status, document = fake.handle(self.command, f"http://{self.headers['Host']}{self.path}", body)
                except Exception as exc:
                    # A dropped connection would be retried by the client until its deadline;
                    # 501 notImplemented is never retried, so the test fails at once and says why.
                    status, document = 501, error_body(501, "notImplemented", f"fake BigQuery failed: {type(exc).__name__}: {exc}")
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_registry(directory: Path, text: str) -> Path:
    import textwrap

    path = directory / "catalog.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def subprocess_env(directory: Path, registry_text: str) -> dict[str, str]:
    """The environment for `python -m catalog` in a test: the developer's catalog,
    BigQuery, Google and scheduler variables (and proxies) removed, the registry
    written to ``directory`` and the cache inside it."""
    write_registry(directory, registry_text)
    values = {key: value for key, value in os.environ.items()
              if not key.startswith(("CATALOG_", "BIGQUERY_", "GOOGLE_", "SCHEDULER_")) and "proxy" not in key.lower()}
    values.update({"CATALOG_CONFIG": str(directory / "catalog.yaml"), "CATALOG_DB": str(directory / "data" / "catalog.sqlite"),
                   "BIGQUERY_PROJECT": "data-proj", "NO_PROXY": "*"})
    return values
