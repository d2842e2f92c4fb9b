"""where_examples: parsed with sqlglot's BigQuery dialect, checked against known_columns.

An example is advertised for a table only if every column it references exists
in that table's known_columns (case-insensitively, as BigQuery compares
column names; a struct path must exist as a path). The partitioning column
gets one generated example, because that is the filter that prunes bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from catalog.models import PartitionRange

DIALECT = "bigquery"


class ExampleProblem(ValueError):
    """An example that is not one boolean expression; carries the parser's position."""

    def __init__(self, text: str, problem: str, line: int | None = None, col: int | None = None) -> None:
        self.text = text
        self.line = line
        self.col = col
        where = f" at line {line}, column {col}" if line is not None and col is not None else ""
        super().__init__(f"where example {text!r}: {problem}{where}")


@dataclass(frozen=True)
class Example:
    text: str
    columns: frozenset[str]  # lower-cased column paths it references


@lru_cache(maxsize=4096)
def parse_example(text: str) -> Example:
    """Parse one example; raise ExampleProblem unless it is a single boolean expression.

    Cached: ``catalog list`` asks for the same few texts (the templates and the
    generated partition filters) once per row, and a parse costs about 0.5 ms.
    """
    try:
        statements = [node for node in sqlglot.parse(text, read=DIALECT) if node is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise ExampleProblem(text, f"does not parse ({first.get('description', exc)})", first.get("line"), first.get("col")) from None
    except TokenError as exc:
        raise ExampleProblem(text, f"does not parse ({exc})") from None
    if len(statements) != 1:
        raise ExampleProblem(text, f"must be one boolean expression, got {len(statements)} statements")
    node = statements[0]
    if not isinstance(node, exp.Condition):
        raise ExampleProblem(text, f"must be a boolean expression, got a {node.key.upper()} statement")
    if isinstance(node, (exp.Literal, exp.Null, exp.Boolean)):
        raise ExampleProblem(text, "must be a boolean expression, got a bare literal")
    if isinstance(node, (exp.Column, exp.Dot)):
        raise ExampleProblem(text, "must be a boolean expression, got a bare column (for a BOOL column write 'column IS TRUE')")
    if node.find(exp.Query) is not None:
        raise ExampleProblem(text, "must not contain a subquery (it would scan other tables)")
    if node.find(exp.Star) is not None:
        raise ExampleProblem(text, "must not use '*'")
    if node.find(exp.Parameter, exp.Placeholder) is not None:
        raise ExampleProblem(text, "must not use query parameters: an example has to run as written")
    columns = frozenset(_column_path(column).lower() for column in node.find_all(exp.Column))
    if not columns:
        raise ExampleProblem(text, "must filter on at least one column (one that names none would be advertised for every table)")
    return Example(text, columns)


def _column_path(column: exp.Column) -> str:
    parts = [part.name for part in column.parts]
    # sqlglot keeps at most four parts in a Column; deeper paths become Dots.
    node: exp.Expression = column
    while isinstance(node.parent, exp.Dot) and node.parent.this is node:
        node = node.parent
        parts.append(node.expression.name)
    return ".".join(parts)


def advertised(examples: Iterable[Example], known_columns: Sequence[str] | None) -> list[str]:
    """The examples whose every column is in known_columns; none for a cold row."""
    if not known_columns:
        return []
    known = {name.lower() for name in known_columns}
    return [example.text for example in examples if example.columns <= known]


def advertised_in_json(examples: Iterable[Example], known_columns_json: str) -> list[str]:
    """``advertised`` for known_columns as the cache stores them, ``json.dumps`` text.

    Lower-cases the text once rather than each name: the same names, when every one is ASCII and none needed
    a ``\\u`` escape (lower-casing an escaped character needs it decoded first).
    """
    if not known_columns_json.isascii() or "\\u" in known_columns_json:
        return advertised(examples, json.loads(known_columns_json))
    known = set(_DECODER.raw_decode(known_columns_json.lower())[0])
    return [example.text for example in examples if example.columns <= known] if known else []


_DECODER = json.JSONDecoder()  # raw_decode: a stored list has no surrounding whitespace for loads() to skip


def partition_example(column: str, data_type: str | None, bounds: PartitionRange | None) -> str | None:
    """A filter on the partitioning column in the form that prunes partitions."""
    name = column if column.replace("_", "a").isalnum() else f"`{column}`"
    kind = (data_type or "").upper()
    if kind == "DATE":
        return f"{name} >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)"
    if kind == "TIMESTAMP":
        return f"{name} >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)"
    if kind == "DATETIME":
        return f"{name} >= DATETIME_SUB(CURRENT_DATETIME(), INTERVAL 7 DAY)"
    if kind in ("INT64", "INTEGER") and bounds is not None:
        return f"{name} >= {bounds.start} AND {name} < {bounds.start + bounds.interval}"
    return None
