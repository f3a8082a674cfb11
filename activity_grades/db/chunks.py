"""SQL of the compressed archive: grades stored as chunks, one array value per column.

Each chunk row of ``archived_activity_grades_chunk`` (migration 0012) holds up to
``ARCHIVE_CHUNK_ROWS`` grades of one (class, term), grouped and ordered by
(student, activity, id): ``class_id`` and ``term_id`` once, every other grade column as
one array, element *i* of every array being grade *i*. Large, repetitive array values
are what TOAST compresses well; the per-row overhead of a table (tuple header, item
pointer, index entries) is paid once per chunk. ``unnest`` turns a chunk back into
rows (the view ``archived_activity_grades`` does it for everyone).

Verification is the same checksum as the row archive's (``archive.checksum_expr``): a
count and an order-independent sum of ``hash_record_extended`` of every column of each
grade, on the leaf and on the unnested chunks, inside the moving transaction.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ..core.constants import (
    ARCHIVE_CHUNK_PARENT,
    ARCHIVE_PARENT,
    ARCHIVE_ROWS_PARENT,
    ARCHIVE_VIEW_MARKER,
    CHUNK_GROUP_COLUMNS,
)
from ..core.exceptions import ArchiveError
from .archive import Checksum, checksum_expr, columns_sql
from .connection import Cursor, execute, fetch_rows

__all__ = [
    "ChunkCopy",
    "archived_groups",
    "array_columns",
    "checksum_chunks",
    "checksum_group",
    "checksum_restored",
    "copy_leaf",
    "create_view",
    "drop_view",
    "copy_row_group",
    "delete_group",
    "grades_of_student",
    "groups",
    "restore_group",
    "unnested",
    "year_count",
    "year_added",
]

# The order of the grades inside the chunks ("C": byte order, fast and the same on
# every server whatever the database's collation).
_ORDER = sql.SQL('{s}.student_id COLLATE "C", {s}.activity_id COLLATE "C", {s}.id COLLATE "C"')

ChunkCopy = tuple[list[int], int]  # (chunk ids written, grades in them)


# Held once per chunk: the grades' class and term, and the archive's own two columns.
_CHUNK_LEVEL = frozenset({*CHUNK_GROUP_COLUMNS, "archived_at", "academic_year"})


def array_columns(cols: list[str]) -> list[str]:
    """The columns of ``cols`` stored as arrays (all but the ones a chunk holds once)."""
    return [c for c in cols if c not in _CHUNK_LEVEL]


def unnested(
    cols: list[str], chunk: str = "c", row: str = "u"
) -> tuple[sql.Composed, sql.Composed]:
    """(select list of ``cols`` read from chunk alias ``chunk``, its LATERAL unnest clause).

    ``cols`` are grade columns, and may include ``archived_at`` and ``academic_year``.
    """
    arrays = array_columns(cols)
    select = sql.SQL(", ").join(
        sql.Identifier(chunk if c in _CHUNK_LEVEL else row, c) for c in cols
    )
    lateral = sql.SQL(" CROSS JOIN LATERAL unnest({}) AS {}({})").format(
        sql.SQL(", ").join(sql.Identifier(chunk, c) for c in arrays),
        sql.Identifier(row),
        columns_sql(arrays),
    )
    return sql.Composed([select]), lateral


# -- archive: leaf -> chunks ---------------------------------------------------------


def copy_leaf(
    cur: Cursor,
    leaf: str,
    target: str,
    cols: list[str],
    year: str,
    chunk_rows: int,
    *,
    only: bool = True,
) -> ChunkCopy:
    """Write every grade of ``leaf`` into chunks of ``target``; (chunk ids, grades).
    ``only=False``: with its children (a term table's month tables)."""
    source = sql.SQL("{}{} l").format(sql.SQL("ONLY " if only else ""), sql.Identifier(leaf))
    return _copy(cur, source, [], target, cols, year, chunk_rows, keep_archived_at=False)


def copy_row_group(
    cur: Cursor,
    source: str,
    class_id: str | None,
    term_id: str | None,
    target: str,
    cols: list[str],
    year: str,
    chunk_rows: int,
) -> ChunkCopy:
    """Write the grades of (class, term) in the row archive table ``source`` into chunks of
    ``target``, each keeping its ``archived_at`` (grades archived at different times go to
    different chunks); (chunk ids, grades)."""
    where = sql.SQL(
        "(SELECT * FROM ONLY {} r WHERE r.class_id IS NOT DISTINCT FROM %s "
        "AND r.term_id IS NOT DISTINCT FROM %s) l"
    ).format(sql.Identifier(source))
    return _copy(cur, where, [class_id, term_id], target, cols, year, chunk_rows, True)


def _copy(
    cur: Cursor,
    source: sql.Composable,
    params: list[Any],
    target: str,
    cols: list[str],
    year: str,
    chunk_rows: int,
    keep_archived_at: bool,
) -> ChunkCopy:
    arrays = array_columns(cols)
    order = _ORDER.format(s=sql.Identifier("s"))
    aggregates = sql.SQL(", ").join(
        sql.SQL("array_agg({} ORDER BY {})").format(sql.Identifier("s", c), order) for c in arrays
    )
    when = sql.SQL("l.archived_at") if keep_archived_at else sql.SQL("now()")
    execute(
        cur,
        sql.SQL(
            "WITH ins AS (INSERT INTO {target} (academic_year, class_id, term_id, archived_at, "
            "chunk_no, row_count, {arrays}) SELECT %s, s.class_id, s.term_id, s.archived_at, "
            "s.chunk_no, count(*), {aggs} FROM (SELECT {cols}, {when} AS archived_at, "
            "((row_number() OVER (PARTITION BY l.class_id, l.term_id, {when} "
            "ORDER BY {source_order}) - 1) / %s)::int AS chunk_no FROM {source}) s "
            "GROUP BY s.class_id, s.term_id, s.archived_at, s.chunk_no "
            "RETURNING chunk_id, row_count) "
            "SELECT coalesce(array_agg(chunk_id), '{{}}'), coalesce(sum(row_count), 0) FROM ins"
        ).format(
            target=sql.Identifier(target),
            arrays=columns_sql(arrays),
            aggs=aggregates,
            cols=sql.SQL(", ").join(sql.Identifier("l", c) for c in cols if c != "archived_at"),
            when=when,
            source_order=_ORDER.format(s=sql.Identifier("l")),
            source=source,
        ),
        [year, chunk_rows, *params],
    )
    ids, rows = cur.fetchone()
    return list(ids), int(rows)


def checksum_chunks(cur: Cursor, cols: list[str], target: str, chunk_ids: list[int]) -> Checksum:
    """Checksum of the grades in the chunks ``chunk_ids`` of ``target``."""
    select, lateral = unnested(cols)
    execute(
        cur,
        checksum_expr(select)
        + sql.SQL(" FROM ONLY {} c").format(sql.Identifier(target))
        + lateral
        + sql.SQL(" WHERE c.chunk_id = ANY(%s)"),
        [chunk_ids],
    )
    count, total = cur.fetchone()
    return count, total


def year_added(cur: Cursor, year: str, rows: int, source_bytes: int) -> None:
    """Count ``rows`` grades (that took ``source_bytes`` before) into the year's registry row.

    A negative ``rows`` takes grades out; ``source_bytes`` is then ignored and the year's
    source bytes shrink in proportion.
    """
    cur.execute(
        "UPDATE activity_grades_archive_year SET source_bytes = CASE WHEN %s >= 0 "
        "THEN source_bytes + %s WHEN rows > 0 THEN (source_bytes * (rows + %s) / rows)::bigint "
        "ELSE 0 END, rows = greatest(rows + %s, 0) WHERE academic_year = %s",
        [rows, source_bytes, rows, rows, year],
    )


def year_count(cur: Cursor, table: str) -> int:
    """Grades stored in one year's chunk table (the sum of its chunks' row counts)."""
    execute(
        cur,
        sql.SQL("SELECT coalesce(sum(row_count), 0) FROM ONLY {}").format(sql.Identifier(table)),
    )
    return int(cur.fetchone()[0])


# -- restore: chunks -> leaf -----------------------------------------------------------

_GROUP = sql.SQL(" WHERE c.class_id = %s AND c.term_id = %s")


def groups(cur: Cursor, table: str) -> list[tuple[str, str, int]]:
    """(class, term, grades) of every (class, term) with chunks in ``table``."""
    execute(
        cur,
        sql.SQL(
            "SELECT class_id, term_id, sum(row_count)::bigint FROM ONLY {} "
            "WHERE class_id IS NOT NULL AND term_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).format(sql.Identifier(table)),
    )
    return [(c, t, int(n)) for c, t, n in cur.fetchall()]


def archived_groups(
    cur: Cursor, table: str, term_id: str, class_ids: list[str]
) -> list[tuple[str, int]]:
    """(class, grades) in the chunk table ``table`` for a term, of ``class_ids`` (all if empty)."""
    execute(
        cur,
        sql.SQL(
            "SELECT class_id, sum(row_count)::bigint FROM ONLY {} WHERE term_id = %s "
            "AND class_id IS NOT NULL "
            "AND (cardinality(%s::text[]) = 0 OR class_id = ANY(%s::text[])) "
            "GROUP BY class_id ORDER BY class_id"
        ).format(sql.Identifier(table)),
        [term_id, class_ids, class_ids],
    )
    return [(c, int(n)) for c, n in cur.fetchall()]


def restore_group(
    cur: Cursor, leaf: str, source: str, cols: list[str], class_id: str, term_id: str
) -> int:
    """Insert the archived grades of (class, term) into ``leaf``; the rows inserted."""
    select, lateral = unnested(cols)
    execute(
        cur,
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ONLY {} c").format(
            sql.Identifier(leaf), columns_sql(cols), select, sql.Identifier(source)
        )
        + lateral
        + _GROUP
        + sql.SQL(" ORDER BY u.id"),
        [class_id, term_id],
    )
    return cur.rowcount


def checksum_group(
    cur: Cursor, cols: list[str], source: str, class_id: str, term_id: str
) -> Checksum:
    select, lateral = unnested(cols)
    execute(
        cur,
        checksum_expr(select)
        + sql.SQL(" FROM ONLY {} c").format(sql.Identifier(source))
        + lateral
        + _GROUP,
        [class_id, term_id],
    )
    count, total = cur.fetchone()
    return count, total


def checksum_restored(
    cur: Cursor, cols: list[str], leaf: str, source: str, class_id: str, term_id: str
) -> Checksum:
    """Checksum of the live rows of ``leaf`` whose id is archived in (class, term)'s chunks."""
    execute(
        cur,
        checksum_expr(sql.SQL(", ").join(sql.Identifier("l", c) for c in cols))
        + sql.SQL(" FROM ONLY {} l WHERE l.id IN (SELECT unnest(c.id) FROM ONLY {} c").format(
            sql.Identifier(leaf), sql.Identifier(source)
        )
        + _GROUP
        + sql.SQL(")"),
        [class_id, term_id],
    )
    count, total = cur.fetchone()
    return count, total


def delete_group(cur: Cursor, source: str, class_id: str, term_id: str) -> int:
    """Delete the chunks of (class, term) from ``source``; the grades they held."""
    execute(
        cur,
        sql.SQL(
            "WITH d AS (DELETE FROM ONLY {} c WHERE c.class_id = %s AND c.term_id = %s "
            "RETURNING row_count) SELECT coalesce(sum(row_count), 0) FROM d"
        ).format(sql.Identifier(source)),
        [class_id, term_id],
    )
    return int(cur.fetchone()[0])


# -- the view -------------------------------------------------------------------------


def create_view(cur: Cursor, schema: str, cols: list[str]) -> None:
    """(Re)create the view ``archived_activity_grades`` in ``schema`` over both formats.

    Migration 0012 creates it for the seed's columns; the conversion of an LMS's own
    table calls this after giving the archive that table's extra columns or types.
    """
    view = sql.Identifier(schema, ARCHIVE_PARENT)
    both = [*cols, "archived_at", "academic_year"]
    from_chunks, lateral = unnested(both)
    drop_view(cur, schema)
    execute(
        cur,
        sql.SQL("CREATE VIEW {} AS SELECT {} FROM {} r UNION ALL SELECT {} FROM {} c").format(
            view,
            sql.SQL(", ").join(sql.Identifier("r", c) for c in both),
            sql.Identifier(schema, ARCHIVE_ROWS_PARENT),
            from_chunks,
            sql.Identifier(schema, ARCHIVE_CHUNK_PARENT),
        )
        + lateral,
    )
    execute(cur, sql.SQL("COMMENT ON VIEW {} IS %s").format(view), [ARCHIVE_VIEW_MARKER])


def drop_view(cur: Cursor, schema: str) -> None:
    """Drop the view ``archived_activity_grades`` of ``schema`` if it is there and ours.

    Raises:
        ArchiveError: a view or table of that name without the app's marker.
    """
    cur.execute(
        "SELECT c.relkind::text, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [schema, ARCHIVE_PARENT],
    )
    row = cur.fetchone()
    if row is None:
        return
    if row != ("v", ARCHIVE_VIEW_MARKER):
        raise ArchiveError(
            f"refusing to drop {schema}.{ARCHIVE_PARENT}: it is not the app's view "
            f"(kind {row[0]!r}, comment {row[1]!r})"
        )
    execute(cur, sql.SQL("DROP VIEW {}").format(sql.Identifier(schema, ARCHIVE_PARENT)))


# -- reads ------------------------------------------------------------------------------


def grades_of_student(using: str, student: str, cols: list[str]) -> list[tuple[Any, ...]]:
    """Every archived grade of one student, ``cols`` in that order, both formats.

    The chunks come from the GIN index ``student_id @> ARRAY[student]`` (only the chunks
    that hold the student are read and unnested), the row archive from its student index.
    ``cols`` are grade columns plus ``archived_at`` and ``academic_year``.
    """
    from_chunks, lateral = unnested(cols)
    query = (
        sql.SQL("SELECT {} FROM {} c").format(from_chunks, sql.Identifier(ARCHIVE_CHUNK_PARENT))
        + lateral
        + sql.SQL(
            " WHERE c.student_id @> ARRAY[%s]::text[] AND u.student_id = %s "
            "UNION ALL SELECT {} FROM {} r WHERE r.student_id = %s"
        ).format(
            sql.SQL(", ").join(sql.Identifier("r", c) for c in cols),
            sql.Identifier(ARCHIVE_ROWS_PARENT),
        )
    )
    return fetch_rows(using, query, [student, student, student])
