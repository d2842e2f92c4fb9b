"""The guard's decision: allow a query (``GuardResult``) or refuse it, from one dry run against the cap.

``guard_query(sql, context)`` finds the tables the query (or script) reads
(catalog.guard.targets), makes one dry run of the whole text, in the
location of its datasets, with every registry id replaced by its full
path, and refuses it (QueryGuardError, with a ``detail`` dict) when the
estimate is over the cap. No scan runs unestimated: tables of other
projects are dry-run too, unless the operator lists their project in
``allow_unestimated_projects``. A lower-bound estimate under the cap is
allowed only capped (``requires_maximum_bytes_billed``). A refusal for size
names the targets that are views, because BigQuery does not push LIMIT into
a view body, and says what to do instead for these tables. A query that
reads no table is allowed without calling BigQuery.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from catalog.cache import Cache
from catalog.errors import (
    BigQueryError,
    DynamicSql,
    EstimateFailed,
    ExternalQueryNotAllowed,
    InvalidSql,
    MixedLocations,
    PathNotRegistered,
    ScanTooLarge,
    ScriptNotEstimable,
)
from catalog.guard.suggestions import VIEW_TYPES, TargetFacts, example_for, scan_suggestion, unregistered_suggestion
from catalog.guard.targets import Targets, find_targets
from catalog.models import EntityType, TrackedTable, parse_entity_type
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


# totalBytesProcessedAccuracy values that say the real scan may be larger than the estimate.
NOT_AN_UPPER_LIMIT = frozenset({"LOWER_BOUND", "UNKNOWN"})
ACCURACY_NOTE = (
    "the estimate is a lower bound (totalBytesProcessedAccuracy {accuracy}{why}): the query may scan more, so it is "
    "allowed only with maximum_bytes_billed set to the cap ({cap} bytes); job_config() sets it"
)


@dataclass(frozen=True)
class GuardResult:
    """An allowed query. ``sql`` is what was estimated (registry ids as full paths): run that."""

    scan_bytes: int | None  # None: not estimated (no table to estimate, an allowed project, or the guard is off)
    limit_bytes: int  # 0: the guard is off
    tables: list[str]  # dataset.table of every tracked target
    sql: str
    scan_bytes_accuracy: str | None = None
    untracked_tables: list[str] = field(default_factory=list)  # read, not in the registry (other projects, metadata)
    allowed: bool = True
    location: str | None = None  # where the dry run ran: the location of the query's datasets
    note: str | None = None  # a condition of the answer (a lower-bound estimate)

    @property
    def requires_maximum_bytes_billed(self) -> bool:
        """A lower-bound estimate: the job must run capped at the cap, or it may scan more than was agreed."""
        return self.scan_bytes is not None and self.scan_bytes_accuracy in NOT_AN_UPPER_LIMIT

    def maximum_bytes_billed(self, headroom: float = HEADROOM) -> int | None:
        """The estimate plus headroom, never above the cap, never below BigQuery's 10 MB per table.

        Not estimated, or only a lower bound: the cap itself (None when the guard is off).
        """
        floor = MIN_BILLED_PER_TABLE * max(1, len(self.tables) + len(self.untracked_tables))
        if self.scan_bytes is None or self.requires_maximum_bytes_billed:
            return max(self.limit_bytes, floor) if self.limit_bytes else None
        wanted = math.ceil(self.scan_bytes * headroom)
        if self.limit_bytes:
            wanted = min(wanted, self.limit_bytes)
        return max(wanted, floor)

    def job_config(self, headroom: float = HEADROOM, **options: Any) -> QueryJobConfig:
        """A ``bigquery.QueryJobConfig`` with ``maximum_bytes_billed`` set from the estimate (the cap for a lower bound).

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
            "requires_maximum_bytes_billed": self.requires_maximum_bytes_billed, "sql": self.sql,
        }
        if self.untracked_tables:
            document["untracked_tables"] = self.untracked_tables
        if self.location:
            document["location"] = self.location
        if self.note:
            document["note"] = self.note
        return document


class GuardContext(Protocol):
    """What the guard needs from its caller (``catalog.Catalog`` is one): opened or connected only when first read."""

    @property
    def registry(self) -> Registry: ...
    @property
    def max_scan_bytes(self) -> int: ...
    @property
    def guard_timeout_seconds(self) -> int: ...
    @property
    def cache(self) -> Cache: ...
    @property
    def client(self) -> BigQuerySource: ...


def as_text(sql: str | bytes) -> str:
    """The query as text: UTF-8 bytes decoded; anything else (or a str carrying undecodable bytes) is InvalidSql."""
    if isinstance(sql, bytes):
        try:
            return sql.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidSql(f"it is not UTF-8 text (byte {exc.start} is 0x{sql[exc.start]:02x})", None, None,
                             suggestion="Send the query as UTF-8 text, as BigQuery requires.") from None
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as exc:  # surrogate escapes: bytes that were not UTF-8 (a command-line argument)
        raise InvalidSql(f"it is not UTF-8 text (character {exc.start} is not a character)", None, None,
                         suggestion="Send the query as UTF-8 text, as BigQuery requires.") from None
    return sql


def guard_query(sql: str | bytes, context: GuardContext, parameters: Sequence[Any] = ()) -> GuardResult:
    """Allow ``sql`` (a GuardResult) or raise QueryGuardError saying why not and what to do.

    ``parameters`` are the query's ``@name`` parameters as the caller will run
    it (google-cloud-bigquery ``ScalarQueryParameter``/``ArrayQueryParameter``
    objects): the dry run needs them declared, or BigQuery rejects the query.
    BigQuery is asked only when the query reads a table to estimate and the
    guard is on, and every answer comes within ``guard_timeout_seconds``.

    Raises InvalidSql, DynamicSql, PathNotRegistered, ExternalQueryNotAllowed,
    ScriptNotEstimable, MixedLocations, EstimateFailed or ScanTooLarge (all
    QueryGuardError); CredentialsError when the guard itself cannot work.
    Never RecursionError: text too deep to read is InvalidSql.
    """
    text = as_text(sql)
    registry = context.registry
    tracked = TrackedTables(registry)  # a query names tables by registry id or path: no cache needed
    cap = context.max_scan_bytes
    targets = find_targets(text, tracked)
    if cap == 0:
        logger.debug("cost guard off (max_scan_bytes 0): allowing without a dry run")
        return GuardResult(None, 0, targets.tables, targets.rewritten,
                           untracked_tables=targets.unregistered + targets.foreign + targets.metadata)
    script = targets.script
    if script.has_dynamic:
        raise DynamicSql(script.dynamic_line)
    if targets.unregistered:
        raise PathNotRegistered(targets.unregistered, targets.tables, unregistered_suggestion(targets.unregistered, registry))
    if targets.external and not registry.allow_external_query:
        raise ExternalQueryNotAllowed(targets.tables)
    _check_script(targets)
    unestimated = [path for path in targets.foreign if path.split(".")[0] in registry.allow_unestimated_projects]
    foreign = [path for path in targets.foreign if path not in unestimated]
    if not (targets.tracked or targets.metadata or foreign or targets.external):
        # Nothing to estimate: no table at all, or only tables of projects the operator allows unestimated.
        return GuardResult(None, cap, [], text, untracked_tables=targets.foreign)

    source = context.client
    with source.time_limit(context.guard_timeout_seconds):
        location = _location(context, targets)
        estimate, estimated_sql = _estimate(source, targets, parameters, location, context.guard_timeout_seconds)
    accuracy, why = estimate.accuracy, ""
    if script.loops and accuracy not in NOT_AN_UPPER_LIMIT:
        # A loop's body runs as often as the script says; the dry run counts it once.
        accuracy, why = "LOWER_BOUND", "; the script loops, and a dry run counts a loop's body once"
    untracked = targets.foreign + targets.metadata
    if estimate.scan_bytes <= cap:
        logger.debug("query allowed: %d bytes of %d (%s)", estimate.scan_bytes, cap, ", ".join(targets.tables))
        note = ACCURACY_NOTE.format(accuracy=accuracy, why=why, cap=cap) if accuracy in NOT_AN_UPPER_LIMIT else None
        return GuardResult(estimate.scan_bytes, cap, targets.tables, estimated_sql, accuracy, untracked_tables=untracked,
                           location=location, note=note)
    facts = [_facts(registry, context.cache, source, table) for table in targets.tracked]
    views = [fact.table.id for fact in facts if fact.is_view]
    logger.info("query refused: %d bytes over the %d cap (%s; views: %s)", estimate.scan_bytes, cap,
                ", ".join(targets.tables), ", ".join(views) or "none")
    suggestion = scan_suggestion(facts, selects_star=targets.selects_star, has_limit=targets.has_limit)
    raise ScanTooLarge(estimate.scan_bytes, cap, accuracy, targets.tables, views, suggestion)


def _check_script(targets: Targets) -> None:
    """Refuse a script whose dry run would not cover everything it runs (BigQuery's rules for dry runs of scripts)."""
    script = targets.script
    if script.calls:
        procedure, line = script.calls[0]
        raise ScriptNotEstimable(
            f"CALL {procedure} (line {line}): a dry run checks that the procedure exists, but estimates neither its "
            "body nor any statement after the CALL", targets.tables,
            "Guard the procedure's body as a script of its own (its statements, with the arguments as DECLAREd "
            "variables), then call it with the job capped by maximum_bytes_billed.",
        )
    if script.is_script and targets.reads_after_ddl:
        read = ", ".join(dict.fromkeys(targets.reads_after_ddl))
        raise ScriptNotEstimable(
            f"a dry run of a script stops at its first DDL statement (CREATE, DROP, ALTER), so the statements after it "
            f"that read {read} would run unestimated", targets.tables,
            "Put the DDL last, or run it separately and guard the rest on its own; a temp table read later can often "
            "be a WITH clause instead.",
        )


def _location(context: GuardContext, targets: Targets) -> str | None:
    """The one location of the query's datasets (None: let BigQuery find it); MixedLocations when there are several."""
    registry, cache = context.registry, context.cache
    located: dict[str, str] = {}
    for project, dataset in targets.datasets:
        location = registry.configured_location(project, dataset) or cache.dataset_location(project, dataset)
        if location is None and len(targets.datasets) + len(targets.regions) > 1:
            # Only a query over several datasets can mix locations: ask BigQuery once, and keep the answer.
            try:
                location = context.client.dataset_location(project, dataset)
            except BigQueryError as exc:
                logger.info("dataset %s.%s: location unknown (%s); BigQuery will find it", project, dataset, exc.summary)
            if location:
                cache.record_dataset_location(project, dataset, location, datetime.now(UTC))
        if location:
            located[f"{project}.{dataset}"] = location
    for region in targets.regions:
        located[f"region-{region}"] = region
    distinct = {location.lower() for location in located.values()}
    if len(distinct) > 1:
        raise MixedLocations(located, targets.tables)
    return next(iter(located.values()), None)


def _estimate(
    source: BigQuerySource, targets: Targets, parameters: Sequence[Any], location: str | None, timeout: int,
) -> tuple[ScanEstimate, str]:
    """One dry run of the rewrite; the text as written once more only if BigQuery calls the rewrite invalid."""
    try:
        return source.estimate(targets.rewritten, parameters, location=location), targets.rewritten
    except BigQueryError as first:
        if targets.rewritten == targets.sql or first.reason not in REWRITE_REJECTED:
            logger.warning("no estimate: %s", first.summary)
            raise EstimateFailed(targets.tables, first.summary, None, _estimate_advice(first, timeout)) from None
        logger.info("BigQuery rejected the rewritten query (%s); estimating the query as written", first.summary)
        try:
            return source.estimate(targets.sql, parameters, location=location), targets.sql
        except BigQueryError as second:
            different = second.summary if second.summary != first.summary else None
            raise EstimateFailed(targets.tables, first.summary, different, _estimate_advice(second, timeout)) from None


def _estimate_advice(error: BigQueryError, timeout: int) -> str:
    if not error.permanent:
        return (f"BigQuery did not answer within CATALOG_GUARD_TIMEOUT_SECONDS ({timeout} s), is unreachable, or is "
                "limiting requests; ask the guard again in a minute. The query may not run unestimated.")
    return "Fix what BigQuery reports and ask the guard again; the query must be estimated before it may run."


def _facts(registry: Registry, cache: Cache, source: BigQuerySource, table: TrackedTable) -> TargetFacts:
    """What the cache knows about a target; a cold row asks BigQuery (tables.get) and keeps the answer."""
    row = cache.get(table.id)
    if table.is_family:  # tables.get does not take a wildcard: what a refresh recorded is all there is
        return TargetFacts(table, EntityType.BASE_TABLE, None, None, (), newest_shard=row.newest_shard if row else None)
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
