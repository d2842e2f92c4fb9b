"""Helpers for end-to-end tests: a real HTTP server on 127.0.0.1 and the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.time()
    finished: float = 0.0


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    # Statuses to answer first, one per request, before `status`.
    script: list[int] = field(default_factory=list)


class ApiServer:
    """Records every request; answers per path as told; tracks concurrency."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.behaviours: dict[str, Behaviour] = {}
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                record = Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length), time.time())
                path = self.path.split("?")[0]
                with server.lock:
                    server.requests.append(record)
                    server.in_flight[path] = server.in_flight.get(path, 0) + 1
                    server.max_in_flight[path] = max(server.max_in_flight.get(path, 0), server.in_flight[path])
                    behaviour = server.behaviours.get(path, Behaviour())
                    status = behaviour.script.pop(0) if behaviour.script else behaviour.status
                try:
                    if behaviour.delay:
                        time.sleep(behaviour.delay)
                    payload = behaviour.body.encode()
                    self.send_response(status)
                    for name, value in behaviour.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with server.lock:
                        server.in_flight[path] -= 1
                        record.finished = time.time()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str, **kwargs: object) -> None:
        self.behaviours[path] = Behaviour(**kwargs)  # type: ignore[arg-type]

    def calls(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.calls(path)
            if len(calls) >= count:
                return calls
            time.sleep(0.02)
        raise AssertionError(f"{path}: expected {count} requests within {timeout}s, got {len(self.calls(path))}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_jobs(directory: Path, text: str) -> Path:
    path = directory / "jobs.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any scheduler variable, plus overrides."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("SCHEDULER_") and key not in ("API_URL",)
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["SCHEDULER_METRICS_ADDR"] = "127.0.0.1:0"  # an ephemeral port: tests never collide
    env.update(overrides)
    return env


class Service:
    """`python -m scheduler ...` in a subprocess; stderr collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler", *args], env=env, cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.lines)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"log never showed {text!r}:\n{self.log}")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
        """Send ``sig``; return (exit status, seconds until exit)."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        took = time.monotonic() - sent
        self._reader.join(timeout=5)
        return code, took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args], env=env, cwd=cwd,
        capture_output=True, text=True, timeout=timeout,
    )


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ops_url(service: Service) -> str:
    """``http://HOST:PORT`` of a running service's /metrics, /livez and /healthz (from its start-up log line)."""
    service.wait_for_log("metrics and health on")
    line = next(line for line in service.lines if "metrics and health on" in line)
    match = re.search(r"http://([\d.]+:\d+)/metrics", line)
    assert match, line
    return f"http://{match.group(1)}"


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
