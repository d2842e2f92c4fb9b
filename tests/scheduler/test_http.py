"""HttpClient.call and probe against ``responses``: a real requests Session, no network.

Waiting is observed, never done: the client sleeps through ``stopping.wait``,
so a ``threading.Event`` whose ``wait`` only records its argument stands in.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from scheduler import __version__
from scheduler.config.spec import HttpTarget, RetryPolicy
from scheduler.errors import RunFailed
from scheduler.execution.http import HttpClient, HttpResult

API_URL = "http://api.test:8000"
TOKEN = "tok-5f1e-very-secret"
NOW = datetime(2026, 1, 5, 7, 0, 0, tzinfo=UTC)
SCHEDULED = datetime(2026, 1, 5, 7, 0, 0, tzinfo=UTC)
STAMP = "2026-01-05T07:00:00Z"
JOB = "data-refresh"
PATH = "/api/sync/trigger"
URL = API_URL + PATH
FAST = RetryPolicy(attempts=3, backoff_seconds=0, max_backoff_seconds=0)


class RecordingEvent(threading.Event):
    """A stopping flag whose wait() records the seconds asked for and returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def stopping() -> RecordingEvent:
    return RecordingEvent()


@pytest.fixture
def client(stopping: RecordingEvent) -> Iterator[HttpClient]:
    http = HttpClient(API_URL, TOKEN, 2, stopping=stopping, clock=lambda: NOW)
    yield http
    http.close()


def call(
    http: HttpClient,
    target: HttpTarget | None = None,
    *,
    retry: RetryPolicy = FAST,
    timeout: float = 5,
    deadline: datetime | None = None,
    scheduled_for: datetime = SCHEDULED,
    on_retry: object = None,
) -> HttpResult:
    return http.call(
        JOB, target or HttpTarget("POST", URL), timeout=timeout, retry=retry,
        scheduled_for=scheduled_for, deadline=deadline, on_retry=on_retry,  # type: ignore[arg-type]
    )


def failure(http: HttpClient, target: HttpTarget | None = None, **kwargs: object) -> RunFailed:
    with pytest.raises(RunFailed) as caught:
        call(http, target, **kwargs)  # type: ignore[arg-type]
    assert TOKEN not in str(caught.value)  # the token never reaches a message
    return caught.value


# -- headers ----------------------------------------------------------------------


def test_headers_of_one_run(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=200)
    result = call(client)
    assert result == HttpResult(status=200, attempts=1)
    headers = mock.calls[0].request.headers
    assert headers["User-Agent"] == f"tickless/{__version__}"
    assert headers["X-Scheduler-Job"] == JOB
    assert headers["X-Scheduler-Scheduled-For"] == STAMP
    assert headers["Idempotency-Key"] == f"{JOB}@{STAMP}"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert mock.calls[0].request.req_kwargs["timeout"] == 5  # type: ignore[attr-defined]


def test_scheduled_for_is_stamped_in_utc_with_z(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=204)
    call(client, scheduled_for=datetime(2026, 7, 1, 9, 30, 0, tzinfo=ZoneInfo("Europe/Prague")))
    headers = mock.calls[0].request.headers
    assert headers["X-Scheduler-Scheduled-For"] == "2026-07-01T07:30:00Z"
    assert headers["Idempotency-Key"] == f"{JOB}@2026-07-01T07:30:00Z"


def test_idempotency_key_is_the_same_on_every_retry(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=503)
    mock.add(responses.POST, URL, status=502)
    mock.add(responses.POST, URL, status=200)
    result = call(client)
    assert result.attempts == 3
    assert len(mock.calls) == 3
    keys = {call.request.headers["Idempotency-Key"] for call in mock.calls}
    stamps = {call.request.headers["X-Scheduler-Scheduled-For"] for call in mock.calls}
    assert keys == {f"{JOB}@{STAMP}"}
    assert stamps == {STAMP}


def test_no_authorization_without_a_token(mock: responses.RequestsMock, stopping: RecordingEvent) -> None:
    mock.add(responses.POST, URL, status=200)
    http = HttpClient(API_URL, None, 1, stopping=stopping)
    try:
        call(http)
    finally:
        http.close()
    assert "Authorization" not in mock.calls[0].request.headers
    assert mock.calls[0].request.headers["X-Scheduler-Job"] == JOB


@pytest.mark.parametrize(
    ("url", "sends_token"),
    [
        ("http://api.test:8000/api/other", True),  # absolute url on API_URL's own origin
        ("http://API.test:8000/api/other", True),  # host names are case-insensitive
        ("http://other.test:8000/api/other", False),  # another host
        ("http://api.test:9000/api/other", False),  # another port
        ("https://api.test:8000/api/other", False),  # another scheme
        ("http://api.test/api/other", False),  # port 80, not 8000
    ],
)
def test_token_only_for_api_urls_origin(
    mock: responses.RequestsMock, client: HttpClient, url: str, sends_token: bool,
) -> None:
    mock.add(responses.GET, url, status=200)
    call(client, HttpTarget("GET", url))
    headers = mock.calls[0].request.headers
    assert ("Authorization" in headers) is sends_token
    if sends_token:
        assert headers["Authorization"] == f"Bearer {TOKEN}"


def test_default_port_is_the_same_origin(mock: responses.RequestsMock, stopping: RecordingEvent) -> None:
    mock.add(responses.GET, "http://api.test:80/api/x", status=200)
    http = HttpClient("http://api.test", TOKEN, 1, stopping=stopping)
    try:
        call(http, HttpTarget("GET", "http://api.test:80/api/x"))
    finally:
        http.close()
    assert mock.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_json_body_is_sent_for_post(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=202)
    result = call(client, HttpTarget("POST", URL, json_body={"tables": ["a", "b"], "force": True}))
    assert result.status == 202
    request = mock.calls[0].request
    assert json.loads(request.body) == {"tables": ["a", "b"], "force": True}
    assert request.headers["Content-Type"] == "application/json"


def test_custom_job_headers_are_sent(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.PUT, URL, status=200)
    call(client, HttpTarget("PUT", URL, headers={"X-Tenant": "acme", "Accept": "application/json"}))
    headers = mock.calls[0].request.headers
    assert headers["X-Tenant"] == "acme"
    assert headers["Accept"] == "application/json"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert mock.calls[0].request.method == "PUT"


# -- retries ------------------------------------------------------------------------


def test_retry_on_503_then_success(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=503, body="busy")
    mock.add(responses.POST, URL, status=200)
    retries: list[tuple[int, str, float]] = []
    result = call(client, on_retry=lambda number, why, wait: retries.append((number, why, wait)))
    assert result == HttpResult(status=200, attempts=2)
    assert len(mock.calls) == 2
    assert len(retries) == 1
    number, why, wait = retries[0]
    assert number == 1
    assert "HTTP 503" in why and "busy" in why
    assert wait == 0
    assert TOKEN not in why


@pytest.mark.parametrize("status", [502, 504, 429])
def test_retry_on_other_transient_statuses(mock: responses.RequestsMock, client: HttpClient, status: int) -> None:
    mock.add(responses.POST, URL, status=status)
    mock.add(responses.POST, URL, status=200)
    assert call(client).attempts == 2
    assert len(mock.calls) == 2


def test_retry_on_connection_error(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, body=requests.ConnectionError("connection refused"))
    mock.add(responses.POST, URL, status=200)
    assert call(client) == HttpResult(status=200, attempts=2)
    assert len(mock.calls) == 2


def test_connection_error_every_time_fails_transient(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, body=requests.ConnectionError("connection refused"))
    exc = failure(client)
    assert len(mock.calls) == 3
    assert exc.attempts == 3
    assert exc.permanent is False
    assert "ConnectionError" in str(exc) and "connection refused" in str(exc)
    assert URL in str(exc)


def test_429_retry_after_seconds_is_honoured(
    mock: responses.RequestsMock, client: HttpClient, stopping: RecordingEvent,
) -> None:
    mock.add(responses.POST, URL, status=429, headers={"Retry-After": "2"})
    mock.add(responses.POST, URL, status=200)
    assert call(client, retry=RetryPolicy(attempts=3, backoff_seconds=1, max_backoff_seconds=1)).attempts == 2
    assert stopping.waits == [2.0]  # the server's word, not the 0-1 s backoff


def test_429_retry_after_http_date_is_honoured(
    mock: responses.RequestsMock, client: HttpClient, stopping: RecordingEvent,
) -> None:
    later = format_datetime(NOW + timedelta(seconds=7), usegmt=True)  # "Mon, 05 Jan 2026 07:00:07 GMT"
    mock.add(responses.POST, URL, status=429, headers={"Retry-After": later})
    mock.add(responses.POST, URL, status=200)
    assert call(client).attempts == 2
    assert stopping.waits == [7.0]


def test_429_retry_after_in_asctime_format_is_honoured(
    mock: responses.RequestsMock, client: HttpClient, stopping: RecordingEvent,
) -> None:
    # RFC 9110 5.6.7: recipients must accept all three HTTP-date formats; asctime carries no zone and means GMT.
    mock.assert_all_requests_are_fired = False  # report the failure below, not an unused mock at teardown
    mock.add(responses.POST, URL, status=429, headers={"Retry-After": "Mon Jan  5 07:00:03 2026"})
    mock.add(responses.POST, URL, status=200)
    assert call(client).attempts == 2
    assert stopping.waits == [3.0]


def test_backoff_waits_grow_but_stay_under_the_cap(
    mock: responses.RequestsMock, client: HttpClient, stopping: RecordingEvent,
) -> None:
    mock.add(responses.POST, URL, status=503)
    exc = failure(client, retry=RetryPolicy(attempts=6, backoff_seconds=1, max_backoff_seconds=4))
    assert exc.attempts == 6
    assert len(stopping.waits) == 5
    for number, wait in enumerate(stopping.waits, start=1):
        assert wait is not None
        assert 0 <= wait <= min(4, 2 ** (number - 1))


def test_retries_stop_at_attempts(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=503, body="down for maintenance")
    retries: list[int] = []
    exc = failure(client, retry=RetryPolicy(attempts=4, backoff_seconds=0, max_backoff_seconds=0),
                  on_retry=lambda number, why, wait: retries.append(number))
    assert len(mock.calls) == 4
    assert exc.attempts == 4
    assert exc.status == 503
    assert exc.permanent is False
    assert retries == [1, 2, 3]
    assert "down for maintenance" in str(exc)


def test_no_retry_once_the_deadline_is_reached(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=503)
    exc = failure(client, deadline=NOW)  # the next run is due: no further attempt
    assert len(mock.calls) == 1
    assert exc.attempts == 1
    assert exc.status == 503


def test_no_retry_when_the_wait_would_pass_the_deadline(
    mock: responses.RequestsMock, client: HttpClient, stopping: RecordingEvent,
) -> None:
    mock.add(responses.POST, URL, status=429, headers={"Retry-After": "10"})
    exc = failure(client, deadline=NOW + timedelta(seconds=5))
    assert len(mock.calls) == 1
    assert exc.status == 429
    assert exc.retry_after == 10
    assert stopping.waits == []  # it did not sit out a wait it could not use


def test_retries_continue_while_the_deadline_is_far(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=429, headers={"Retry-After": "10"})
    mock.add(responses.POST, URL, status=200)
    assert call(client, deadline=NOW + timedelta(minutes=15)).attempts == 2


def test_a_run_in_flight_at_shutdown_still_makes_its_request(
    mock: responses.RequestsMock, client: HttpClient, stopping: RecordingEvent
) -> None:
    mock.add(responses.POST, URL, status=200)
    stopping.set()
    assert call(client).status == 200


def test_no_retry_is_made_while_stopping(mock: responses.RequestsMock, client: HttpClient, stopping: RecordingEvent) -> None:
    mock.assert_all_requests_are_fired = False
    mock.add(responses.POST, URL, status=503)
    mock.add(responses.POST, URL, status=200)
    stopping.set()
    exc = failure(client)
    assert len(mock.calls) == 1
    assert exc.status == 503  # the last answer stands; the retry was not made


def test_read_timeout_is_retried(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, body=requests.ReadTimeout("read timed out"))
    mock.add(responses.POST, URL, status=200)
    assert call(client) == HttpResult(status=200, attempts=2)


def test_timeouts_every_time_say_no_response_within(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, body=requests.ReadTimeout("read timed out"))
    exc = failure(client, timeout=120)
    assert len(mock.calls) == 3
    assert exc.attempts == 3
    assert exc.permanent is False
    assert "no response within 120s" in str(exc)
    assert f"POST {URL}" in str(exc)


# -- permanent failures ---------------------------------------------------------------


def test_404_is_not_retried(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=404, body='{"detail": "Not Found"}')
    exc = failure(client)
    assert len(mock.calls) == 1
    assert exc.permanent is True
    assert exc.status == 404
    assert exc.attempts == 1
    assert str(exc) == f'HTTP 404 from POST {URL}: {{"detail": "Not Found"}}'


def test_500_is_not_retried_and_shows_the_collapsed_body_start(mock: responses.RequestsMock, client: HttpClient) -> None:
    body = "Traceback (most recent call last):\n\n    File  \"app.py\",\tline 3\n" + "x" * 150 + "\n  " + "y" * 300
    collapsed = " ".join(body.split())
    mock.add(responses.POST, URL, status=500, body=body)
    exc = failure(client)
    assert len(mock.calls) == 1
    assert exc.permanent is True
    assert exc.status == 500
    message = str(exc)
    assert message == f"HTTP 500 from POST {URL}: {collapsed[:200]}"
    assert collapsed[:201] not in message
    assert "\n" not in message


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(client: HttpClient, status: int) -> None:
    elsewhere = "https://login.elsewhere.test/api/sync/trigger"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, URL, status=status, headers={"Location": elsewhere})
        target = rsps.add(responses.POST, elsewhere, status=200)
        exc = failure(client)
        assert len(rsps.calls) == 1
        assert target.call_count == 0  # the Location was never requested (nor given the token)
    assert exc.permanent is True
    assert exc.status == status
    assert exc.attempts == 1
    assert elsewhere in str(exc)
    assert "API_URL" in str(exc)
    assert f"HTTP {status}" in str(exc)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 404, "body": "no such route"},
        {"status": 500, "body": "boom"},
        {"status": 503, "body": "busy"},
        {"status": 401, "body": "unauthorized"},
        {"status": 302, "headers": {"Location": "http://other.test/"}},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.ReadTimeout("slow")},
    ],
    ids=["404", "500", "503", "401", "302", "connection-error", "timeout"],
)
def test_the_token_never_appears_in_a_failure(client: HttpClient, answer: dict[str, object]) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, URL, **answer)  # type: ignore[arg-type]
        retried: list[str] = []
        exc = failure(client, on_retry=lambda number, why, wait: retried.append(why))
        assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent...
    assert TOKEN not in str(exc)  # ...and never said
    assert TOKEN not in repr(exc.args)
    assert all(TOKEN not in why for why in retried)


# -- probe ------------------------------------------------------------------------------


def test_probe_healthy(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.GET, API_URL + "/api/health", status=200, body="ok")
    healthy, sentence = client.probe()
    assert healthy is True
    assert "HTTP 200" in sentence
    assert API_URL in sentence
    assert len(mock.calls) == 1


def test_probe_unreachable(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.GET, API_URL + "/api/health", body=requests.ConnectionError("connection refused"))
    healthy, sentence = client.probe()
    assert healthy is False
    assert "does not answer" in sentence
    assert API_URL in sentence
    assert TOKEN not in sentence


def test_probe_error_status_is_not_healthy(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.GET, API_URL + "/api/health", status=503)
    healthy, sentence = client.probe()
    assert healthy is False
    assert "HTTP 503" in sentence


def test_an_echoed_token_is_redacted_from_the_failure(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=400, body=f"bad request; you sent Authorization: Bearer {TOKEN}")
    with pytest.raises(RunFailed) as caught:
        call(client)
    assert TOKEN not in str(caught.value)
    assert "Bearer [redacted]" in str(caught.value)


def test_an_invalid_url_fails_as_permanent(client: HttpClient) -> None:
    with pytest.raises(RunFailed) as caught:
        call(client, HttpTarget("GET", "http://"))
    assert caught.value.permanent is True
    assert caught.value.attempts == 1


def test_a_retry_after_that_ends_after_the_next_run_is_named_in_the_failure(
    mock: responses.RequestsMock, client: HttpClient,
) -> None:
    mock.add(responses.POST, URL, status=429, headers={"Retry-After": "600"}, body="slow down")
    exc = failure(client, deadline=NOW + timedelta(seconds=300))
    assert exc.status == 429 and exc.attempts == 1
    assert str(exc) == (
        f"HTTP 429 from POST {URL}: slow down; not retried: its Retry-After (600s) ends after the job's next run "
        "(2026-01-05T07:05:00.000Z), which will try again"
    )


def test_a_429_out_of_attempts_is_not_blamed_on_the_next_run(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=429, headers={"Retry-After": "600"})
    exc = failure(client, retry=RetryPolicy(attempts=1), deadline=NOW + timedelta(seconds=300))
    assert "Retry-After" not in str(exc)


def test_a_new_token_is_sent_from_the_next_request_on(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=200)
    mock.add(responses.POST, URL, status=200)
    call(client)
    assert client.set_token("tok-rotated") is True
    assert client.set_token("tok-rotated") is False
    call(client)
    assert [c.request.headers["Authorization"] for c in mock.calls] == [f"Bearer {TOKEN}", "Bearer tok-rotated"]


def test_each_run_sends_its_own_stamp_on_a_request_prepared_once(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=200)
    mock.add(responses.POST, URL, status=200)
    target = HttpTarget("POST", URL, json_body={"a": 1}, headers={"X-Tenant": "acme"})
    call(client, target, scheduled_for=SCHEDULED)
    call(client, target, scheduled_for=SCHEDULED + timedelta(minutes=1))
    first, second = (recorded.request for recorded in mock.calls)
    assert first.headers["Idempotency-Key"] == f"{JOB}@{STAMP}"
    assert second.headers["Idempotency-Key"] == f"{JOB}@2026-01-05T07:01:00Z"
    for request in (first, second):
        assert request.headers["X-Tenant"] == "acme" and request.headers["X-Scheduler-Job"] == JOB
        assert json.loads(request.body) == {"a": 1}


def test_a_rotated_token_and_a_reloaded_target_are_used_from_the_next_run(mock: responses.RequestsMock, client: HttpClient) -> None:
    mock.add(responses.POST, URL, status=200)
    mock.add(responses.POST, URL, status=200)
    mock.add(responses.PUT, URL, status=200)
    target = HttpTarget("POST", URL)
    call(client, target)
    assert client.set_token("tok-new") is True
    call(client, target)
    call(client, HttpTarget("PUT", URL, headers={"X-Reloaded": "yes"}))  # a reload gives the job a new target
    auth = [recorded.request.headers["Authorization"] for recorded in mock.calls]
    assert auth == [f"Bearer {TOKEN}", "Bearer tok-new", "Bearer tok-new"]
    assert mock.calls[2].request.method == "PUT" and mock.calls[2].request.headers["X-Reloaded"] == "yes"
