"""The guard's decision: allow a query (``GuardResult``) or refuse it, from one dry run against the cap.

``guard_query(sql, context)`` finds the tables the query reads (catalog.guard.targets), makes
one dry run of the whole query with every registry id replaced by its full
path, and refuses it (QueryGuardError, with a ``detail`` dict) when the
estimate is over the cap. A refusal for size names the targets that are views,
because BigQuery does not push LIMIT into a view body, and says what to do
instead for these tables. A query that reads no tracked table is allowed
without calling BigQuery.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from catalog.cache import Cache
from catalog.errors import BigQueryError, EstimateFailed, PathNotRegistered, ScanTooLarge
from catalog.guard.suggestions import VIEW_TYPES, TargetFacts, example_for, scan_suggestion, unregistered_suggestion
from catalog.guard.targets import Targets, find_targets
from catalog.models import TrackedTable, parse_entity_type
from catalog.registry import Registry
from catalog.rows import where_examples
from catalog.tracked import TrackedTables

if TYPE_CHECKING:  # the client module imports google-cloud-bigquery: only Catalog.client loads it, when first needed
    from catalog.bigquery import BigQuerySource, QueryJobConfig, ScanEstimate

logger = logging.getLogger("catalog.guard")

# Headroom over the estimate for maximum_bytes_billed: estimates of clustered
# tables and views can be a little low, and a job over the cap fails unbilled.
HEADROOM = 1.25
# BigQuery bills at least 10 MB for every table a query references.
MIN_BILLED_PER_TABLE = 10 * 1024 * 1024
# Only a rewrite BigQuery calls invalid is worth a second dry run of the text as written.
REWRITE_REJECTED = frozenset({"invalidQuery"})


@dataclass(frozen=True)
class GuardResult:
    """An allowed query. ``sql`` is what was estimated (registry ids as full paths): run that."""

    scan_bytes: int | None  # None: not estimated (no tracked table, or the guard is off)
    limit_bytes: int  # 0: the guard is off
    tables: list[str]  # dataset.table of every tracked target
    sql: str
    scan_bytes_accuracy: str | None = None
    untracked_tables: list[str] = field(default_factory=list)  # read, but not the guard's to judge
    allowed: bool = True

    def maximum_bytes_billed(self, headroom: float = HEADROOM) -> int | None:
        """The estimate plus headroom, never above the cap, never below BigQuery's 10 MB per table.

        Not estimated: the cap itself (None when the guard is off).
        """
        floor = MIN_BILLED_PER_TABLE * max(1, len(self.tables) + len(self.untracked_tables))
        if self.scan_bytes is None:
            return max(self.limit_bytes, floor) if self.limit_bytes else None
        wanted = math.ceil(self.scan_bytes * headroom)
        if self.limit_bytes:
            wanted = min(wanted, self.limit_bytes)
        return max(wanted, floor)

    def job_config(self, headroom: float = HEADROOM, **options: Any) -> QueryJobConfig:
        """A ``bigquery.QueryJobConfig`` with ``maximum_bytes_billed`` set from the estimate.

        Pass it with ``sql`` to ``client.query``: BigQuery then fails the job
        instead of billing more than the guard agreed to.
        """
        from catalog.bigquery import capped_job_config  # the caller is about to run the job: the client is loaded anyway

        cap = self.maximum_bytes_billed(headroom)
        if cap is None:
            raise ValueError("the cost guard is off (max_scan_bytes 0) and made no estimate: there is nothing to cap the job with")
        return capped_job_config(cap, **options)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "allowed": True, "scan_bytes": self.scan_bytes, "limit_bytes": self.limit_bytes, "tables": self.tables,
            "scan_bytes_accuracy": self.scan_bytes_accuracy, "maximum_bytes_billed": self.maximum_bytes_billed(),
            "sql": self.sql,
        }
        if self.untracked_tables:
            document["untracked_tables"] = self.untracked_tables
        return document


class GuardContext(Protocol):
    """What the guard needs from its caller (``catalog.Catalog`` is one): opened or connected only when first read."""

    @property
    def registry(self) -> Registry: ...
    @property
    def max_scan_bytes(self) -> int: ...
    @property
    def cache(self) -> Cache: ...
    @property
    def client(self) -> BigQuerySource: ...


def guard_query(sql: str, context: GuardContext, parameters: Sequence[Any] = ()) -> GuardResult:
    """Allow ``sql`` (a GuardResult) or raise QueryGuardError saying why not and what to do.

    ``parameters`` are the query's ``@name`` parameters as the caller will run
    it (google-cloud-bigquery ``ScalarQueryParameter``/``ArrayQueryParameter``
    objects): the dry run needs them declared, or BigQuery rejects the query.
    BigQuery is asked only when a tracked table is read and the guard is on;
    the cache is read only to explain a refusal.

    Raises InvalidSql, PathNotRegistered, EstimateFailed or ScanTooLarge (all
    QueryGuardError); CredentialsError when the guard itself cannot work.
    """
    tracked = TrackedTables(context.registry)  # a query names tables by registry id or path: no cache needed
    cap = context.max_scan_bytes
    targets = find_targets(sql, tracked)
    if cap == 0:
        logger.debug("cost guard off (max_scan_bytes 0): allowing without a dry run")
        return GuardResult(None, 0, targets.tables, targets.rewritten,
                           untracked_tables=targets.unregistered + targets.foreign + targets.metadata)
    if targets.unregistered:
        raise PathNotRegistered(targets.unregistered, targets.tables, unregistered_suggestion(targets.unregistered, tracked.registry))
    if not targets.tracked and not targets.metadata:  # INFORMATION_SCHEMA views are billed: estimate them
        return GuardResult(None, cap, [], sql, untracked_tables=targets.foreign)

    source = context.client
    estimate, estimated_sql = _estimate(source, targets, parameters)
    if estimate.scan_bytes <= cap:
        logger.debug("query allowed: %d bytes of %d (%s)", estimate.scan_bytes, cap, ", ".join(targets.tables))
        return GuardResult(estimate.scan_bytes, cap, targets.tables, estimated_sql, estimate.accuracy,
                           untracked_tables=targets.foreign + targets.metadata)
    facts = [_facts(tracked.registry, context.cache, source, table) for table in targets.tracked]
    views = [fact.table.id for fact in facts if fact.is_view]
    logger.info("query refused: %d bytes over the %d cap (%s; views: %s)", estimate.scan_bytes, cap,
                ", ".join(targets.tables), ", ".join(views) or "none")
    suggestion = scan_suggestion(facts, selects_star=targets.selects_star, has_limit=targets.has_limit)
    raise ScanTooLarge(estimate.scan_bytes, cap, estimate.accuracy, targets.tables, views, suggestion)


def _estimate(source: BigQuerySource, targets: Targets, parameters: Sequence[Any]) -> tuple[ScanEstimate, str]:
    """One dry run of the rewrite; the text as written once more only if BigQuery calls the rewrite invalid."""
    try:
        return source.estimate(targets.rewritten, parameters), targets.rewritten
    except BigQueryError as first:
        if targets.rewritten == targets.sql or first.reason not in REWRITE_REJECTED:
            raise EstimateFailed(targets.tables, first.summary, None, _estimate_advice(first)) from None
        logger.info("BigQuery rejected the rewritten query (%s); estimating the query as written", first)
        try:
            return source.estimate(targets.sql, parameters), targets.sql
        except BigQueryError as second:
            different = second.summary if second.summary != first.summary else None
            raise EstimateFailed(targets.tables, first.summary, different, _estimate_advice(second)) from None


def _estimate_advice(error: BigQueryError) -> str:
    if not error.permanent:
        return "BigQuery did not answer in time or is limiting requests; ask the guard again in a minute."
    return "Fix what BigQuery reports and ask the guard again; the query must be estimated before it may run."


def _facts(registry: Registry, cache: Cache, source: BigQuerySource, table: TrackedTable) -> TargetFacts:
    """What the cache knows about a target; a cold row asks BigQuery (tables.get) and keeps the answer."""
    row = cache.get(table.id)
    if row is not None and row.entity_type is not None:
        examples = where_examples(registry, table, row) if row.entity_type in VIEW_TYPES else []
        view_example = examples[0] if examples else None
        return TargetFacts(table, row.entity_type, row.partition_by, example_for(row), tuple(row.clustered_by or ()), view_example)
    try:
        found = source.get_table(table.project, table.dataset, table.table)
        entity = parse_entity_type(found.table_type or "")
    except (BigQueryError, ValueError) as exc:
        logger.warning("table %s: cannot tell whether it is a view: %s", table.id, exc)
        return TargetFacts(table, None, None, None, (), lookup_error=exc.summary if isinstance(exc, BigQueryError) else str(exc))
    cache.record_lookup(table, entity, found.partition_by, list(found.clustered_by))
    logger.info("table %s: looked up entity_type %s for a cold cache row", table.id, entity.value)
    return TargetFacts(table, entity, found.partition_by, None, found.clustered_by)
