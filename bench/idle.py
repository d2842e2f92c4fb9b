"""Harness 3, idle cost: the shipped jobs.yaml with the grace period over, measured for 60 s.

CPU seconds from /proc/PID/stat (user + system) over the window, and peak RSS
(VmHWM). Bare APScheduler with 11 jobs on a 5-minute interval runs beside it
in the same window as a baseline. Self-checks: both subjects still running at
the end of the window (a crashed process costs no CPU and would look ideal)
and exiting cleanly, CPU time not negative, RSS positive.
Usage: python -m bench.idle [--quick|--smoke]
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.checks import CheckFailed, check_exit, run
from bench.common import ROOT, Mode, RecordingServer, header, python, table, write_result
from bench.subject import Tickless

NAME = "idle"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def check_figures(figures: dict[str, dict[str, float]]) -> None:
    for name, values in figures.items():
        if not values["cpu_seconds_per_minute"] >= 0:
            raise CheckFailed(NAME, "CPU time not negative", f"{name}: {values['cpu_seconds_per_minute']} CPU s per minute")
        if not (math.isfinite(values["peak_rss_mb"]) and values["peak_rss_mb"] > 0):
            raise CheckFailed(NAME, "positive RSS", f"{name}: peak RSS {values['peak_rss_mb']} MB")


def main() -> None:
    mode = Mode.from_argv()
    window = mode.pick(full=60, quick=20, smoke=1)
    # The shipped jobs' first runs are spread over 30 s after the grace; a smoke run only proves the path works.
    settle = mode.pick(full=35, quick=35, smoke=2)
    pad = mode.pick(full=5, quick=5, smoke=1)  # the baseline outlives the window by this much
    print(header("idle cost") + ("  [smoke]" if mode is Mode.SMOKE else ""))
    server = RecordingServer()
    ours = Tickless((ROOT / "jobs.yaml").read_text(), server.url, SCHEDULER_LOG_FORMAT="text")
    out = Path(tempfile.mkdtemp()) / "bare.json"
    bare = subprocess.Popen(
        [python(), "-m", "bench.baselines.bare_apscheduler", "11", "300", server.url, str(settle + window + pad), str(out)],
        cwd=ROOT,
    )
    time.sleep(settle)
    before = {"tickless": cpu_seconds(ours.proc.pid), "bare": cpu_seconds(bare.pid)}
    time.sleep(window)
    after = {"tickless": cpu_seconds(ours.proc.pid), "bare": cpu_seconds(bare.pid)}
    rss = {"tickless": peak_rss_mb(ours.proc.pid), "bare": peak_rss_mb(bare.pid)}
    for name, proc in (("tickless", ours.proc), ("bare", bare)):
        if proc.poll() is not None:
            raise CheckFailed(NAME, "subject running through the window",
                              f"{name} exited with status {proc.returncode} before the window ended"
                              + (f"; its log ends:\n{ours.log_tail()}" if name == "tickless" else ""))
    check_exit(NAME, "tickless", ours.stop(), ours.log_tail())
    check_exit(NAME, "bare APScheduler", bare.wait())
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
    check_figures(figures)
    write_result(NAME, {"quick": mode is Mode.QUICK, "window_seconds": window, **figures}, mode)


if __name__ == "__main__":
    raise SystemExit(run(NAME, main))
