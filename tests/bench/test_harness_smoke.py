"""Every benchmark harness still runs: `python -m bench.NAME --smoke` exits 0 and prints its figures.

A harness broken by an API change (as catalog_reads was when the guard's
estimate gained a parameter) or refusing its own measurements fails here,
in `make test`, instead of on the next `make bench`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.run_all import HARNESSES

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def _stamp(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", HARNESSES)
def test_harness_smoke_run_passes_its_self_checks(name: str) -> None:
    result_file = RESULTS / f"{name}.json"
    before = _stamp(result_file)
    completed = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    output = f"--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}"
    assert completed.returncode == 0, f"bench.{name} --smoke exited {completed.returncode}\n{output}"
    assert completed.stdout.startswith("== "), output  # the harness's header line
    assert "\n-----" in completed.stdout or "  ---" in completed.stdout, f"no table of figures printed\n{output}"
    assert f"smoke run: {name} figures not written" in completed.stdout, output
    assert _stamp(result_file) == before, f"a smoke run rewrote {result_file}"


def test_every_harness_module_is_listed() -> None:
    # A harness added to bench/ but not to HARNESSES would have no smoke test and rot unseen.
    helpers = {"__init__", "run_all", "common", "checks", "subject"}
    modules = {path.stem for path in (ROOT / "bench").glob("*.py")} - helpers
    assert modules == set(HARNESSES)
