"""Readers for the fields of one job in jobs.yaml.

Each reader either returns a parsed value or records a located problem and
returns None, so one pass over the file reports every mistake at once.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from scheduler.config.spec import CallTarget, HttpTarget, RetryPolicy
from scheduler.timing.crontab import CronGrid, CronSyntaxError, parse_cron
from tickless.config.durations import DurationError, parse_duration
from tickless.config.interpolate import InterpolationError, expand
from tickless.config.problems import Problems, did_you_mean
from tickless.config.variables import check_seconds
from tickless.config.yamlfile import LineMap

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RESERVED_HEADERS = ("authorization", "idempotency-key", "x-scheduler-job", "x-scheduler-scheduled-for")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_MISSING = object()


class Context:
    """The environment for ${VAR}, and the problems of the job being read."""

    def __init__(self, env: Mapping[str, str], problems: Problems) -> None:
        self.env = env
        self.problems = problems

    def for_job(self, name: str) -> Context:
        return Context(self.env, self.problems.about(f"job {name!r}"))

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self.problems.add(line, field, message)

    def check_keys(self, mapping: LineMap, allowed: tuple[str, ...], prefix: str = "") -> None:
        self.problems.check_keys(mapping, allowed, prefix)

    def value(self, mapping: LineMap, key: str, field: str) -> tuple[Any, str | None]:
        """The value with ${VAR} expanded, and the variable it came from whole."""
        raw = mapping[key]
        if not isinstance(raw, str):
            return raw, None
        try:
            expanded = expand(raw, self.env)
        except InterpolationError as exc:
            self.add(mapping.line_of(key), field, str(exc))
            return _MISSING, None
        return expanded.text, expanded.whole_from_env

    def expand_tree(self, value: Any, line: int, field: str) -> Any:
        """Expand ${VAR} in every string inside a json body or headers."""
        if isinstance(value, str):
            try:
                return expand(value, self.env).text
            except InterpolationError as exc:
                self.add(line, field, str(exc))
                return value
        if isinstance(value, dict):
            return {key: self.expand_tree(item, line, field) for key, item in value.items()}
        if isinstance(value, list):
            return [self.expand_tree(item, line, field) for item in value]
        return value


def read_duration(ctx: Context, mapping: LineMap, key: str, *, positive: bool, field: str | None = None) -> int | None:
    field = field or key
    line = mapping.line_of(key)
    # An empty variable gets the reference wording, which names the rule.
    raw = mapping[key]
    if isinstance(raw, str) and raw.startswith("${") and raw.endswith("}"):
        name = raw[2:-1].split(":-", 1)[0]
        if ctx.env.get(name) == "":
            try:
                check_seconds(name, "", allow_zero=not positive)
            except ValueError as exc:
                ctx.add(line, field, str(exc))
            return None
    value, variable = ctx.value(mapping, key, field)
    if value is _MISSING:
        return None
    if variable is not None:
        try:
            return check_seconds(variable, value, allow_zero=not positive)
        except ValueError as exc:
            ctx.add(line, field, str(exc))
            return None
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        source = f" (expanded from {raw!r})" if isinstance(raw, str) and "${" in raw else ""
        ctx.add(line, field, f"{exc}{source}")
        return None
    if positive and seconds == 0:
        ctx.add(line, field, f"must be greater than 0, got {value!r}")
        return None
    return seconds


def read_bool(ctx: Context, mapping: LineMap, key: str, *, default: bool) -> bool:
    if key not in mapping:
        return default
    value, _ = ctx.value(mapping, key, key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is not _MISSING:
        ctx.add(mapping.line_of(key), key, f"must be true or false, got {value!r}")
    return default


def read_daily(ctx: Context, mapping: LineMap) -> tuple[time, ...] | None:
    line = mapping.line_of("daily")
    value, _ = ctx.value(mapping, "daily", "daily")
    if value is _MISSING:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        items = [items]
    if not items:
        ctx.add(line, "daily", f'must be "HH:MM", "HH:MM,HH:MM" or a list of "HH:MM", got {value!r}')
        return None
    times: list[time] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            # YAML 1.1 reads an unquoted 13:00 as the base-60 number 780.
            hours, minutes = divmod(item, 60)
            ctx.add(
                line, "daily",
                f'quote the times: YAML reads an unquoted {hours}:{minutes:02d} as the number {item}; write "{hours:02d}:{minutes:02d}"',
            )
            return None
        match = _TIME.match(item.strip()) if isinstance(item, str) else None
        if not match:
            ctx.add(line, "daily", f'must be "HH:MM" between 00:00 and 23:59, got {item!r}')
            return None
        moment = time(int(match.group(1)), int(match.group(2)))
        if moment in times:
            ctx.add(line, "daily", f"lists {moment.strftime('%H:%M')!r} twice")
            return None
        times.append(moment)
    return tuple(sorted(times))


def read_cron(ctx: Context, mapping: LineMap, now: datetime) -> str | None:
    value, _ = ctx.value(mapping, "cron", "cron")
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        ctx.add(mapping.line_of("cron"), "cron", f"must be a 5-field crontab string, got {value!r}")
        return None
    try:
        parsed = parse_cron(value)
    except CronSyntaxError as exc:
        ctx.add(mapping.line_of("cron"), "cron", f"{exc}; got {value!r}")
        return None
    if CronGrid((parsed,), UTC).nominal_after(now) is None:
        ctx.add(mapping.line_of("cron"), "cron", f"never fires (no date in the next 50 years matches it); got {value!r}")
        return None
    return parsed.text


def read_timezone(ctx: Context, mapping: LineMap, key: str = "timezone", field: str | None = None) -> str | None:
    field = field or key
    value, _ = ctx.value(mapping, key, field)
    if value is _MISSING:
        return None
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(str(value), tuple(sorted(available_timezones())))
        ctx.add(mapping.line_of(key), field, f"unknown timezone {value!r}{hint}")
        return None
    return str(value)


def read_retry(ctx: Context, mapping: LineMap, base: RetryPolicy, prefix: str = "") -> RetryPolicy | None:
    raw = mapping["retry"]
    if not isinstance(raw, LineMap):
        ctx.add(
            mapping.line_of("retry"), f"{prefix}retry",
            f"must be a mapping like {{attempts: 3, backoff: 1s, max_backoff: 30s}}, got {raw!r}",
        )
        return None
    ctx.check_keys(raw, ("attempts", "backoff", "max_backoff"), f"{prefix}retry.")
    attempts = base.attempts
    if "attempts" in raw:
        value, _ = ctx.value(raw, "attempts", f"{prefix}retry.attempts")
        try:
            attempts = int(value)
            if isinstance(value, bool) or str(attempts) != str(value).strip() or attempts < 1:
                raise ValueError
        except (TypeError, ValueError):
            if value is not _MISSING:
                ctx.add(raw.line_of("attempts"), f"{prefix}retry.attempts", f"must be an integer of at least 1, got {value!r}")
            return None
    backoff = base.backoff_seconds
    if "backoff" in raw:
        backoff = read_duration(ctx, raw, "backoff", positive=False, field=f"{prefix}retry.backoff")  # type: ignore[assignment]
    maximum = base.max_backoff_seconds
    if "max_backoff" in raw:
        maximum = read_duration(ctx, raw, "max_backoff", positive=False, field=f"{prefix}retry.max_backoff")  # type: ignore[assignment]
    if backoff is None or maximum is None:
        return None
    if maximum < backoff:
        ctx.add(
            raw.line_of("max_backoff"), f"{prefix}retry.max_backoff",
            f"must be at least {prefix}retry.backoff ({backoff}s), got {maximum}s",
        )
        return None
    return RetryPolicy(attempts, backoff, maximum)


def read_http(ctx: Context, mapping: LineMap, api_url: str) -> HttpTarget | None:
    raw = mapping["http"]
    line = mapping.line_of("http")
    if not isinstance(raw, LineMap):
        ctx.add(line, "http", f"must be a mapping like {{method: POST, path: /api/...}}, got {raw!r}")
        return None
    ctx.check_keys(raw, ("method", "path", "url", "json", "headers"), "http.")
    ok = True
    method = "GET"
    if "method" in raw:
        value, _ = ctx.value(raw, "method", "http.method")
        method = str(value).upper()
        if value is _MISSING or method not in HTTP_METHODS:
            if value is not _MISSING:
                ctx.add(raw.line_of("method"), "http.method", f"must be one of {', '.join(HTTP_METHODS)}, got {value!r}")
            ok = False
    url = _read_url(ctx, raw, line, api_url)
    headers = _read_headers(ctx, raw)
    body = ctx.expand_tree(raw.get("json"), raw.line_of("json"), "http.json")
    try:
        json.dumps(body)
    except (TypeError, ValueError) as exc:
        ctx.add(raw.line_of("json"), "http.json", f"cannot be sent as JSON: {exc} (quote dates and times: \"2024-01-01\")")
        ok = False
    if not ok or url is None or headers is None:
        return None
    return HttpTarget(method=method, url=url, json_body=body, headers=headers)


def _read_url(ctx: Context, raw: LineMap, line: int, api_url: str) -> str | None:
    if ("path" in raw) == ("url" in raw):
        ctx.add(line, "http", "needs exactly one of path (joined to API_URL) or url (absolute)")
        return None
    key = "path" if "path" in raw else "url"
    value, _ = ctx.value(raw, key, f"http.{key}")
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        ctx.add(raw.line_of(key), f"http.{key}", f"must be a string, got {value!r}")
        return None
    if key == "path":
        if not value.startswith("/"):
            ctx.add(raw.line_of(key), "http.path", f"must start with '/', got {value!r}")
            return None
        return api_url + value
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        # requests would send them as Basic auth in place of the bearer token; never shown.
        ctx.add(
            raw.line_of(key), "http.url",
            f"must not carry credentials (user:password@): put a token in http.headers instead; "
            f"got {_without_password(parts)!r} (the password, if any, is not shown)",
        )
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        ctx.add(raw.line_of(key), "http.url", f"must be an absolute http:// or https:// URL, got {value!r}")
        return None
    return value


def _without_password(parts: SplitResult) -> str:
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, "", ""))


def _read_headers(ctx: Context, raw: LineMap) -> dict[str, str] | None:
    headers = raw.get("headers") or {}
    line = raw.line_of("headers")
    if not isinstance(headers, dict) or not all(isinstance(v, (str, int)) for v in headers.values()):
        ctx.add(line, "http.headers", f"must map header names to strings, got {headers!r}")
        return None
    for name in headers:
        if name.lower() in RESERVED_HEADERS:
            ctx.add(line, f"http.headers.{name}", "is set by the scheduler itself (the token comes from SCHEDULER_API_TOKEN)")
            return None
    return {str(k): str(ctx.expand_tree(str(v), line, f"http.headers.{k}")) for k, v in headers.items()}


def read_call(ctx: Context, mapping: LineMap) -> CallTarget | None:
    value, _ = ctx.value(mapping, "call", "call")
    line = mapping.line_of("call")
    if value is _MISSING:
        return None
    if not isinstance(value, str) or not _CALLABLE.match(value):
        ctx.add(line, "call", f"must be 'module:function', got {value!r}")
        return None
    kwargs = mapping.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        ctx.add(mapping.line_of("kwargs"), "kwargs", f"must be a mapping of keyword arguments, got {kwargs!r}")
        return None
    module_name, function_name = value.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail in any way; report it, never crash
        ctx.add(line, "call", f"cannot import {module_name!r}: {type(exc).__name__}: {exc}")
        return None
    function = getattr(module, function_name, None)
    if not callable(function):
        ctx.add(line, "call", f"module {module_name!r} has no callable {function_name!r}")
        return None
    expanded = dict(ctx.expand_tree(kwargs, line, "kwargs"))
    if not _fits(ctx, mapping, value, function, expanded):
        return None
    return CallTarget(reference=value, function=function, kwargs=expanded)


def _fits(ctx: Context, mapping: LineMap, reference: str, function: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
    """Whether ``function(**kwargs)`` binds: a missing or unknown argument would fail every run."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return True  # some built-ins have no signature to check against
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        line = mapping.line_of("kwargs") if "kwargs" in mapping else mapping.line_of("call")
        given = ", ".join(kwargs) or "none"
        ctx.add(line, "kwargs", f"do not fit {reference}{signature}: {exc} (kwargs given: {given})")
        return False
    return True


def read_hook(ctx: Context, mapping: LineMap, key: str, field: str | None = None) -> str | None:
    """``notify: {url: URL}`` or ``ping: {url: URL}``: the URL; "" for ``false`` (none, overriding
    defaults); None after a problem. The URL is absolute http(s) and carries no credentials."""
    field = field or key
    raw = mapping[key]
    line = mapping.line_of(key)
    if raw is False:
        return ""
    if not isinstance(raw, LineMap):
        ctx.add(line, field, f"must be a mapping like {{url: https://...}} (or false), got {raw!r}")
        return None
    ctx.check_keys(raw, ("url",), f"{field}.")
    if "url" not in raw:
        ctx.add(line, f"{field}.url", "is required: the receiver's http:// or https:// URL")
        return None
    value, _ = ctx.value(raw, "url", f"{field}.url")
    if value is _MISSING:
        return None
    where = raw.line_of("url")
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # Only the start is shown: the rest of a webhook URL is often its secret.
        shown = repr(value[:12] + ("..." if len(value) > 12 else "")) if isinstance(value, str) else repr(value)
        ctx.add(where, f"{field}.url", f"must be an absolute http:// or https:// URL, got {shown}")
        return None
    if parts.username is not None or parts.password is not None:
        ctx.add(
            where, f"{field}.url",
            f"must not carry credentials (user:password@{parts.hostname}): a receiver that needs a secret takes it "
            "in the URL's path or query (not shown in logs)",
        )
        return None
    return str(value)
