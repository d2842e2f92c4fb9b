"""``scheduler run | validate | list | fire``: the only place errors become exit codes.

Exit codes: 0 ok, 1 a run failed, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from scheduler import __version__
from scheduler.catalogue import load_catalogue
from scheduler.errors import ConfigError, SchedulerError, UnknownJobError
from scheduler.execution import RunExecutor, iso
from scheduler.fields import closest
from scheduler.http import HttpClient
from scheduler.logs import configure_logging
from scheduler.runner import Service, plan, utc_now
from scheduler.settings import DEFAULT_API_URL, Settings, config_path, load_settings
from scheduler.spec import CallTarget, JobSpec
from scheduler.triggers import NonDriftingTrigger, build_trigger, next_fire_times

EXIT_OK, EXIT_RUN_FAILED, EXIT_CONFIG = 0, 1, 2


def load(config: str | None) -> tuple[Settings, list[JobSpec]]:
    """Settings and jobs, every problem of both reported together."""
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = load_settings(os.environ, config)
    except ConfigError as exc:
        problems.extend(exc.problems)
    path = settings.config_path if settings else config_path(os.environ, config)
    jobs: list[JobSpec] = []
    try:
        jobs = load_catalogue(path, os.environ, settings.api_url if settings else DEFAULT_API_URL)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings, jobs


def _find(jobs: list[JobSpec], name: str) -> JobSpec:
    for spec in jobs:
        if spec.name == name:
            return spec
    names = [spec.name for spec in jobs]
    raise UnknownJobError(name, names, closest(name, names))


def cmd_validate(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    enabled = sum(spec.enabled for spec in jobs)
    print(
        f"{settings.config_path}: {len(jobs)} jobs valid ({enabled} enabled, {len(jobs) - enabled} disabled); "
        f"API_URL={settings.api_url}, auth={settings.auth}"
    )
    return EXIT_OK


def _job_json(spec: JobSpec, trigger: NonDriftingTrigger | None, now: datetime, count: int) -> dict[str, Any]:
    target = spec.target
    is_call = isinstance(target, CallTarget)
    runs = next_fire_times(trigger, now, count) if trigger else []
    return {
        "name": spec.name,
        "enabled": spec.enabled,
        "schedule": spec.schedule.text,
        "interval_seconds": spec.schedule.interval_seconds if spec.schedule.kind == "every" else None,
        "timezone": spec.schedule.timezone,
        "kind": target.kind,
        "method": None if is_call else target.method,  # type: ignore[union-attr]
        "url": None if is_call else target.url,  # type: ignore[union-attr]
        "callable": target.reference if is_call else None,  # type: ignore[union-attr]
        "timeout_seconds": spec.timeout_seconds,
        "jitter_seconds": spec.jitter_seconds,
        "initial_offset_max_seconds": spec.initial_offset_max_seconds,
        "retry": {
            "attempts": spec.retry.attempts,
            "backoff_seconds": spec.retry.backoff_seconds,
            "max_backoff_seconds": spec.retry.max_backoff_seconds,
        },
        "next_runs": [iso(moment) for moment in runs],
    }


def cmd_list(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    if args.next < 0:
        raise ConfigError([f"--next must be 0 or more, got {args.next}"])
    now = utc_now()
    triggers = plan(jobs, settings, now)
    start = now + timedelta(seconds=settings.startup_grace_seconds)
    rows = [_job_json(spec, triggers.get(spec.name), start, args.next) for spec in jobs]
    if args.json:
        document = {
            "api_url": settings.api_url,
            "auth": settings.auth,
            "startup_grace_seconds": settings.startup_grace_seconds,
            "jitter_seed": settings.jitter_seed,
            "jobs": rows,
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    seed = "SCHEDULER_JITTER_SEED" if settings.jitter_seed_from_env else "drawn now; set SCHEDULER_JITTER_SEED to fix it"
    print(
        f"API_URL {settings.api_url}  auth {settings.auth}  grace {settings.startup_grace_seconds}s  "
        f"jitter seed {settings.jitter_seed} ({seed})"
    )
    print(f"times below assume the service starts now ({iso(now)}); interval jobs count from the end of the grace")
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        target = f"call {row['callable']}" if row["kind"] == "call" else f"{row['method']} {row['url']}"
        state = "" if row["enabled"] else "  (disabled)"
        print(f"{row['name']:<{width}}  {row['schedule']:<22}  {target}{state}")
        for moment in row["next_runs"]:
            print(f"{'':<{width}}    {moment}")
    return EXIT_OK


def cmd_fire(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    spec = _find(jobs, args.name)
    configure_logging(settings.log_format, settings.log_level, [settings.token or ""])
    now = utc_now()
    trigger = build_trigger(spec, now, settings.jitter_seed)
    following = trigger.nominal_after(now)
    http = HttpClient(settings.api_url, settings.token, 1)
    try:
        outcome = RunExecutor(http).run(spec, now, trigger.fire_time(following) if following else None)
    finally:
        http.close()
    print(outcome.summary())
    return EXIT_OK if outcome.ok else EXIT_RUN_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    configure_logging(settings.log_format, settings.log_level, [settings.token or ""])
    abandoned = Service(settings, jobs).run()
    if abandoned:
        # Worker threads still blocked in their requests would keep the
        # interpreter alive at exit; the runs were logged as abandoned.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_OK)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scheduler", description="tickless job-runner sidecar")
    parser.add_argument("--version", action="version", version=f"tickless {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", metavar="FILE", help="job catalogue (default: $SCHEDULER_CONFIG or jobs.yaml)")
        return sub

    command("run", "run the scheduler in the foreground").set_defaults(handler=cmd_run)
    command("validate", "check jobs.yaml and the environment as 'run' would").set_defaults(handler=cmd_validate)
    listing = command("list", "show the resolved jobs and their next fire times")
    listing.add_argument("--next", type=int, default=3, metavar="N", help="fire times to show per job (default 3)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)
    fire = command("fire", "run one job once now (no grace) and report the outcome")
    fire.add_argument("name", metavar="NAME")
    fire.set_defaults(handler=cmd_fire)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"scheduler: {len(exc.problems)} configuration problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except SchedulerError as exc:
        print(f"scheduler: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        # `scheduler list | head`: the reader left; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
