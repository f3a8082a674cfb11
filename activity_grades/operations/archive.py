"""Move ended terms' grades into the archive (``manage.py archive_grades``).

Each live (class, term) leaf is archived in its own short transaction: copy its rows into
the academic year's chunk table (compressed chunks of ``ARCHIVE_CHUNK_ROWS`` grades, one
array per column: ``db/chunks.py``), verify count and checksum inside the transaction,
delete its keys from ``activity_grades_key``, drop (or detach) the leaf and mark the
registry row. A kill at any point leaves every grade either live or archived, never both
nor neither; a rerun picks up the partitions still ``live``.

A leaf of a class on a shard (a foreign table, issue 16) is archived into the same
chunks on the coordinator, read through its foreign table; its remote table is locked on
the shard around the coordinator's transaction and dropped there after its commit
(``shard_archive``; an interruption in between is E039, finished by the next run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from ..core.constants import LOGGER_NAME, PARTITION_MARKER, Status
from ..core.exceptions import ArchiveError
from ..core.settings import app_settings
from ..core.signals import send_on_commit, term_archived
from ..db import archive as sql_archive
from ..db import catalog, chunks, ddl, dispatch, lms, months, moves, registry, shard_partitions
from ..db.connection import Cursor, atomic, cursor, lock_timeout_errors, set_lock_timeout
from . import shard_archive
from . import shards as shards_ops
from .base import Plan, Progress, Result, Stopwatch, each, run_steps
from .shard_archive import RemoteLeaf

__all__ = ["ArchiveItem", "ArchivePlan", "ArchiveResult", "ensure_archive_year", "plan"]

logger = logging.getLogger(LOGGER_NAME)


@dataclass
class ArchiveItem:
    """One live (class, term) leaf to archive."""

    registry_id: int
    class_id: str
    term_id: str
    table_name: str
    academic_year: str
    rows: int
    bytes: int
    remote: RemoteLeaf | None = None  # a foreign leaf: where its rows are


@dataclass
class ArchiveResult(Result):
    archived: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no longer live when their turn came
    rows: int = 0
    bytes_freed: int = 0
    finished: list[str] = field(default_factory=list)  # E039 leftovers dropped


@dataclass
class ArchivePlan(Plan[ArchiveItem, ArchiveResult]):
    terms: list[str] = field(default_factory=list)
    keep_detached: bool = False
    # Remote tables of archived terms left on their shard by an interrupted archive (E039):
    # ``apply`` drops them first, each verified against the archive.
    leftovers: list[shard_archive.Orphan] = field(default_factory=list)

    def apply(self, progress: Progress | None = None) -> ArchiveResult:
        """Archive every leaf, one transaction each (safe to rerun after a crash).

        Raises:
            ArchiveError: a leaf failed its checks; leaves archived before it stay archived.
        """
        clock = Stopwatch()
        result = ArchiveResult()
        shards = [item.remote.shard for item in self.items if item.remote is not None]
        shards_ops.require_answers(shards, "archive its classes' partitions", ArchiveError)
        for orphan in self.leftovers:
            try:
                result.finished.append(shard_archive.finish(orphan, self.using))
            except (ArchiveError, DatabaseError) as exc:
                logger.warning("%s: %s", shard_archive.ORPHAN_REMOTE, exc)
        for year in dict.fromkeys(item.academic_year for item in self.items):
            ensure_archive_year(year, self.using)
        for item, rows in each(self.items, self._archive_one, progress):
            if rows is None:
                result.skipped.append(item.table_name)
                continue
            result.archived.append(item.table_name)
            result.rows += rows
            result.bytes_freed += item.bytes
            logger.info("archived %s rows of %s (%s)", rows, item.table_name, item.academic_year)
        if result.archived:
            registry_changed(self.using)
        result.seconds = clock.seconds
        return result

    def _archive_one(self, item: ArchiveItem) -> int | None:
        one = _LeafArchiver(item, self.keep_detached)
        steps = [one.lock, one.copy, one.verify, one.keys, one.drop]
        with lock_timeout_errors(item.table_name, app_settings.archive_lock_timeout):
            if item.remote is None:
                done = run_steps(self.using, app_settings.archive_lock_timeout, steps)
            else:
                done = self._archive_foreign(item, item.remote, steps)
        if not done:
            return None
        send_on_commit(
            term_archived,
            self.using,
            class_id=item.class_id,
            term_id=item.term_id,
            academic_year=item.academic_year,
            table=item.table_name,
            rows=one.rows,
            detached=self.keep_detached,
        )
        return one.rows

    def _archive_foreign(
        self, item: ArchiveItem, leaf: RemoteLeaf, steps: Sequence[Callable[[Cursor], bool | None]]
    ) -> bool:
        """A foreign leaf: the coordinator's steps inside the shard's transaction that
        holds the remote table, then the remote drop (``shard_archive``)."""
        committed = False
        try:
            with shard_archive.held(leaf) as shard_cur:
                if not run_steps(self.using, app_settings.archive_lock_timeout, steps):
                    return False
                committed = True
                shard_archive.drop_held(shard_cur, leaf)
        except DatabaseError as exc:
            if committed:
                logger.warning(
                    "archived %s, but dropping %s failed (%s): %s; the next archive_grades "
                    "or check_partitions --fix drops it",
                    item.table_name,
                    leaf,
                    shard_archive.ORPHAN_REMOTE,
                    exc,
                )
                return True
            raise ArchiveError(
                f"archiving {item.table_name} ({leaf}) failed: {str(exc).strip()}; nothing "
                "of it was changed"
            ) from exc
        return True


def registry_changed(using: str) -> None:
    """After archiving or restoring: forget cached names, refresh the trigger's fast path."""
    # Other processes expire their cached names after registry.CACHE_SECONDS.
    registry.invalidate_cache()
    dispatch.install(using)


class _LeafArchiver:
    """The steps of archiving one leaf, in one transaction (``run_steps``)."""

    def __init__(self, item: ArchiveItem, keep_detached: bool) -> None:
        self.item = item
        self.keep_detached = keep_detached
        self.parent = ""
        self.target = ""
        self.cols: list[str] = []
        self.chunk_ids: list[int] = []
        self.copied = 0
        self.rows = 0
        # A term by month: its month tables are archived with it, in the same transaction.
        self.months: list[months.MonthRow] = []

    @property
    def only(self) -> bool:
        """Read the term table alone (no month tables under it)."""
        return not self.months

    def lock(self, cur: Cursor) -> bool:
        item = self.item
        row = registry.lock_row(cur, item.registry_id)
        if row is None or row.table_name != item.table_name or row.status != Status.LIVE:
            return False  # archived by an earlier or concurrent run
        self.parent = row.parent_table
        marker = catalog.marker_of(cur, item.table_name)
        if marker != PARTITION_MARKER:
            raise ArchiveError(
                f"refusing to archive {item.table_name}: its comment is {marker!r}, "
                f"not the ownership marker {PARTITION_MARKER!r}"
            )
        if item.remote is not None:
            # A foreign table cannot be locked: its writers wait on the shard's lock
            # (shard_archive.held); it has no month tables.
            self.target = ddl.ensure_archive_year(cur, item.academic_year)
            self.cols = catalog.grade_columns(cur)
            return True
        # Writers of this leaf wait while it is copied; readers (queries through the
        # parent plan every child) do not. ACCESS EXCLUSIVE only for the final drop.
        ddl.lock_table(cur, item.table_name, "SHARE ROW EXCLUSIVE")
        self.months = months.children_of(cur, item.table_name)
        for month in self.months:
            _check_marker(cur, month.table_name)
            ddl.lock_table(cur, month.table_name, "SHARE ROW EXCLUSIVE")
        self.target = ddl.ensure_archive_year(cur, item.academic_year)
        self.cols = catalog.grade_columns(cur)
        return True

    def copy(self, cur: Cursor) -> None:
        item = self.item
        self.chunk_ids, self.copied = chunks.copy_leaf(
            cur,
            item.table_name,
            self.target,
            self.cols,
            item.academic_year,
            app_settings.ARCHIVE_CHUNK_ROWS,
            only=self.only,
        )

    def verify(self, cur: Cursor) -> None:
        source = sql_archive.checksum_leaf(cur, self.cols, self.item.table_name, only=self.only)
        copy = chunks.checksum_chunks(cur, self.cols, self.target, self.chunk_ids)
        if self.copied != source[0] or copy != source:
            raise ArchiveError(
                f"verification failed for {self.item.table_name}: leaf {source}, archive "
                f"{copy}, inserted {self.copied}; nothing was changed"
            )
        self.rows = source[0]

    def keys(self, cur: Cursor) -> None:
        removed = sql_archive.delete_keys_of(cur, self.item.table_name, only=self.only)
        if removed != self.rows:
            raise ArchiveError(
                f"key index out of step for {self.item.table_name}: {removed} keys for "
                f"{self.rows} rows; nothing was changed"
            )
        chunks.year_added(cur, self.item.academic_year, self.rows, self.item.bytes)

    def drop(self, cur: Cursor) -> None:
        table = self.item.table_name
        for month in self.months:  # first: a table with children cannot be dropped
            ddl.lock_table(cur, month.table_name, "ACCESS EXCLUSIVE")
            if self.keep_detached:  # kept under the detached term table, read with it
                ddl.detach_child(cur, month.table_name)
                months.set_status(cur, month.id, Status.DETACHED)
            else:
                ddl.drop_table(cur, month.table_name)
                months.set_status(cur, month.id, Status.ARCHIVED)
        if self.item.remote is not None:  # keep_detached is refused for it (plan)
            shard_partitions.drop_foreign_table(cur, table)
            registry.set_status(cur, self.item.registry_id, Status.ARCHIVED)
            return
        ddl.lock_table(cur, table, "ACCESS EXCLUSIVE")
        if self.keep_detached:
            ddl.detach(cur, table, self.parent)
            status = Status.DETACHED
        else:
            ddl.drop_table(cur, table)
            status = Status.ARCHIVED
        registry.set_status(cur, self.item.registry_id, status)


def _check_marker(cur: Cursor, table: str) -> None:
    marker = catalog.marker_of(cur, table)
    if marker != PARTITION_MARKER:
        raise ArchiveError(
            f"refusing to archive {table}: its comment is {marker!r}, "
            f"not the ownership marker {PARTITION_MARKER!r}"
        )


def _check_years(terms: dict[str, lms.Term], before: str) -> list[str]:
    years = sorted({t.academic_year for t in terms.values() if t.academic_year})
    if before not in years:
        raise ArchiveError(
            f"unknown academic year {before!r}; known years: " + (", ".join(years) or "none")
        )
    return years


def plan(
    term_ids: Iterable[str] | None = None,
    before_academic_year: str | None = None,
    *,
    force: bool = False,
    keep_detached: bool | None = None,
    now: datetime | None = None,
    using: str = "default",
) -> ArchivePlan:
    """Which live (class, term) leaves an archive request covers, with rows and bytes.

    Args:
        term_ids: terms to archive.
        before_academic_year: also every term whose academic year sorts before this one.
        force: allow the current (or a future) term.
        keep_detached: keep leaves as detached tables (default: ARCHIVE_KEEP_DETACHED).

    Raises:
        ArchiveError: unknown term or year, or the current term without ``force``.
    """
    now = now or timezone.now()
    terms = {t.term_id: t for t in lms.terms(using)}
    chosen: list[str] = []
    for term_id in dict.fromkeys(term_ids or []):
        if term_id not in terms:
            raise ArchiveError(f"unknown term {term_id!r}: it is not in the LMS's terms table")
        chosen.append(term_id)
    if before_academic_year is not None:
        _check_years(terms, before_academic_year)
        chosen += [
            t.term_id
            for t in terms.values()
            if t.academic_year
            and t.academic_year < before_academic_year
            and t.term_id not in chosen
        ]
    if not force:
        for term_id in chosen:
            if terms[term_id].ends_at > now:
                raise ArchiveError(
                    f"term {term_id!r} has not ended yet (ends {terms[term_id].ends_at:%Y-%m-%d}): "
                    "archiving the current or a future term needs --force"
                )
    if keep_detached is None:
        keep_detached = app_settings.ARCHIVE_KEEP_DETACHED
    items: list[ArchiveItem] = []
    with cursor(using) as cur:
        leaves = registry.live_leaves(using, chosen)
        remotes = {
            row.table_name: shard_archive.remote_leaf(cur, row.table_name)
            for row, _ in leaves
            if app_settings.shards
        }
        sharded = [(t, r) for t, r in remotes.items() if r is not None]
        if sharded and keep_detached:
            raise ArchiveError(
                "--keep-detached cannot keep a partition of a class on a shard ("
                + ", ".join(f"{t}: {r}" for t, r in sharded)
                + "): archiving drops its foreign table and its table on the shard; "
                "archive those terms with --no-keep-detached"
            )
        shards_ops.require_answers(
            [r.shard for _, r in sharded], "count its partitions' rows", ArchiveError
        )
        moving = {m.class_id: m.target for m in moves.all_moves(using)}
        busy = sorted({row.class_id for row, _ in leaves if row.class_id in moving})
        if busy:
            raise ArchiveError(
                "class(es) "
                + ", ".join(f"{c!r} (to {moving[c]!r})" for c in busy)
                + " are being moved by move_class: finish or --abort the move first, then "
                "archive (the move copies the class's live tables; an archived one would be "
                "left behind on the target)"
            )
        for row, size in leaves:
            if not row.academic_year:
                raise ArchiveError(f"term {row.term_id!r} has no academic year: cannot archive it")
            rows = catalog.exact_count(cur, row.table_name)
            items.append(
                ArchiveItem(
                    row.id,
                    row.class_id,
                    row.term_id or "",
                    row.table_name,
                    row.academic_year,
                    rows,
                    size,
                    remotes.get(row.table_name),
                )
            )
    return ArchivePlan(
        items,
        using=using,
        terms=chosen,
        keep_detached=keep_detached,
        leftovers=shard_archive.orphans(using),
    )


def ensure_archive_year(year: str, using: str = "default") -> str:
    """Create the archive table of one academic year if missing; return its name.

    Its own short transaction: creating a partition locks the archive's parent, which
    must not stay locked while a whole leaf is copied.
    """
    timeout = app_settings.archive_lock_timeout
    with lock_timeout_errors(f"archive table of {year!r}", timeout):
        with atomic(using), cursor(using) as cur:
            set_lock_timeout(cur, timeout)
            return ddl.ensure_archive_year(cur, year)
