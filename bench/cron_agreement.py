"""Harness: does `scheduler list --from` give Debian cron's times? (issue 9's "done" figure)

Generated crontab expressions (the population of tests/scheduler/test_cron_semantics.py:
lists, ranges, steps, names, both day fields restricted, L/LW/nW/nL/n#k, aliases)
plus the issue's hand-picked ones, in UTC, Europe/Prague, America/New_York,
Australia/Lord_Howe and America/Santiago. For every zone and window (a day and
a quarter before each DST change of 2027, and two ordinary weeks) the real CLI,
`scheduler list --from START --next N --json` in a subprocess, lists one job
per expression; each job's times are compared with an independent model of
Debian cron (tests/scheduler/cron_oracle.py). A schedule agrees when its listed
times, up to the window's end, are the oracle's.

Self-checks: every listing exits 0 with no traceback, no expression cron runs is
refused, and the comparison is not vacuous. Usage: python -m bench.cron_agreement [--quick|--smoke]
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.checks import CheckFailed, run
from bench.common import ROOT, Mode, header, python, table, write_result
from scheduler.timing.crontab import CronGrid, CronSyntaxError, parse_cron
from tests.scheduler import cron_oracle
from tests.scheduler.test_cron_semantics import ORDINARY_WINDOWS, ZONE_WINDOWS, ZONES, generate

NAME = "cron_agreement"
TARGET = 0.995
LISTED = 60  # times asked per job
HAND_PICKED = (
    "30 2 * * *", "0 0 * * *", "15 0 * * *", "45 0 * * *", "0 0 1 * 1", "0 0 1 FEB-6 *", "2-3/2 * * * *",
    "0 0 L * *", "0 0 * * 5L", "0 0 * * 5#2", "0 0 15W * *", "0 0 LW * *", "@daily", "@hourly", "@weekly",
    "@monthly", "@yearly", "*/15 * * * *", "15 * * * *", "0 */2 * * *", "30 1-23/2 * * *", "0 2 * * sun",
    "0,30 2 * * *", "59 23 * * *", "0 23 * * sat", "*/5 2 * * *",
)


def windows(zone: str) -> list[tuple[datetime, datetime]]:
    """The test's windows, plus each DST window again from two hours before its change,
    so that frequent schedules (whose listed times end within hours) meet the change too."""
    found = list(ZONE_WINDOWS[zone])
    found += [(start + timedelta(hours=28), end) for start, end in ZONE_WINDOWS[zone] if (start, end) not in ORDINARY_WINDOWS]
    return found


def listing(config: Path, start: datetime, state: Path) -> tuple[dict[str, list[datetime]], str, int]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCHEDULER_") and key != "API_URL"}
    env |= {"SCHEDULER_STARTUP_GRACE_SECONDS": "0", "SCHEDULER_JITTER_SEED": "1", "SCHEDULER_STATE_PATH": str(state)}
    completed = subprocess.run(
        [python(), "-m", "scheduler", "list", "-c", str(config), "--from", start.isoformat(), "--next", str(LISTED), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    if completed.returncode != 0:
        return {}, completed.stderr, completed.returncode
    jobs = json.loads(completed.stdout)["jobs"]
    return {row["name"]: [datetime.fromisoformat(text) for text in row["next_runs"]] for row in jobs}, completed.stderr, 0


def main() -> None:
    mode = Mode.from_argv()
    count = mode.pick(full=3000, quick=1000, smoke=10)
    hand_picked = mode.pick(full=HAND_PICKED, quick=HAND_PICKED, smoke=HAND_PICKED[:8])
    print(header("cron agreement") + ("  [smoke]" if mode is Mode.SMOKE else ""))
    rng = random.Random(20270327)
    by_zone: dict[str, list[str]] = {zone: list(hand_picked) for zone in ZONES}
    for index in range(count):
        zone = ZONES[index % len(ZONES)]
        by_zone[zone].append(generate(rng, zone))

    rows = []
    totals = {"schedules": 0, "agree": 0, "never_fire": 0, "refused": 0, "runs": 0}
    disagreements: list[str] = []
    refused: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        for zone, expressions in by_zone.items():
            accepted = []
            for expression in dict.fromkeys(expressions):
                try:
                    if CronGrid((parse_cron(expression),), UTC).nominal_after(datetime.now(UTC)) is None:
                        raise CronSyntaxError("never fires (no date in the next 50 years)")  # what validate says too
                except CronSyntaxError as exc:
                    if str(exc).startswith("never fires"):
                        totals["never_fire"] += 1  # cron accepts it and never runs it; so does validate, loudly
                    else:
                        totals["refused"] += 1
                        refused.append(f"{expression!r}: {exc}")
                    continue
                accepted.append(expression)
            config = Path(scratch) / f"{zone.replace('/', '_')}.yaml"
            lines = ["jobs:"]
            for index, expression in enumerate(accepted):
                lines += [f"  j{index:05d}:", f"    cron: {json.dumps(expression)}", f"    timezone: {zone}",
                          "    http: {method: POST, path: /x}"]
            config.write_text("\n".join(lines) + "\n")
            zone_agree = zone_total = 0
            for start, end in windows(zone):
                listed, stderr, code = listing(config, start, Path(scratch) / "state" / "none.sqlite")
                if code != 0 or "Traceback" in stderr:
                    raise CheckFailed(NAME, "list exits 0 without a traceback", f"{zone} from {start}: exit {code}\n{stderr[-2000:]}")
                for index, expression in enumerate(accepted):
                    expected = cron_oracle.times_between(expression, ZoneInfo(zone), start, end)[:LISTED]
                    got = [moment for moment in listed[f"j{index:05d}"] if moment <= end]
                    zone_total += 1
                    totals["runs"] += len(expected)
                    if got == expected:
                        zone_agree += 1
                    else:
                        disagreements.append(f"{expression!r} in {zone} from {start:%Y-%m-%d %H:%M}")
            rows.append([zone, len(accepted), len(windows(zone)), zone_total, zone_agree, f"{zone_agree / zone_total:.4f}"])
            totals["schedules"] += zone_total
            totals["agree"] += zone_agree

    ratio = totals["agree"] / totals["schedules"]
    print(table(["zone", "expressions", "windows", "schedules compared", "agree", "ratio"], rows))
    print(f"agreement {totals['agree']}/{totals['schedules']} = {ratio:.4f} (target >= {TARGET}); "
          f"{totals['runs']:,} runs compared; refused {totals['refused']}; never fire (refused by validate) {totals['never_fire']}")
    for line in disagreements[:10]:
        print(f"  disagrees: {line}")
    if refused:
        raise CheckFailed(NAME, "no expression cron runs is refused", "; ".join(refused[:5]))
    if totals["runs"] < 1000:
        raise CheckFailed(NAME, "not vacuous", f"only {totals['runs']} runs compared")
    write_result(NAME, {
        "expressions_per_zone": {zone: len(expressions) for zone, expressions in by_zone.items()},
        "schedules_compared": totals["schedules"], "agree": totals["agree"], "ratio": ratio, "target": TARGET,
        "runs_compared": totals["runs"], "refused": totals["refused"], "never_fire": totals["never_fire"],
        "disagreements": disagreements[:50], "window_hours_around_changes": 30, "listed_per_job": LISTED,
        "windows": {zone: [[start.isoformat(), end.isoformat()] for start, end in windows(zone)] for zone in ZONES},
        "oracle": "tests/scheduler/cron_oracle.py",
    }, mode)


if __name__ == "__main__":
    raise SystemExit(run(NAME, main))
