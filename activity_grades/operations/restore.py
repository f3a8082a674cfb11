"""Bring archived grades back into live partitions (``manage.py restore_grades``).

The mirror image of ``archive``: one (class, term) per transaction, its live leaf
recreated through ``activity_grades_ensure_partition``, the rows copied back and verified
by count and checksum, and only then removed from the archive. Grades in compressed
chunks (``db/chunks.py``) and grades still in the row archive of before migration 0012
(``db/archive.py``) are restored alike, each format of a group in its own transaction.

A class on a shard (issue 16): its partition is made again on the shard, with its foreign
table on the coordinator (``shard_partitions.ensure_partition``, its own short
transactions, before the group's), and the rows go back through the foreign table in the
group's transaction, verified the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError, IntegrityError

from ..core.constants import LOGGER_NAME, PARTITION_MARKER, Granularity
from ..core.exceptions import ArchiveError, PartitioningError
from ..core.settings import app_settings
from ..core.signals import send_on_commit, term_restored
from ..db import archive as sql_archive
from ..db import catalog, chunks, ddl, lms, months
from ..db.connection import Cursor, cursor, lock_timeout_errors
from . import regranulate, shard_archive, shard_partitions
from . import shards as shards_ops
from .archive import registry_changed
from .base import Plan, Progress, Result, Stopwatch, each, run_steps

__all__ = ["RestoreItem", "RestorePlan", "RestoreResult", "plan"]

logger = logging.getLogger(LOGGER_NAME)


@dataclass
class RestoreItem:
    """Archived grades of one (class, term) to bring back."""

    class_id: str
    term_id: str
    academic_year: str
    archive_table: str
    rows: int
    rows_format: bool = False  # in the row archive of before migration 0012, not in chunks
    shard: str | None = None  # the class's shard: its partition is made there again


@dataclass
class RestoreResult(Result):
    restored: list[str] = field(default_factory=list)  # live table names
    rows: int = 0


@dataclass
class RestorePlan(Plan[RestoreItem, RestoreResult]):
    terms: list[str] = field(default_factory=list)

    def apply(self, progress: Progress | None = None) -> RestoreResult:
        """Restore every group, one transaction each (safe to rerun).

        Raises:
            ArchiveError: a group failed its checks; groups restored before it stay restored.
        """
        clock = Stopwatch()
        result = RestoreResult()
        shards = [item.shard for item in self.items if item.shard]
        shards_ops.require_answers(shards, "restore its classes' grades", ArchiveError)
        shard_archive.finish_all(self.using, shards)  # an interrupted archive first (E039)
        for item, (table, rows) in each(self.items, self._restore_one, progress):
            result.restored.append(table)
            result.rows += rows
            logger.info(
                "restored %s rows of class %s term %s into %s",
                rows,
                item.class_id,
                item.term_id,
                table,
            )
        if result.restored:
            registry_changed(self.using)
            self._to_months()
        result.seconds = clock.seconds
        return result

    def _to_months(self) -> None:
        """Grades restored into a term by month go on to its month tables (verified
        batches, ``operations.regranulate``; an interruption is check_partitions' E023)."""
        kinds = months.term_granularities(self.using)
        for term_id in dict.fromkeys(item.term_id for item in self.items):
            classes = [
                item.class_id
                for item in self.items
                if item.term_id == term_id
                and kinds.get((item.class_id, term_id)) == Granularity.MONTH.value
            ]
            if classes:
                regranulate.plan(
                    term_id, Granularity.MONTH, class_ids=classes, using=self.using
                ).apply()

    def _restore_one(self, item: RestoreItem) -> tuple[str, int]:
        one = _GroupRestorer(item, self.using)
        timeout = app_settings.archive_lock_timeout
        what = f"class {item.class_id!r} term {item.term_id!r}"
        with lock_timeout_errors(what, timeout):
            if item.shard:
                try:
                    one.table, _ = shard_partitions.ensure_partition(
                        item.class_id, item.term_id, self.using
                    )
                    run_steps(self.using, timeout, [one.lock, one.copy, one.verify, one.remove])
                except (PartitioningError, DatabaseError) as exc:
                    raise ArchiveError(
                        f"cannot restore {what} onto shard {item.shard!r}: "
                        f"{str(exc).strip()}; its grades stay archived"
                    ) from exc
            else:
                run_steps(self.using, timeout, [one.lock, one.copy, one.verify, one.remove])
        send_on_commit(
            term_restored,
            self.using,
            class_id=item.class_id,
            term_id=item.term_id,
            academic_year=item.academic_year,
            table=one.table,
            rows=one.copied,
        )
        return one.table, one.copied


class _GroupRestorer:
    """The steps of restoring one (class, term), in one transaction (``run_steps``)."""

    def __init__(self, item: RestoreItem, using: str) -> None:
        self.item = item
        self.using = using
        self.table = ""
        self.cols: list[str] = []
        self.copied = 0

    def lock(self, cur: Cursor) -> None:
        item = self.item
        if not item.shard:
            self.table, _ = ddl.ensure_partition_in(cur, item.class_id, item.term_id, self.using)
        marker = catalog.marker_of(cur, self.table)
        if marker != PARTITION_MARKER:
            raise ArchiveError(f"refusing to restore into {self.table}: its comment is {marker!r}")
        if not item.shard:  # a foreign table cannot be locked
            # Blocks writers of this leaf (and a concurrent restore/archive of it), not readers.
            ddl.lock_table(cur, self.table, "SHARE ROW EXCLUSIVE")
        self.cols = catalog.grade_columns(cur)

    def copy(self, cur: Cursor) -> None:
        item = self.item
        restore = sql_archive.restore_rows if item.rows_format else chunks.restore_group
        try:
            self.copied = restore(
                cur, self.table, item.archive_table, self.cols, item.class_id, item.term_id
            )
        except IntegrityError as exc:
            raise ArchiveError(
                f"cannot restore class {item.class_id!r} term {item.term_id!r}: a live grade "
                f"has the same id or (activity, student) as an archived one ({exc}); "
                "nothing was changed"
            ) from exc

    def verify(self, cur: Cursor) -> None:
        item = self.item
        group = (item.class_id, item.term_id)
        if item.rows_format:
            source = sql_archive.checksum_archived(cur, self.cols, item.archive_table, *group)
            copy = sql_archive.checksum_restored(
                cur, self.cols, self.table, item.archive_table, *group
            )
        else:
            source = chunks.checksum_group(cur, self.cols, item.archive_table, *group)
            copy = chunks.checksum_restored(cur, self.cols, self.table, item.archive_table, *group)
        if self.copied != source[0] or copy != source:
            raise ArchiveError(
                f"verification failed restoring into {self.table}: archive {source}, live "
                f"{copy}; nothing was changed"
            )

    def remove(self, cur: Cursor) -> None:
        item = self.item
        delete = sql_archive.delete_restored if item.rows_format else chunks.delete_group
        removed = delete(cur, item.archive_table, item.class_id, item.term_id)
        if removed != self.copied:
            raise ArchiveError(
                f"archive changed while restoring into {self.table}; nothing was changed"
            )
        if not item.rows_format:
            chunks.year_added(cur, item.academic_year, -removed, 0)


def plan(
    term_ids: Iterable[str], class_ids: Iterable[str] | None = None, using: str = "default"
) -> RestorePlan:
    """Which archived (class, term) groups a restore request covers, with row counts.

    Raises:
        ArchiveError: no term named, or a term the LMS does not have.
    """
    terms = {t.term_id: t for t in lms.terms(using)}
    chosen = list(dict.fromkeys(term_ids))
    if not chosen:
        raise ArchiveError("name at least one term to restore")
    classes = list(dict.fromkeys(class_ids or []))
    items: list[RestoreItem] = []
    shard_of = _shard_lookup(using)
    with cursor(using) as cur:
        for term_id in chosen:
            if term_id not in terms:
                raise ArchiveError(f"unknown term {term_id!r}: it is not in the LMS's terms table")
            year = terms[term_id].academic_year
            if year is None:
                continue
            table = sql_archive.year_table(cur, year)
            if table is not None:
                groups = chunks.archived_groups(cur, table, term_id, classes)
                items += [
                    RestoreItem(c, term_id, year, table, n, shard=shard_of(c)) for c, n in groups
                ]
            table = sql_archive.year_table(cur, year, rows_format=True)
            if table is not None:
                groups = sql_archive.archived_groups(cur, table, term_id, classes)
                items += [
                    RestoreItem(c, term_id, year, table, n, True, shard_of(c)) for c, n in groups
                ]
    return RestorePlan(items, using=using, terms=chosen)


def _shard_lookup(using: str) -> Callable[[str], str | None]:
    """class -> its shard, or None for a local class (records no placement: dry runs)."""

    def shard_of(class_id: str) -> str | None:
        if not shard_partitions.is_sharded(class_id, using):
            return None
        return shard_partitions.shard_for(class_id, using)

    return shard_of
