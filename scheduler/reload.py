"""SIGHUP: re-read jobs.yaml and apply what changed, or keep running as before."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scheduler.errors import ConfigError

if TYPE_CHECKING:
    from scheduler.service import Service

logger = logging.getLogger(__name__)


def apply_reload(service: Service) -> bool:
    """Apply a valid file (jobs matched by name keep their phase and history)."""
    assert service.loader is not None
    try:
        specs = service.loader()
    except ConfigError as exc:
        for problem in exc.problems:
            logger.error("reload rejected: %s", problem)
        logger.error("reload rejected: %d problem(s); still running the previous configuration", len(exc.problems))
        service.metrics.reloads.labels("rejected").inc()
        return False
    new = {spec.name: spec for spec in specs if spec.enabled}
    old = service.jobs
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(name for name in new.keys() & old.keys() if new[name] != old[name])
    for name in removed:
        service.scheduler.remove_job(name)
        del service.jobs[name]
        service.plans.pop(name, None)
        service.metrics.forget(name)
    for name in added + changed:
        service.jobs[name] = new[name]
    if added or changed:
        # Unchanged schedules resume their grid from the store; changed ones start a new one.
        # Never earlier than the end of the startup grace, if a reload comes during it.
        start = max(service.clock(), service.start or service.clock())
        service._schedule([new[name] for name in added + changed], start)
    service.disabled = sorted(spec.name for spec in specs if not spec.enabled)
    unchanged = len(new) - len(added) - len(changed)
    logger.info(
        "reload applied: added %s, removed %s, changed %s, %d unchanged",
        added or "none", removed or "none", changed or "none", unchanged,
    )
    if len(service.jobs) > service.workers:
        logger.warning("%d jobs now share %d worker threads: restart to give each its own", len(service.jobs), service.workers)
    service.metrics.reloads.labels("applied").inc()
    return True
