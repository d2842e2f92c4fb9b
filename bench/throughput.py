"""Harness 4, throughput: sustained fires per second, 1 ms server latency, until p99 lateness > 100 ms.

N jobs every second, their grids spread evenly over the second (this project:
SCHEDULER_STARTUP_SPREAD_SECONDS=1; bare APScheduler: start dates i/N apart),
N raised step by step. Usage: python -m bench.throughput [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RecordingServer, header, python, summary_ms, table, write_result
from bench.subject import Tickless, jobs_yaml

LEVELS = [100, 250, 500, 600, 750, 1000]
LIMIT_MS = 100.0


def measure_tickless(count: int, seconds: float) -> dict[str, dict[str, float]]:
    server = RecordingServer(latency=0.001)
    subject = Tickless(jobs_yaml(count, 1), server.url, SCHEDULER_STARTUP_SPREAD_SECONDS="1")
    started = time.time()
    time.sleep(seconds)
    subject.stop()
    since = started + 2.5
    arrival = [a.arrived - a.scheduled_for for a in server.take() if a.scheduled_for and a.scheduled_for >= since]
    server.close()
    return {"scheduling": summary_ms([s.lateness for s in subject.samples(since)]), "arrival": summary_ms(arrival)}


def measure_bare(count: int, seconds: float) -> dict[str, dict[str, float]]:
    server = RecordingServer(latency=0.001)
    out = Path(tempfile.mkdtemp()) / "bare.json"
    started = time.time()
    subprocess.run(
        [python(), "-m", "bench.baselines.bare_apscheduler", str(count), "1", server.url, str(seconds), str(out), "1"],
        check=True,
    )
    since = started + 3.5
    samples = [lateness for nominal, lateness in json.loads(out.read_text()) if nominal >= since]
    arrival = [a.arrived - a.scheduled_for for a in server.take() if a.scheduled_for and a.scheduled_for >= since]
    server.close()
    return {"scheduling": summary_ms(samples), "arrival": summary_ms(arrival)}


def main() -> None:
    quick = "--quick" in sys.argv
    seconds = 7 if quick else 10
    print(header("throughput"))
    rows, levels = [], []
    best = {"tickless": 0, "bare APScheduler": 0}
    within = {"tickless": True, "bare APScheduler": True}  # every level so far kept p99 under the limit
    for count in LEVELS:
        figures = {"tickless": measure_tickless(count, seconds), "bare APScheduler": measure_bare(count, seconds)}
        levels.append({"fires_per_second": count, **figures})
        for name, result in figures.items():
            p99 = result["scheduling"]["p99_ms"]
            within[name] = within[name] and p99 <= LIMIT_MS
            if within[name]:
                best[name] = count
            rows.append([count, name, result["scheduling"]["p50_ms"], p99, result["arrival"]["p99_ms"]])
        if not any(within.values()):
            break
    print(table(["fires/s", "subject", "sched p50 ms", "sched p99 ms", "arrival p99 ms"], rows))
    print(f"sustained fires/s with scheduling p99 <= {LIMIT_MS:g} ms: tickless {best['tickless']}, "
          f"bare APScheduler {best['bare APScheduler']} (levels tried: {', '.join(map(str, LEVELS))})")
    path = write_result("throughput", {"quick": quick, "limit_ms": LIMIT_MS, "levels": levels, "sustained": best})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
