"""where_examples: parsed with sqlglot's BigQuery dialect and checked against known_columns."""

from __future__ import annotations

import json

import pytest

from catalog.examples import ExampleProblem, advertised, advertised_in_json, parse_example, partition_example
from catalog.models import PartitionRange
from catalog.refresh.fetch import struct_paths

COUNTRY = parse_example("country_code = 'CZ' AND platform = 'web'")
DATE = parse_example("event_date > DATE '2026-01-01'")


def test_column_names_compare_case_insensitively() -> None:
    assert advertised([COUNTRY], ["Country_Code", "PLATFORM"]) == [COUNTRY.text]
    assert advertised([parse_example("COUNTRY_CODE = 'CZ'")], ["country_code"]) == ["COUNTRY_CODE = 'CZ'"]


def test_an_example_with_a_missing_column_is_not_advertised() -> None:
    # The reference bug: country_code advertised on a table without it.
    known = ["order_id", "margin_eur", "platform"]
    assert advertised([COUNTRY, DATE], known) == []
    assert advertised([COUNTRY, DATE], [*known, "event_date"]) == [DATE.text]


@pytest.mark.parametrize("known", [
    [], ["Country_Code", "PLATFORM", "Event_Date"], ["country_code"], ["ÉVÉNEMENT", "country_code", "platform"],
    ["Country_Code", "événement", "platform"], ['A"B', "back\\slash", "tab\tcol", "PLATFORM", "COUNTRY_CODE"],
    ['a"b', "\x7f", "\n"],
    ["country_code, platform"], ["ΑΣ", "İd", "ß", "event_date"],
])
def test_advertised_from_stored_json_text_is_advertised(known: list[str]) -> None:
    # The listing checks examples against known_columns as stored (json.dumps text) without decoding each name.
    examples = [COUNTRY, DATE, parse_example("`événement` IS NOT NULL"), parse_example("`a\"b` = 1"), parse_example("`ς` = 1")]
    assert advertised_in_json(examples, json.dumps(known)) == advertised(examples, known)
    assert advertised_in_json([COUNTRY], json.dumps(["Country_Code", 'a"b', "platform"])) == [COUNTRY.text]


def test_struct_paths_must_exist_as_paths() -> None:
    example = parse_example("payload.user.id = 42")
    assert example.columns == {"payload.user.id"}
    assert advertised([example], ["payload", "payload.user", "payload.user.id"]) == [example.text]
    assert advertised([example], ["payload", "id", "user"]) == []
    deep = parse_example("a.b.c.d.e.f = 1")  # deeper than sqlglot's four Column parts
    assert deep.columns == {"a.b.c.d.e.f"}


def test_cold_rows_advertise_nothing() -> None:
    assert advertised([COUNTRY], None) == []
    assert advertised([COUNTRY], []) == []


@pytest.mark.parametrize(("text", "problem"), [
    ("a = 1; DROP TABLE x", "2 statements"),
    ("a IN (SELECT id FROM other)", "subquery"),
    ("DROP TABLE x", "DROP statement"),
    ("CREATE TABLE t (a INT64)", "CREATE statement"),
    ("SELECT 1", "SELECT statement"),
    ("42", "bare literal"),
    ("NULL", "bare literal"),
    ("TRUE", "bare literal"),
    ("country_code", "bare column"),
    ("payload.user.id", "bare column"),
    ("'a' = 'a'", "at least one column"),
    ("CURRENT_DATE() > DATE '2026-01-01'", "at least one column"),
    ("a = @p", "parameters"),
])
def test_not_a_single_boolean_expression_is_rejected(text: str, problem: str) -> None:
    with pytest.raises(ExampleProblem) as caught:
        parse_example(text)
    assert problem in str(caught.value) and repr(text) in str(caught.value)


def test_boolean_expressions_on_columns_are_accepted() -> None:
    for text in ("is_active IS TRUE", "NOT is_deleted", "STARTS_WITH(name, 'a')", "payload.user.id IS NOT NULL"):
        assert parse_example(text).columns


def test_parse_errors_carry_the_parser_position() -> None:
    with pytest.raises(ExampleProblem) as caught:
        parse_example("country_code = ")
    assert (caught.value.line, caught.value.col) == (1, 14)
    assert "line 1, column 14" in str(caught.value)


def test_generated_partition_filters() -> None:
    assert partition_example("event_date", "DATE", None) == "event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)"
    assert partition_example("ts", "TIMESTAMP", None) == "ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)"
    assert partition_example("dt", "DATETIME", None) == "dt >= DATETIME_SUB(CURRENT_DATETIME(), INTERVAL 7 DAY)"
    assert partition_example("cid", "INT64", PartitionRange(0, 1000, 100)) == "cid >= 0 AND cid < 100"
    assert partition_example("cid", "INT64", None) is None  # no bounds: no made-up range
    for generated in ("event_date >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)", "cid >= 0 AND cid < 100"):
        parse_example(generated)  # every generated example passes the same validation


def test_struct_paths_from_data_types() -> None:
    assert struct_paths("p", "STRUCT<a STRUCT<b INT64>, c ARRAY<STRUCT<d INT64>>>") == ["p.a", "p.a.b", "p.c"]
    assert struct_paths("x", "INT64") == []
    assert struct_paths("arr", "ARRAY<STRUCT<d INT64>>") == []
