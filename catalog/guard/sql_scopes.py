"""SQL scopes for the guard: which Table nodes of a parsed statement are not tables (CTE references, array paths).

Named for SQL's scopes, not OAuth's (those are ``catalog.bigquery.SCOPES``).
Split from catalog.guard.targets: ``FROM t AS u, u.items`` reads ``u``'s array
column, not a table ``u.items``; a CTE name is a table only outside the scope
where the CTE is visible.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import traverse_scope


def not_tables(statement: exp.Expr) -> set[int] | None:
    """ids of the Table nodes that are CTE references or array paths, by scope; None when sqlglot cannot scope it."""
    try:
        scopes = traverse_scope(statement)
    except SqlglotError:
        return None
    skipped: set[int] = set()
    for scope in scopes:
        ctes = {name.lower() for name in scope.cte_sources}  # CTE names and aliases ignore case in BigQuery
        for table in scope.tables:
            if not table.catalog and not table.db and table.name.lower() in ctes:
                skipped.add(id(table))
            elif not table.catalog and table.db and is_array_path(table):
                skipped.add(id(table))  # FROM t JOIN t.items: an implicit UNNEST of t's array column
    return skipped


def is_array_path(table: exp.Table) -> bool:
    """``table.db`` is an alias declared earlier in the same FROM/JOIN chain, or in an enclosing query.

    ``FROM t AS u, u.items`` and ``JOIN u.items``: an implicit UNNEST. An alias
    declared later (``FROM finance.x, UNNEST(...) AS finance``), a CTE name, or
    anything sqlglot does not place in a FROM/JOIN chain leaves ``table`` a
    table: over-counting costs a dry run, under-counting lets a scan through.
    """
    wanted = table.db.lower()
    child: exp.Expr = table
    node = table.parent
    while node is not None and not isinstance(node, exp.CTE):  # a CTE body sees no outer alias
        if isinstance(node, (exp.From, exp.Join)) and isinstance(node.parent, exp.Select):
            items = _from_items(node.parent)
            position = next((index for index, item in enumerate(items) if item is node.this), len(items))
            # A FROM item sees the items before it; an ON condition sees its own item too.
            visible = items[:position] if child is node.this else items[:position + 1]
            if any(_alias(item) == wanted for item in visible):
                return True
            child, node = node.parent, node.parent.parent
            continue
        if isinstance(node, exp.Select) and not isinstance(child, (exp.From, exp.Join)):
            # A subquery in the select list, WHERE, ...: correlated to every item of this query.
            if any(_alias(item) == wanted for item in _from_items(node)):
                return True
        child, node = node, node.parent
    return False


def _from_items(select: exp.Select) -> list[exp.Expr]:
    """The items of a query's FROM/JOIN chain, in the order they are declared."""
    first = select.args.get("from_") or select.args.get("from")
    items: list[exp.Expr] = [first.this] if isinstance(first, exp.From) else []
    return items + [join.this for join in select.args.get("joins") or []]


def _alias(item: exp.Expr) -> str:
    """The name a FROM item is referred to by (lower case): its alias, else a table's own name."""
    alias = item.args.get("alias")
    if isinstance(alias, exp.TableAlias):
        named = alias.this or (alias.columns[0] if isinstance(item, exp.Unnest) and alias.columns else None)
        if isinstance(named, exp.Identifier):
            return str(named.name).lower()
    return item.name.lower() if isinstance(item, exp.Table) else ""


def outside_scopes(table: exp.Table, scoped: set[int] | None, ctes: set[str]) -> bool:
    """Without scopes (sqlglot could not build them), any CTE name of the statement counts as a CTE."""
    return scoped is None and not table.db and not table.catalog and table.name.lower() in ctes
