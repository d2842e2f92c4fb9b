"""tickless scheduler: a job-runner sidecar built on APScheduler 3.x."""

from __future__ import annotations

from tickless import __version__

__all__ = ["__version__"]
