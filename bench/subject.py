"""Running this project's `scheduler run` as a subprocess and reading its own instrumentation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.checks import Run
from bench.common import ROOT, parse_stamp, python


@dataclass
class Sample:
    job: str
    nominal: float
    lateness: float  # run start minus nominal time, from the service's own "run start" log line


def job_name(index: int) -> str:
    return f"j{index:04d}"


def job_path(name: str, path_prefix: str = "/job") -> str:
    """The HTTP path `jobs_yaml` gives job ``name`` (j0042 -> /job/42)."""
    return f"{path_prefix}/{int(name[1:])}"


def jobs_yaml(count: int, interval: int, path_prefix: str = "/job") -> str:
    lines = ["jobs:"]
    for index in range(count):
        http = f"{{method: POST, path: {path_prefix}/{index}}}"
        lines.append(f"  {job_name(index)}: {{every: {interval}, http: {http}, retry: {{attempts: 1}}}}")
    return "\n".join(lines) + "\n"


class Tickless:
    """`python -m scheduler run` with JSON logs in a file, in a scratch folder."""

    def __init__(self, config_text: str, api_url: str, **env: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="tickless-bench-"))
        (self.folder / "jobs.yaml").write_text(config_text)
        self.log_path = self.folder / "log.jsonl"
        variables = {key: value for key, value in os.environ.items() if not key.startswith("SCHEDULER_")}
        variables.update({
            "API_URL": api_url,
            "SCHEDULER_STARTUP_GRACE_SECONDS": "0",
            "SCHEDULER_STARTUP_SPREAD_SECONDS": "0",
            "SCHEDULER_LOG_FORMAT": "json",
            "SCHEDULER_METRICS_ADDR": "",
            "SCHEDULER_JITTER_SEED": "1",
            "PYTHONPATH": str(ROOT),
            **env,
        })
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [python(), "-m", "scheduler", "run", "-c", "jobs.yaml"], cwd=self.folder, env=variables,
            stdout=subprocess.DEVNULL, stderr=self._log,
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=90)
        self._log.close()
        return code

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def samples(self, since: float = 0.0) -> list[Sample]:
        found = []
        for line in self.log_path.read_text().splitlines():
            if '"run start' not in line:
                continue
            record = json.loads(line)
            nominal = parse_stamp(record["scheduled_for"])
            if nominal >= since:
                found.append(Sample(record["job"], nominal, float(record["lateness_s"])))
        return found

    def runs(self, since: float = 0.0) -> list[Run]:
        """The runs it started (for jobs from `jobs_yaml`), keyed by HTTP path as the server sees them."""
        return [Run(job_path(s.job), s.nominal, s.nominal + s.lateness) for s in self.samples(since)]
