"""Shared pieces of the benchmark harnesses: run modes, machine, percentiles, a recording server, results."""

from __future__ import annotations

import enum
import json
import math
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from bench.checks import Run, check_finite

_T = TypeVar("_T")
_U = TypeVar("_U")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class Mode(enum.Enum):
    """How big a run is. Every mode runs the same code paths; only the sizes differ."""

    FULL = "full"  # `make bench`: the sizes the README's figures come from
    QUICK = "quick"  # --quick: smaller, still meaningful figures
    SMOKE = "smoke"  # --smoke: tiny sizes, nothing written; proves the harness still runs (tests/bench)

    @classmethod
    def from_argv(cls, argv: list[str] | None = None) -> Mode:
        args = sys.argv[1:] if argv is None else argv
        unknown = [arg for arg in args if arg not in ("--quick", "--smoke")]
        if unknown:
            raise SystemExit(f"unknown arguments: {' '.join(unknown)} (expected --quick or --smoke)")
        if "--smoke" in args:
            return cls.SMOKE
        return cls.QUICK if "--quick" in args else cls.FULL

    def pick(self, full: _T, quick: _T, smoke: _T) -> _T:
        return {Mode.FULL: full, Mode.QUICK: quick, Mode.SMOKE: smoke}[self]


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "hostname_hash": hash(socket.gethostname()) & 0xFFFF,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p99/max of seconds, in milliseconds."""
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3) if values else float("nan"),
    }


def parse_stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Arrival:
    path: str
    arrived: float
    scheduled_for: float | None


def arrival_runs(arrivals: list[Arrival], since: float) -> list[Run]:
    """Arrivals that carry their nominal time, due at or after ``since``, as runs seen by the server."""
    return [Run(a.path, a.scheduled_for, a.arrived) for a in arrivals if a.scheduled_for is not None and a.scheduled_for >= since]


def recorded_runs(path: Path, since: float) -> list[Run]:
    """A baseline's OUT.json ([[path, nominal, lateness], ...]) as runs it started, due at or after ``since``."""
    return [Run(job, nominal, nominal + late) for job, nominal, late in json.loads(path.read_text()) if nominal >= since]


def lateness(runs: list[Run]) -> list[float]:
    return [run.at - run.nominal for run in runs]


class RecordingServer:
    """HTTP/1.1 keep-alive server on 127.0.0.1 recording each request's arrival time."""

    def __init__(self, latency: float = 0.0) -> None:
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                arrived = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stamp = self.headers.get("X-Scheduler-Scheduled-For")
                with server.lock:
                    server.arrivals.append(Arrival(self.path, arrived, parse_stamp(stamp) if stamp else None))
                if latency:
                    time.sleep(latency)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 4096  # 1,000 clients connect at once
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self) -> list[Arrival]:
        with self.lock:
            taken, self.arrivals = self.arrivals, []
        return taken

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


MOVED = 0.10  # a figure that moved more than this fraction from the committed result is called out


def figures(document: Any, prefix: str = "") -> dict[str, float]:
    """Every number of a results document by its path (``scenarios[1].tickless.arrival.p99_ms``), the machine left out."""
    found: dict[str, float] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            if key != "machine":
                found.update(figures(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            label = value.get("scenario") or value.get("fires_per_second") if isinstance(value, dict) else None
            found.update(figures(value, f"{prefix}[{label if label is not None else index}]"))
    elif isinstance(document, int | float) and not isinstance(document, bool):
        found[prefix] = float(document)
    return found


def committed_result(name: str) -> dict[str, Any] | None:
    """bench/results/NAME.json as last committed (git HEAD), or None when there is none."""
    try:
        shown = subprocess.run(["git", "show", f"HEAD:bench/results/{name}.json"], cwd=ROOT, capture_output=True,
                               text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if shown.returncode != 0:
        return None
    loaded: dict[str, Any] = json.loads(shown.stdout)
    return loaded


def moved_figures(before: dict[str, Any], after: dict[str, Any], threshold: float = MOVED) -> list[tuple[str, float, float, float]]:
    """(path, before, after, relative change) of each figure present in both that moved more than ``threshold``."""
    old, new = figures(before), figures(after)
    moved = []
    for path in sorted(old.keys() & new.keys()):
        was, now = old[path], new[path]
        if was == now:
            continue
        change = (now - was) / abs(was) if was else float("inf")
        if abs(change) > threshold:
            moved.append((path, was, now, change))
    return moved


def report_moved(name: str, document: dict[str, Any], before: dict[str, Any] | None) -> list[tuple[str, float, float, float]]:
    """Print which figures moved more than 10 % from the committed result, and by how much."""
    if before is None:
        print(f"{name}: no committed result to compare with")
        return []
    moved = moved_figures(before, document)
    since = before.get("machine", {}).get("date", "?")
    if not moved:
        print(f"{name}: no figure moved more than {MOVED:.0%} from the committed result ({since})")
    else:
        print(f"{name}: {len(moved)} figure(s) moved more than {MOVED:.0%} from the committed result ({since}):")
        for path, was, now, change in moved:
            print(f"  MOVED {path}: {was:g} -> {now:g} ({change:+.0%})" if math.isfinite(change) else f"  MOVED {path}: {was:g} -> {now:g}")
    return moved


def write_result(name: str, document: dict[str, Any], mode: Mode = Mode.FULL) -> Path | None:
    """bench/results/NAME.json; in smoke mode the document is still serialised (so a bad figure fails) but not written.
    Either way the figures are compared with the committed result, and those that moved more than 10 % are named."""
    check_finite(name, "results", document)
    text = json.dumps({"machine": machine(), "mode": mode.value, **document}, indent=2, allow_nan=False) + "\n"
    before = committed_result(name)
    if before is not None and before.get("mode", Mode.FULL.value) != mode.value:
        print(f"{name}: the committed result is a {before.get('mode')} run; compared all the same")
    report_moved(name, json.loads(text), before)
    if mode is Mode.SMOKE:
        print(f"smoke run: {name} figures not written")
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(text)
    print(f"wrote {path}")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def header(title: str) -> str:
    info = machine()
    return f"== {title} ==  ({info['cores']} cores, Python {info['python']}, {info['processor']})"


def side_by_side(mode: Mode, first: Callable[[], _T], second: Callable[[], _U]) -> tuple[_T, _U]:
    """Measure two subjects: one after the other (so neither disturbs the other's figures), or in
    smoke mode at the same time: the same code paths, about half the wall time, figures not kept."""
    if mode is not Mode.SMOKE:
        return first(), second()
    with ThreadPoolExecutor(max_workers=2) as pool:
        one, two = pool.submit(first), pool.submit(second)
        return one.result(), two.result()


def python() -> str:
    return sys.executable
