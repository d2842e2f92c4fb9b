"""`make bench`: every harness in turn (about 9 minutes on 2 cores); figures in bench/results/.

Usage: python -m bench.run_all [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import ROOT, python

HARNESSES = ["jitter_law", "catalog_refresh", "catalog_reads", "idle", "throughput", "firing"]


def main() -> int:
    extra = sys.argv[1:]
    started = time.monotonic()
    failed = []
    for name in HARNESSES:
        print(flush=True)
        result = subprocess.run([python(), "-m", f"bench.{name}", *extra], cwd=ROOT, check=False)
        if result.returncode != 0:
            failed.append(name)
    print(f"\nall harnesses done in {time.monotonic() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
