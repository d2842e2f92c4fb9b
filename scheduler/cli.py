"""``scheduler run | validate | list | history | status | fire | pause | resume``: the only place errors become exit codes.

Exit codes: 0 ok, 1 a run failed, 2 bad configuration or usage, 3 not run
(``fire``: a run of the job is in flight, or the job is paused).
"""

from __future__ import annotations

import argparse
import gc
import getpass
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from scheduler import __version__
from scheduler.config.jobs_file import load_jobs
from scheduler.config.settings import DEFAULT_API_URL, Settings, config_path, load_settings
from scheduler.config.spec import JobSpec, jobs_fingerprint
from scheduler.errors import ConfigError, SchedulerError, UnknownJobError
from scheduler.execution.http import HttpClient
from scheduler.execution.run import JobRunner
from scheduler.ops.logs import configure_logging, stop_logging
from scheduler.ops.metrics import Metrics
from scheduler.ops.server import OpsServer
from scheduler.reports import (
    by_scheduled_time,
    history_text,
    job_row,
    last_started,
    list_text,
    paused_json,
    paused_lines,
    run_json,
    status_row,
    status_text,
)
from scheduler.service import Service, resolve_seed
from scheduler.state.backends import check_store, open_store, peek_store
from scheduler.state.instance_lock import InstanceLock
from scheduler.state.records import ClaimStatus, RunRecord, row_id
from scheduler.state.store import LeaseRenewer, StateStore
from scheduler.timing.planning import plan_jobs
from scheduler.timing.triggers import build_trigger
from tickless.clock import iso, utc_now
from tickless.config.problems import Problem, closest

EXIT_OK, EXIT_RUN_FAILED, EXIT_CONFIG, EXIT_NOT_RUN = 0, 1, 2, 3


def load(config: str | None) -> tuple[Settings, list[JobSpec]]:
    """Settings and jobs, every problem of both reported together."""
    problems: list[Problem] = []
    settings: Settings | None = None
    try:
        settings = load_settings(os.environ, config)
    except ConfigError as exc:
        problems.extend(exc.problems)
    path = settings.config_path if settings else config_path(os.environ, config)
    jobs: list[JobSpec] = []
    try:
        jobs = load_jobs(path, os.environ, settings.api_url if settings else DEFAULT_API_URL, now=utc_now())
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


def _metrics_warning(settings: Settings) -> str | None:
    """Whether the metrics address can be listened on now (a running service holds it, so only a warning)."""
    if not settings.metrics_address:
        return None
    host, port = settings.metrics_address
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        return f"SCHEDULER_METRICS_ADDR={host}:{port}: cannot listen there now ({exc.strerror or exc}); fine if the service is running"


def cmd_validate(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    check_store(settings)  # the one start-up check `run` makes beyond the file and variables
    warnings = [*settings.warnings, _metrics_warning(settings)]
    for warning in filter(None, warnings):
        print(f"warning: {warning}", file=sys.stderr)
    enabled = sum(spec.enabled for spec in jobs)
    print(
        f"{settings.config_path}: {len(jobs)} jobs valid ({enabled} enabled, {len(jobs) - enabled} disabled); "
        f"API_URL={settings.api_url}, auth={settings.auth}"
    )
    return EXIT_OK


def _open_store(settings: Settings, *, one_off: bool = True) -> StateStore:
    # A one-off command (fire, pause, resume) asks a few things in turn: two connections,
    # not the service's pool, so that it fits beside the replicas under max_connections.
    return open_store(settings, pool_size=2 if one_off else None)


def _peek_store(settings: Settings) -> StateStore | None:
    """The state store for reading, or None when the service has not created its SQLite file yet."""
    return peek_store(settings)


def cmd_list(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    if args.next < 0:
        raise ConfigError([f"--next must be 0 or more, got {args.next}"])
    store = _peek_store(settings)
    seed, seed_source = resolve_seed(settings, store)
    now = args.from_time or utc_now()
    start = now + timedelta(seconds=settings.startup_grace_seconds)
    plans = plan_jobs(jobs, store.job_states() if store else {}, seed, start, settings.startup_spread_seconds)
    paused = store.paused_jobs() if store else {}
    rows = [{**job_row(spec, plans.get(spec.name), now, args.next), "paused": spec.name in paused} for spec in jobs]
    if args.json:
        document = {
            "api_url": settings.api_url,
            "auth": settings.auth,
            "startup_grace_seconds": settings.startup_grace_seconds,
            "jitter_seed": seed,
            "jobs": rows,
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    header = (
        f"API_URL {settings.api_url}  auth {settings.auth}  grace {settings.startup_grace_seconds}s  "
        f"jitter seed {seed} ({seed_source})\n"
        f"times below are those of a service started {'at' if args.from_time else 'now'} ({iso(now)}) with state {settings.state_location}"
    )
    print(list_text(header, rows, {name: plan.reason for name, plan in plans.items()}))
    return EXIT_OK


def start_instant(text: str) -> datetime:
    """``--from``: an ISO-8601 instant with Z or an offset (a naive time would be read in an unknown zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time; write e.g. 2027-03-27T12:00:00Z") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add Z for UTC or an offset, e.g. {text}Z or {text}+01:00"
        )
    return moment.astimezone(UTC)


def cmd_history(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    if args.limit <= 0:
        raise ConfigError([f"--limit must be 1 or more, got {args.limit}"])
    if args.name is not None:
        _find(jobs, args.name)
    store = _peek_store(settings)
    runs = by_scheduled_time(store.history(args.name, args.limit) if store else [])
    paused = [pause for name, pause in (store.paused_jobs() if store else {}).items() if args.name in (None, name)]
    if args.json:
        document = {"state_path": settings.state_location, "runs": [run_json(run) for run in runs],
                    "paused": [paused_json(pause) for pause in paused]}
        print(json.dumps(document, indent=2))
    else:
        print("\n".join([history_text(runs), *paused_lines(paused)]))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    store = _peek_store(settings)
    seed, _ = resolve_seed(settings, store)
    now = utc_now()
    # NEXT as `list` plans it, for a service running now (its start-up grace is over).
    plans = plan_jobs(jobs, store.job_states() if store else {}, seed, now, settings.startup_spread_seconds)
    paused = store.paused_jobs() if store else {}
    rows = [
        status_row(spec, plans.get(spec.name), last_started(store.history(spec.name, 10)) if store else None,
                   paused.get(spec.name), now)
        for spec in jobs
    ]
    if args.json:
        print(json.dumps({"server_time": iso(now), "state_path": settings.state_location, "jobs": rows}, indent=2))
    else:
        print(status_text(rows, now))
    return EXIT_OK


def _operator() -> str:
    """Who pauses: ``user@host``, kept with the pause and shown by status, history and the service's log."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container's arbitrary uid)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def cmd_pause(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    spec = _find(jobs, args.name)
    store = _open_store(settings)
    try:
        pause = store.pause(spec.name, by=_operator(), now=utc_now())
    finally:
        store.close()
    print(f"{spec.name}: paused since {iso(pause.paused_at)} by {pause.paused_by}; the service fires none of its slots "
          f"from the next one on (within a second), until `scheduler resume {spec.name}`")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    spec = _find(jobs, args.name)
    store = _open_store(settings)
    try:
        pause = store.resume(spec.name)
    finally:
        store.close()
    if pause is None:
        print(f"{spec.name}: was not paused")
    else:
        print(f"{spec.name}: resumed (paused since {iso(pause.paused_at)} by {pause.paused_by}); its next slot fires")
    return EXIT_OK


def cmd_fire(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    spec = _find(jobs, args.name)
    configure_logging(settings.log_format, settings.log_level, [settings.token or ""])
    store = _open_store(settings)
    now = utc_now()
    # Through the store, like the service's own runs: a run of the job in flight anywhere
    # (the service, a replica, another fire) means this one does not run, unless --force.
    replica = f"fire:{socket.gethostname()}:{os.getpid()}"
    claim = store.begin_run(spec.name, now, replica=replica, now=now, lease_seconds=settings.lease_seconds, force=args.force)
    if claim.status == ClaimStatus.PAUSED and claim.paused is not None:
        print(f"{spec.name}: not run: the job is paused (since {iso(claim.paused.paused_at)} by {claim.paused.paused_by}); "
              f"`scheduler resume {spec.name}` resumes it, --force runs it once anyway", file=sys.stderr)
        store.close()
        return EXIT_NOT_RUN
    if claim.status != ClaimStatus.WON:
        holder = claim.holder
        where = f"; it has been in flight since {iso(holder.started_at)} on {holder.replica} (scheduled for " \
                f"{iso(holder.scheduled_for)})" if holder else ""
        print(f"{spec.name}: not run: a run of it is in flight{where}; --force runs it anyway", file=sys.stderr)
        store.close()
        return EXIT_NOT_RUN
    trigger = build_trigger(spec, now, settings.jitter_seed)
    following = trigger.nominal_after(now)
    http = HttpClient(settings.api_url, settings.token, 1)
    lease = LeaseRenewer(store, row_id(claim.run_id), settings.lease_seconds)
    try:
        outcome = JobRunner(http).run(spec, now, trigger.fire_time(following) if following else None)
    finally:
        lease.stop()
        http.close()
    store.finish_runs([(claim.run_id, RunRecord.of(outcome, replica=replica))])
    store.close()
    print(outcome.summary())
    return EXIT_OK if outcome.ok else EXIT_RUN_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    settings, jobs = load(args.config)
    configure_logging(settings.log_format, settings.log_level, [settings.token or ""])
    if settings.state_url is None:
        # One service per SQLite file: held until the process ends, however it ends.
        InstanceLock(settings.state_path).acquire()
    store = _open_store(settings, one_off=False)
    metrics = Metrics()
    service = Service(settings, jobs, store, metrics=metrics, loader=lambda: load(args.config),
                      config_fingerprint=jobs_fingerprint(jobs))
    server = None
    if settings.metrics_address:
        host, port = settings.metrics_address
        try:
            server = OpsServer((host, port), metrics.registry, service.health.check, service.liveness.check)
        except OSError as exc:
            raise ConfigError([f"SCHEDULER_METRICS_ADDR={host}:{port}: cannot listen: {exc.strerror or exc}"]) from None
        server.start()
        logging.getLogger("scheduler.cli").info("metrics and health on http://%s/metrics, /livez and /healthz", server.address)
    # What start-up built (modules, settings, jobs) lives as long as the process: out of the
    # collector's reach, a full collection no longer walks it while runs wait (13 ms with 1,000 jobs).
    gc.collect()
    gc.freeze()
    abandoned = service.run()
    if server:
        server.close()
    if abandoned:
        # Worker threads still blocked in their requests would keep the
        # interpreter alive at exit; the runs were logged as abandoned.
        stop_logging()
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_OK)
    store.close()
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
    listing.add_argument(
        "--from", dest="from_time", type=start_instant, metavar="TIME",
        help="show the times of a service started at TIME (ISO-8601 with Z or an offset) instead of now",
    )
    listing.set_defaults(handler=cmd_list)
    history = command("history", "show recent runs from the state store")
    history.add_argument("name", metavar="NAME", nargs="?", help="only this job")
    history.add_argument("--limit", type=int, default=20, metavar="N", help="runs to show (default 20)")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(handler=cmd_history)
    fire = command("fire", "run one job once now (no grace) and report the outcome")
    fire.add_argument("name", metavar="NAME")
    fire.add_argument("--force", action="store_true",
                      help="run even when a run of the job is in flight or the job is paused (exit 3 otherwise)")
    fire.set_defaults(handler=cmd_fire)
    status = command("status", "one line per job: next run, time left, last run, its result and duration")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)
    pause = command("pause", "stop firing a job (recorded in the state store; the running service honours it within a second)")
    pause.add_argument("name", metavar="NAME")
    pause.set_defaults(handler=cmd_pause)
    resume = command("resume", "fire a paused job again from its next slot")
    resume.add_argument("name", metavar="NAME")
    resume.set_defaults(handler=cmd_resume)
    return parser


def importable_from_cwd() -> None:
    """Put the working directory first on the module path, as ``python -m scheduler`` does,
    so ``call:`` modules import the same whichever way the CLI is started (the ``scheduler``
    console script would otherwise see only its own folder)."""
    cwd = os.getcwd()
    if not any(entry in ("", cwd) for entry in sys.path):
        sys.path.insert(0, cwd)


def main(argv: Sequence[str] | None = None) -> int:
    importable_from_cwd()
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
