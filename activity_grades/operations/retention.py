"""Retention of archived grades: drop whole academic years from the archive.

Only archive tables (children of ``archived_activity_grades_chunk`` or of the row archive
``archived_activity_grades_rows``, with the marker ``activity_grades:archive``) are ever
dropped; live partitions are never touched.
Academic years compare as text (``"2022-2023" < "2023-2024"``), as with
``archive_grades --before-academic-year``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.utils import timezone

from ..core.constants import ARCHIVE_CHUNK_PARENT, ARCHIVE_MARKER, LOGGER_NAME
from ..core.exceptions import RetentionError
from ..core.settings import app_settings
from ..core.signals import retention_dropped_year, send_on_commit
from ..db import archive as sql_archive
from ..db import catalog, chunks, ddl, lms
from ..db.connection import Cursor, cursor
from ..files import parquet
from .base import Plan, Progress, Result, Stopwatch, each, run_steps
from .export import ExportedYear, export_year

__all__ = [
    "RetentionItem",
    "RetentionPlan",
    "RetentionResult",
    "current_academic_year",
    "plan",
]

logger = logging.getLogger(LOGGER_NAME)


@dataclass
class RetentionItem:
    academic_year: str
    table_name: str
    rows: int
    bytes: int
    rows_format: bool = False  # a row table of before migration 0012, not chunks


@dataclass
class RetentionResult(Result):
    dropped: list[str] = field(default_factory=list)
    rows: int = 0
    bytes_freed: int = 0
    exported: list[ExportedYear] = field(default_factory=list)


@dataclass
class RetentionPlan(Plan[RetentionItem, RetentionResult]):
    keep_years: int = 0
    current_year: str | None = None
    oldest_kept: str | None = None  # years before this one are dropped
    export_to: str | None = None  # write each year to Parquet files here before dropping it

    def apply(self, progress: Progress | None = None) -> RetentionResult:
        """Drop every archive year of the plan, one transaction each.

        With ``export_to``, each year is first exported and its files verified; a table
        whose grades changed since the export is refused.

        Raises:
            RetentionError: a table is not a marked child of the archive (nothing dropped).
            ExportUnavailable: ``export_to`` is set and pyarrow is not installed (nothing
                exported or dropped).
            ExportError: an export failed its verification (that year is not dropped).
        """
        clock = Stopwatch()
        result = RetentionResult()
        if self.export_to is not None:
            parquet.require()
        exports: dict[str, ExportedYear] = {}
        for item, rows in each(
            self.items, lambda i: self._export_then_drop(i, exports, result), progress
        ):
            result.dropped.append(item.table_name)
            result.rows += rows
            result.bytes_freed += item.bytes
            logger.info(
                "retention dropped %s (%s, %s rows)", item.table_name, item.academic_year, rows
            )
        result.seconds = clock.seconds
        return result

    def _export_then_drop(
        self, item: RetentionItem, exports: dict[str, ExportedYear], result: RetentionResult
    ) -> int:
        expected = None
        if self.export_to is not None:
            if item.academic_year not in exports:
                exported = export_year(item.academic_year, Path(self.export_to), self.using)
                exports[item.academic_year] = exported
                result.exported.append(exported)
            expected = exports[item.academic_year].tables.get(item.table_name, 0)
        return self._drop_one(item, expected)

    def _drop_one(self, item: RetentionItem, exported: int | None = None) -> int:
        counted: list[int] = []

        def drop(cur: Cursor) -> None:
            if not sql_archive.is_marked_year_table(cur, item.table_name, ARCHIVE_MARKER):
                raise RetentionError(
                    f"refusing to drop {item.table_name}: not a marked child of "
                    f"{ARCHIVE_CHUNK_PARENT} or of the row archive"
                )
            ddl.lock_table(cur, item.table_name, "ACCESS EXCLUSIVE")
            counted.append(_count(cur, item.table_name, item.rows_format))
            if exported is not None and counted[0] != exported:
                raise RetentionError(
                    f"refusing to drop {item.table_name}: it holds {counted[0]} grades, the "
                    f"export of {item.academic_year} has {exported}; rerun to export again"
                )
            ddl.drop_table(cur, item.table_name)
            sql_archive.forget_year(cur, item.academic_year, item.rows_format)

        run_steps(self.using, app_settings.archive_lock_timeout, [drop])
        send_on_commit(
            retention_dropped_year,
            self.using,
            academic_year=item.academic_year,
            table=item.table_name,
            rows=counted[0],
        )
        return counted[0]


def _count(cur: Cursor, table: str, rows_format: bool) -> int:
    return catalog.exact_count(cur, table) if rows_format else chunks.year_count(cur, table)


def current_academic_year(now: datetime | None = None, using: str = "default") -> str | None:
    """The academic year of the latest term that has started (the current one in term time)."""
    now = now or timezone.now()
    started = [t for t in lms.terms(using) if t.starts_at <= now and t.academic_year]
    return started[-1].academic_year if started else None


def plan(
    years: int | None = None,
    now: datetime | None = None,
    using: str = "default",
    export_to: str | None = None,
) -> RetentionPlan:
    """Which archive years fall outside "keep ``years`` academic years" (current included).

    ``export_to`` (default: RETENTION_EXPORT_DIR): a folder where each dropped year is
    first written to Parquet files and verified.

    Raises:
        RetentionError: no policy (``years`` and RETENTION_YEARS unset), or fewer than 1.
    """
    keep = app_settings.RETENTION_YEARS if years is None else years
    if keep is None:
        raise RetentionError(
            "no retention policy: set ACTIVITY_GRADES['RETENTION_YEARS'] or pass --years"
        )
    if int(keep) < 1:
        raise RetentionError(f"retention must keep at least 1 academic year, not {keep!r}")
    keep = int(keep)
    current = current_academic_year(now, using)
    if current is None:
        return RetentionPlan([], using=using, keep_years=keep)
    known = sorted({t.academic_year for t in lms.terms(using) if t.academic_year})
    up_to_current = [y for y in known if y <= current]
    oldest_kept = up_to_current[max(0, len(up_to_current) - keep)]
    items: list[RetentionItem] = []
    with cursor(using) as cur:
        for year, table, size, rows_format in sql_archive.year_tables_before(using, oldest_kept):
            rows = _count(cur, table, rows_format)
            items.append(RetentionItem(year, table, rows, size, rows_format))
    return RetentionPlan(
        items,
        using=using,
        keep_years=keep,
        current_year=current,
        oldest_kept=oldest_kept,
        export_to=export_to if export_to is not None else app_settings.RETENTION_EXPORT_DIR,
    )
