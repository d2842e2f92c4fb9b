"""catalog.yaml and the catalog's environment variables: validation, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import ConfigError, UnknownTableError
from catalog.registry import load_registry
from catalog.settings import load_settings
from catalog.tracked import TrackedTables
from tests.catalog.support import write_registry

REPO = Path(__file__).resolve().parents[2]


def test_a_valid_registry(tmp_path: Path) -> None:
    path = write_registry(tmp_path, """
        bigquery:
          project: ${BIGQUERY_PROJECT}
          billing_project: ${BIGQUERY_BILLING_PROJECT:-}
          location: ${BIGQUERY_LOCATION:-EU}
        tables:
          unit_economics: {dataset: finance, table: unit_economics, description: "Margins"}
          Orders_V:
            dataset: sales
            table: orders v2-final
            project: other-project
            where_examples: ["status = 'paid'"]
        datasets: [analytics]
        where_examples:
          - "event_date > DATE '2026-01-01'"
    """)
    registry = load_registry(path, {"BIGQUERY_PROJECT": "data-proj"})

    assert (registry.project, registry.billing_project, registry.location) == ("data-proj", "data-proj", "EU")
    tracked = TrackedTables(registry)
    economics = tracked.explicit("UNIT_ECONOMICS")
    assert economics is not None and economics.description == "Margins" and economics.project == "data-proj"
    orders = tracked.require("orders_v")
    assert (orders.project, orders.table) == ("other-project", "orders v2-final")
    assert registry.datasets == (("data-proj", "analytics"),)
    assert [example.text for example in registry.examples_for(orders)] == ["event_date > DATE '2026-01-01'", "status = 'paid'"]
    assert [example.text for example in registry.examples_for(economics)] == ["event_date > DATE '2026-01-01'"]


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    path = write_registry(tmp_path, """
        bigquery:
          project: ${BIGQUERY_PROJECT}
          billing_project: ${BILLING}
          locaton: EU
        tables:
          good: {dataset: finance, table: ok}
          bad_ds: {dataset: "fin-ance", table: ok}
          bad_table: {dataset: finance, table: "x`; DROP TABLE y; --"}
          no_table: {dataset: finance}
          evil: {dataset: finance, table: ok, where_examples: ["a = 1; DROP TABLE x"]}
          EVIL: {dataset: finance, table: ok}
          good: {dataset: finance, table: again}
        datasets: ["bad.name"]
        where_examples:
          - "x IN (SELECT 1)"
    """)
    with pytest.raises(ConfigError) as caught:
        load_registry(path, {"BIGQUERY_PROJECT": ""})
    problems = [str(problem) for problem in caught.value.problems]
    text = "\n".join(problems)
    expected = [
        f"{path}:2: bigquery.project: BIGQUERY_PROJECT is set but empty",
        f"{path}:3: bigquery.billing_project: ${{BILLING}} is not set",
        f"{path}:4: bigquery.locaton: unknown key (did you mean 'location'?)",
        f"{path}:7: table 'bad_ds': dataset: 'fin-ance' is not a valid BigQuery dataset name",
        f"{path}:8: table 'bad_table': table: 'x`; DROP TABLE y; --' is not a valid BigQuery table name",
        f"{path}:9: table 'no_table': table: is required",
        f"{path}:10: table 'evil': where_examples: where example 'a = 1; DROP TABLE x': must be one boolean expression",
        f"{path}:11: table 'EVIL': id differs only in case from 'evil'",
        f"{path}:12: duplicate key 'good' (first at line 6)",
        f"{path}:13: datasets: 'bad.name' is not a valid BigQuery dataset name",
        f"{path}:15: where_examples: where example 'x IN (SELECT 1)': must not contain a subquery",  # the item's own line
    ]
    for line in expected:
        assert any(problem.startswith(line) for problem in problems), f"missing {line!r} in:\n{text}"
    assert len(problems) == len(expected)


def test_broken_yaml_and_missing_sections(tmp_path: Path) -> None:
    path = write_registry(tmp_path, "bigquery: [unclosed\n")
    with pytest.raises(ConfigError, match=r"catalog.yaml:\d+: invalid YAML"):
        load_registry(path, {})
    path.write_text("tables: {}\n")
    with pytest.raises(ConfigError, match="top-level 'bigquery:'"):
        load_registry(path, {})
    path.write_text("bigquery: {project: data-proj}\n")
    with pytest.raises(ConfigError, match="nothing to track"):
        load_registry(path, {})
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_registry(tmp_path / "missing.yaml", {})


def test_unknown_ids_suggest_the_closest(tmp_path: Path) -> None:
    path = write_registry(tmp_path, """
        bigquery: {project: data-proj}
        tables:
          unit_economics: {dataset: finance, table: unit_economics}
    """)
    registry = load_registry(path, {})
    with pytest.raises(UnknownTableError, match="did you mean 'unit_economics'"):
        TrackedTables(registry).require("unit_economic")


def test_the_shipped_catalog_yaml_is_valid(tmp_path: Path) -> None:
    registry = load_registry(REPO / "catalog.yaml", {"BIGQUERY_PROJECT": "my-project"})
    assert {table.id for table in registry.tables} == {"unit_economics", "orders_v"}
    assert registry.billing_project == "my-project" and registry.location is None


def test_settings_defaults_and_validation() -> None:
    settings = load_settings({})
    assert (str(settings.config_path), str(settings.db_path), settings.concurrency) == ("catalog.yaml", "data/catalog.sqlite", 4)
    assert settings.fresh_threshold_seconds == 2 * 14400 and settings.emulator_endpoint is None

    custom = load_settings({"CATALOG_REFRESH_CONCURRENCY": "8", "SCHEDULER_BQ_METADATA_REFRESH_INTERVAL": "600",
                            "BIGQUERY_EMULATOR_HOST": "127.0.0.1:9050"})
    assert (custom.concurrency, custom.fresh_threshold_seconds) == (8, 1200)
    assert custom.emulator_endpoint == "http://127.0.0.1:9050"

    with pytest.raises(ConfigError) as caught:
        load_settings({"CATALOG_REFRESH_CONCURRENCY": "0", "SCHEDULER_BQ_METADATA_REFRESH_INTERVAL": "",
                       "BIGQUERY_EMULATOR_HOST": "localhost", "CATALOG_DB": ""})
    assert [str(problem) for problem in caught.value.problems] == [
        "CATALOG_DB='' must be a file path (unset it to use data/catalog.sqlite)",
        "CATALOG_REFRESH_CONCURRENCY=0 must be between 1 and 64",
        "SCHEDULER_BQ_METADATA_REFRESH_INTERVAL='' must be a positive integer (seconds)",
        "BIGQUERY_EMULATOR_HOST='localhost' must be host:port, e.g. 127.0.0.1:9050 or [::1]:9050",
    ]
    with pytest.raises(ConfigError, match="CATALOG_REFRESH_CONCURRENCY='four' must be a positive integer"):
        load_settings({"CATALOG_REFRESH_CONCURRENCY": "four"})


@pytest.mark.parametrize("value", ["[::1", "[::1:9050", "host:99999"])
def test_a_malformed_emulator_host_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"BIGQUERY_EMULATOR_HOST": value})
    assert [str(problem) for problem in caught.value.problems] == [
        f"BIGQUERY_EMULATOR_HOST={value!r} must be host:port, e.g. 127.0.0.1:9050 or [::1]:9050"]


def test_an_ipv6_emulator_host_is_accepted() -> None:
    assert load_settings({"BIGQUERY_EMULATOR_HOST": "[::1]:9050"}).emulator_endpoint == "http://[::1]:9050"


@pytest.mark.parametrize("value", ["user:s3cret@127.0.0.1:9050", "http://user:s3cret@127.0.0.1:9050", "s3cret@localhost:9050"])
def test_an_emulator_host_with_credentials_is_refused_without_showing_them(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"BIGQUERY_EMULATOR_HOST": value})
    assert [str(problem) for problem in caught.value.problems] == [
        "BIGQUERY_EMULATOR_HOST must be host:port without user:password@ (the local endpoint takes no credentials; "
        "the value is not shown because it holds one)"]
    assert "s3cret" not in str(caught.value)


def test_problems_keep_where_and_what_apart(tmp_path: Path) -> None:
    path = write_registry(tmp_path, """
        bigquery: {project: data-proj}
        tables:
          orders: {dataset: "fin-ance", table: ok}
    """)
    with pytest.raises(ConfigError) as caught:
        load_registry(path, {})
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.subject, problem.field) == (str(path), 3, "table 'orders'", "dataset")
    assert str(caught.value) == str(problem) == f"{path}:3: table 'orders': dataset: {problem.message}"
