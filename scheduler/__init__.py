"""tickless scheduler: a job-runner sidecar built on APScheduler 3.x."""

from __future__ import annotations

__version__ = "0.1.0"
