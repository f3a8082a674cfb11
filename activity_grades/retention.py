"""Retention of archived grades: drop whole academic years from the archive.

Only archive tables (children of ``archived_activity_grades`` with the marker
``COMMENT 'activity_grades:archive'``) are ever dropped; live partitions are never touched.
Academic years compare as text (``"2022-2023" < "2023-2024"``), as with
``archive_grades --before-academic-year``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone
from psycopg import sql

from . import conf, partitioning
from .archiving import ARCHIVE_MARKER, ARCHIVE_PARENT, PlanTotals

logger = logging.getLogger("activity_grades")


class RetentionError(ValueError):
    """No policy, or a policy that makes no sense."""


@dataclass
class RetentionItem:
    academic_year: str
    table_name: str
    rows: int
    bytes: int


@dataclass
class RetentionPlan(PlanTotals):
    keep_years: int
    current_year: str | None
    oldest_kept: str | None  # years before this one are dropped
    items: list[RetentionItem]


@dataclass
class RetentionResult:
    dropped: list[str] = field(default_factory=list)
    rows: int = 0
    bytes_freed: int = 0
    seconds: float = 0.0


def current_academic_year(now: datetime | None = None, using: str = "default") -> str | None:
    """The academic year of the latest term that has started (the current one in term time)."""
    now = now or timezone.now()
    started = [t for t in partitioning.list_terms(using) if t.starts_at <= now and t.academic_year]
    return started[-1].academic_year if started else None


def plan_retention(
    years: int | None = None, now: datetime | None = None, using: str = "default"
) -> RetentionPlan:
    """Which archive years fall outside "keep ``years`` academic years" (current included)."""
    keep = conf.get("RETENTION_YEARS") if years is None else years
    if keep is None:
        raise RetentionError(
            "no retention policy: set ACTIVITY_GRADES['RETENTION_YEARS'] or pass --years"
        )
    if int(keep) < 1:
        raise RetentionError(f"retention must keep at least 1 academic year, not {keep!r}")
    keep = int(keep)
    current = current_academic_year(now, using)
    if current is None:
        return RetentionPlan(keep, None, None, [])
    known = sorted({t.academic_year for t in partitioning.list_terms(using) if t.academic_year})
    up_to_current = [y for y in known if y <= current]
    oldest_kept = up_to_current[max(0, len(up_to_current) - keep)]
    items: list[RetentionItem] = []
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT y.academic_year, y.table_name, "
            "coalesce(c.reltuples, 0)::bigint, coalesce(pg_total_relation_size(c.oid), 0) "
            "FROM activity_grades_archive_year y "
            "LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(y.table_name)) "
            "WHERE y.academic_year < %s ORDER BY y.academic_year",
            [oldest_kept],
        )
        for year, table, _estimate, size in cursor.fetchall():
            query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table))
            cursor.execute(query.as_string(cursor.connection))
            items.append(RetentionItem(year, table, cursor.fetchone()[0], size))
    return RetentionPlan(keep, current, oldest_kept, items)


def drop_archive_year(item: RetentionItem, using: str = "default") -> int:
    """Drop one year's archive table after checking it is the app's archive table."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true)", [conf.get("ARCHIVE_LOCK_TIMEOUT")]
        )
        cursor.execute(
            "SELECT obj_description(c.oid, 'pg_class'), "
            "EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid "
            "        AND i.inhparent = to_regclass(%s)) "
            "FROM pg_class c WHERE c.oid = to_regclass(quote_ident(%s))",
            [ARCHIVE_PARENT, item.table_name],
        )
        row = cursor.fetchone()
        if row is None or row[0] != ARCHIVE_MARKER or not row[1]:
            raise RetentionError(
                f"refusing to drop {item.table_name}: not a marked child of {ARCHIVE_PARENT}"
            )
        table = sql.Identifier(item.table_name)
        cursor.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}").format(table).as_string(cursor.connection)
        )
        rows = cursor.fetchone()[0]
        cursor.execute(sql.SQL("DROP TABLE {}").format(table).as_string(cursor.connection))
        cursor.execute(
            "DELETE FROM activity_grades_archive_year WHERE academic_year = %s",
            [item.academic_year],
        )
    return rows


def apply_retention(
    retention_plan: RetentionPlan,
    progress: Callable[[int, int, RetentionItem, int], None] | None = None,
    using: str = "default",
) -> RetentionResult:
    """Drop every archive year of a plan, one transaction each."""
    started = time.monotonic()
    result = RetentionResult()
    for i, item in enumerate(retention_plan.items, 1):
        rows = drop_archive_year(item, using)
        result.dropped.append(item.table_name)
        result.rows += rows
        result.bytes_freed += item.bytes
        logger.info("retention dropped %s (%s, %s rows)", item.table_name, item.academic_year, rows)
        if progress:
            progress(i, len(retention_plan.items), item, rows)
    result.seconds = time.monotonic() - started
    return result
