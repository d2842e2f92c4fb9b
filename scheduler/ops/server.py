"""The ops endpoint: /metrics, /livez and /healthz on SCHEDULER_METRICS_ADDR, in a daemon thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from scheduler.ops.health import Health


class OpsServer:
    """Serves /metrics, /livez (the process is alive) and /healthz (the jobs are well) on one address."""

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, health: Callable[[], Health], liveness: Callable[[], Health],
    ) -> None:

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the run lines

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path in ("/healthz", "/livez"):
                    state = health() if path == "/healthz" else liveness()
                    self._send(200 if state.healthy else 503, "application/json", json.dumps(state.body).encode())
                else:
                    self._send(404, "text/plain", b"not found: try /metrics, /livez or /healthz\n")

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
