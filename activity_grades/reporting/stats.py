"""Partition statistics: one model for ``partition_report``, the admin and the metrics.

``overview()`` reads every registered partition's sizes, estimates and activity from the
catalog in one query (cheap at any scale); ``exact=True`` replaces the estimates with
``count(*)`` of each live partition.

A foreign partition (a class on a shard, docs/sharding.md) has no storage on the
coordinator: its figures are read from its shard, one query per shard for all its tables
(``db.shard_stats``), and each partition says where it is (``shard``: ``"local"`` or the
shard's alias). A shard that does not answer, or not within ``SHARD_STATS_TIMEOUT``, is
logged once per outage; its partitions stay in the list with zero figures and
``shard_error`` saying so ("shard unreachable (<alias>)", "shard timed out (<alias>)"),
and the rest is as usual.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, Error, transaction

from ..core.constants import LOGGER_NAME, Status
from ..core.settings import app_settings
from ..core.shards import LOCAL
from ..db import catalog, lms, shard_stats
from ..db.connection import cursor, is_statement_timeout

__all__ = [
    "ClassTotal",
    "Overview",
    "PartitionStats",
    "QueryStats",
    "SHARD_TIMED_OUT",
    "SHARD_UNREACHABLE",
    "ShardTotal",
    "StatementStats",
    "TermTotal",
    "overview",
    "slow_statements",
]

logger = logging.getLogger(LOGGER_NAME)

SHARD_UNREACHABLE = "shard unreachable"
SHARD_TIMED_OUT = "shard timed out"  # it answers, but not within SHARD_STATS_TIMEOUT

# Shards whose last statistics query failed (this process): their failure was logged.
_DOWN: set[str] = set()


@dataclass
class PartitionStats:
    """Catalog figures of one registered partition (estimates unless ``exact``)."""

    id: int
    class_id: str
    term_id: str | None
    table_name: str
    parent_table: str
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    academic_year: str | None
    granularity: str  # a term table's: 'term' (a leaf) or 'month' (its month tables are)
    month: bool  # a month table (issue 15), child of its term's table
    term_starts_at: datetime | None  # its term's first instant (a month table's too)
    present: bool  # the table exists in the database
    rows: int  # estimated live rows (pg_class.reltuples / live tuples), exact with exact=True
    table_bytes: int  # heap + free space map + visibility map, without TOAST
    index_bytes: int
    toast_bytes: int  # TOAST table and its index
    total_bytes: int
    dead_rows: int
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    idx_tup_fetch: int
    inserted: int
    updated: int
    deleted: int
    last_vacuum: datetime | None  # latest of manual and auto vacuum
    last_analyze: datetime | None  # latest of manual and auto analyze
    last_vacuum_auto: bool
    last_analyze_auto: bool
    share: float = 0.0  # of the total bytes of every partition, 0..1
    exact: bool = False  # rows counted with count(*)
    class_rank: int = 0  # position of the class among all, class ids in their own type
    shard: str = LOCAL  # where the table is: 'local', or the alias of the shard it is on
    shard_error: str | None = None  # why its figures are missing (its shard did not answer)

    @property
    def kind(self) -> str:
        if self.month:
            return "month"
        return "class" if self.term_id is None else "term"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("starts_at", "ends_at", "term_starts_at", "last_vacuum", "last_analyze"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        out["kind"] = self.kind
        return out


@dataclass
class TermTotal:
    term_id: str | None  # None: the class tables (rows outside every term)
    partitions: int
    rows: int
    total_bytes: int
    share: float = 0.0


def _add(total: TermTotal | ClassTotal | ShardTotal, p: PartitionStats) -> None:
    """One partition counted into a total."""
    total.partitions += 1
    total.rows += p.rows
    total.total_bytes += p.total_bytes


@dataclass
class ClassTotal:
    class_id: str
    partitions: int
    rows: int
    total_bytes: int


@dataclass
class ShardTotal:
    """Totals of the partitions in one place: ``local`` (the coordinator) or a shard."""

    shard: str
    partitions: int
    rows: int
    total_bytes: int
    up: bool = True  # the shard answered (always True for local)
    error: str | None = None  # why not


@dataclass
class Overview:
    """Every partition plus the totals the report, the admin page and the metrics show."""

    partitions: list[PartitionStats]
    rows_in_parent: int
    # Each shard asked (SHARDS, and any other a foreign partition points at) -> None when
    # it answered, else why not.
    shards: dict[str, str | None] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def total_bytes(self) -> int:
        return sum(p.total_bytes for p in self.partitions)

    @property
    def largest(self) -> PartitionStats | None:
        return max(self.partitions, key=lambda p: p.total_bytes, default=None)

    @property
    def month_tables(self) -> int:
        """Live month tables (issue 15)."""
        return sum(1 for p in self.partitions if p.month and p.status == Status.LIVE)

    @property
    def rows_in_class_tables(self) -> int:
        """Estimated rows sitting in class tables (created outside every term)."""
        return sum(p.rows for p in self.partitions if p.term_id is None)

    def by_status(self) -> dict[str, int]:
        """Partitions per registry status (every status present, 0 included)."""
        counts = {s.value: 0 for s in Status}
        for p in self.partitions:
            counts[p.status] = counts.get(p.status, 0) + 1
        return counts

    def by_class(self) -> list[ClassTotal]:
        """Totals per class (its class table and its term tables), in the partitions' order."""
        totals: dict[str, ClassTotal] = {}
        for p in self.partitions:
            c = totals.setdefault(p.class_id, ClassTotal(p.class_id, 0, 0, 0))
            _add(c, p)
        return list(totals.values())

    def by_shard(self) -> list[ShardTotal]:
        """Totals per place: ``local`` first, then every shard asked (0 partitions too)."""
        totals = {LOCAL: ShardTotal(LOCAL, 0, 0, 0)}
        for alias, error in self.shards.items():
            totals[alias] = ShardTotal(alias, 0, 0, 0, error is None, error)
        for p in self.partitions:
            t = totals.setdefault(p.shard, ShardTotal(p.shard, 0, 0, 0))
            _add(t, p)
        return list(totals.values())

    @property
    def sharded(self) -> bool:
        """Whether any shard is configured or holds a partition."""
        return bool(self.shards) or any(p.shard != LOCAL for p in self.partitions)

    def by_term(self) -> list[TermTotal]:
        totals: dict[str | None, TermTotal] = {}
        order: dict[str | None, object] = {}
        for p in self.partitions:
            t = totals.setdefault(p.term_id, TermTotal(p.term_id, 0, 0, 0))
            _add(t, p)
            if p.starts_at is not None:
                order.setdefault(p.term_id, p.starts_at)
        out = sorted(
            totals.values(),
            key=lambda t: (t.term_id is not None, str(order.get(t.term_id, "")), t.term_id or ""),
        )
        biggest = max((t.total_bytes for t in out), default=0)
        for t in out:
            t.share = t.total_bytes / biggest if biggest else 0.0
        return out


def overview(exact: bool = False, using: str = "default") -> Overview:
    """Every registered partition with sizes, estimates and activity.

    Args:
        exact: count rows with ``count(*)`` on each live table (reads every partition).
    """
    parts = [PartitionStats(**row) for row in catalog.partition_stats(using)]
    # Class ids in the LMS's own type (1, 2, 10), then each class table before its terms,
    # each term table followed by its month tables.
    class_key = lms.class_id_order(using)
    parts.sort(
        key=lambda p: (
            class_key(p.class_id),
            p.term_starts_at is not None,
            p.term_starts_at,
            p.term_id,
            p.month,
            p.starts_at,
        )
    )
    ranks = {c: i for i, c in enumerate(dict.fromkeys(p.class_id for p in parts))}
    for p in parts:
        p.class_rank = ranks[p.class_id]
    shards = _from_shards(parts, exact, using)
    with cursor(using) as cur:
        if exact:
            for part in parts:
                if part.status == Status.LIVE and part.present and part.shard == LOCAL:
                    part.rows, part.exact = catalog.exact_count(cur, part.table_name), True
        in_parent = catalog.rows_in_parent(cur)
    total = sum(p.total_bytes for p in parts)
    for p in parts:
        p.share = p.total_bytes / total if total else 0.0
    return Overview(parts, in_parent, shards)


def _why(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


Figures = dict[tuple[str, str], dict[str, Any]]
Counts = dict[tuple[str, str], int]


def _ask(alias: str, keys: list[tuple[str, str]], exact: bool) -> tuple[Figures, Counts]:
    """One shard's figures of ``keys`` (and ``--exact`` counts), each query stopped after
    SHARD_STATS_TIMEOUT: a shard that hangs must not hold up the page or the scrape."""
    if not shard_stats.has_alias(alias):
        raise LookupError(f"no alias {alias!r} in DATABASES")
    timeout = app_settings.SHARD_STATS_TIMEOUT
    figures = shard_stats.remote_stats(alias, keys, timeout)
    present = [k for k in keys if figures.get(k, {}).get("present")]
    return figures, (shard_stats.remote_counts(alias, present, timeout) if exact else {})


def _failure(exc: Exception) -> tuple[str, str]:
    """(what its partitions say, why) of a shard that did not answer."""
    if is_statement_timeout(exc):
        return (
            SHARD_TIMED_OUT,
            f"timed out (SHARD_STATS_TIMEOUT {app_settings.SHARD_STATS_TIMEOUT})",
        )
    return SHARD_UNREACHABLE, _why(exc)


def _from_shards(parts: list[PartitionStats], exact: bool, using: str) -> dict[str, str | None]:
    """Fill the foreign partitions' figures from their shards; each shard asked -> error.

    One query per shard for all its tables (two with ``exact``), every configured shard
    asked (so one with no partition yet still says whether it answers).
    """
    remote = shard_stats.foreign_tables(using)
    if not remote and not app_settings.shards:
        return {}
    by_table = {p.table_name: p for p in parts}
    wanted: dict[str, list[shard_stats.RemoteTable]] = {a: [] for a in app_settings.shards}
    for r in remote:
        wanted.setdefault(r.alias or r.server, []).append(r)
    answers: dict[str, str | None] = {}
    for alias, tables in wanted.items():
        keys = [(r.schema_name, r.table_name) for r in tables]
        failure = SHARD_UNREACHABLE
        try:
            figures, counts = _ask(alias, keys, exact)
        except (Error, LookupError) as exc:
            failure, answers[alias] = _failure(exc)
            if alias not in _DOWN:  # once per outage, not at every page view or scrape
                _DOWN.add(alias)
                logger.warning(
                    "partition statistics: shard %r did not answer (%s); its %d partition(s) "
                    "are shown without figures until it does",
                    alias,
                    answers[alias],
                    len(tables),
                )
            figures, counts = {}, {}
        else:
            answers[alias] = None
            if alias in _DOWN:
                _DOWN.discard(alias)
                logger.warning("partition statistics: shard %r answers again", alias)
        for r, key in zip(tables, keys, strict=True):
            part = by_table.get(r.table)
            if part is None:
                continue
            part.shard = alias
            if answers[alias] is not None:
                part.shard_error = f"{failure} ({alias})"
                _clear(part)
                continue
            for name, value in figures.get(key, {}).items():
                setattr(part, name, value)
            if key in counts and part.status == Status.LIVE:
                part.rows, part.exact = counts[key], True
    return answers


def _clear(part: PartitionStats) -> None:
    """No figure of a partition whose shard did not answer (the coordinator's are 0s)."""
    for name in shard_stats.STAT_COLUMNS:
        if name in ("present",):
            continue
        value = getattr(part, name)
        if isinstance(value, bool):
            setattr(part, name, False)
        elif isinstance(value, int):
            setattr(part, name, 0)
        else:
            setattr(part, name, None)


@dataclass
class StatementStats:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int


@dataclass
class QueryStats:
    """The slowest statements touching activity_grades, when pg_stat_statements is usable."""

    available: bool
    reason: str  # why not, when not available
    statements: list[StatementStats]


def slow_statements(limit: int = 10, using: str = "default") -> QueryStats:
    """Read pg_stat_statements if the extension is installed and loaded."""
    if not catalog.has_extension(using, "pg_stat_statements"):
        return QueryStats(False, "the pg_stat_statements extension is not installed", [])
    try:
        with transaction.atomic(using=using):
            found = catalog.slow_statements(using, limit)
    except DatabaseError as exc:  # not in shared_preload_libraries, no privilege
        return QueryStats(False, str(exc).strip().splitlines()[0], [])
    return QueryStats(True, "", [StatementStats(*row) for row in found])
