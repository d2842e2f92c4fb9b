"""The reload thread: a rejected configuration and an unexpected fault are both logged and counted, never raised."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from scheduler.config.settings import Settings, load_settings
from scheduler.config.spec import JobSpec
from scheduler.errors import ConfigError
from scheduler.service import Service
from scheduler.state.sqlite import SqliteStore


def service(tmp_path: Path, loader: object) -> Service:
    settings = load_settings({"SCHEDULER_STATE_PATH": str(tmp_path / "state.sqlite"), "SCHEDULER_API_TOKEN": "tok-old"})
    return Service(settings, [], SqliteStore(settings.state_path), loader=loader)  # type: ignore[arg-type]


def reloads(target: Service, result: str) -> float | None:
    return target.metrics.registry.get_sample_value("tickless_config_reloads_total", {"result": result})


def test_an_unexpected_fault_in_the_reload_thread_is_logged_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> tuple[Settings, list[JobSpec]]:
        raise RuntimeError("a bug in the loader")

    target = service(tmp_path, broken)
    target._reload_logged()  # what the SIGHUP handler's thread runs; it must not raise
    [record] = [r for r in caplog.records if r.name == "scheduler.reload"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "reload failed: internal error; still running the previous configuration"
    assert reloads(target, "failed") == 1


def test_a_rejected_reload_is_counted_as_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def invalid() -> tuple[Settings, list[JobSpec]]:
        raise ConfigError(["jobs.yaml:7: nested more than 100 levels deep"])

    target = service(tmp_path, invalid)
    target._reload_logged()
    assert reloads(target, "rejected") == 1 and reloads(target, "failed") is None
    assert "reload rejected: jobs.yaml:7: nested more than 100 levels deep" in caplog.text


def test_a_reload_takes_the_re_read_token(tmp_path: Path) -> None:
    target = service(tmp_path, lambda: (load_settings({"SCHEDULER_API_TOKEN": "tok-new"}), []))
    assert target.reload() is True
    assert target.http._auth_headers(target.settings.api_url + "/x") == {"Authorization": "Bearer tok-new"}
    assert target.settings.token == "tok-new"
