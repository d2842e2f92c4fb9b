"""The catalog's environment variables -> validated ``CatalogSettings``, in one place.

Read with the shared toolkit (``tickless.config.variables``), so a bad value
is worded exactly as the scheduler words it, and every bad one is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from catalog.errors import ConfigError
from tickless.config.problems import Problems
from tickless.config.variables import EnvReader

DEFAULT_CONFIG = "catalog.yaml"
DEFAULT_DB = "data/catalog.sqlite"
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
# The scheduler's bq-metadata-refresh cadence; a row is fresh for two of them.
DEFAULT_REFRESH_INTERVAL = 4 * 60 * 60
# The cost guard's cap: 5 GiB, about 0.03 USD at on-demand prices.
DEFAULT_MAX_SCAN_BYTES = 5 * 1024**3
MAX_SCAN_BYTES_RULE = "must be a non-negative integer (bytes; 0 disables the cost guard)"
# The guard answers within this many seconds, BigQuery reachable or not (a person or an agent is waiting).
DEFAULT_GUARD_TIMEOUT = 10
# A whole refresh run ends within this (the shipped jobs.yaml gives the job 1800 s).
DEFAULT_REFRESH_TIMEOUT = 900


@dataclass(frozen=True)
class CatalogSettings:
    config_path: Path
    db_path: Path
    concurrency: int
    refresh_interval_seconds: int
    emulator_endpoint: str | None  # "http://host:port" from BIGQUERY_EMULATOR_HOST
    max_scan_bytes: int | None = None  # CATALOG_MAX_SCAN_BYTES; None: catalog.yaml's, else the default
    guard_timeout_seconds: int = DEFAULT_GUARD_TIMEOUT  # CATALOG_GUARD_TIMEOUT_SECONDS
    refresh_timeout_seconds: int = DEFAULT_REFRESH_TIMEOUT  # CATALOG_REFRESH_TIMEOUT_SECONDS

    @property
    def fresh_threshold_seconds(self) -> int:
        return 2 * self.refresh_interval_seconds


def _path(env: Mapping[str, str], name: str, default: str, problems: Problems) -> Path:
    raw = env.get(name)
    if raw is None:
        return Path(default)
    if not raw.strip():
        problems.note(f"{name}={raw!r} must be a file path (unset it to use {default})")
        return Path(default)
    return Path(raw)


def parse_scan_bytes(raw: object) -> int | None:
    """``5368709120`` (int or text, ``_`` allowed) -> bytes; None when it is not a non-negative integer."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if not isinstance(raw, str):
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _max_scan_bytes(env: Mapping[str, str], problems: Problems) -> int | None:
    name = "CATALOG_MAX_SCAN_BYTES"
    raw = env.get(name)
    if raw is None:
        return None
    value = parse_scan_bytes(raw)
    if value is None:
        problems.note(f"{name}={raw!r} {MAX_SCAN_BYTES_RULE}")
    return value


def emulator_endpoint(raw: str | None) -> tuple[str | None, str | None]:
    """``host:port`` (or ``http://host:port``) -> (endpoint URL, problem)."""
    if raw is None:
        return None, None
    text = raw.strip()
    if "@" in text:  # user:password@host: never echo it, it holds a secret
        return None, ("BIGQUERY_EMULATOR_HOST must be host:port without user:password@ (the local endpoint takes no "
                      "credentials; the value is not shown because it holds one)")
    rest = text.removeprefix("http://")
    host, _, port = rest.rpartition(":")
    try:
        parsed = urlsplit(f"http://{rest}")
        valid = bool(parsed.hostname) and parsed.port is not None and 0 < parsed.port
    except ValueError:  # e.g. an unclosed [::1
        valid = False
    if not host or "/" in rest or not port.isdigit() or not valid:
        return None, f"BIGQUERY_EMULATOR_HOST={raw!r} must be host:port, e.g. 127.0.0.1:9050 or [::1]:9050"
    return f"http://{rest}", None


def load_settings(env: Mapping[str, str]) -> CatalogSettings:
    """Read every catalog variable; raise ConfigError naming every bad one."""
    problems = Problems()
    variables = EnvReader(env, problems)
    config_path = _path(env, "CATALOG_CONFIG", DEFAULT_CONFIG, problems)
    db_path = _path(env, "CATALOG_DB", DEFAULT_DB, problems)
    concurrency = variables.positive_int("CATALOG_REFRESH_CONCURRENCY", DEFAULT_CONCURRENCY, maximum=MAX_CONCURRENCY,
                                         meaning="datasets refreshed at once")
    interval = variables.seconds("SCHEDULER_BQ_METADATA_REFRESH_INTERVAL", DEFAULT_REFRESH_INTERVAL, allow_zero=False)
    endpoint, problem = emulator_endpoint(env.get("BIGQUERY_EMULATOR_HOST"))
    if problem:
        problems.note(problem)
    max_scan_bytes = _max_scan_bytes(env, problems)
    guard_timeout = variables.seconds("CATALOG_GUARD_TIMEOUT_SECONDS", DEFAULT_GUARD_TIMEOUT, allow_zero=False)
    refresh_timeout = variables.seconds("CATALOG_REFRESH_TIMEOUT_SECONDS", DEFAULT_REFRESH_TIMEOUT, allow_zero=False)
    if problems:
        raise ConfigError(problems)
    return CatalogSettings(config_path, db_path, concurrency, interval, endpoint, max_scan_bytes, guard_timeout, refresh_timeout)
