"""Scripts for the guard: SQL text -> the pieces sqlglot can parse, and what the script does that a dry run cannot see.

BigQuery runs any text of several statements as a multi-statement query
(a script): DECLARE, SET, IF/ELSEIF/ELSE, WHILE, LOOP, REPEAT, FOR ... IN,
BEGIN ... [EXCEPTION WHEN ERROR THEN] ... END, CASE, labels, CALL,
EXECUTE IMMEDIATE, transactions, and procedure definitions whose bodies
are scripts themselves. sqlglot parses SQL statements, not this procedural
language, so the text is split here, on its own tokens (sqlglot's
tokenizer: strings, comments and quoted names are never split), into
pieces:

* a SQL statement (``SELECT``, DML, DDL) as written, for sqlglot;
* an expression a procedural statement evaluates (``SET x = (SELECT ...)``,
  ``IF (SELECT ...) THEN``, ``FOR r IN (SELECT ...) DO``), parsed as
  ``SELECT <expression>``, because its subqueries read tables too.

A piece keeps its offset in the caller's text, so a table found in it can
be rewritten in place. ``MODEL path`` arguments (BigQuery ML) are masked as
string literals of the same length: a model is not a table. ``TABLE path``
arguments of table-valued functions (``ML.EVALUATE(MODEL m, TABLE t)``,
``APPENDS(TABLE t, ...)``) are tables read, recorded here and masked the
same way, because sqlglot does not parse them everywhere.

Hostile input is refused before any parsing: text over BigQuery's own
1 MB limit, and nesting deeper than ``MAX_NESTING`` (sqlglot parses
recursively; a deep enough text would end in ``RecursionError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from sqlglot.dialects.bigquery import BigQuery
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

from catalog.errors import InvalidSql

# BigQuery's limit on the text of a GoogleSQL query ("maximum unresolved query length": 1 MB).
MAX_SQL_BYTES = 1024 * 1024
# Brackets and CASE expressions nested deeper than this are refused: real queries stay far below it
# (a dozen levels is a lot), and sqlglot's recursive parser stays far from Python's recursion limit.
MAX_NESTING = 100

_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}
_LITERALS = {
    TokenType.STRING, TokenType.IDENTIFIER, TokenType.RAW_STRING, TokenType.BYTE_STRING, TokenType.NATIONAL_STRING,
    TokenType.HEX_STRING, TokenType.BIT_STRING, TokenType.HEREDOC_STRING, TokenType.UNICODE_STRING, TokenType.NUMBER,
}
_PATH_TOKENS = {TokenType.VAR, TokenType.IDENTIFIER, TokenType.DOT, TokenType.DASH, TokenType.NUMBER, TokenType.STAR}
_BLOCK_ENDS = {"IF", "WHILE", "LOOP", "REPEAT", "FOR", "CASE"}
_NOTHING_TO_READ = {"BREAK", "LEAVE", "CONTINUE", "ITERATE", "RETURN", "COMMIT", "ROLLBACK", "GRANT", "REVOKE", "RAISE"}
_DDL = {"CREATE", "DROP", "ALTER", "UNDROP"}


@dataclass(frozen=True)
class TableArg:
    """A ``TABLE path`` argument of a table-valued function: a table read, found on the tokens."""

    parts: list[str]
    start: int  # offsets (inclusive) in the caller's text
    end: int


@dataclass
class Piece:
    """One parseable part of the caller's text; ``text`` stands for ``sql[start:start + len(text)]``."""

    start: int
    text: str
    prefix: str = ""  # put before ``text`` for parsing only ("SELECT " for a procedural expression)
    statement: bool = True  # a SQL statement (else an expression of a procedural statement)
    ddl: bool = False  # CREATE/DROP/ALTER (not CREATE TEMP FUNCTION)
    after_ddl: bool = False  # the script ran a DDL statement before this one (outside procedure bodies)
    in_routine: bool = False  # part of a procedure body: read when the procedure is called, not now
    masked: list[tuple[int, int]] = field(default_factory=list)  # caller offsets masked as string literals
    table_args: list[TableArg] = field(default_factory=list)
    line: int = 1  # where ``text`` starts in the caller's text (1-based)
    column: int = 1


@dataclass
class Script:
    """The caller's text as pieces, and what about it a dry run cannot see."""

    pieces: list[Piece] = field(default_factory=list)
    statements: int = 0  # statements of every kind, procedural ones included
    procedural: bool = False  # DECLARE, SET, IF, loops, blocks, CALL, ...
    loops: bool = False  # WHILE, LOOP, REPEAT, FOR: a body may run many times, the dry run counts it once
    calls: list[tuple[str, int]] = field(default_factory=list)  # (procedure, line) of each CALL
    dynamic_line: int | None = None  # the line of the first EXECUTE IMMEDIATE
    has_dynamic: bool = False

    @property
    def is_script(self) -> bool:
        """BigQuery runs it as a multi-statement query."""
        return self.procedural or self.statements > 1


class _ScriptTokenizer(BigQuery.Tokenizer):
    # sqlglot's tokenizer swallows the rest of a statement after a "command" keyword (BEGIN, LOOP, WHILE,
    # ELSEIF, EXCEPTION, REPEAT, CALL, EXECUTE) as one string; a script's structure is in exactly those words.
    COMMANDS: ClassVar[set[TokenType]] = set()


def _word(token: Token) -> str:
    return "" if token.token_type in _LITERALS else token.text.upper()


def tokenize(sql: str) -> list[Token]:
    """sqlglot's BigQuery tokens; InvalidSql for text that is too large, too deep, or cannot be split into tokens."""
    size = len(sql.encode("utf-8", "surrogatepass"))
    if size > MAX_SQL_BYTES:
        raise InvalidSql(f"the text is {size} bytes, over BigQuery's limit of {MAX_SQL_BYTES} bytes for a query", None, None,
                         suggestion="Send a shorter query: BigQuery itself refuses query text over 1 MB.")
    try:
        tokens = _ScriptTokenizer(dialect=BigQuery()).tokenize(sql)
    except TokenError as exc:
        raise _token_error(exc) from None
    depth = deepest = 0
    for token in tokens:
        if token.token_type in _OPEN or token.token_type is TokenType.CASE:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_NESTING:
                    raise InvalidSql(f"brackets or CASE expressions are nested more than {MAX_NESTING} deep",
                                     token.line, token.col,
                                     suggestion="Flatten the query (WITH clauses instead of nested subqueries).")
        elif token.token_type in _CLOSE or (token.token_type is TokenType.END and depth > 0):
            depth = max(0, depth - 1)
    return tokens


def _token_error(exc: TokenError) -> InvalidSql:
    import re

    cause = str(exc.__cause__ or exc)
    found = re.search(r"(\d+):(\d+)", cause)
    line, column = (int(found.group(1)), int(found.group(2))) if found else (None, None)
    return InvalidSql(f"cannot split it into tokens ({cause})", line, column)


def _segments(tokens: list[Token]) -> list[list[Token]]:
    """The tokens between top-level semicolons (empty statements dropped)."""
    segments: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.token_type in _OPEN:
            depth += 1
        elif token.token_type in _CLOSE:
            depth = max(0, depth - 1)
        if token.token_type is TokenType.SEMICOLON and depth == 0:
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def _until(tokens: list[Token], start: int, stops: set[str]) -> int:
    """Index of the first token from ``start`` whose word is in ``stops``, outside brackets and CASE ... END."""
    depth = cases = 0
    for index in range(start, len(tokens)):
        token = tokens[index]
        word = _word(token)
        if depth == 0 and cases == 0 and word in stops:
            return index
        if token.token_type in _OPEN:
            depth += 1
        elif token.token_type in _CLOSE:
            depth -= 1
        elif word == "CASE":
            cases += 1
        elif word == "END" and cases:
            cases -= 1
    return len(tokens)


class _Splitter:
    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.sql = sql
        self.tokens = tokens
        self.script = Script()
        self.block_depth = 0
        self.routine_depth: int | None = None  # the block depth a procedure body opened at
        self.seen_ddl = False

    def split(self) -> Script:
        for segment in _segments(self.tokens):
            self._segment(segment)
        return self.script

    # -- pieces ------------------------------------------------------------------------------------
    def _piece(self, tokens: list[Token], *, statement: bool, ddl: bool = False) -> None:
        if not tokens:
            return
        start, end = tokens[0].start, tokens[-1].end
        text = list(self.sql[start:end + 1])
        piece = Piece(start, "", "" if statement else "SELECT ", statement, ddl, self.seen_ddl and not self._in_routine,
                      self._in_routine, line=tokens[0].line, column=tokens[0].col - len(tokens[0].text) + 1)
        self._mask(tokens, piece, text)
        piece.text = "".join(text)
        self.script.pieces.append(piece)

    def _mask(self, tokens: list[Token], piece: Piece, text: list[str]) -> None:
        """``MODEL path`` and ``TABLE path`` arguments -> string literals of the same length (offsets stay)."""
        for index, token in enumerate(tokens[1:-1], start=1):
            word = _word(token)
            if word not in ("MODEL", "TABLE") or tokens[index - 1].token_type not in (TokenType.L_PAREN, TokenType.COMMA):
                continue
            last = index
            while (last + 1 < len(tokens) and tokens[last + 1].token_type in _PATH_TOKENS
                   and (last == index or tokens[last + 1].start == tokens[last].end + 1)):
                last += 1
            if last == index:
                continue
            path_start, path_end = tokens[index + 1].start, tokens[last].end
            if word == "TABLE":
                written = self.sql[path_start:path_end + 1]
                parts = [part.strip() for part in written.replace("`", "").split(".")]
                piece.table_args.append(TableArg(parts, path_start, path_end))
            start, end = token.start, path_end
            literal = self._literal(end - start + 1, "\n" in self.sql[start:end + 1])
            if literal is None:
                continue
            text[start - piece.start:end - piece.start + 1] = list(literal)
            piece.masked.append((start, end))

    @staticmethod
    def _literal(length: int, multiline: bool) -> str | None:
        if multiline:
            return "'''" + "x" * (length - 6) + "'''" if length >= 7 else None
        return "'" + "x" * (length - 2) + "'"

    @property
    def _in_routine(self) -> bool:
        return self.routine_depth is not None

    def _count(self, *, procedural: bool = False) -> None:
        self.script.statements += 1
        self.script.procedural = self.script.procedural or procedural

    # -- one statement between semicolons ----------------------------------------------------------
    def _segment(self, tokens: list[Token]) -> None:
        index = self._prefixes(tokens)
        rest = tokens[index:]
        if not rest:
            return
        word = _word(rest[0])
        if word == "DECLARE":
            self._count(procedural=True)
            default = _until(rest, 1, {"DEFAULT"})
            self._piece(rest[default + 1:], statement=False)
        elif word == "SET":
            self._count(procedural=True)
            equals = next((i for i, token in enumerate(rest) if token.token_type is TokenType.EQ), len(rest))
            self._piece(rest[equals + 1:], statement=False)
        elif word == "CALL":
            self._count(procedural=True)
            name = _until(rest, 1, {"("})
            procedure = self.sql[rest[1].start:rest[name - 1].end + 1] if name > 1 else "?"
            self.script.calls.append((procedure.replace("`", ""), rest[0].line))
        elif word == "EXECUTE":
            self._count(procedural=True)
            self.script.has_dynamic = True
            if self.script.dynamic_line is None:
                self.script.dynamic_line = rest[0].line
        elif word == "ASSERT":
            self._count(procedural=True)
            described = _until(rest, 1, {"AS"})
            self._piece(rest[1:described], statement=False)
        elif word in _NOTHING_TO_READ:
            self._count(procedural=word not in ("COMMIT", "ROLLBACK", "GRANT", "REVOKE"))
        elif word == "BEGIN":  # BEGIN [TRANSACTION] (a block BEGIN is a prefix, always followed by a statement)
            self._count()
        else:
            self._count()
            ddl = word in _DDL and not self._temp_function(rest)
            self._piece(rest, statement=True, ddl=ddl)
            if ddl and not self._in_routine:
                self.seen_ddl = True

    def _temp_function(self, tokens: list[Token]) -> bool:
        words = [_word(token) for token in tokens[:6]]
        return "FUNCTION" in words and ("TEMP" in words or "TEMPORARY" in words)

    def _prefixes(self, tokens: list[Token]) -> int:
        """Skip the procedural openers at the start of a statement; their expressions become pieces."""
        index = 0
        while index < len(tokens):
            token = tokens[index]
            word = _word(token)
            following = _word(tokens[index + 1]) if index + 1 < len(tokens) else ""
            if token.token_type is TokenType.VAR and index + 1 < len(tokens) and tokens[index + 1].token_type is TokenType.COLON:
                index += 2  # a label
            elif word == "BEGIN" and following not in ("", "TRANSACTION"):
                self._open_block()
                index += 1
            elif word == "END":
                index += 1
                if following in _BLOCK_ENDS:
                    index += 1
                    if index < len(tokens) and tokens[index].token_type is TokenType.VAR and index + 1 == len(tokens):
                        index += 1  # END WHILE label
                else:
                    self._close_block()
            elif word in ("IF", "ELSEIF", "WHILE", "WHEN", "CASE"):
                self.script.procedural = True
                self.script.loops = self.script.loops or word == "WHILE"
                stops = {"WHEN"} if word == "CASE" else {"THEN", "DO"}
                stop = _until(tokens, index + 1, stops)
                if not (word == "WHEN" and following == "ERROR"):
                    self._piece(tokens[index + 1:stop], statement=False)
                index = stop + (0 if word == "CASE" else 1)
            elif word == "UNTIL":
                stop = _until(tokens, index + 1, {"END"})
                self._piece(tokens[index + 1:stop], statement=False)
                index = stop
            elif word == "FOR" and following and index + 2 < len(tokens) and _word(tokens[index + 2]) == "IN":
                self.script.procedural = self.script.loops = True
                stop = _until(tokens, index + 3, {"DO"})
                self._piece(tokens[index + 3:stop], statement=False)
                index = stop + 1
            elif word in ("ELSE", "THEN", "DO", "EXCEPTION"):
                index += 1
            elif word in ("LOOP", "REPEAT"):
                self.script.procedural = self.script.loops = True
                index += 1
            elif word == "CREATE" and "PROCEDURE" in [_word(t) for t in tokens[index:index + 6]]:
                body = _until(tokens, index + 1, {"BEGIN"})
                self._count()
                self.script.procedural = True
                if body == len(tokens):
                    return len(tokens)  # a procedure in another language: nothing of ours to read
                if not self._in_routine:
                    self.routine_depth = self.block_depth
                self._open_block()
                index = body + 1
            else:
                break
        return index

    def _open_block(self) -> None:
        self.script.procedural = True
        self.block_depth += 1

    def _close_block(self) -> None:
        self.block_depth = max(0, self.block_depth - 1)
        if self.routine_depth is not None and self.block_depth <= self.routine_depth:
            self.routine_depth = None
            self.seen_ddl = True  # the CREATE PROCEDURE just ended: a DDL statement


def split_script(sql: str) -> Script:
    """``sql`` as pieces; InvalidSql for text that is too large, too deeply nested, or not tokens at all."""
    return _Splitter(sql, tokenize(sql)).split()
