"""Move old terms' grades into the archive and back, one partition per transaction.

Each (class, term) leaf is archived in its own short transaction: copy its rows into the
academic year's archive table, verify count and checksum inside the transaction, delete
its keys from ``activity_grades_key``, drop (or detach) the leaf and mark the registry
row. A kill at any point leaves every grade either live or archived, never both nor
neither; a rerun picks up the partitions still ``live``. Restoring is the mirror image.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone
from psycopg import sql

from . import conf, dispatch, partitioning

logger = logging.getLogger("activity_grades")

PARTITION_MARKER = "activity_grades:partition"
DETACHED_MARKER = "activity_grades:detached"
ARCHIVE_MARKER = "activity_grades:archive"
LIVE_PARENT = "activity_grades"
ARCHIVE_PARENT = "archived_activity_grades"
# Test hook (crash tests): "stage=seconds[,stage=seconds]" sleeps at that point of every
# partition's transaction (pg_sleep, so the server is busy) or, for "between", after commit.
FAULT_ENV = "ACTIVITY_GRADES_ARCHIVE_FAULT_SLEEP"
_KEY_TRIGGERS = (
    "activity_grades_keys_insert",
    "activity_grades_keys_delete",
    "activity_grades_keys_update",
    "activity_grades_move",
    "activity_grades_no_truncate",
)


class ArchiveError(ValueError):
    """A request that cannot be carried out (unknown term, current term, bad marker...)."""


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


class _RowTotal:
    """``rows`` of a plan: the sum over ``self.items``."""

    items: list

    @property
    def rows(self) -> int:
        return sum(i.rows for i in self.items)


class PlanTotals(_RowTotal):
    """``rows`` and ``bytes`` of a plan whose items have both."""

    @property
    def bytes(self) -> int:
        return sum(i.bytes for i in self.items)


@dataclass
class ArchivePlan(PlanTotals):
    terms: list[str]
    items: list[ArchiveItem]
    keep_detached: bool = False


@dataclass
class ArchiveResult:
    archived: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no longer live when their turn came
    rows: int = 0
    bytes_freed: int = 0
    seconds: float = 0.0


@dataclass
class RestoreItem:
    """Archived grades of one (class, term) to bring back."""

    class_id: str
    term_id: str
    academic_year: str
    archive_table: str
    rows: int


@dataclass
class RestorePlan(_RowTotal):
    terms: list[str]
    items: list[RestoreItem]


@dataclass
class RestoreResult:
    restored: list[str] = field(default_factory=list)  # live table names
    rows: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- helpers


def _fault(cursor, stage: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    for part in filter(None, spec.split(",")):
        name, _, seconds = part.partition("=")
        if name.strip() == stage:
            if cursor is None:
                time.sleep(float(seconds))
            else:
                cursor.execute("SELECT pg_sleep(%s)", [float(seconds)])


def _q(cursor, composed: sql.Composable, params: Iterable | None = None) -> None:
    cursor.execute(composed.as_string(cursor.connection), params)


def grade_columns(cursor) -> list[str]:
    """The columns of ``activity_grades`` in table order (the archive has them all)."""
    cursor.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [LIVE_PARENT],
    )
    return [r[0] for r in cursor.fetchall()]


def _marker(cursor, table: str) -> str | None:
    cursor.execute("SELECT obj_description(to_regclass(quote_ident(%s)), 'pg_class')", [table])
    return cursor.fetchone()[0]


def _lock_timeout(cursor) -> None:
    cursor.execute(
        "SELECT set_config('lock_timeout', %s, true)", [conf.get("ARCHIVE_LOCK_TIMEOUT")]
    )


def _checksum(cols: list[str], alias: str) -> sql.Composed:
    """count + order-independent sum of a 64-bit hash of every column of each row.

    ``hash_record_extended`` (PostgreSQL 14+) hashes each value with its type's hash
    function: about 4x faster than hashing the row's text on large jsonb/text values.
    """
    row = sql.SQL(", ").join(sql.Identifier(alias, c) for c in cols)
    return sql.SQL(
        "SELECT count(*), coalesce(sum(hash_record_extended(ROW({}), 0)::numeric), 0)"
    ).format(row)


@contextmanager
def _lock_errors(what: str) -> Iterator[None]:
    """A lock_timeout is a "try again later", not a crash: its transaction rolled back."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":
            raise
        raise ArchiveError(
            f"{what}: could not get a lock within ARCHIVE_LOCK_TIMEOUT "
            f"({conf.get('ARCHIVE_LOCK_TIMEOUT')}); nothing of it changed, rerun later"
        ) from exc


def _term_map(using: str) -> dict[str, partitioning.Term]:
    return {t.term_id: t for t in partitioning.list_terms(using)}


# --------------------------------------------------------------------------- archive


def plan_archive(
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
    terms = _term_map(using)
    chosen: list[str] = []
    for term_id in dict.fromkeys(term_ids or []):
        if term_id not in terms:
            raise ArchiveError(f"unknown term {term_id!r}: it is not in the LMS's terms table")
        chosen.append(term_id)
    if before_academic_year is not None:
        years = sorted({t.academic_year for t in terms.values() if t.academic_year})
        if before_academic_year not in years:
            raise ArchiveError(
                f"unknown academic year {before_academic_year!r}; known years: "
                + (", ".join(years) or "none")
            )
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
    items: list[ArchiveItem] = []
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT id, class_id, term_id, table_name, academic_year, "
            "coalesce(pg_total_relation_size(to_regclass(quote_ident(table_name))), 0) "
            "FROM activity_grades_partition WHERE status = 'live' AND term_id = ANY(%s) "
            "ORDER BY term_id, class_id",
            [chosen],
        )
        for rid, class_id, term_id, table, year, size in cursor.fetchall():
            if not year:
                raise ArchiveError(f"term {term_id!r} has no academic year: cannot archive it")
            _q(cursor, sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table)))
            items.append(
                ArchiveItem(rid, class_id, term_id, table, year, cursor.fetchone()[0], size)
            )
    if keep_detached is None:
        keep_detached = bool(conf.get("ARCHIVE_KEEP_DETACHED"))
    return ArchivePlan(chosen, items, keep_detached)


def ensure_archive_year(year: str, using: str = "default") -> str:
    """Create the archive table of one academic year if missing; return its name.

    Its own short transaction: creating a partition locks the archive's parent, which
    must not stay locked while a whole leaf is copied.
    """
    with _lock_errors(f"archive table of {year!r}"):
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            _lock_timeout(cursor)
            cursor.execute("SELECT table_name FROM activity_grades_archive_year(%s)", [year])
            return cursor.fetchone()[0]


def archive_partition(
    item: ArchiveItem, keep_detached: bool = False, using: str = "default"
) -> int | None:
    """Archive one leaf in one transaction; return its row count (None: no longer live)."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        _lock_timeout(cursor)
        cursor.execute(
            "SELECT table_name, status, parent_table FROM activity_grades_partition "
            "WHERE id = %s FOR UPDATE",
            [item.registry_id],
        )
        row = cursor.fetchone()
        if row is None or row[0] != item.table_name or row[1] != "live":
            return None  # archived by an earlier or concurrent run
        parent = row[2]
        marker = _marker(cursor, item.table_name)
        if marker != PARTITION_MARKER:
            raise ArchiveError(
                f"refusing to archive {item.table_name}: its comment is {marker!r}, "
                f"not the ownership marker {PARTITION_MARKER!r}"
            )
        leaf = sql.Identifier(item.table_name)
        # Writers of this leaf wait while it is copied; readers (queries through the
        # parent plan every child) do not. ACCESS EXCLUSIVE only for the final drop.
        _q(cursor, sql.SQL("LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE").format(leaf))
        cursor.execute(
            "SELECT table_name FROM activity_grades_archive_year(%s)", [item.academic_year]
        )
        target = sql.Identifier(cursor.fetchone()[0])
        cols = grade_columns(cursor)
        col_list = sql.SQL(", ").join(map(sql.Identifier, cols))
        _q(
            cursor,
            sql.SQL(
                "INSERT INTO {} ({}, academic_year) SELECT {}, %s FROM ONLY {} ORDER BY id"
            ).format(target, col_list, col_list, leaf),
            [item.academic_year],
        )
        copied = cursor.rowcount
        _fault(cursor, "after_copy")
        _q(cursor, _checksum(cols, "l") + sql.SQL(" FROM ONLY {} l").format(leaf))
        source = cursor.fetchone()
        _q(
            cursor,
            _checksum(cols, "a")
            + sql.SQL(" FROM {} a WHERE EXISTS (SELECT 1 FROM ONLY {} l WHERE l.id = a.id)").format(
                target, leaf
            ),
        )
        copy = cursor.fetchone()
        if copied != source[0] or tuple(copy) != tuple(source):
            raise ArchiveError(
                f"verification failed for {item.table_name}: leaf {source}, archive {copy}, "
                f"inserted {copied}; nothing was changed"
            )
        # DROP fires no row triggers: remove the leaf's keys explicitly.
        _q(
            cursor,
            sql.SQL("DELETE FROM activity_grades_key k USING ONLY {} l WHERE k.id = l.id").format(
                leaf
            ),
        )
        if cursor.rowcount != source[0]:
            raise ArchiveError(
                f"key index out of step for {item.table_name}: {cursor.rowcount} keys for "
                f"{source[0]} rows; nothing was changed"
            )
        _fault(cursor, "after_keys")
        _q(cursor, sql.SQL("LOCK TABLE ONLY {} IN ACCESS EXCLUSIVE MODE").format(leaf))
        if keep_detached:
            _detach(cursor, item.table_name, parent)
            status = "detached"
        else:
            _q(cursor, sql.SQL("DROP TABLE {}").format(leaf))
            status = "archived"
        cursor.execute(
            "UPDATE activity_grades_partition SET status = %s WHERE id = %s",
            [status, item.registry_id],
        )
        _fault(cursor, "before_commit")
    _fault(None, "between")
    return source[0]


def _detach(cursor, table: str, parent: str) -> None:
    """Keep the leaf outside the tree as a read-only copy, no longer the app's to drop."""
    leaf = sql.Identifier(table)
    _q(cursor, sql.SQL("ALTER TABLE {} NO INHERIT {}").format(leaf, sql.Identifier(parent)))
    for trigger in _KEY_TRIGGERS:
        _q(cursor, sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), leaf))
    _q(cursor, sql.SQL("COMMENT ON TABLE {} IS {}").format(leaf, sql.Literal(DETACHED_MARKER)))


def archive(
    archive_plan: ArchivePlan,
    progress: Callable[[int, int, ArchiveItem, int | None], None] | None = None,
    using: str = "default",
) -> ArchiveResult:
    """Archive every leaf of a plan, one transaction each (safe to rerun after a crash)."""
    started = time.monotonic()
    result = ArchiveResult()
    for year in dict.fromkeys(item.academic_year for item in archive_plan.items):
        ensure_archive_year(year, using)
    for i, item in enumerate(archive_plan.items, 1):
        with _lock_errors(item.table_name):
            rows = archive_partition(item, archive_plan.keep_detached, using)
        if rows is None:
            result.skipped.append(item.table_name)
        else:
            result.archived.append(item.table_name)
            result.rows += rows
            result.bytes_freed += item.bytes
            logger.info("archived %s rows of %s (%s)", rows, item.table_name, item.academic_year)
        if progress:
            progress(i, len(archive_plan.items), item, rows)
    if result.archived:
        _registry_changed(using)
    result.seconds = time.monotonic() - started
    return result


def _registry_changed(using: str) -> None:
    # This process's service must not read a table that is gone (other processes
    # expire their cached names after service.CACHE_SECONDS), and the trigger's fast
    # path should cover the leaves that are live now.
    from .service import invalidate_partition_cache

    invalidate_partition_cache()
    dispatch.install(using)


# --------------------------------------------------------------------------- restore


def _archive_table(cursor, year: str) -> str | None:
    cursor.execute(
        "SELECT table_name FROM activity_grades_archive_year WHERE academic_year = %s", [year]
    )
    row = cursor.fetchone()
    return row[0] if row else None


def plan_restore(
    term_ids: Iterable[str], class_ids: Iterable[str] | None = None, using: str = "default"
) -> RestorePlan:
    """Which archived (class, term) groups a restore request covers, with row counts."""
    terms = _term_map(using)
    chosen = list(dict.fromkeys(term_ids))
    if not chosen:
        raise ArchiveError("name at least one term to restore")
    classes = list(dict.fromkeys(class_ids or []))
    items: list[RestoreItem] = []
    with connections[using].cursor() as cursor:
        for term_id in chosen:
            if term_id not in terms:
                raise ArchiveError(f"unknown term {term_id!r}: it is not in the LMS's terms table")
            year = terms[term_id].academic_year
            table = _archive_table(cursor, year) if year else None
            if table is None:
                continue
            query = sql.SQL(
                "SELECT class_id, count(*) FROM ONLY {} WHERE term_id = %s "
                "AND (cardinality(%s::text[]) = 0 OR class_id = ANY(%s::text[])) "
                "GROUP BY class_id ORDER BY class_id"
            ).format(sql.Identifier(table))
            _q(cursor, query, [term_id, classes, classes])
            items += [RestoreItem(c, term_id, year, table, n) for c, n in cursor.fetchall()]
    return RestorePlan(chosen, items)


def restore_partition(item: RestoreItem, using: str = "default") -> tuple[str, int]:
    """Bring one (class, term) back into its live leaf in one transaction."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        _lock_timeout(cursor)
        cursor.execute(
            "SELECT table_name FROM activity_grades_ensure_partition(%s, %s)",
            [item.class_id, item.term_id],
        )
        table = cursor.fetchone()[0]
        marker = _marker(cursor, table)
        if marker != PARTITION_MARKER:
            raise ArchiveError(f"refusing to restore into {table}: its comment is {marker!r}")
        leaf, source_table = sql.Identifier(table), sql.Identifier(item.archive_table)
        # Blocks writers of this leaf (and a concurrent restore/archive of it), not readers.
        _q(cursor, sql.SQL("LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE").format(leaf))
        cols = grade_columns(cursor)
        col_list = sql.SQL(", ").join(map(sql.Identifier, cols))
        where = sql.SQL(" WHERE a.class_id = %s AND a.term_id = %s")
        params = [item.class_id, item.term_id]
        try:
            _q(
                cursor,
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ONLY {} a").format(
                    leaf,
                    col_list,
                    sql.SQL(", ").join(sql.Identifier("a", c) for c in cols),
                    source_table,
                )
                + where
                + sql.SQL(" ORDER BY a.id"),
                params,
            )
        except IntegrityError as exc:
            raise ArchiveError(
                f"cannot restore class {item.class_id!r} term {item.term_id!r}: a live grade "
                f"has the same id or (activity, student) as an archived one ({exc}); "
                "nothing was changed"
            ) from exc
        copied = cursor.rowcount
        _fault(cursor, "after_copy")
        _q(
            cursor,
            _checksum(cols, "a") + sql.SQL(" FROM ONLY {} a").format(source_table) + where,
            params,
        )
        source = cursor.fetchone()
        _q(
            cursor,
            _checksum(cols, "l")
            + sql.SQL(" FROM ONLY {} l WHERE EXISTS (SELECT 1 FROM ONLY {} a").format(
                leaf, source_table
            )
            + where
            + sql.SQL(" AND a.id = l.id)"),
            params,
        )
        copy = cursor.fetchone()
        if copied != source[0] or tuple(copy) != tuple(source):
            raise ArchiveError(
                f"verification failed restoring into {table}: archive {source}, live {copy}; "
                "nothing was changed"
            )
        _q(cursor, sql.SQL("DELETE FROM ONLY {} a").format(source_table) + where, params)
        if cursor.rowcount != copied:
            raise ArchiveError(f"archive changed while restoring into {table}; nothing was changed")
        _fault(cursor, "before_commit")
    _fault(None, "between")
    return table, copied


def restore(
    restore_plan: RestorePlan,
    progress: Callable[[int, int, RestoreItem, int], None] | None = None,
    using: str = "default",
) -> RestoreResult:
    """Restore every group of a plan, one transaction each (safe to rerun)."""
    started = time.monotonic()
    result = RestoreResult()
    for i, item in enumerate(restore_plan.items, 1):
        with _lock_errors(f"class {item.class_id!r} term {item.term_id!r}"):
            table, rows = restore_partition(item, using)
        result.restored.append(table)
        result.rows += rows
        logger.info(
            "restored %s rows of class %s term %s into %s", rows, item.class_id, item.term_id, table
        )
        if progress:
            progress(i, len(restore_plan.items), item, rows)
    if result.restored:
        _registry_changed(using)
    result.seconds = time.monotonic() - started
    return result


# --------------------------------------------------------------------------- reading


@dataclass
class StudentHistory:
    live: list  # ActivityGrade
    archived: list  # ArchivedActivityGrade

    @property
    def all(self) -> list:
        return sorted(self.live + self.archived, key=lambda g: (g.created_at, g.id))


def student_history(student_id: str, using: str = "default") -> StudentHistory:
    """Every grade of one student, live and archived.

    The live part reads only the partitions the key index names for this student,
    never the whole tree; the archive part uses the archive's (student_id) index.
    """
    from .models import ArchivedActivityGrade
    from .service import ActivityGradeService

    live = ActivityGradeService(using).student_record(student_id)
    archived = list(ArchivedActivityGrade.objects.using(using).filter(student_id=student_id))
    return StudentHistory(live, archived)
