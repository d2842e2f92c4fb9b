"""Prometheus metrics and the /metrics + /healthz endpoint."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from scheduler.execution.run import Outcome

logger = logging.getLogger(__name__)

_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300)
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800)


class Metrics:
    """Every instrument lives in its own registry (no global state; tests make their own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("tickless_runs", "Runs by outcome", ["job", "outcome"], registry=r)
        self.duration = Histogram("tickless_run_duration_seconds", "Run duration", ["job"], buckets=_DURATION_BUCKETS, registry=r)
        self.lateness = Histogram(
            "tickless_run_lateness_seconds", "Run start minus nominal time", ["job"], buckets=_LATENESS_BUCKETS, registry=r
        )
        self.in_flight = Gauge("tickless_runs_in_flight", "Runs in flight", ["job"], registry=r)
        self.last_success = Gauge("tickless_last_success_timestamp_seconds", "When the last run succeeded", ["job"], registry=r)
        self.next_run = Gauge("tickless_next_run_timestamp_seconds", "When the next run fires", ["job"], registry=r)
        self.retries = Counter("tickless_retries", "HTTP retries", ["job"], registry=r)
        self.up = Gauge("tickless_scheduler_up", "1 while the scheduler is running", registry=r)
        self.reloads = Counter("tickless_config_reloads", "jobs.yaml reloads by result", ["result"], registry=r)

    def started(self, job: str) -> None:
        self.in_flight.labels(job).inc()

    def finished(self, outcome: Outcome) -> None:
        job = outcome.job
        self.in_flight.labels(job).dec()
        self.runs.labels(job, outcome.outcome).inc()
        self.duration.labels(job).observe(outcome.duration_seconds)
        self.lateness.labels(job).observe(max(0.0, outcome.lateness_seconds))
        if outcome.attempts > 1:
            self.retries.labels(job).inc(outcome.attempts - 1)
        if outcome.ok:
            self.last_success.labels(job).set(outcome.started_at.timestamp() + outcome.duration_seconds)

    def skipped(self, job: str) -> None:
        self.runs.labels(job, "skipped_in_flight").inc()

    def scheduled(self, job: str, moment: datetime | None) -> None:
        if moment is not None:
            self.next_run.labels(job).set(moment.timestamp())

    def forget(self, job: str) -> None:
        # in_flight stays: a run of the removed job may still be going and will decrement it.
        try:
            self.next_run.remove(job)
        except KeyError:
            pass


@dataclass(frozen=True)
class Health:
    healthy: bool
    body: dict[str, object]


class MetricsServer:
    """Serves /metrics and /healthz on one address in a daemon thread."""

    def __init__(self, address: tuple[str, int], metrics: Metrics, health: Callable[[], Health]) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the run lines

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    state = health()
                    self._send(200 if state.healthy else 503, "application/json", json.dumps(state.body).encode())
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(address, Handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.address = f"{host.decode() if isinstance(host, bytes) else host}:{port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
