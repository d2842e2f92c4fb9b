"""The guard's suggestions: what a refused query should do instead (the text of its ``suggestion``).

Specific to the query's targets: their partitioning and clustering columns
when the cache knows them, and views named as views, because BigQuery does
not push LIMIT into a view body. Names only commands this project has.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.examples import partition_example
from catalog.models import CatalogRow, EntityType, TrackedTable
from catalog.registry import Registry
from tickless.config.problems import closest

VIEW_TYPES = (EntityType.VIEW, EntityType.MATERIALIZED_VIEW)


@dataclass(frozen=True)
class TargetFacts:
    """What the guard knows about one tracked target when it refuses a scan."""

    table: TrackedTable
    entity_type: EntityType | None
    partition_by: str | None
    partition_example: str | None  # a filter in the form that prunes partitions
    clustered_by: tuple[str, ...]
    view_example: str | None = None  # an advertised where_example, for views
    lookup_error: str | None = None  # why entity_type is unknown
    newest_shard: str | None = None  # a wildcard family's newest table, when a refresh has seen it

    @property
    def path(self) -> str:
        return f"{self.table.dataset}.{self.table.table}"

    @property
    def is_view(self) -> bool:
        return self.entity_type in VIEW_TYPES


def example_for(row: CatalogRow | None) -> str | None:
    """The partition filter ``where_examples`` advertises for this row, if any."""
    if row is None or not row.partition_by:
        return None
    return partition_example(row.partition_by, row.partition_type, row.partition_range)


def suffix_example(family: str, newest_shard: str | None) -> str:
    """A ``_TABLE_SUFFIX`` filter for a family: the last 7 days for date-named shards, else the newest shard."""
    suffix = newest_shard[len(family) - 1:] if newest_shard else None
    if suffix is None or (len(suffix) == 8 and suffix.isdigit()):
        return "_TABLE_SUFFIX >= FORMAT_DATE('%Y%m%d', DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY))"
    return f"_TABLE_SUFFIX = '{suffix}'"


def _advice(fact: TargetFacts) -> str | None:
    if fact.table.is_family:
        newest = f"; its newest shard is {fact.newest_shard}" if fact.newest_shard else ""
        return (f"filter on _TABLE_SUFFIX so fewer tables of the family {fact.path} are read "
                f"(e.g. WHERE {suffix_example(fact.table.table, fact.newest_shard)}{newest})")
    if fact.is_view:
        example = f"; one of its where_examples: {fact.view_example}" if fact.view_example else ""
        return (f"filter {fact.table.id} in WHERE (BigQuery does push WHERE filters into a view, so a filter on the column "
                f"its underlying table is partitioned by prunes the scan{example}); "
                f"'catalog show {fact.table.id}' lists its known_columns and where_examples")
    parts = []
    if fact.partition_by:
        example = f" (e.g. WHERE {fact.partition_example})" if fact.partition_example else ""
        parts.append(f"filter on {fact.partition_by}, the partitioning column of {fact.path}{example}")
    if fact.clustered_by:
        parts.append(f"filters on {', '.join(fact.clustered_by)}, the clustering column(s) of {fact.path}, "
                     "cut the bytes actually billed but not this estimate")
    return "; ".join(parts) or None


def scan_suggestion(facts: list[TargetFacts], *, selects_star: bool, has_limit: bool) -> str:
    """The text for ``remote_scan_too_large``: views first, then what to do, target by target."""
    views = [fact.table.id for fact in facts if fact.is_view]
    sentences = []
    if views:
        sentences.append(
            f"Target(s) {', '.join(views)} are VIEW or MATERIALIZED VIEW. "  # noqa: S608  (prose for a person, not SQL)
            f"BigQuery does not push LIMIT into the view body — SELECT * FROM {views[0]} LIMIT 1 still runs the full underlying scan."
        )
    elif has_limit:
        sentences.append("LIMIT does not reduce the bytes a query scans.")
    todo = ["select only the columns you need instead of SELECT *" if selects_star else "select fewer columns"]
    todo += [advice for advice in (_advice(fact) for fact in facts) if advice]
    sentences.append(f"To scan less: {'; '.join(todo)}.")
    unknown = [fact for fact in facts if fact.entity_type is None]
    if unknown:
        why = "; ".join(f"{fact.table.id}: {fact.lookup_error}" for fact in unknown if fact.lookup_error)
        sentences.append(f"Could not tell whether {', '.join(fact.table.id for fact in unknown)} are views ({why or 'unknown type'}).")
    return " ".join(sentences)


def _hint(path: str, registry: Registry) -> str | None:
    """A tracked name the caller may have meant by ``path``."""
    spellings: dict[str, tuple[str, str]] = {}  # lower-cased spelling -> (name to use, why)
    for table in registry.tables:
        for name in (f"{table.project}.{table.dataset}.{table.table}", f"{table.dataset}.{table.table}"):
            spellings[name.lower()] = (name, " (BigQuery paths are case-sensitive)")
        spellings.setdefault(table.table.lower(), (table.id, f" (the registry id of {table.dataset}.{table.table})"))
        spellings[table.id.lower()] = (table.id, "")
    if path.lower() in spellings:
        name, why = spellings[path.lower()]
        return f"for {path} did you mean {name}{why}?"
    close = closest(path.lower(), spellings, cutoff=0.8)
    return f"for {path} did you mean {spellings[close][0]}?" if close else None


def unregistered_suggestion(paths: list[str], registry: Registry) -> str:
    """The text for ``bq_path_not_registered``: a close tracked name when there is one, else how to track it."""
    hints = [hint for hint in (_hint(path, registry) for path in paths) if hint]
    wildcards = [path for path in paths if path.endswith("*")]
    if wildcards:
        hints.append(f"wildcard tables ({', '.join(wildcards)}) are not supported by the guard: it cannot tell which "
                     "tables they match; name the tables (a UNION ALL of tracked tables) instead.")
    lead = " ".join(hint[0].upper() + hint[1:] for hint in hints)
    rest = (
        "The guard only estimates tables tracked in the catalog registry: query a tracked table ('catalog list' shows them, "
        "by registry id or path), or add the table under tables: (or its dataset under datasets:) in catalog.yaml and run "
        "'catalog refresh'."
    )
    return f"{lead} {rest}" if lead else rest
