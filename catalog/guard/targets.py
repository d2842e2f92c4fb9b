"""The guard's targets: SQL text -> the tables it reads, matched to the tracked tables, and the rewrite a dry run needs.

Parsed with sqlglot's BigQuery dialect. A table is a registry id written as a
bare name (ids ignore case), ``dataset.table`` or ``project.dataset.table``
(backticked whole, per part, or plain; BigQuery paths match exactly). CTE
names (where the CTE is visible: resolved by scope) and UNNEST aliases
(explicit, or implicit as in ``FROM t, t.items`` or ``JOIN t.items``, where
``t`` is declared earlier in the same FROM/JOIN chain or in an enclosing
query) are not tables. A name
BigQuery could not track, such as a wildcard table ``events_*``, is never a
tracked table.

The rewrite replaces each bare registry id and each tracked ``dataset.table``
by its full backticked path, in place: every other character of the
caller's SQL (WHERE, comments, layout) stays as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from catalog.errors import InvalidSql
from catalog.guard.sql_scopes import not_tables, outside_scopes
from catalog.identifiers import full_path
from catalog.models import TrackedTable
from catalog.tracked import TrackedTables

DIALECT = "bigquery"
_POSITION = re.compile(r"(\d+):(\d+)")
ROUTINES = frozenset({"FUNCTION", "TABLE FUNCTION", "PROCEDURE"})


@dataclass
class Targets:
    """What one query reads, sorted out against the registry."""

    sql: str  # the caller's text
    rewritten: str  # registry ids and tracked dataset.table as full paths
    tracked: list[TrackedTable] = field(default_factory=list)  # in order of first appearance, once each
    unregistered: list[str] = field(default_factory=list)  # data-project paths (and bare names) not tracked
    foreign: list[str] = field(default_factory=list)  # paths in projects the registry does not hold
    metadata: list[str] = field(default_factory=list)  # INFORMATION_SCHEMA views: billed, so always dry-run
    selects_star: bool = False
    has_limit: bool = False

    @property
    def tables(self) -> list[str]:
        """``dataset.table`` of every tracked target."""
        return list(dict.fromkeys(f"{table.dataset}.{table.table}" for table in self.tracked))


def parse(sql: str) -> list[exp.Expr]:
    """The statements of ``sql``; InvalidSql (with the parser's line and column) when it does not parse."""
    try:
        statements = [statement for statement in sqlglot.parse(sql, read=DIALECT) if statement is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise InvalidSql(str(first.get("description", exc)), first.get("line"), first.get("col")) from None
    except TokenError as exc:
        cause = str(exc.__cause__ or exc)
        found = _POSITION.search(cause)
        line, column = (int(found.group(1)), int(found.group(2))) if found else (None, None)
        raise InvalidSql(f"cannot split it into tokens ({cause})", line, column) from None
    if not statements:
        raise InvalidSql("there is no SQL statement in it", None, None)
    for statement in statements:
        # sqlglot keeps what it cannot parse as an opaque Command (EXECUTE
        # IMMEDIATE, CALL) and reads a typo such as "SELEC * FRM t" as a bare
        # expression: the tables of either are unknowable, so neither may pass
        # as "reads no tracked table".
        if not isinstance(statement, (exp.Query, exp.DML, exp.Create)):
            text = statement.sql(dialect=DIALECT)[:60]
            raise InvalidSql(f"{text!r} is not a query or DML statement the guard can read tables from", None, None)
    return statements


def _span(table: exp.Table) -> tuple[int, int] | None:
    """Offsets (inclusive) of the table reference in the caller's text, backticks included."""
    starts = [part.meta.get("start") for part in table.parts]
    ends = [part.meta.get("end") for part in table.parts]
    offsets = [value for value in starts + ends if isinstance(value, int)]
    if len(offsets) != len(starts) + len(ends):
        return None
    return min(offsets[:len(starts)]), max(offsets[len(starts):])


def find_targets(sql: str, tracked: TrackedTables) -> Targets:
    """Every table ``sql`` reads, matched to the tracked tables, and the rewritten text."""
    statements = parse(sql)
    data_projects = tracked.data_projects
    found = Targets(sql=sql, rewritten=sql)
    edits: list[tuple[int, int, str]] = []
    temps: set[str] = set()  # temp tables created earlier in the script
    for statement in statements:
        destination = _destination(statement)
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        scoped = not_tables(statement)
        found.has_limit = found.has_limit or statement.find(exp.Limit) is not None
        found.selects_star = found.selects_star or any(
            isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star))
            for select in statement.find_all(exp.Select) for item in select.expressions
        )
        # In the order they are written, not the order of sqlglot's tree walk.
        for table in sorted(statement.find_all(exp.Table), key=lambda node: (_span(node) or (0, 0))[0]):
            parts = _path_parts(table, sql)
            if parts is None:
                continue  # an unqualified table-valued built-in (EXTERNAL_QUERY, ...) or ML.*
            if id(table) in (scoped or set()):
                continue  # a CTE, or an array path
            if outside_scopes(table, scoped, ctes):
                continue  # a CTE name, where sqlglot could not tell scopes
            if len(parts) == 1 and parts[0].lower() in temps:
                continue  # a temp table the script created earlier
            if table is destination and (_is_routine(statement) or _is_temp(statement)):
                continue  # the name of a function, procedure or temp table being created
            edit = _classify(table, parts, sql, tracked, data_projects, found, written=table is destination)
            if edit is not None:
                edits.append(edit)
        if destination is not None and _is_temp(statement):
            temps.add(destination.name.lower())
    rewritten = sql
    for start, end, text in sorted(set(edits), reverse=True):
        rewritten = rewritten[:start] + text + rewritten[end + 1:]
    found.rewritten = rewritten
    return found


def _destination(statement: exp.Expr) -> exp.Table | None:
    """The table (or routine) a statement creates or writes: not a read, though a tracked one is still dry-run."""
    if not isinstance(statement, (exp.Insert, exp.Create, exp.Merge, exp.Update, exp.Delete)):
        return None
    target = statement.this
    if isinstance(target, (exp.Schema, exp.UserDefinedFunction)):
        target = target.this
    return target if isinstance(target, exp.Table) else None


def _is_routine(statement: exp.Expr) -> bool:
    """CREATE [TEMP] FUNCTION / TABLE FUNCTION / PROCEDURE (the body is still read)."""
    return isinstance(statement, exp.Create) and str(statement.args.get("kind") or "").upper() in ROUTINES


def _is_temp(statement: exp.Expr) -> bool:
    """CREATE TEMP TABLE: its name means that table for the rest of the script."""
    properties = statement.args.get("properties")
    return isinstance(statement, exp.Create) and isinstance(properties, exp.Properties) \
        and any(isinstance(item, exp.TemporaryProperty) for item in properties.expressions)


def _path_parts(table: exp.Table, sql: str) -> list[str] | None:
    """The path of a table or of a qualified table-valued function (``finance.recent(7)``).

    None for what reads no path of its own: an unqualified table-valued
    built-in (EXTERNAL_QUERY, VECTOR_SEARCH, ...; UNNEST is no Table node) and
    ML.* (the tables passed to them are Table nodes of their own).
    """
    if isinstance(table.this, exp.Identifier):
        return [part.name for part in table.parts]
    if not isinstance(table.this, exp.Func):
        return None
    if not table.catalog and table.db.upper() == "ML":
        return None
    span = _span(table)
    if span is None:
        return None
    # The name as written (sqlglot may have turned it into a function it knows): backticks off, split on dots.
    parts = [part for part in sql[span[0]:span[1] + 1].replace("`", "").split(".")]
    parts = [part.strip() for part in parts]
    return parts if len(parts) > 1 and all(parts) else None


def _classify(
    table: exp.Table, parts: list[str], sql: str, tables: TrackedTables, data_projects: set[str], found: Targets, *,
    written: bool = False,
) -> tuple[int, int, str] | None:
    """Record ``table`` (whose path is ``parts``) in ``found``; the in-place edit that fully qualifies it, if it needs one.

    ``written``: the destination of DML or CREATE, not a read: counted (and
    rewritten) when tracked, never refused or listed when it is not.
    """
    text = ".".join(parts)
    if any(part.upper().split(".")[0] == "INFORMATION_SCHEMA" for part in parts):
        if not written:  # finance.INFORMATION_SCHEMA.COLUMNS, `region-eu`.INFORMATION_SCHEMA.JOBS: never registered
            found.metadata.append(text)
        return None
    tracked: TrackedTable | None = None
    if len(parts) == 1:
        tracked = tables.explicit(parts[0])
        if tracked is None:
            if not written:
                found.unregistered.append(text)
            return None
    elif len(parts) == 2:
        tracked = tables.at_path(None, parts[0], parts[1])
    elif len(parts) == 3:
        tracked = tables.at_path(parts[0], parts[1], parts[2])
        if tracked is None and parts[0] not in data_projects:
            if not written:
                found.foreign.append(text)
            return None
    if tracked is None:
        if not written:
            found.unregistered.append(text)
        return None
    if tracked not in found.tracked:
        found.tracked.append(tracked)
    span = _span(table)
    if len(parts) == 3 or span is None:
        return None
    start, end = span
    replacement = full_path(tracked.project, tracked.dataset, tracked.table)
    # A bare id was also the implicit alias; keep it valid when the id is not the table's name.
    if len(parts) == 1 and not table.alias and isinstance(table.parent, (exp.From, exp.Join)) \
            and parts[0].lower() != tracked.table.lower():
        replacement += f" AS {sql[start:end + 1]}"
    return start, end, replacement
