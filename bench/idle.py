"""Harness 3, idle cost: the shipped jobs.yaml with the grace period over, measured for 60 s.

CPU seconds from /proc/PID/stat (user + system) over the window, and peak RSS
(VmHWM). Bare APScheduler with 11 jobs on a 5-minute interval runs beside it
in the same window as a baseline. Usage: python -m bench.idle [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, RecordingServer, header, python, table, write_result
from bench.subject import Tickless

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    quick = "--quick" in sys.argv
    window = 20 if quick else 60
    settle = 35  # the shipped jobs' first runs are spread over 30 s after the grace
    print(header("idle cost"))
    server = RecordingServer()
    ours = Tickless((ROOT / "jobs.yaml").read_text(), server.url, SCHEDULER_LOG_FORMAT="text")
    out = Path(tempfile.mkdtemp()) / "bare.json"
    bare = subprocess.Popen(
        [python(), "-m", "bench.baselines.bare_apscheduler", "11", "300", server.url, str(settle + window + 5), str(out)],
        cwd=ROOT,
    )
    time.sleep(settle)
    before = {"tickless": cpu_seconds(ours.proc.pid), "bare": cpu_seconds(bare.pid)}
    time.sleep(window)
    after = {"tickless": cpu_seconds(ours.proc.pid), "bare": cpu_seconds(bare.pid)}
    rss = {"tickless": peak_rss_mb(ours.proc.pid), "bare": peak_rss_mb(bare.pid)}
    ours.stop()
    bare.wait()
    server.close()
    figures = {
        name: {
            "cpu_seconds_per_minute": round((after[name] - before[name]) * 60 / window, 4),
            "peak_rss_mb": round(rss[name], 1),
        }
        for name in ("tickless", "bare")
    }
    print(f"window {window} s after a {settle} s settle; shipped jobs.yaml (11 jobs) against a local server")
    print(table(
        ["subject", "CPU s / minute", "peak RSS MB"],
        [["tickless (shipped jobs.yaml)", figures["tickless"]["cpu_seconds_per_minute"], figures["tickless"]["peak_rss_mb"]],
         ["bare APScheduler (11 jobs)", figures["bare"]["cpu_seconds_per_minute"], figures["bare"]["peak_rss_mb"]]],
    ))
    print("(targets: < 0.05 CPU s per minute idle, RSS < 60 MB; clock ticks are 10 ms, so small values are coarse)")
    path = write_result("idle", {"quick": quick, "window_seconds": window, **figures})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
