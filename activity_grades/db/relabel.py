"""Archived grades of a term filed under the academic year the term has now (issue 12).

The archive is partitioned by academic year (one chunk table a year, and the row tables
of archives older than migration 0012), and retention drops whole years. When a term's
year label changes after it was archived (the terms table or ``TERM_YEAR_*`` settings),
its archived grades, and the registry rows saying where they went, still carry the old
label: retention reasoned with one year while the archive held another.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from ..core.constants import (
    ARCHIVE_CHUNK_PARENT,
    ARCHIVE_PARENT,
    ARCHIVE_ROWS_PARENT,
    REGISTRY_TABLE,
    Status,
)
from . import archive, ddl
from .archive import Checksum
from .chunks import year_added
from .connection import Cursor, execute

__all__ = ["ArchivedLabel", "archived_label_drift", "checksum_of_term", "relabel"]


@dataclass(frozen=True)
class ArchivedLabel:
    """A term archived under ``academic_year`` whose term is in ``term_year`` now."""

    term_id: str
    academic_year: str
    term_year: str
    partitions: int  # registry rows (archived or detached) under the old label


def archived_label_drift(cur: Cursor) -> list[ArchivedLabel]:
    """Archived terms whose registry year differs from the term's year now."""
    execute(
        cur,
        sql.SQL(
            "SELECT p.term_id, p.academic_year, b.academic_year, count(*) FROM {} p "
            "CROSS JOIN LATERAL activity_grades_term_bounds(p.term_id) b "
            "WHERE p.status <> %s AND p.term_id IS NOT NULL AND b.academic_year IS NOT NULL "
            "AND p.academic_year IS DISTINCT FROM b.academic_year "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2"
        ).format(sql.Identifier(REGISTRY_TABLE)),
        [Status.LIVE.value],
    )
    return [ArchivedLabel(*row) for row in cur.fetchall()]


def checksum_of_term(cur: Cursor, cols: list[str], term_id: str, year: str) -> Checksum:
    """count and order-independent hash sum of a term's archived grades under ``year``."""
    execute(
        cur,
        archive.checksum_expr(sql.SQL(", ").join(sql.Identifier("a", c) for c in cols))
        + sql.SQL(" FROM {} a WHERE a.term_id = %s AND a.academic_year = %s").format(
            sql.Identifier(ARCHIVE_PARENT)
        ),
        [term_id, year],
    )
    count, total = cur.fetchone()
    return count, total


def relabel(cur: Cursor, term_id: str, old: str, new: str) -> int:
    """File one term's archived grades under ``new`` instead of ``old``; the grades moved.

    Moves the chunks (and old-format rows) between the years' tables with one UPDATE of
    the partition key each, keeps each year's grade and source-byte counts, and relabels
    the registry rows. The caller verifies (``checksum_of_term``) in the same transaction.
    """
    moved = 0
    execute(
        cur,
        sql.SQL(
            "SELECT coalesce(sum(row_count), 0) FROM {} WHERE term_id = %s AND academic_year = %s"
        ).format(sql.Identifier(ARCHIVE_CHUNK_PARENT)),
        [term_id, old],
    )
    in_chunks = int(cur.fetchone()[0])
    if in_chunks:
        ddl.ensure_archive_year(cur, new)
        cur.execute(
            "SELECT CASE WHEN rows > 0 THEN (source_bytes * %s / rows)::bigint ELSE 0 END "
            "FROM activity_grades_archive_year WHERE academic_year = %s",
            [in_chunks, old],
        )
        row = cur.fetchone()
        source_bytes = int(row[0]) if row else 0
        execute(
            cur,
            sql.SQL(
                "UPDATE {} SET academic_year = %s WHERE term_id = %s AND academic_year = %s"
            ).format(sql.Identifier(ARCHIVE_CHUNK_PARENT)),
            [new, term_id, old],
        )
        year_added(cur, old, -in_chunks, 0)
        year_added(cur, new, in_chunks, source_bytes)
        moved += in_chunks
    execute(
        cur,
        sql.SQL("SELECT count(*) FROM {} WHERE term_id = %s AND academic_year = %s").format(
            sql.Identifier(ARCHIVE_ROWS_PARENT)
        ),
        [term_id, old],
    )
    in_rows = int(cur.fetchone()[0])
    if in_rows:
        archive.ensure_rows_year(cur, new)
        execute(
            cur,
            sql.SQL(
                "UPDATE {} SET academic_year = %s WHERE term_id = %s AND academic_year = %s"
            ).format(sql.Identifier(ARCHIVE_ROWS_PARENT)),
            [new, term_id, old],
        )
        moved += in_rows
    execute(
        cur,
        sql.SQL(
            "UPDATE {} SET academic_year = %s WHERE term_id = %s AND academic_year = %s "
            "AND status <> %s"
        ).format(sql.Identifier(REGISTRY_TABLE)),
        [new, term_id, old, Status.LIVE.value],
    )
    return moved
