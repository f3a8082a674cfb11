"""SQL of the file export: a year's archived grades out in batches, files loaded back.

The export reads the view ``archived_activity_grades`` (both archive formats) for one
academic year; verification loads the written file into a temporary table shaped like
the row archive and compares count and checksum (``archive.checksum_expr``) with the
year in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections
from psycopg import sql

from ..core.constants import ARCHIVE_PARENT, ARCHIVE_ROWS_PARENT
from .archive import Checksum, checksum_expr, columns_sql
from .connection import Cursor, execute

__all__ = [
    "LOAD_TABLE",
    "archive_columns",
    "checksum_table",
    "checksum_year",
    "create_load_table",
    "duplicates",
    "load_rows",
    "stream_year",
]

# The temporary table a file is loaded into (dropped at the end of the transaction).
LOAD_TABLE = "activity_grades_file_rows"

# Values sent to the file as their PostgreSQL text (jsonb and any type Arrow lacks).
_NATIVE = frozenset(
    {
        "double precision",
        "real",
        "integer",
        "bigint",
        "smallint",
        "boolean",
        "text",
        "timestamp with time zone",
        "timestamp(3) with time zone",
    }
)


def archive_columns(cur: Cursor) -> list[tuple[str, str]]:
    """(name, type) of every column of the view: the grade columns, archived_at, year."""
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        [ARCHIVE_PARENT],
    )
    return [(n, t) for n, t in cur.fetchall()]


def _select(columns: list[tuple[str, str]]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.Identifier("a", n)
        if t in _NATIVE
        else sql.SQL("{}::text").format(sql.Identifier("a", n))
        for n, t in columns
    )


def stream_year(
    using: str, year: str, columns: list[tuple[str, str]], batch_rows: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The archived grades of ``year``, ``batch_rows`` at a time, ordered by (class, term,
    student, activity, id), from a server-side cursor (call inside a transaction)."""
    with connections[using].chunked_cursor() as cur:
        execute(
            cur,
            sql.SQL(
                "SELECT {} FROM {} a WHERE a.academic_year = %s "
                'ORDER BY a.class_id, a.term_id, a.student_id COLLATE "C", '
                'a.activity_id COLLATE "C", a.id COLLATE "C"'
            ).format(_select(columns), sql.Identifier(ARCHIVE_PARENT)),
            [year],
        )
        while batch := cur.fetchmany(batch_rows):
            yield list(batch)


def checksum_year(cur: Cursor, year: str, cols: list[str]) -> Checksum:
    execute(
        cur,
        checksum_expr(sql.SQL(", ").join(sql.Identifier("a", c) for c in cols))
        + sql.SQL(" FROM {} a WHERE a.academic_year = %s").format(sql.Identifier(ARCHIVE_PARENT)),
        [year],
    )
    count, total = cur.fetchone()
    return count, total


def create_load_table(cur: Cursor) -> str:
    """An empty temporary table with the row archive's columns, dropped at commit.

    Inside a caller's transaction (savepoints) an earlier load's table is still there:
    it is emptied instead.
    """
    table = sql.Identifier(LOAD_TABLE)
    execute(
        cur,
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DROP").format(
            table, sql.Identifier(ARCHIVE_ROWS_PARENT)
        ),
    )
    execute(cur, sql.SQL("TRUNCATE {}").format(table))
    return LOAD_TABLE


def load_rows(cur: Cursor, cols: list[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """COPY ``rows`` (values or their PostgreSQL text) into the load table."""
    raw: Any = getattr(cur, "cursor", cur)  # psycopg's own cursor under Django's wrapper
    n = 0
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(LOAD_TABLE), columns_sql(cols)
    )
    with raw.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def checksum_table(cur: Cursor, table: str, cols: list[str]) -> Checksum:
    execute(
        cur,
        checksum_expr(sql.SQL(", ").join(sql.Identifier("t", c) for c in cols))
        + sql.SQL(" FROM ONLY {} t").format(sql.Identifier(table)),
    )
    count, total = cur.fetchone()
    return count, total


def duplicates(cur: Cursor, table: str) -> int:
    """Grades of ``table`` whose id is archived already or live."""
    execute(
        cur,
        sql.SQL(
            "SELECT count(*) FROM ONLY {} t WHERE EXISTS (SELECT 1 FROM {} a "
            "WHERE a.academic_year = t.academic_year AND a.id = t.id) "
            "OR EXISTS (SELECT 1 FROM activity_grades_key k WHERE k.id = t.id)"
        ).format(sql.Identifier(table), sql.Identifier(ARCHIVE_PARENT)),
    )
    return int(cur.fetchone()[0])
