"""Environment variables -> validated CatalogSettings, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from catalog.errors import ConfigError
from scheduler.settings import check_seconds

DEFAULT_CONFIG = "catalog.yaml"
DEFAULT_DB = "data/catalog.sqlite"
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
# The scheduler's bq-metadata-refresh cadence; a row is fresh for two of them.
DEFAULT_REFRESH_INTERVAL = 4 * 60 * 60
# The cost guard's cap: 5 GiB, about 0.03 USD at on-demand prices.
DEFAULT_MAX_SCAN_BYTES = 5 * 1024**3
MAX_SCAN_BYTES_RULE = "must be a non-negative integer (bytes; 0 disables the cost guard)"


@dataclass(frozen=True)
class CatalogSettings:
    config_path: Path
    db_path: Path
    concurrency: int
    refresh_interval_seconds: int
    emulator_endpoint: str | None  # "http://host:port" from BIGQUERY_EMULATOR_HOST
    max_scan_bytes: int | None = None  # CATALOG_MAX_SCAN_BYTES; None: catalog.yaml's, else the default

    @property
    def fresh_threshold_seconds(self) -> int:
        return 2 * self.refresh_interval_seconds


def _path(env: Mapping[str, str], name: str, default: str, problems: list[str]) -> Path:
    raw = env.get(name)
    if raw is None:
        return Path(default)
    if not raw.strip():
        problems.append(f"{name}={raw!r} must be a file path (unset it to use {default})")
        return Path(default)
    return Path(raw)


def _concurrency(env: Mapping[str, str], problems: list[str]) -> int:
    name = "CATALOG_REFRESH_CONCURRENCY"
    raw = env.get(name)
    if raw is None:
        return DEFAULT_CONCURRENCY
    try:
        value = int(raw.strip())
    except ValueError:
        problems.append(f"{name}={raw!r} must be a positive integer (datasets refreshed at once)")
        return DEFAULT_CONCURRENCY
    if not 1 <= value <= MAX_CONCURRENCY:
        problems.append(f"{name}={value} must be between 1 and {MAX_CONCURRENCY}")
        return DEFAULT_CONCURRENCY
    return value


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


def _max_scan_bytes(env: Mapping[str, str], problems: list[str]) -> int | None:
    name = "CATALOG_MAX_SCAN_BYTES"
    raw = env.get(name)
    if raw is None:
        return None
    value = parse_scan_bytes(raw)
    if value is None:
        problems.append(f"{name}={raw!r} {MAX_SCAN_BYTES_RULE}")
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
    problems: list[str] = []
    config_path = _path(env, "CATALOG_CONFIG", DEFAULT_CONFIG, problems)
    db_path = _path(env, "CATALOG_DB", DEFAULT_DB, problems)
    concurrency = _concurrency(env, problems)
    interval = DEFAULT_REFRESH_INTERVAL
    raw_interval = env.get("SCHEDULER_BQ_METADATA_REFRESH_INTERVAL")
    if raw_interval is not None:
        try:
            interval = check_seconds("SCHEDULER_BQ_METADATA_REFRESH_INTERVAL", raw_interval, allow_zero=False)
        except ValueError as exc:
            problems.append(str(exc))
    endpoint, problem = emulator_endpoint(env.get("BIGQUERY_EMULATOR_HOST"))
    if problem:
        problems.append(problem)
    max_scan_bytes = _max_scan_bytes(env, problems)
    if problems:
        raise ConfigError(problems)
    return CatalogSettings(config_path, db_path, concurrency, interval, endpoint, max_scan_bytes)
