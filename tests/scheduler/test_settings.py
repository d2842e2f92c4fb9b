"""Tests of ``load_settings`` and ``check_seconds`` (DESIGN §5), with plain dicts as the environment."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from scheduler.config.settings import MAX_TOKEN_FILE_BYTES, Settings, load_settings
from scheduler.errors import ConfigError
from tickless.config.variables import check_seconds

SECRET = "tk-9f8e7d6c5b4a-very-secret"
NO_TOKEN_WARNING = (
    "neither SCHEDULER_API_TOKEN nor SCHEDULER_API_TOKEN_FILE is set: calling the API without an Authorization header"
)
GRACE = "SCHEDULER_STARTUP_GRACE_SECONDS"
SHUTDOWN = "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS"
TICK = "SCHEDULER_TICK_SECONDS"


def problems_of(env: Mapping[str, str], config: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, config)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def token_file(tmp_path: Path, content: str) -> str:
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- defaults


def test_defaults_with_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings.config_path == Path("jobs.yaml")
    assert settings.api_url == "http://localhost:8000"
    assert settings.startup_grace_seconds == 60
    assert settings.shutdown_timeout_seconds == 50
    assert settings.log_format == "text"
    assert settings.log_level == "INFO"
    assert settings.tick_seconds is None
    assert settings.token is None
    assert settings.auth == "none"
    assert settings.warnings == (NO_TOKEN_WARNING,)


# --------------------------------------------------------------------------- seconds variables


@pytest.mark.parametrize("name", [GRACE, SHUTDOWN])
@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("", "='' must be a non-negative integer (seconds)"),
        ("abc", "='abc' must be a non-negative integer (seconds)"),
        ("1.5", "='1.5' must be a non-negative integer (seconds)"),
        ("-5", "=-5 must be >= 0 (seconds)"),
    ],
    ids=["empty", "abc", "float", "negative"],
)
def test_non_negative_seconds_variable_rejects(name: str, raw: str, rule: str) -> None:
    assert problems_of({name: raw}) == [f"{name}{rule}"]


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("", "='' must be a positive integer (seconds)"),
        ("abc", "='abc' must be a positive integer (seconds)"),
        ("-5", "=-5 must be > 0 (seconds)"),
        ("0", "=0 must be > 0 (seconds)"),
    ],
    ids=["empty", "abc", "negative", "zero"],
)
def test_tick_seconds_must_be_positive(raw: str, rule: str) -> None:
    assert problems_of({TICK: raw}) == [f"{TICK}{rule}"]


@pytest.mark.parametrize(
    ("name", "attribute"),
    [(GRACE, "startup_grace_seconds"), (SHUTDOWN, "shutdown_timeout_seconds")],
)
@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("7", 7), (" 120 ", 120)])
def test_non_negative_seconds_variable_accepts(name: str, attribute: str, raw: str, expected: int) -> None:
    settings = load_settings({name: raw})
    assert getattr(settings, attribute) == expected


def test_grace_zero_disables_the_pause_but_keeps_the_other_defaults() -> None:
    settings = load_settings({GRACE: "0"})
    assert settings.startup_grace_seconds == 0
    assert settings.shutdown_timeout_seconds == 50


def test_tick_seconds_is_accepted_and_reported_as_unused() -> None:
    settings = load_settings({TICK: "30", "SCHEDULER_API_TOKEN": SECRET})
    assert settings.tick_seconds == 30
    assert settings.warnings == (
        "SCHEDULER_TICK_SECONDS=30 is accepted for compatibility but unused: "
        "this scheduler fires each job at its own time, with no polling tick",
    )


def test_tick_seconds_unset_gives_no_tick_warning() -> None:
    settings = load_settings({"SCHEDULER_API_TOKEN": SECRET})
    assert settings.tick_seconds is None
    assert settings.warnings == ()


# --------------------------------------------------------------------------- check_seconds


@pytest.mark.parametrize(
    ("raw", "allow_zero", "expected"),
    [("1", False, 1), ("900", False, 900), (" 45 ", False, 45), ("0", True, 0), ("60", True, 60)],
)
def test_check_seconds_returns_the_integer(raw: str, allow_zero: bool, expected: int) -> None:
    value = check_seconds("NAME", raw, allow_zero=allow_zero)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "allow_zero", "message"),
    [
        ("", False, "NAME='' must be a positive integer (seconds)"),
        ("abc", False, "NAME='abc' must be a positive integer (seconds)"),
        ("  ", False, "NAME='  ' must be a positive integer (seconds)"),
        ("15m", False, "NAME='15m' must be a positive integer (seconds)"),
        ("-5", False, "NAME=-5 must be > 0 (seconds)"),
        ("0", False, "NAME=0 must be > 0 (seconds)"),
        ("", True, "NAME='' must be a non-negative integer (seconds)"),
        ("abc", True, "NAME='abc' must be a non-negative integer (seconds)"),
        ("-5", True, "NAME=-5 must be >= 0 (seconds)"),
    ],
)
def test_check_seconds_uses_the_reference_wording(raw: str, allow_zero: bool, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_seconds("NAME", raw, allow_zero=allow_zero)
    assert str(caught.value) == message


# --------------------------------------------------------------------------- jitter seed


@pytest.mark.parametrize(("raw", "expected"), [("42", 42), ("0", 0), (" 7 ", 7), ("4294967296", 2**32)])
def test_jitter_seed_from_the_environment(raw: str, expected: int) -> None:
    settings = load_settings({"SCHEDULER_JITTER_SEED": raw})
    assert settings.jitter_seed == expected
    assert settings.jitter_seed_from_env is True


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1.5"])
def test_jitter_seed_must_be_a_non_negative_integer(raw: str) -> None:
    assert problems_of({"SCHEDULER_JITTER_SEED": raw}) == [
        f"SCHEDULER_JITTER_SEED={raw!r} must be a non-negative integer"
    ]


def test_jitter_seed_is_drawn_when_unset() -> None:
    drawn = [load_settings({}) for _ in range(8)]
    assert all(settings.jitter_seed_from_env is False for settings in drawn)
    assert all(0 <= settings.jitter_seed < 2**32 for settings in drawn)
    # Eight draws from 2**32 values are all equal only if the seed is not drawn at all.
    assert len({settings.jitter_seed for settings in drawn}) > 1


# --------------------------------------------------------------------------- API_URL


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://app:8000", "http://app:8000"),
        ("http://app:8000/", "http://app:8000"),
        ("https://api.example.com/base/", "https://api.example.com/base"),
        ("  https://api.example.com  ", "https://api.example.com"),
    ],
)
def test_api_url_is_kept_without_a_trailing_slash(raw: str, expected: str) -> None:
    assert load_settings({"API_URL": raw}).api_url == expected


@pytest.mark.parametrize("raw", ["localhost:8000", "app.internal", "ftp://files.example", "http://", ""])
def test_api_url_needs_an_http_scheme_and_a_host(raw: str) -> None:
    assert problems_of({"API_URL": raw}) == [
        f"API_URL={raw!r} must be an http:// or https:// URL with a host, e.g. http://localhost:8000"
    ]


@pytest.mark.parametrize("raw", ["http://app:8000/?token=x", "http://app:8000/#top"])
def test_api_url_must_not_have_a_query_or_fragment(raw: str) -> None:
    assert problems_of({"API_URL": raw}) == [f"API_URL={raw!r} must not have a query string or fragment"]


# --------------------------------------------------------------------------- the token


def test_token_from_the_environment_means_bearer_auth_and_no_warning() -> None:
    settings = load_settings({"SCHEDULER_API_TOKEN": f"  {SECRET}\n"})
    assert settings.token == SECRET
    assert settings.auth == "bearer"
    assert settings.warnings == ()


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_token_is_an_error(raw: str) -> None:
    assert problems_of({"SCHEDULER_API_TOKEN": raw}) == [
        "SCHEDULER_API_TOKEN is set but empty: unset it to call the API without authentication"
    ]


def test_both_token_variables_is_an_error(tmp_path: Path) -> None:
    env = {"SCHEDULER_API_TOKEN": SECRET, "SCHEDULER_API_TOKEN_FILE": token_file(tmp_path, SECRET)}
    assert problems_of(env) == ["SCHEDULER_API_TOKEN and SCHEDULER_API_TOKEN_FILE are both set: set only one"]


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    settings = load_settings({"SCHEDULER_API_TOKEN_FILE": token_file(tmp_path, f"\n  {SECRET}  \n\n")})
    assert settings.token == SECRET
    assert settings.auth == "bearer"
    assert settings.warnings == ()


def test_missing_token_file(tmp_path: Path) -> None:
    path = str(tmp_path / "absent")
    assert problems_of({"SCHEDULER_API_TOKEN_FILE": path}) == [
        f"SCHEDULER_API_TOKEN_FILE={path!r}: cannot read the token: No such file or directory"
    ]


@pytest.mark.parametrize("content", ["", " \n\t\n"])
def test_empty_token_file(tmp_path: Path, content: str) -> None:
    path = token_file(tmp_path, content)
    assert problems_of({"SCHEDULER_API_TOKEN_FILE": path}) == [
        f"SCHEDULER_API_TOKEN_FILE={path!r}: the file is empty"
    ]


def test_token_file_variable_set_but_empty() -> None:
    assert problems_of({"SCHEDULER_API_TOKEN_FILE": ""}) == ["SCHEDULER_API_TOKEN_FILE='' must name a readable file"]


def test_token_never_appears_in_settings_repr_or_warnings(tmp_path: Path) -> None:
    for env in (
        {"SCHEDULER_API_TOKEN": SECRET, TICK: "30"},
        {"SCHEDULER_API_TOKEN_FILE": token_file(tmp_path, SECRET), TICK: "30"},
    ):
        settings = load_settings(env)
        assert settings.token == SECRET  # loaded, so its absence below means something
        assert SECRET not in repr(settings)
        assert SECRET not in str(settings)
        assert settings.warnings  # the tick warning is there to be searched
        assert all(SECRET not in warning for warning in settings.warnings)


@pytest.mark.parametrize(
    "extra",
    [
        {"SCHEDULER_API_TOKEN_FILE": "/nonexistent/tickless-token"},
        {"API_URL": "ftp://files.example", GRACE: "-5"},
    ],
    ids=["both-token-variables", "token-with-other-problems"],
)
def test_token_never_appears_in_problems(extra: dict[str, str]) -> None:
    env = {"SCHEDULER_API_TOKEN": SECRET, **extra}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.problems
    assert all(SECRET not in problem for problem in caught.value.lines)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_settings_field_holding_the_token_is_hidden_from_repr() -> None:
    settings = Settings(
        config_path=Path("jobs.yaml"),
        api_url="http://app",
        token=SECRET,
        startup_grace_seconds=0,
        shutdown_timeout_seconds=0,
        jitter_seed=1,
        jitter_seed_from_env=True,
        tick_seconds=None,
        log_format="text",
        log_level="INFO",
    )
    assert "token" not in repr(settings)
    assert SECRET not in repr(settings)


# --------------------------------------------------------------------------- logs and config path


def test_log_format_and_level_are_case_insensitive() -> None:
    settings = load_settings({"SCHEDULER_LOG_FORMAT": "JSON", "SCHEDULER_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")


def test_log_format_and_level_must_be_known() -> None:
    assert problems_of({"SCHEDULER_LOG_FORMAT": "xml", "SCHEDULER_LOG_LEVEL": "loud"}) == [
        "SCHEDULER_LOG_FORMAT='xml' must be one of: text, json",
        "SCHEDULER_LOG_LEVEL='loud' must be one of: DEBUG, INFO, WARNING, ERROR",
    ]


def test_config_path_from_environment_and_override() -> None:
    assert load_settings({"SCHEDULER_CONFIG": "/etc/tickless/jobs.yaml"}).config_path == Path("/etc/tickless/jobs.yaml")
    assert load_settings({"SCHEDULER_CONFIG": "/etc/a.yaml"}, "b.yaml").config_path == Path("b.yaml")


def test_config_variable_set_but_empty_is_an_error_unless_overridden() -> None:
    assert problems_of({"SCHEDULER_CONFIG": ""}) == ["SCHEDULER_CONFIG is set but empty: unset it to use jobs.yaml"]
    assert load_settings({"SCHEDULER_CONFIG": ""}, "b.yaml").config_path == Path("b.yaml")


# --------------------------------------------------------------------------- everything at once


def test_every_problem_is_reported_in_one_error(tmp_path: Path) -> None:
    env = {
        "API_URL": "localhost:8000",
        "SCHEDULER_API_TOKEN_FILE": str(tmp_path / "absent"),
        GRACE: "",
        SHUTDOWN: "-5",
        TICK: "0",
        "SCHEDULER_JITTER_SEED": "abc",
        "SCHEDULER_LOG_FORMAT": "xml",
        "SCHEDULER_LOG_LEVEL": "loud",
    }
    assert sorted(problems_of(env)) == sorted(
        [
            "API_URL='localhost:8000' must be an http:// or https:// URL with a host, e.g. http://localhost:8000",
            f"SCHEDULER_API_TOKEN_FILE={str(tmp_path / 'absent')!r}: cannot read the token: No such file or directory",
            "SCHEDULER_STARTUP_GRACE_SECONDS='' must be a non-negative integer (seconds)",
            "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS=-5 must be >= 0 (seconds)",
            "SCHEDULER_TICK_SECONDS=0 must be > 0 (seconds)",
            "SCHEDULER_JITTER_SEED='abc' must be a non-negative integer",
            "SCHEDULER_LOG_FORMAT='xml' must be one of: text, json",
            "SCHEDULER_LOG_LEVEL='loud' must be one of: DEBUG, INFO, WARNING, ERROR",
        ]
    )


def test_unrelated_variables_are_ignored() -> None:
    settings = load_settings({"PATH": "/usr/bin", "SCHEDULER_DATA_REFRESH_INTERVAL": "abc", "HOME": ""})
    assert settings.api_url == "http://localhost:8000"
    assert settings.startup_grace_seconds == 60


# -- the token's form and the token file's size (issue 11) -------------------------------------------


@pytest.mark.parametrize(("raw", "why"), [
    (f"{SECRET}\n# rotated", "it has 2 lines"),
    (f"{SECRET}\r\nsecond", "it has 2 lines"),
    (f"tk-{SECRET} with space", "character 31 is a space"),
    (f"tk\t{SECRET}", "character 3 is a tab"),
    (f"tk-{SECRET}\x00", "character 31 is a control character (U+0000)"),
    (f"tk-é{SECRET}", "character 4 is not ASCII"),
])
def test_a_token_must_be_one_line_of_visible_ascii_and_is_never_quoted(tmp_path: Path, raw: str, why: str) -> None:
    rule = "the token must be one line of visible ASCII characters, but "
    hidden = " (the value is not shown: it is a secret)"
    assert problems_of({"SCHEDULER_API_TOKEN": raw}) == [f"SCHEDULER_API_TOKEN: {rule}{why}{hidden}"]
    path = token_file(tmp_path, raw + "\n")
    lines = problems_of({"SCHEDULER_API_TOKEN_FILE": path})
    assert lines == [f"SCHEDULER_API_TOKEN_FILE={path!r}: {rule}{why}{hidden}"]
    assert SECRET not in "\n".join(lines) and "rotated" not in "\n".join(lines)


def test_a_token_file_that_is_not_utf8_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(SECRET.encode() + b"\xff\xfe")
    [line] = problems_of({"SCHEDULER_API_TOKEN_FILE": str(path)})
    assert line.endswith("is not ASCII (the value is not shown: it is a secret)") and SECRET not in line


def test_dev_zero_as_the_token_file_is_refused_at_once() -> None:
    started = time.monotonic()
    lines = problems_of({"SCHEDULER_API_TOKEN_FILE": "/dev/zero"})
    assert time.monotonic() - started < 1.0
    assert lines == [
        "SCHEDULER_API_TOKEN_FILE='/dev/zero': larger than 4 KiB: not a token file (it must hold the token alone, on one line)"
    ]


def test_a_token_file_of_4_kib_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    token = "t" * MAX_TOKEN_FILE_BYTES
    assert load_settings({"SCHEDULER_API_TOKEN_FILE": token_file(tmp_path, token)}).token == token
    too_big = tmp_path / "big"
    too_big.write_text(token + "\n")
    assert "larger than 4 KiB" in problems_of({"SCHEDULER_API_TOKEN_FILE": str(too_big)})[0]


def test_api_url_with_credentials_is_refused_without_its_password() -> None:
    [line] = problems_of({"API_URL": "http://admin:hunter2@app:8000"})
    assert line == (
        "API_URL='http://admin@app:8000' must not carry credentials (user:password@): the scheduler authenticates "
        "with SCHEDULER_API_TOKEN (the password, if any, is not shown)"
    )
