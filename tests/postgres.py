"""A PostgreSQL of its own for each test that needs one: a fresh schema on the
server named by TICKLESS_TEST_POSTGRES_URL (default: the machine's own,
postgresql://postgres@127.0.0.1:5432/test).

Under CI (``CI=true``) an unreachable server fails the test: it is never
skipped silently there. Elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("TICKLESS_TEST_POSTGRES_URL", DEFAULT_URL)


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL at {server_url()} is needed and unreachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(server_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unreachable(str(exc).strip().splitlines()[0])
        raise AssertionError("unreachable") from exc
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield with_search_path(server_url(), schema)
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
