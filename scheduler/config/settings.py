"""Environment variables -> validated Settings, in one place.

Messages follow the wording operators already know from the polling
scheduler this replaces: ``NAME='' must be a positive integer (seconds)``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from scheduler.errors import ConfigError
from tickless.config.variables import EnvReader

DEFAULT_API_URL = "http://localhost:8000"
DEFAULT_CONFIG = "jobs.yaml"
DEFAULT_STATE_PATH = "data/scheduler-state.sqlite"
DEFAULT_METRICS_ADDR = "127.0.0.1:9464"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TOKEN_VARS = ("SCHEDULER_API_TOKEN", "SCHEDULER_API_TOKEN_FILE")
# A token file holds one token; anything larger is some other file.
MAX_TOKEN_FILE_BYTES = 4096
# What an HTTP header value may carry as a bearer token: visible ASCII, no spaces.
_TOKEN_CHARACTER = re.compile(r"[\x21-\x7e]")


def _describe_character(char: str) -> str:
    """Names a character that cannot be in a token without showing the token around it."""
    if char == " ":
        return "a space"
    if char == "\t":
        return "a tab"
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"a control character (U+{ord(char):04X})"
    return "not ASCII"


@dataclass(frozen=True)
class Settings:
    config_path: Path
    api_url: str
    token: str | None = field(repr=False)
    startup_grace_seconds: int
    shutdown_timeout_seconds: int
    jitter_seed: int
    jitter_seed_from_env: bool
    tick_seconds: int | None
    log_format: str
    log_level: str
    state_path: Path = Path(DEFAULT_STATE_PATH)
    state_url: str | None = field(default=None, repr=False)  # PostgreSQL; holds a password: never shown whole
    lease_seconds: int = 30
    state_pool_size: int = 10
    history_per_job: int = 100
    startup_spread_seconds: int = 30
    metrics_address: tuple[str, int] | None = ("127.0.0.1", 9464)
    warnings: tuple[str, ...] = ()

    @property
    def auth(self) -> str:
        return "bearer" if self.token else "none"

    @property
    def state_location(self) -> str:
        """Where the state lives, safe to show: the file, or the URL without its password."""
        return without_password(self.state_url) if self.state_url else str(self.state_path)


def without_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user@host/db`` (also drops the query string)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


class _Reader(EnvReader):
    """The scheduler's own variables, on top of the shared rules."""

    def api_url(self) -> str:
        raw = self.env.get("API_URL")
        if raw is None:
            return DEFAULT_API_URL
        parts = urlsplit(raw.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problems.note(
                f"API_URL={raw!r} must be an http:// or https:// URL with a host, "
                f"e.g. {DEFAULT_API_URL}"
            )
            return DEFAULT_API_URL
        if parts.username is not None or parts.password is not None:
            # Shown without its password; the token is the one credential sent.
            self.problems.note(
                f"API_URL={without_password(raw.strip())!r} must not carry credentials (user:password@): "
                "the scheduler authenticates with SCHEDULER_API_TOKEN (the password, if any, is not shown)"
            )
            return DEFAULT_API_URL
        if parts.query or parts.fragment:
            self.problems.note(f"API_URL={raw!r} must not have a query string or fragment")
        return raw.strip().rstrip("/")

    def state_path(self) -> Path:
        raw = self.env.get("SCHEDULER_STATE_PATH")
        if raw is None:
            return Path(DEFAULT_STATE_PATH)
        if not raw.strip():
            self.problems.note(f"SCHEDULER_STATE_PATH='' must name a file; unset it to use {DEFAULT_STATE_PATH}")
        return Path(raw)

    def state_url(self) -> str | None:
        raw = self.env.get("SCHEDULER_STATE_URL")
        if raw is None:
            return None
        # Messages show the URL without its password: it is a secret.
        shown = without_password(raw.strip()) if raw.strip() else ""
        if "SCHEDULER_STATE_PATH" in self.env:
            self.problems.note(
                "SCHEDULER_STATE_URL and SCHEDULER_STATE_PATH are both set: set only one "
                "(the URL for PostgreSQL and replicas, the path for one service on SQLite)"
            )
            return None
        parts = urlsplit(raw.strip())
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            self.problems.note(
                f"SCHEDULER_STATE_URL={shown!r} must be a postgresql://user@host:port/database URL"
                " (the password, if any, is not shown)"
            )
            return None
        return raw.strip()

    def metrics_address(self) -> tuple[str, int] | None:
        raw = self.env.get("SCHEDULER_METRICS_ADDR", DEFAULT_METRICS_ADDR)
        if raw.strip() == "":
            return None  # empty disables the endpoint
        host, _, port = raw.strip().rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            self.problems.note(
                f"SCHEDULER_METRICS_ADDR={raw!r} must be HOST:PORT (e.g. {DEFAULT_METRICS_ADDR}), or empty to disable"
            )
            return None
        return host.strip("[]"), int(port)

    def jitter_seed(self) -> tuple[int, bool]:
        raw = self.env.get("SCHEDULER_JITTER_SEED")
        if raw is None:
            return secrets.randbelow(2**32), False
        try:
            value = int(raw.strip())
        except ValueError:
            value = -1
        if value < 0:
            self.problems.note(f"SCHEDULER_JITTER_SEED={raw!r} must be a non-negative integer")
            return 0, True
        return value, True

    def token(self) -> str | None:
        # Problems here never quote the token's value: it is a secret.
        direct = self.env.get("SCHEDULER_API_TOKEN")
        path = self.env.get("SCHEDULER_API_TOKEN_FILE")
        if direct is not None and path is not None:
            self.problems.note(
                "SCHEDULER_API_TOKEN and SCHEDULER_API_TOKEN_FILE are both set: set only one"
            )
            return None
        if direct is not None:
            if not direct.strip():
                self.problems.note(
                    "SCHEDULER_API_TOKEN is set but empty: unset it to call the API "
                    "without authentication"
                )
                return None
            return self._checked_token("SCHEDULER_API_TOKEN", direct.strip())
        if path is not None:
            return self._token_from_file(path)
        return None

    def _token_from_file(self, path: str) -> str | None:
        if not path:
            self.problems.note("SCHEDULER_API_TOKEN_FILE='' must name a readable file")
            return None
        try:
            # Read at most the limit and one byte more: /dev/zero or a log file
            # named by mistake is refused at once, not read into memory.
            with open(path, "rb") as handle:
                raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
        except OSError as exc:
            self.problems.note(f"SCHEDULER_API_TOKEN_FILE={path!r}: cannot read the token: {exc.strerror or exc}")
            return None
        if len(raw) > MAX_TOKEN_FILE_BYTES:
            self.problems.note(
                f"SCHEDULER_API_TOKEN_FILE={path!r}: larger than {MAX_TOKEN_FILE_BYTES // 1024} KiB: "
                "not a token file (it must hold the token alone, on one line)"
            )
            return None
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            self.problems.note(f"SCHEDULER_API_TOKEN_FILE={path!r}: the file is empty")
            return None
        return self._checked_token(f"SCHEDULER_API_TOKEN_FILE={path!r}", text)

    def _checked_token(self, where: str, token: str) -> str | None:
        """The token if it is one line of visible ASCII; else a problem that never quotes it."""
        if "\n" in token or "\r" in token:
            lines = len(token.splitlines())
            self.problems.note(
                f"{where}: the token must be one line of visible ASCII characters, but it has {lines} lines "
                "(the value is not shown: it is a secret)"
            )
            return None
        bad = next((index for index, char in enumerate(token) if not _TOKEN_CHARACTER.match(char)), None)
        if bad is not None:
            self.problems.note(
                f"{where}: the token must be one line of visible ASCII characters, but character {bad + 1} "
                f"is {_describe_character(token[bad])} (the value is not shown: it is a secret)"
            )
            return None
        return token


def config_path(env: Mapping[str, str], override: str | None = None) -> Path:
    """-c FILE, else SCHEDULER_CONFIG, else jobs.yaml."""
    return Path(override or env.get("SCHEDULER_CONFIG") or DEFAULT_CONFIG)


def load_settings(env: Mapping[str, str], config: str | None = None) -> Settings:
    """Validate every variable of DESIGN §5; raise ConfigError listing all problems."""
    read = _Reader(env)
    if env.get("SCHEDULER_CONFIG") == "" and not config:
        read.problems.note("SCHEDULER_CONFIG is set but empty: unset it to use jobs.yaml")
    api_url = read.api_url()
    token = read.token()
    grace = read.seconds("SCHEDULER_STARTUP_GRACE_SECONDS", 60, allow_zero=True)
    shutdown = read.seconds("SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS", 50, allow_zero=True)
    tick = read.seconds("SCHEDULER_TICK_SECONDS", 30, allow_zero=False)
    seed, seed_from_env = read.jitter_seed()
    log_format = read.choice("SCHEDULER_LOG_FORMAT", "text", LOG_FORMATS, upper=False)
    log_level = read.choice("SCHEDULER_LOG_LEVEL", "INFO", LOG_LEVELS, upper=True)
    state_path = read.state_path()
    state_url = read.state_url()
    lease = read.seconds("SCHEDULER_LEASE_SECONDS", 30, allow_zero=False)
    pool_size = read.positive_int("SCHEDULER_STATE_POOL_SIZE", 10, maximum=100, meaning="PostgreSQL connections per replica")
    history = read.positive_int("SCHEDULER_HISTORY_PER_JOB", 100)
    spread = read.seconds("SCHEDULER_STARTUP_SPREAD_SECONDS", 30, allow_zero=True)
    metrics_address = read.metrics_address()
    if read.problems:
        raise ConfigError(read.problems)

    warnings: list[str] = []
    if token is None:
        warnings.append(
            "neither SCHEDULER_API_TOKEN nor SCHEDULER_API_TOKEN_FILE is set: "
            "calling the API without an Authorization header"
        )
    tick_set = "SCHEDULER_TICK_SECONDS" in env
    if tick_set:
        warnings.append(
            f"SCHEDULER_TICK_SECONDS={tick} is accepted for compatibility but unused: "
            "this scheduler fires each job at its own time, with no polling tick"
        )
    return Settings(
        config_path=config_path(env, config),
        api_url=api_url,
        token=token,
        startup_grace_seconds=grace,
        shutdown_timeout_seconds=shutdown,
        jitter_seed=seed,
        jitter_seed_from_env=seed_from_env,
        tick_seconds=tick if tick_set else None,
        log_format=log_format,
        log_level=log_level,
        state_path=state_path,
        state_url=state_url,
        lease_seconds=lease,
        state_pool_size=pool_size,
        history_per_job=history,
        startup_spread_seconds=spread,
        metrics_address=metrics_address,
        warnings=tuple(warnings),
    )


def log_warnings(settings: Settings, logger: logging.Logger) -> None:
    for warning in settings.warnings:
        logger.warning("%s", warning)
