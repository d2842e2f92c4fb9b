"""The harnesses' self-checks refuse figures that cannot be right (and accept ones that can)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import checks, common
from bench.checks import CheckFailed, Run, check_exit, check_finite, check_lateness, check_runs, missing_runs
from bench.common import Mode, moved_figures

JOBS = ["/job/0", "/job/1"]


def _grid(jobs: list[str], start: float, rounds: int, interval: float, late: float) -> list[Run]:
    return [Run(job, start + k * interval, start + k * interval + late) for job in jobs for k in range(rounds)]


def _arrivals(fired: list[Run], delay: float = 0.002) -> list[Run]:
    return [Run(run.job, run.nominal, run.at + delay) for run in fired]


def test_consistent_runs_pass() -> None:
    fired = _grid(JOBS, 1000.0, 5, 1.0, 0.001)
    check_runs("firing", "good", fired, _arrivals(fired), jobs=JOBS, interval=1.0)
    check_lateness("firing", "good", [run.at - run.nominal for run in fired])


def test_negative_lateness_is_rejected() -> None:
    # What the old bare-APScheduler matching produced: a run 778 ms late matched to the next
    # nominal time (rounding to the nearest grid point) shows as 222 ms early.
    with pytest.raises(CheckFailed, match="no negative lateness") as failure:
        check_lateness("throughput", "bare APScheduler at 750/s", [0.001, 0.778 - 1.0, 0.002])
    assert failure.value.harness == "throughput"
    assert "bench.throughput" in str(failure.value)
    assert "-222.0 ms" in str(failure.value)


def test_lateness_within_clock_tolerance_passes() -> None:
    check_lateness("firing", "clock noise", [-0.001, 0.0, 0.003])


@pytest.mark.parametrize("values", [[], [float("nan"), 0.001]])
def test_empty_or_nan_lateness_is_rejected(values: list[float]) -> None:
    with pytest.raises(CheckFailed):
        check_lateness("firing", "bad", values)


def test_a_missing_run_is_rejected() -> None:
    fired = [run for run in _grid(JOBS, 1000.0, 5, 1.0, 0.001) if not (run.job == "/job/1" and run.nominal == 1002.0)]
    with pytest.raises(CheckFailed, match=r"no missing runs.*1 runs missing"):
        check_runs("firing", "gap", fired, _arrivals(fired), jobs=JOBS, interval=1.0)
    # ... unless the scenario allows skipped runs (overload with coalescing); then they are counted.
    check_runs("throughput", "gap", fired, _arrivals(fired), jobs=JOBS, interval=1.0, gaps_allowed=True)
    assert missing_runs(fired, 1.0) == 1


def test_a_run_fired_but_never_arrived_is_rejected() -> None:
    fired = _grid(JOBS, 1000.0, 5, 1.0, 0.001)
    with pytest.raises(CheckFailed, match="every run arrived"):
        check_runs("firing", "lost", fired, _arrivals(fired)[1:], jobs=JOBS, interval=1.0)


def test_an_arrival_matched_to_no_run_is_rejected() -> None:
    fired = _grid(["/job/0"], 1000.0, 5, 1.0, 0.001)
    arrived = [*_arrivals(fired), Run("/job/0", 1005.0, 1005.3)]
    with pytest.raises(CheckFailed, match="every arrival fired"):
        check_runs("firing", "stray", fired, arrived, jobs=["/job/0"], interval=1.0)


def test_arrivals_matched_to_the_next_nominal_time_are_rejected() -> None:
    # The scheduler fired each run for nominal k, but the server filed it under k + 1.
    fired = _grid(["/job/0"], 1000.0, 4, 1.0, 0.778)
    shifted = [Run(run.job, run.nominal + 1.0, run.at + 0.001) for run in fired]
    with pytest.raises(CheckFailed, match=r"'(every run arrived|every arrival fired|arrival after start)'"):
        check_runs("throughput", "shifted", fired, shifted, jobs=["/job/0"], interval=1.0, gaps_allowed=True)


def test_a_run_counted_twice_is_rejected() -> None:
    fired = _grid(["/job/0"], 1000.0, 3, 1.0, 0.001)
    with pytest.raises(CheckFailed, match="each run counted once"):
        check_runs("firing", "twice", fired, [*_arrivals(fired), _arrivals(fired)[0]], jobs=["/job/0"], interval=1.0)


def test_a_job_that_never_ran_is_rejected() -> None:
    fired = _grid(["/job/0"], 1000.0, 3, 1.0, 0.001)
    with pytest.raises(CheckFailed, match="every job ran"):
        check_runs("firing", "silent", fired, _arrivals(fired), jobs=JOBS, interval=1.0)


def test_an_arrival_before_its_run_started_is_rejected() -> None:
    fired = _grid(["/job/0"], 1000.0, 3, 1.0, 0.5)
    with pytest.raises(CheckFailed, match="arrival after start"):
        check_runs("firing", "early", fired, _arrivals(fired, delay=-0.2), jobs=["/job/0"], interval=1.0)


def test_millisecond_and_microsecond_stamps_of_one_run_match() -> None:
    # tickless logs scheduled_for to the millisecond; its request header carries microseconds.
    fired = [Run("/job/0", 1000.841, 1000.842), Run("/job/0", 1001.841, 1001.842)]
    arrived = [Run("/job/0", 1000.84176, 1000.845), Run("/job/0", 1001.84176, 1001.845)]
    check_runs("throughput", "stamps", fired, arrived, jobs=["/job/0"], interval=1.0)


def test_non_finite_figures_and_a_crashed_subject_are_rejected() -> None:
    check_finite("firing", "results", {"a": [1.0, {"b": 2}]})
    with pytest.raises(CheckFailed, match=r"results\.a\[1\]\.b is nan"):
        check_finite("firing", "results", {"a": [1.0, {"b": float("nan")}]})
    check_exit("idle", "tickless", 0)
    with pytest.raises(CheckFailed, match="exit status 1; its output ends:\nTraceback"):
        check_exit("idle", "tickless", 1, "Traceback ...")


def test_a_failed_check_is_exit_status_1_naming_harness_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> None:
        check_lateness("throughput", "bare APScheduler at 750/s", [-0.222])

    assert checks.run("throughput", main) == 1
    assert "FAILED bench.throughput: self-check 'no negative lateness' failed" in capsys.readouterr().err
    assert checks.run("throughput", lambda: None) == 0


def test_modes_and_smoke_runs_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Mode.from_argv([]) is Mode.FULL
    assert Mode.from_argv(["--quick"]) is Mode.QUICK
    assert Mode.from_argv(["--smoke"]) is Mode.SMOKE
    with pytest.raises(SystemExit, match="--bogus"):
        Mode.from_argv(["--bogus"])
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    assert common.write_result("demo", {"x": 1.0}, Mode.SMOKE) is None
    assert not (tmp_path / "results").exists()
    written = common.write_result("demo", {"x": 1.0}, Mode.FULL)
    assert written == tmp_path / "results" / "demo.json"
    assert json.loads(written.read_text())["x"] == 1.0
    with pytest.raises(CheckFailed, match="finite figures"):
        common.write_result("demo", {"x": float("nan")}, Mode.SMOKE)


def test_figures_that_moved_more_than_ten_percent_are_named_with_their_change() -> None:
    before = {"machine": {"date": "2026-11-26"}, "levels": [{"fires_per_second": 500, "tickless": {"p99_ms": 35.0}}],
              "sustained": {"tickless": 500, "bare": 600}}
    after = {"machine": {"date": "2026-11-29"}, "levels": [{"fires_per_second": 500, "tickless": {"p99_ms": 20.0}}],
             "sustained": {"tickless": 530, "bare": 600}}
    moved = moved_figures(before, after)
    assert [(path, was, now) for path, was, now, _ in moved] == [("levels[500].tickless.p99_ms", 35.0, 20.0)]
    assert round(moved[0][3], 3) == -0.429  # 500 -> 530 (+6 %) and the machine's date are not called out
