"""The guard's targets: SQL text -> the tables it reads, matched to the tracked tables, and the rewrite a dry run needs.

The text is first split into pieces (``catalog.guard.script``: scripts,
procedural statements, BigQuery ML's ``MODEL`` and ``TABLE`` arguments),
then each piece is parsed with sqlglot's BigQuery dialect. A table is a
registry id written as a bare name (ids ignore case), ``dataset.table`` or
``project.dataset.table`` (backticked whole, per part, or plain; BigQuery
paths match exactly); a wildcard table (``events_*``, ``events_2026*``) or
one shard of a registered family is that family. CTE names (where the CTE
is visible: resolved by scope), UNNEST aliases and array paths (implicit
UNNEST: ``FROM t, t.items``, ``JOIN t.items``), temp tables the script
created, models, and the names of routines being created are not tables.

The rewrite replaces each bare registry id and each tracked
``dataset.table`` by its full backticked path, in place: every other
character of the caller's SQL (WHERE, comments, layout) stays as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from catalog.errors import InvalidSql
from catalog.guard.script import Piece, Script, TableArg, split_script, tokenize
from catalog.guard.sql_scopes import not_tables, outside_scopes
from catalog.identifiers import full_path
from catalog.models import TrackedTable
from catalog.tracked import TrackedTables

DIALECT = "bigquery"
ROUTINES = frozenset({"FUNCTION", "TABLE FUNCTION", "PROCEDURE"})
# Statements whose tables the guard can read, as sqlglot parses them.
READABLE = (exp.Query, exp.DML, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable, exp.Export, exp.LoadData,
            exp.Transaction, exp.Commit, exp.Rollback)
# Statements sqlglot keeps as text whose tables the guard reads from the tokens: CLONE/LIKE/COPY sources and AS queries.
_SOURCES = {"CLONE", "LIKE", "COPY"}
_WHAT_IT_GOT = re.compile(r"\s+")


@dataclass
class Targets:
    """What one query (or script) reads, sorted out against the registry."""

    sql: str  # the caller's text
    rewritten: str  # registry ids and tracked dataset.table as full paths
    tracked: list[TrackedTable] = field(default_factory=list)  # in order of first appearance, once each
    unregistered: list[str] = field(default_factory=list)  # data-project paths (and bare names) not tracked
    foreign: list[str] = field(default_factory=list)  # paths in projects the registry does not hold
    metadata: list[str] = field(default_factory=list)  # INFORMATION_SCHEMA views: billed, so always dry-run
    selects_star: bool = False
    has_limit: bool = False
    datasets: list[tuple[str, str]] = field(default_factory=list)  # (project, dataset) of every path read or written
    regions: list[str] = field(default_factory=list)  # region-qualified INFORMATION_SCHEMA (`region-eu`)
    external: bool = False  # EXTERNAL_QUERY(...)
    reads_after_ddl: list[str] = field(default_factory=list)  # tables a script reads after its first DDL statement
    script: Script = field(default_factory=Script)

    @property
    def tables(self) -> list[str]:
        """``dataset.table`` of every tracked target."""
        return list(dict.fromkeys(f"{table.dataset}.{table.table}" for table in self.tracked))

    @property
    def families(self) -> list[TrackedTable]:
        return [table for table in self.tracked if table.is_family]

    def _dataset(self, project: str, dataset: str) -> None:
        if (project, dataset) not in self.datasets:
            self.datasets.append((project, dataset))


def _position(text: str, line: int | None, column: int | None) -> int | None:
    """The offset of a 1-based line and column in ``text``."""
    if line is None or column is None:
        return None
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return None
    return sum(len(before) + 1 for before in lines[:line - 1]) + max(column - 1, 0)


def _line_column(sql: str, offset: int) -> tuple[int, int]:
    before = sql[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def parse_piece(piece: Piece, sql: str) -> list[exp.Expr]:
    """The statements of one piece; InvalidSql at the caller's line and column when it does not parse."""
    text = piece.prefix + piece.text
    try:
        statements = [statement for statement in sqlglot.parse(text, read=DIALECT)
                      if statement is not None and not isinstance(statement, exp.Semicolon)]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        offset = _position(text, first.get("line"), first.get("col"))
        line, column = (None, None)
        if offset is not None:
            line, column = _line_column(sql, max(piece.start, piece.start + offset - len(piece.prefix)))
        raise InvalidSql(str(first.get("description", exc)), line, column) from None
    except RecursionError:
        raise InvalidSql("it is nested too deeply to read", piece.line, piece.column) from None
    except SqlglotError as exc:
        raise InvalidSql(str(exc), piece.line, piece.column) from None
    return statements


def find_targets(sql: str, tracked: TrackedTables) -> Targets:
    """Every table ``sql`` reads, matched to the tracked tables, and the rewritten text."""
    script = split_script(sql)
    if not script.statements:
        raise InvalidSql("there is no SQL statement in it", None, None)
    try:
        return _Finder(sql, tracked, script).run()
    except RecursionError:  # a tree sqlglot built but cannot walk: refused like any unreadable text
        raise InvalidSql("it is nested too deeply to read", None, None) from None


class _Finder:
    def __init__(self, sql: str, tracked: TrackedTables, script: Script) -> None:
        self.sql = sql
        self.tracked = tracked
        self.data_projects = tracked.data_projects
        self.found = Targets(sql=sql, rewritten=sql, script=script)
        self.edits: list[tuple[int, int, str]] = []
        self.temps: set[str] = set()  # temp tables created earlier in the script

    def run(self) -> Targets:
        for piece in self.found.script.pieces:
            args = list(piece.table_args)
            for statement in parse_piece(piece, self.sql):
                self._statement(statement, piece, args)
                args = []
            for arg in args:
                self._path(arg.parts, (arg.start, arg.end), piece, bare_in_from=False)
        rewritten = self.sql
        for start, end, text in sorted(set(self.edits), reverse=True):
            rewritten = rewritten[:start] + text + rewritten[end + 1:]
        self.found.rewritten = rewritten
        return self.found

    # -- one statement -------------------------------------------------------------------------------
    def _statement(self, statement: exp.Expr, piece: Piece, args: list[TableArg] | None = None) -> None:
        if isinstance(statement, exp.Command):
            self._command(statement, piece)
            return
        if not isinstance(statement, READABLE):
            # A typo such as "SELEC * FRM t" parses as a bare expression: its tables are unknowable.
            text = _WHAT_IT_GOT.sub(" ", piece.text.strip())[:60]
            raise InvalidSql(f"{text!r} is not a query, DML, DDL or script statement", piece.line, piece.column)
        found = self.found
        destinations = _destinations(statement)
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        scoped = not_tables(statement)
        found.has_limit = found.has_limit or statement.find(exp.Limit) is not None
        found.selects_star = found.selects_star or any(
            isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star))
            for select in statement.find_all(exp.Select) for item in select.expressions
        )
        # In the order they are written, not the order of sqlglot's tree walk; TABLE arguments among them.
        nodes: list[tuple[int, exp.Table | TableArg]] = [((self._span(node, piece) or (0, 0))[0], node)
                                                         for node in statement.find_all(exp.Table)]
        nodes += [(arg.start, arg) for arg in args or []]
        for _, table in sorted(nodes, key=lambda item: item[0]):
            if isinstance(table, TableArg):
                self._path(table.parts, (table.start, table.end), piece, bare_in_from=False)
                continue
            span = self._span(table, piece)
            if span is not None and any(start <= span[0] <= end for start, end in piece.masked):
                continue  # a MODEL argument (sqlglot turns the masked literal into a Table of ML.PREDICT)
            if (isinstance(table.this, exp.Func) and table.this.name.upper() == "EXTERNAL_QUERY") or (
                    isinstance(table.this, exp.Anonymous) and str(table.this.this).upper() == "EXTERNAL_QUERY"):
                found.external = True
                continue
            parts = self._parts(table, span)
            if parts is None:
                continue  # an unqualified table-valued built-in (UNNEST, VECTOR_SEARCH, ...) or ML.*
            if id(table) in (scoped or set()) or outside_scopes(table, scoped, ctes):
                continue  # a CTE, or an array path
            written = id(table) in destinations
            if written and (_is_routine(statement) or _is_temp(statement)):
                continue  # the name of a function, procedure or temp table being created
            if self._temp(parts):
                if not written and piece.after_ddl:
                    found.reads_after_ddl.append(".".join(parts))
                continue  # a temp table the script created earlier
            bare_in_from = not table.alias and isinstance(table.parent, (exp.From, exp.Join))
            self._path(parts, span, piece, bare_in_from=bare_in_from, written=written)
        if _is_temp(statement) and isinstance(statement, exp.Create):
            target = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
            if isinstance(target, exp.Table):
                self.temps.add(target.name.lower())

    def _command(self, statement: exp.Command, piece: Piece) -> None:
        """A statement sqlglot keeps as text (``CREATE SNAPSHOT TABLE ... CLONE t``): sources and AS query from tokens."""
        words = piece.text.split(None, 3)
        if not words or words[0].upper() not in ("CREATE", "ALTER"):
            text = _WHAT_IT_GOT.sub(" ", piece.text.strip())[:60]
            raise InvalidSql(f"{text!r} is not a statement the guard can read tables from", piece.line, piece.column)
        tokens = tokenize(piece.text)
        for index, token in enumerate(tokens):
            word = token.text.upper() if token.token_type.name not in ("STRING", "IDENTIFIER") else ""
            if word in _SOURCES and index + 1 < len(tokens):
                last = index + 1
                while last + 1 < len(tokens) and tokens[last + 1].start == tokens[last].end + 1:
                    last += 1
                start, end = piece.start + tokens[index + 1].start, piece.start + tokens[last].end
                parts = [part.strip() for part in self.sql[start:end + 1].replace("`", "").split(".")]
                self._path(parts, (start, end), piece, bare_in_from=False)
            elif word == "AS" and index + 1 < len(tokens) and tokens[index + 1].text.upper() in ("SELECT", "WITH", "("):
                query = Piece(piece.start + tokens[index + 1].start, piece.text[tokens[index + 1].start:],
                              after_ddl=piece.after_ddl, in_routine=piece.in_routine, masked=piece.masked,
                              line=piece.line, column=piece.column)
                for inner in parse_piece(query, self.sql):
                    self._statement(inner, query)
                return

    # -- one path ------------------------------------------------------------------------------------
    def _temp(self, parts: list[str]) -> bool:
        return (len(parts) == 1 and parts[0].lower() in self.temps) or (len(parts) == 2 and parts[0].upper() == "_SESSION")

    def _path(self, parts: list[str], span: tuple[int, int] | None, piece: Piece, *, bare_in_from: bool,
              written: bool = False) -> None:
        """Record the table at ``parts`` in ``found``, and the in-place edit that fully qualifies it, if it needs one.

        ``written``: the destination of DML or DDL, not a read: counted (and rewritten) when tracked,
        never refused or listed when it is not.
        """
        found = self.found
        text = ".".join(parts)
        if not written and piece.after_ddl:
            found.reads_after_ddl.append(text)
        flat = [name for part in parts for name in part.split(".")]
        upper = [name.upper() for name in flat]
        if "INFORMATION_SCHEMA" in upper:
            at = upper.index("INFORMATION_SCHEMA")
            region = next((name for name in flat[:at] if name.lower().startswith("region-")), None)
            if region:
                found.regions.append(region[len("region-"):])
            elif at >= 1:
                found._dataset(flat[at - 2] if at >= 2 else self.tracked.registry.project, flat[at - 1])
            if not written:  # finance.INFORMATION_SCHEMA.COLUMNS, `region-eu`.INFORMATION_SCHEMA.JOBS: never registered
                found.metadata.append(text)
            return
        table: TrackedTable | None = None
        if len(parts) == 1:
            table = self.tracked.explicit(parts[0])
        elif len(parts) == 2:
            table = self.tracked.at_path(None, parts[0], parts[1])
        elif len(parts) == 3:
            table = self.tracked.at_path(parts[0], parts[1], parts[2])
            if table is None and parts[0] not in self.data_projects:
                if not written:  # an untracked destination's location is BigQuery's to check, not worth a call
                    found._dataset(parts[0], parts[1])
                    found.foreign.append(text)
                return
        if table is None:
            if not written:
                found.unregistered.append(text)
            return
        found._dataset(table.project, table.dataset)
        if table not in found.tracked:
            found.tracked.append(table)
        if len(parts) == 3 or span is None:
            return
        start, end = span
        name = parts[-1] if len(parts) == 2 else table.table
        replacement = full_path(table.project, table.dataset, name)
        # A bare id was also the implicit alias; keep it valid when the id is not the table's name.
        if len(parts) == 1 and bare_in_from and parts[0].lower() != table.table.lower():
            replacement += f" AS {self.sql[start:end + 1]}"
        self.edits.append((start, end, replacement))

    # -- positions -----------------------------------------------------------------------------------
    @staticmethod
    def _span(table: exp.Table, piece: Piece) -> tuple[int, int] | None:
        """Offsets (inclusive) of the table reference in the caller's text, backticks included."""
        starts = [part.meta.get("start") for part in table.parts]
        ends = [part.meta.get("end") for part in table.parts]
        offsets = [value for value in starts + ends if isinstance(value, int)]
        if len(offsets) != len(starts) + len(ends) or not offsets:
            return None
        shift = piece.start - len(piece.prefix)
        start, end = min(offsets[:len(starts)]), max(offsets[len(starts):])
        if start < len(piece.prefix):
            return None
        return start + shift, end + shift

    def _parts(self, table: exp.Table, span: tuple[int, int] | None) -> list[str] | None:
        """The path of a table or of a qualified table-valued function (``finance.recent(7)``).

        None for what reads no path of its own: an unqualified table-valued built-in and ML.*
        (the tables passed to them are Table nodes of their own).
        """
        if isinstance(table.this, exp.Identifier):
            return [part.name for part in table.parts]
        if not isinstance(table.this, exp.Func):
            return None
        if not table.catalog and table.db.upper() == "ML":
            return None
        if span is None:
            return None
        # The name as written (sqlglot may have turned it into a function it knows): backticks off, split on dots.
        parts = [part.strip() for part in self.sql[span[0]:span[1] + 1].replace("`", "").split(".")]
        return parts if len(parts) > 1 and all(parts) else None


def _destinations(statement: exp.Expr) -> set[int]:
    """ids of the tables a statement creates, changes or drops: not reads, though a tracked one is still dry-run."""
    if isinstance(statement, (exp.Drop, exp.TruncateTable)) or (isinstance(statement, exp.Delete) and not statement.this):
        # DROP/TRUNCATE list their tables; "DELETE ds.t WHERE ..." (no FROM) keeps its table in ``tables``.
        return {id(table) for table in statement.find_all(exp.Table) if table.parent is statement}
    if not isinstance(statement, (exp.Insert, exp.Create, exp.Merge, exp.Update, exp.Delete, exp.Alter, exp.LoadData)):
        return set()
    target = statement.this
    if isinstance(target, (exp.Schema, exp.UserDefinedFunction)):
        target = target.this
    return {id(target)} if isinstance(target, exp.Table) else set()


def _is_routine(statement: exp.Expr) -> bool:
    """CREATE [TEMP] FUNCTION / TABLE FUNCTION / PROCEDURE (the body is still read)."""
    return isinstance(statement, exp.Create) and str(statement.args.get("kind") or "").upper() in ROUTINES


def _is_temp(statement: exp.Expr) -> bool:
    """CREATE TEMP TABLE: its name means that table for the rest of the script."""
    properties = statement.args.get("properties")
    return isinstance(statement, exp.Create) and isinstance(properties, exp.Properties) \
        and any(isinstance(item, exp.TemporaryProperty) for item in properties.expressions)


def parse(sql: str) -> list[exp.Expr]:
    """The statements of ``sql`` sqlglot can parse (procedural statements aside); InvalidSql when it does not parse."""
    script = split_script(sql)
    if not script.statements:
        raise InvalidSql("there is no SQL statement in it", None, None)
    statements = [statement for piece in script.pieces if piece.statement for statement in parse_piece(piece, sql)]
    for statement in statements:
        if not isinstance(statement, (*READABLE, exp.Command)):
            text = _WHAT_IT_GOT.sub(" ", statement.sql(dialect=DIALECT))[:60]
            raise InvalidSql(f"{text!r} is not a query, DML, DDL or script statement", None, None)
    return statements
