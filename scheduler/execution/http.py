"""The only module that calls requests: pooled session, auth, headers, retries."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from scheduler import __version__
from scheduler.config.spec import HttpTarget, RetryPolicy
from scheduler.errors import HookFailed, RunFailed
from tickless.clock import Clock, iso, utc_now

logger = logging.getLogger("scheduler.http")  # the name logs have always carried

RETRY_STATUSES = frozenset({429, 502, 503, 504})
BODY_PREVIEW = 200
PROBE_PATH = "/api/health"


@dataclass(frozen=True)
class HttpResult:
    status: int
    attempts: int


@dataclass(frozen=True)
class _Prepared:
    """What a job's request is made of that no run changes, prepared once per job (and token).

    ``Session.request`` re-does all of it on every call: merging the session's
    headers, cookies and settings, parsing and re-encoding the URL, serialising
    the JSON body, choosing the adapter. A run copies ``request`` and sets its
    own two headers; it is rebuilt when a reload gives the job a new target or
    the token rotates.
    """

    target: HttpTarget
    token: str | None
    request: requests.PreparedRequest
    adapter: BaseAdapter
    send_options: dict[str, Any]  # verify, cert, proxies, stream: what Session.send would have merged in


def _for_one_try(prepared: requests.PreparedRequest) -> requests.PreparedRequest:
    """A request of its own for one try (its headers are set per run), sharing what no try changes.

    ``PreparedRequest.copy()`` also copies the cookie jar and hooks, which the adapter never reads.
    """
    request = requests.PreparedRequest()
    request.method, request.url, request.body = prepared.method, prepared.url, prepared.body
    request.headers = prepared.headers.copy()
    return request


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _preview(text: str) -> str:
    return " ".join(text.split())[:BODY_PREVIEW]


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # asctime and "-0000" dates carry no zone; HTTP dates are GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RunFailed):
        return not exc.permanent
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not fix itself between tries
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def describe_exception(exc: BaseException, method: str, url: str, timeout: float) -> str:
    if isinstance(exc, RunFailed):
        return str(exc)
    if isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectTimeout):
        return f"{method} {url}: no response within {timeout:g}s ({type(exc).__name__})"
    reason = exc.args[0] if exc.args else exc
    inner = getattr(reason, "reason", None)
    return f"{method} {url}: {type(exc).__name__}: {inner or reason}"[:400]


class _StopBefore(stop_base):
    """Stop when the next try would start after ``deadline`` (the job's next run) or at shutdown."""

    def __init__(self, deadline: datetime | None, stopping: threading.Event, clock: Clock) -> None:
        self.deadline = deadline
        self.stopping = stopping
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.stopping.is_set():
            return True
        if self.deadline is None:
            return False
        # tenacity computes the wait before asking whether to stop.
        return (self.clock() - self.deadline).total_seconds() + retry_state.upcoming_sleep >= 0


class HttpClient:
    """Calls the application's API for HTTP jobs.

    The bearer token is attached only to requests for API_URL's own origin and
    redirects are never followed, so the token cannot leak to another host.
    """

    def __init__(
        self,
        api_url: str,
        token: str | None,
        pool_size: int,
        *,
        stopping: threading.Event | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.api_url = api_url
        self._token = token
        self._api_origin = _origin(api_url)
        self._stopping = stopping or threading.Event()
        self._clock = clock
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"tickless/{__version__}"
        # requests re-reads proxy variables, CA bundle variables and ~/.netrc on
        # every request when trust_env is on; read the environment once instead
        # (proxies per URL, honouring NO_PROXY) and never take credentials from
        # ~/.netrc: the only credential sent is SCHEDULER_API_TOKEN.
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies: dict[str, dict[str, str]] = {}
        self._prepared: dict[str, _Prepared] = {}  # per job name; replaced (never mutated) when stale

    def _proxies_for(self, url: str) -> dict[str, str]:
        if url not in self._proxies:
            self._proxies[url] = requests.utils.get_environ_proxies(url)
        return self._proxies[url]

    def close(self) -> None:
        self.session.close()

    def set_token(self, token: str | None) -> bool:
        """Use ``token`` from the next request on (a token file re-read on SIGHUP); True if it changed."""
        changed = token != self._token
        self._token = token  # one reference swap: a request in flight keeps the headers it was built with
        return changed

    def _auth_headers(self, url: str) -> dict[str, str]:
        if self._token and _origin(url) == self._api_origin:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def prepare(self, job: str, target: HttpTarget) -> None:
        """Prepare the job's request before its first run (at start-up and reload), so that the first
        round of many jobs due together does not pay for it; an invalid URL is left for the run to report."""
        try:
            self._prepared_for(job, target)
        except requests.RequestException:
            pass

    def _prepared_for(self, job: str, target: HttpTarget) -> _Prepared:
        token = self._token
        known = self._prepared.get(job)
        if known is not None and known.target is target and known.token == token:
            return known
        headers = {**target.headers, **self._auth_headers(target.url), "X-Scheduler-Job": job}
        request = self.session.prepare_request(
            requests.Request(target.method, target.url, headers=headers, json=target.json_body),
        )
        assert request.url is not None
        verify = self.session.verify
        if urlsplit(request.url).scheme == "http":
            verify = True  # no TLS on plain http: requests would stat the CA bundle path on every call for nothing
        options: dict[str, Any] = {
            "verify": verify, "cert": self.session.cert, "proxies": self._proxies_for(target.url), "stream": False,
        }
        known = _Prepared(target, token, request, self.session.get_adapter(request.url), options)
        self._prepared[job] = known
        return known

    def call(
        self,
        job: str,
        target: HttpTarget,
        *,
        timeout: float,
        retry: RetryPolicy,
        scheduled_for: datetime,
        deadline: datetime | None,
        on_retry: Callable[[int, str, float], None] | None = None,
    ) -> HttpResult:
        """One run: the request, retried while transient; RunFailed otherwise."""
        stamp = scheduled_for.astimezone(UTC).isoformat().replace("+00:00", "Z")
        key = f"{job}@{stamp}"

        tries = 0

        def attempt() -> HttpResult:
            nonlocal tries
            tries += 1
            # A run in flight at shutdown makes its request; only further retries are dropped.
            if tries > 1 and self._stopping.is_set():
                raise RunFailed("not retried: the scheduler is shutting down", permanent=True)
            prepared = self._prepared_for(job, target)  # an invalid URL fails here, as a permanent RequestException
            request = _for_one_try(prepared.request)
            request.headers["X-Scheduler-Scheduled-For"] = stamp
            request.headers["Idempotency-Key"] = key
            # Straight to the adapter: redirects are never followed, no cookie is kept between
            # runs, and the session has no hooks; the body is read so the connection goes back to the pool.
            response = prepared.adapter.send(request, timeout=timeout, **prepared.send_options)
            with response:
                response.content  # noqa: B018
                return self._judge(target, response)

        try:
            first = attempt()  # most runs end with their first try: tenacity is set up only when one fails
        except Exception as exc:  # handed to tenacity below, which judges it as any try's failure
            failure: BaseException | None = exc
        else:
            return HttpResult(status=first.status, attempts=1)

        def tries_after_the_first() -> HttpResult:
            """The first try's failure again, then new tries: tenacity counts, waits and logs as for any try."""
            nonlocal failure
            if failure is not None:
                replayed, failure = failure, None
                raise replayed
            return attempt()

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RunFailed) and exc.retry_after is not None:
                return exc.retry_after
            return float(backoff(state))

        def sleep(seconds: float) -> None:
            self._stopping.wait(seconds)  # a shutdown cuts the backoff short

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if on_retry and exc is not None:
                on_retry(state.attempt_number, describe_exception(exc, target.method, target.url, timeout), state.upcoming_sleep)

        backoff = wait_random_exponential(multiplier=retry.backoff_seconds, max=retry.max_backoff_seconds)
        retrying = Retrying(
            stop=stop_after_attempt(retry.attempts) | _StopBefore(deadline, self._stopping, self._clock),
            wait=wait,
            retry=retry_if_exception(_is_transient),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )
        try:
            result = retrying(tries_after_the_first)
        except RunFailed as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            if exc.status == 429 and exc.retry_after is not None and exc.attempts < retry.attempts and deadline is not None \
                    and not self._stopping.is_set() and self._clock() + timedelta(seconds=exc.retry_after) >= deadline:
                raise RunFailed(
                    f"{exc}; not retried: its Retry-After ({exc.retry_after:g}s) ends after the job's next run "
                    f"({iso(deadline)}), which will try again",
                    permanent=exc.permanent, status=exc.status, retry_after=exc.retry_after, attempts=exc.attempts,
                    error_type=exc.error_type,
                ) from None
            raise
        except requests.RequestException as exc:
            raise RunFailed(
                describe_exception(exc, target.method, target.url, timeout),
                permanent=not _is_transient(exc), attempts=retrying.statistics.get("attempt_number", 1),
                error_type=type(exc).__name__,
            ) from None
        return HttpResult(status=result.status, attempts=retrying.statistics.get("attempt_number", 1))

    def _judge(self, target: HttpTarget, response: requests.Response) -> HttpResult:
        status = response.status_code
        if 200 <= status < 300:
            return HttpResult(status=status, attempts=1)
        where = f"{target.method} {target.url}"
        if 300 <= status < 400:
            location = response.headers.get("Location", "(no Location header)")
            raise RunFailed(
                f"HTTP {status} from {where}: redirect to {location!r} not followed; "
                "point API_URL (or the job's url) at the final address",
                permanent=True, status=status,
            )
        body = _preview(response.text)
        if self._token:  # an app that echoes the request must not put the token in our logs
            body = body.replace(self._token, "[redacted]")
        transient = status in RETRY_STATUSES
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"), self._clock()) if status == 429 else None
        raise RunFailed(
            f"HTTP {status} from {where}: {body}" if body else f"HTTP {status} from {where}",
            permanent=not transient, status=status, retry_after=retry_after,
        )

    def probe(self, timeout: float = 3.0) -> tuple[bool, str]:
        """One GET of API_URL/api/health: whether the app answers, and a sentence saying so."""
        url = self.api_url + PROBE_PATH
        started = time.monotonic()
        try:
            response = self.session.get(
                url, headers=self._auth_headers(url), timeout=timeout, allow_redirects=False, proxies=self._proxies_for(url),
            )
            response.close()
        except requests.RequestException as exc:
            why = describe_exception(exc, "GET", url, timeout)
            return False, f"API_URL {self.api_url} does not answer: {why}; jobs will fail until it does"
        took = (time.monotonic() - started) * 1000
        healthy = response.status_code < 300
        verdict = "answers" if healthy else "answers with an error"
        return healthy, f"API_URL {self.api_url} {verdict}: GET {PROBE_PATH} -> HTTP {response.status_code} in {took:.0f} ms"


HOOK_TIMEOUT_SECONDS = 5.0
HOOK_ATTEMPTS = 3


def hook_origin(url: str) -> str:
    """``scheme://host[:port]`` of a notify or ping URL: all of it that may be shown (its path is often a secret)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def _hook_reason(exc: BaseException, timeout: float) -> str:
    """Why a request to a hook failed, without its URL (requests' own messages quote the path)."""
    if isinstance(exc, RunFailed):
        return str(exc)
    if isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectTimeout):
        return f"no response within {timeout:g}s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error (SSLError)"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect ({type(exc).__name__})"
    return type(exc).__name__


class HookClient:
    """Sends notifications and pings (``notify:``, ``ping:``) to the receivers jobs.yaml names.

    Never with the API token (no Authorization header at all) and never
    following redirects; a short timeout, and a few tries of what is transient
    (connection errors, timeouts, 429, 502, 503, 504). A failure is a
    HookFailed that names the receiver by scheme and host only.
    """

    def __init__(
        self, *, timeout: float = HOOK_TIMEOUT_SECONDS, attempts: int = HOOK_ATTEMPTS, backoff: float = 0.5,
        stopping: threading.Event | None = None,
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._stopping = stopping or threading.Event()
        self.session = requests.Session()
        self.session.trust_env = False  # no ~/.netrc credentials; proxies are read once per URL below
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.headers["User-Agent"] = f"tickless/{__version__}"
        self._proxies: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self.session.close()

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # a shutdown cuts the backoff short

    def post(self, url: str, body: object) -> int:
        """POST ``body`` (text when a str, else JSON); the HTTP status, or HookFailed."""
        where = f"POST {hook_origin(url)}"
        if url not in self._proxies:
            self._proxies[url] = requests.utils.get_environ_proxies(url)
        payload: dict[str, object] = (
            {"data": body.encode(), "headers": {"Content-Type": "text/plain; charset=utf-8"}} if isinstance(body, str)
            else {"json": body}
        )

        def attempt() -> int:
            response = self.session.post(
                url, timeout=self.timeout, allow_redirects=False, proxies=self._proxies[url], **payload,  # type: ignore[arg-type]
            )
            with response:
                status = response.status_code
            if 200 <= status < 300:
                return status
            raise RunFailed(f"HTTP {status}", permanent=status not in RETRY_STATUSES, status=status)

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | _StopBefore(None, self._stopping, utc_now),
            wait=wait_random_exponential(multiplier=self.backoff, max=5),
            retry=retry_if_exception(_is_transient),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return int(retrying(attempt))
        except (RunFailed, requests.RequestException) as exc:
            raise HookFailed(where, _hook_reason(exc, self.timeout), attempts=retrying.statistics.get("attempt_number", 1)) from None
