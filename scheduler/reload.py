"""SIGHUP: what changed between the running jobs and a re-read jobs.yaml.

A pure diff; the service applies it itself. Jobs are matched by name: an
unchanged job keeps its phase and history, a changed one is rescheduled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.config.spec import JobSpec


@dataclass(frozen=True)
class JobChanges:
    enabled: dict[str, JobSpec]  # every enabled job of the new file, by name
    added: list[str]
    removed: list[str]
    changed: list[str]
    disabled: list[str]

    @property
    def rescheduled(self) -> list[JobSpec]:
        """The jobs to (re)schedule: new ones and changed ones."""
        return [self.enabled[name] for name in self.added + self.changed]

    @property
    def unchanged(self) -> int:
        return len(self.enabled) - len(self.added) - len(self.changed)

    def summary(self) -> str:
        return (
            f"added {self.added or 'none'}, removed {self.removed or 'none'}, "
            f"changed {self.changed or 'none'}, {self.unchanged} unchanged"
        )


def diff_jobs(running: Mapping[str, JobSpec], specs: list[JobSpec]) -> JobChanges:
    """What applying ``specs`` to the ``running`` jobs adds, removes and changes."""
    enabled = {spec.name: spec for spec in specs if spec.enabled}
    return JobChanges(
        enabled=enabled,
        added=sorted(enabled.keys() - running.keys()),
        removed=sorted(running.keys() - enabled.keys()),
        changed=sorted(name for name in enabled.keys() & running.keys() if enabled[name] != running[name]),
        disabled=sorted(spec.name for spec in specs if not spec.enabled),
    )
