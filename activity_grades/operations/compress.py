"""Convert the archive between its two formats (``manage.py compress_archive``).

Grades archived before migration 0012 sit one row per grade in the row archive
(``archived_activity_grades_rows``); ``plan()`` converts them into compressed chunks, one
(year, class, term) group per transaction: copy into chunks (each grade keeps its
``archived_at``), verify count and checksum of every column and ``archived_at`` inside
the transaction, delete the group's rows, count the grades into the year's registry row.
A row table left empty is dropped (after checking its marker and that it is empty) in a
transaction of its own. A kill at any point leaves every group wholly in one format; a
rerun converts what is left. ``plan(to="rows")`` is the way back (before migrating back
past 0012, which refuses while chunks hold grades).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..core.constants import ARCHIVE_MARKER, LOGGER_NAME
from ..core.exceptions import ArchiveError
from ..core.settings import app_settings
from ..db import archive as sql_archive
from ..db import catalog, chunks, ddl
from ..db.connection import Cursor, atomic, cursor, lock_timeout_errors, set_lock_timeout
from .archive import ensure_archive_year
from .base import Plan, Progress, Result, Stopwatch, each, run_steps

__all__ = ["CompressItem", "CompressPlan", "CompressResult", "Format", "plan"]

logger = logging.getLogger(LOGGER_NAME)

Format = Literal["chunks", "rows"]


@dataclass
class CompressItem:
    """The grades of one (class, term) of one academic year, in the format they leave."""

    academic_year: str
    source_table: str
    class_id: str | None
    term_id: str | None
    rows: int


@dataclass
class CompressResult(Result):
    groups: int = 0
    rows: int = 0
    dropped: list[str] = field(default_factory=list)  # emptied row tables


@dataclass
class CompressPlan(Plan[CompressItem, CompressResult]):
    to: Format = "chunks"

    def apply(self, progress: Progress | None = None) -> CompressResult:
        """Convert every group, one transaction each (safe to rerun after a crash).

        Raises:
            ArchiveError: a group failed its checks; groups converted before it stay so.
        """
        clock = Stopwatch()
        result = CompressResult()
        targets = {
            year: self._target_year(year)
            for year in dict.fromkeys(i.academic_year for i in self.items)
        }
        for _item, rows in each(self.items, lambda i: self._one(i, targets), progress):
            if rows:
                result.groups += 1
                result.rows += rows
        if self.to == "chunks":
            for table in dict.fromkeys(i.source_table for i in self.items):
                if self._drop_if_empty(table):
                    result.dropped.append(table)
        result.seconds = clock.seconds
        return result

    def _target_year(self, year: str) -> str:
        if self.to == "chunks":
            return ensure_archive_year(year, self.using)
        timeout = app_settings.archive_lock_timeout
        with lock_timeout_errors(f"row archive table of {year!r}", timeout):
            with atomic(self.using), cursor(self.using) as cur:
                set_lock_timeout(cur, timeout)
                return sql_archive.ensure_rows_year(cur, year)

    def _one(self, item: CompressItem, targets: dict[str, str]) -> int:
        one = _GroupMover(item, targets[item.academic_year], self.to)
        timeout = app_settings.archive_lock_timeout
        group = f"class {item.class_id!r} term {item.term_id!r} of {item.academic_year!r}"
        with lock_timeout_errors(group, timeout):
            run_steps(self.using, timeout, [one.lock, one.copy, one.verify, one.remove])
        logger.info("compress_archive: %s grades of %s to %s", one.moved, group, self.to)
        return one.moved

    def _drop_if_empty(self, table: str) -> bool:
        dropped: list[bool] = []

        def drop(cur: Cursor) -> None:
            year = sql_archive.rows_year_of_table(cur, table)
            if year is None or not sql_archive.is_marked_year_table(cur, table, ARCHIVE_MARKER):
                dropped.append(False)
                return
            ddl.lock_table(cur, table, "ACCESS EXCLUSIVE")
            if catalog.exact_count(cur, table):
                dropped.append(False)  # rows arrived meanwhile (compress_archive --to rows)
                return
            ddl.drop_table(cur, table)
            sql_archive.forget_year(cur, year, rows_format=True)
            dropped.append(True)

        run_steps(self.using, app_settings.archive_lock_timeout, [drop])
        return dropped[0]


class _GroupMover:
    """The steps of converting one group, in one transaction (``run_steps``)."""

    def __init__(self, item: CompressItem, target: str, to: Format) -> None:
        self.item = item
        self.target = target
        self.to = to
        self.cols: list[str] = []
        self.rows = 0
        self.moved = 0
        self.chunk_ids: list[int] = []
        self.source: sql_archive.Checksum = (0, 0)

    @property
    def _group(self) -> tuple[str | None, str | None]:
        return self.item.class_id, self.item.term_id

    def lock(self, cur: Cursor) -> bool:
        # Writers of the source (restore, another conversion) wait; readers do not.
        ddl.lock_table(cur, self.item.source_table, "SHARE ROW EXCLUSIVE")
        self.cols = [*catalog.grade_columns(cur), "archived_at"]
        if self.to == "chunks":
            self.source = sql_archive.checksum_row_group(
                cur, self.cols, self.item.source_table, *self._group
            )
        else:
            self.source = chunks.checksum_group(
                cur, self.cols, self.item.source_table, *self._str_group
            )
        return bool(self.source[0])  # converted meanwhile by another run: nothing to do

    @property
    def _str_group(self) -> tuple[str, str]:
        class_id, term_id = self._group
        assert class_id is not None and term_id is not None  # chunk groups are named
        return class_id, term_id

    def copy(self, cur: Cursor) -> None:
        item = self.item
        if self.to == "chunks":
            self.chunk_ids, self.rows = chunks.copy_row_group(
                cur,
                item.source_table,
                *self._group,
                self.target,
                self.cols,
                item.academic_year,
                app_settings.ARCHIVE_CHUNK_ROWS,
            )
        else:
            self.rows = chunks.restore_group(
                cur,
                self.target,
                item.source_table,
                [*self.cols, "academic_year"],
                *self._str_group,
            )

    def verify(self, cur: Cursor) -> None:
        if self.to == "chunks":
            copy = chunks.checksum_chunks(cur, self.cols, self.target, self.chunk_ids)
        else:
            copy = chunks.checksum_restored(
                cur, self.cols, self.target, self.item.source_table, *self._str_group
            )
        if self.rows != self.source[0] or copy != self.source:
            raise ArchiveError(
                f"verification failed converting {self.item.source_table} to {self.to}: "
                f"source {self.source}, copy {copy}, written {self.rows}; nothing was changed"
            )

    def remove(self, cur: Cursor) -> None:
        item = self.item
        if self.to == "chunks":
            share = sql_archive.share_of_size(cur, item.source_table, self.rows)
            removed = sql_archive.delete_row_group(cur, item.source_table, *self._group)
            chunks.year_added(cur, item.academic_year, removed, share)
        else:
            removed = chunks.delete_group(cur, item.source_table, *self._str_group)
            chunks.year_added(cur, item.academic_year, -removed, 0)
        if removed != self.rows:
            raise ArchiveError(f"{item.source_table} changed while converting; nothing was changed")
        self.moved = removed


def plan(to: Format = "chunks", using: str = "default") -> CompressPlan:
    """Every group of the archive still in the other format than ``to``.

    Raises:
        ArchiveError: ``to`` is neither "chunks" nor "rows".
    """
    if to not in ("chunks", "rows"):
        raise ArchiveError(f"unknown archive format {to!r}: 'chunks' or 'rows'")
    items: list[CompressItem] = []
    with cursor(using) as cur:
        for year, table, _size, rows_format in sql_archive.year_tables(using):
            if rows_format != (to == "chunks"):
                continue
            groups: Sequence[tuple[str | None, str | None, int]] = (
                sql_archive.row_groups(cur, table) if rows_format else chunks.groups(cur, table)
            )
            items += [CompressItem(year, table, c, t, n) for c, t, n in groups]
    return CompressPlan(items, using=using, to=to)
