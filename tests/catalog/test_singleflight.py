"""One refresh at a time (threads and processes); datasets in parallel, bounded."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.bigquery import BigQuerySource
from catalog.cli import main
from catalog.errors import CacheError
from catalog.refresh import RefreshSummary, refresh, refresh_all
from catalog.registry import load_registry
from catalog.settings import CatalogSettings
from scheduler.config.jobs_file import load_jobs
from tests.catalog.support import FakeBigQuery, Seen, Table, write_registry
from tickless.clock import utc_now

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _registry(tmp_path: Path, datasets: list[str]):  # type: ignore[no-untyped-def]
    lines = ["bigquery: {project: data-proj, billing_project: bill-proj}", "tables:"]
    lines += [f"  {dataset}: {{dataset: {dataset}, table: t}}" for dataset in datasets]
    return load_registry(write_registry(tmp_path, "\n".join(lines) + "\n"), {})


def test_a_second_refresh_in_another_thread_returns_already_running(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("t"))
    registry = _registry(tmp_path, ["shop"])
    entered, release = threading.Event(), threading.Event()

    def hold(seen: Seen) -> None:
        entered.set()
        assert release.wait(10), "the test never released the first refresh"

    fake.before_query = hold
    results: list[RefreshSummary] = []
    first = threading.Thread(target=lambda: results.append(refresh(settings=settings, registry=registry, source=source, env={})))
    first.start()
    try:
        assert entered.wait(10)
        second = refresh_all(settings=settings, registry=registry, source=source, env={})
    finally:
        release.set()
        first.join(10)

    assert second.status == "already_running"
    assert second.run_id == results[0].run_id and second.started_at == results[0].started_at
    assert second.bigquery_calls == 0
    assert results[0].status == "completed" and results[0].succeeded == 1
    # Once the first is done, the lock is free again.
    fake.before_query = None
    assert refresh(settings=settings, registry=registry, source=source, env={}).status == "completed"


def test_a_refresh_running_in_another_process_is_seen(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    fake.add("shop", Table("t"))
    registry = _registry(tmp_path, ["shop"])
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from catalog.refresh.lock import RefreshLock\n"
         f"with RefreshLock(Path({str(settings.db_path)!r}), 'other-process-run', '2026-01-01T00:00:00.000Z'):\n"
         "    print('locked', flush=True); sys.stdin.readline()\n"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        summary = refresh(settings=settings, registry=registry, source=source, env={})
    finally:
        holder.communicate("go\n", timeout=10)

    assert (summary.status, summary.run_id) == ("already_running", "other-process-run")
    assert fake.http_requests == 0
    assert refresh(settings=settings, registry=registry, source=source, env={}).succeeded == 1


def test_datasets_run_concurrently_within_the_bound(
    tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    datasets = [f"ds{number}" for number in range(5)]
    for dataset in datasets:
        fake.add(dataset, Table("t"))
    registry = _registry(tmp_path, datasets)
    # The first two TABLES queries wait for each other: a sequential refresh would break the barrier.
    barrier = threading.Barrier(2, timeout=10)
    waited: list[str] = []

    def meet(seen: Seen) -> None:
        if seen.kind == "TABLES" and len(waited) < 2:
            waited.append(seen.dataset)
            barrier.wait()

    fake.before_query = meet

    summary = refresh(settings=replace(settings, concurrency=2), registry=registry, source=source, env={})

    assert summary.succeeded == 5 and not barrier.broken
    assert fake.max_in_flight == 2  # never more than CATALOG_REFRESH_CONCURRENCY


def test_refresh_all_is_a_valid_scheduler_call_job(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        "jobs:\n"
        "  bq-metadata-refresh:\n"
        "    every: ${SCHEDULER_BQ_METADATA_REFRESH_INTERVAL:-14400}\n"
        "    call: catalog.refresh:refresh_all\n"
        "    timeout: 1800s\n"
    )
    # Validation checks the catalog's own configuration too (a broken one would fail every run).
    registry = write_registry(tmp_path, "bigquery: {project: my-project}\ndatasets: [shop]\n")
    env = {"CATALOG_CONFIG": str(registry), "CATALOG_DB": str(tmp_path / "catalog.sqlite")}
    [spec] = load_jobs(jobs, env, "http://localhost:8000", now=utc_now())
    assert spec.target.function is refresh_all  # type: ignore[union-attr]


@pytest.mark.parametrize("db_path", ["/proc/x.sqlite", "/dev/null/x.sqlite"])
def test_an_unusable_cache_folder_is_a_cache_error_naming_the_path(
    db_path: str, tmp_path: Path, fake: FakeBigQuery, source: BigQuerySource, settings: CatalogSettings,
) -> None:
    registry = _registry(tmp_path, ["shop"])
    with pytest.raises(CacheError) as caught:
        refresh(settings=replace(settings, db_path=Path(db_path)), registry=registry, source=source, env={})
    assert str(caught.value).startswith(f"catalog cache {db_path}: cannot create its refresh lock {db_path}.refresh.lock: ")
    assert fake.http_requests == 0


def test_catalog_refresh_with_an_unusable_cache_folder_exits_2_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    write_registry(tmp_path, "bigquery: {project: data-proj}\ntables: {t: {dataset: shop, table: t}}\n")
    monkeypatch.setenv("CATALOG_CONFIG", str(tmp_path / "catalog.yaml"))
    monkeypatch.setenv("CATALOG_DB", "/dev/null/x.sqlite")
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9")  # never reached
    assert main(["refresh"]) == 2
    err = capsys.readouterr().err
    assert "catalog cache /dev/null/x.sqlite: cannot create its refresh lock" in err and "Traceback" not in err
