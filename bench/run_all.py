"""`make bench`: every harness in turn (about 18 minutes on 2 cores: cron_agreement about 6, firing about
4, throughput about 3, claims about 2); figures in bench/results/, each harness naming the figures that
moved more than 10 % from the committed result.

--smoke runs every harness at tiny sizes (well under a minute, nothing written)
to prove they still run and their self-checks pass; tests/bench does the same
one harness at a time. Usage: python -m bench.run_all [--quick|--smoke]
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import ROOT, Mode, python

HARNESSES = ["jitter_law", "catalog_refresh", "catalog_reads", "idle", "throughput", "firing", "cron_agreement", "claims"]


def main() -> int:
    extra = sys.argv[1:]
    Mode.from_argv(extra)  # refuse unknown arguments here, not six times over
    started = time.monotonic()
    failed: list[str] = []
    for name in HARNESSES:
        print(flush=True)
        began = time.monotonic()
        result = subprocess.run([python(), "-m", f"bench.{name}", *extra], cwd=ROOT, check=False)
        print(f"({name}: {time.monotonic() - began:.1f} s)", flush=True)
        if result.returncode != 0:
            failed.append(name)
    print(f"\nall harnesses done in {time.monotonic() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
