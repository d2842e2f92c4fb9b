"""Fixtures for the scheduler tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.scheduler.support import ApiServer, Service


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer()
    yield server
    server.close()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(args: list[str], env: dict[str, str]) -> Service:
        service = Service(args, env, tmp_path)
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()
