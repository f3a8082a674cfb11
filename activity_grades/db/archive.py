"""SQL of the row-per-grade archive, the checksum both formats share, and retention.

Migration 0003 archived one row per grade into ``archived_activity_grades``, LIST-
partitioned by academic year. Since migration 0012 that table is
``archived_activity_grades_rows`` (registry ``activity_grades_archive_rows_year``): new
archives are written as compressed chunks (``db/chunks.py``); the rows here are read,
restored and converted (``compress_archive``). Every year table carries the marker
``activity_grades:archive``. Verification compares a count and an order-independent
checksum of every column of the rows on both sides, inside the moving transaction.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ..core.constants import ARCHIVE_CHUNK_PARENT, ARCHIVE_ROWS_PARENT
from .connection import Cursor, execute, fetch_rows

__all__ = [
    "Checksum",
    "YearTable",
    "archived_groups",
    "checksum_row_group",
    "delete_row_group",
    "ensure_rows_year",
    "row_groups",
    "rows_year_of_table",
    "catalog_count",
    "share_of_size",
    "checksum_archived",
    "checksum_expr",
    "columns_sql",
    "checksum_archived_copy_of_leaf",
    "checksum_leaf",
    "checksum_restored",
    "copy_leaf",
    "delete_keys_of",
    "delete_restored",
    "forget_year",
    "is_marked_year_table",
    "restore_rows",
    "year_stats",
    "year_table",
    "year_tables",
    "year_tables_before",
]

Checksum = tuple[int, Any]  # (count, sum of 64-bit row hashes)


def checksum_expr(row: sql.Composable) -> sql.Composed:
    """count + order-independent sum of a 64-bit hash of the values ``row`` lists, per row.

    ``hash_record_extended`` (PostgreSQL 14+) hashes each value with its type's hash
    function: about 4x faster than hashing the row's text on large jsonb/text values.
    """
    return sql.SQL(
        "SELECT count(*), coalesce(sum(hash_record_extended(ROW({}), 0)::numeric), 0)"
    ).format(row)


def _checksum(cols: list[str], alias: str) -> sql.Composed:
    return checksum_expr(sql.SQL(", ").join(sql.Identifier(alias, c) for c in cols))


def _one(cur: Cursor) -> Checksum:
    count, total = cur.fetchone()
    return count, total


def columns_sql(cols: list[str]) -> sql.Composable:
    """``"a", "b", ...``"""
    return sql.SQL(", ").join(map(sql.Identifier, cols))


# -- archive: leaf -> year table -------------------------------------------------


def year_table(cur: Cursor, year: str, rows_format: bool = False) -> str | None:
    """The chunk table of an academic year (``rows_format``: its row table), if any."""
    cur.execute(
        "SELECT table_name FROM activity_grades_archive_rows_year WHERE academic_year = %s"
        if rows_format
        else "SELECT table_name FROM activity_grades_archive_year WHERE academic_year = %s",
        [year],
    )
    row = cur.fetchone()
    return row[0] if row else None


def copy_leaf(cur: Cursor, leaf: str, target: str, cols: list[str], year: str) -> int:
    """Insert every row of ``leaf`` into the year table ``target``; the rows inserted."""
    execute(
        cur,
        sql.SQL("INSERT INTO {} ({}, academic_year) SELECT {}, %s FROM ONLY {} ORDER BY id").format(
            sql.Identifier(target), columns_sql(cols), columns_sql(cols), sql.Identifier(leaf)
        ),
        [year],
    )
    return cur.rowcount


def checksum_leaf(
    cur: Cursor, cols: list[str], leaf: str, *, only: bool = True, schema: str | None = None
) -> Checksum:
    """Checksum of ``leaf``'s rows (``only=False``: with its month tables); ``schema``
    names where it is on a shard (the cursor's server)."""
    table = sql.Identifier(schema, leaf) if schema else sql.Identifier(leaf)
    execute(
        cur,
        _checksum(cols, "l")
        + sql.SQL(" FROM {}{} l").format(sql.SQL("ONLY " if only else ""), table),
    )
    return _one(cur)


def checksum_archived_copy_of_leaf(
    cur: Cursor, cols: list[str], target: str, leaf: str
) -> Checksum:
    """Checksum of the archived rows whose id is in ``leaf``."""
    execute(
        cur,
        _checksum(cols, "a")
        + sql.SQL(" FROM {} a WHERE EXISTS (SELECT 1 FROM ONLY {} l WHERE l.id = a.id)").format(
            sql.Identifier(target), sql.Identifier(leaf)
        ),
    )
    return _one(cur)


def delete_keys_of(cur: Cursor, leaf: str, *, only: bool = True) -> int:
    """Remove the key-index rows of every grade in ``leaf`` (DROP fires no row triggers);
    ``only=False``: also of its month tables."""
    execute(
        cur,
        sql.SQL("DELETE FROM activity_grades_key k USING {}{} l WHERE k.id = l.id").format(
            sql.SQL("ONLY " if only else ""), sql.Identifier(leaf)
        ),
    )
    return cur.rowcount


# -- restore: year table -> leaf ---------------------------------------------------

_GROUP = sql.SQL(" WHERE a.class_id = %s AND a.term_id = %s")


def archived_groups(
    cur: Cursor, table: str, term_id: str, class_ids: list[str]
) -> list[tuple[str, int]]:
    """(class, rows) archived in ``table`` for a term, of ``class_ids`` (all when empty)."""
    execute(
        cur,
        sql.SQL(
            "SELECT class_id, count(*) FROM ONLY {} WHERE term_id = %s "
            "AND (cardinality(%s::text[]) = 0 OR class_id = ANY(%s::text[])) "
            "GROUP BY class_id ORDER BY class_id"
        ).format(sql.Identifier(table)),
        [term_id, class_ids, class_ids],
    )
    return cur.fetchall()


def restore_rows(
    cur: Cursor, leaf: str, source: str, cols: list[str], class_id: str, term_id: str
) -> int:
    """Insert the archived rows of (class, term) into ``leaf``; the rows inserted."""
    execute(
        cur,
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ONLY {} a").format(
            sql.Identifier(leaf),
            columns_sql(cols),
            sql.SQL(", ").join(sql.Identifier("a", c) for c in cols),
            sql.Identifier(source),
        )
        + _GROUP
        + sql.SQL(" ORDER BY a.id"),
        [class_id, term_id],
    )
    return cur.rowcount


def checksum_archived(
    cur: Cursor, cols: list[str], source: str, class_id: str, term_id: str
) -> Checksum:
    execute(
        cur,
        _checksum(cols, "a") + sql.SQL(" FROM ONLY {} a").format(sql.Identifier(source)) + _GROUP,
        [class_id, term_id],
    )
    return _one(cur)


def checksum_restored(
    cur: Cursor, cols: list[str], leaf: str, source: str, class_id: str, term_id: str
) -> Checksum:
    """Checksum of the live rows of ``leaf`` whose id is archived for (class, term)."""
    execute(
        cur,
        _checksum(cols, "l")
        + sql.SQL(" FROM ONLY {} l WHERE EXISTS (SELECT 1 FROM ONLY {} a").format(
            sql.Identifier(leaf), sql.Identifier(source)
        )
        + _GROUP
        + sql.SQL(" AND a.id = l.id)"),
        [class_id, term_id],
    )
    return _one(cur)


def delete_restored(cur: Cursor, source: str, class_id: str, term_id: str) -> int:
    execute(
        cur,
        sql.SQL("DELETE FROM ONLY {} a").format(sql.Identifier(source)) + _GROUP,
        [class_id, term_id],
    )
    return cur.rowcount


# -- retention ---------------------------------------------------------------------

YearTable = tuple[str, str, int, bool]  # (academic year, table, total bytes, row format)

_YEAR_TABLES = (
    "SELECT y.academic_year, y.table_name, coalesce(pg_total_relation_size(c.oid), 0), "
    "y.rows_format FROM (SELECT academic_year, table_name, false AS rows_format "
    "FROM activity_grades_archive_year UNION ALL SELECT academic_year, table_name, true "
    "FROM activity_grades_archive_rows_year) y "
    "LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(y.table_name)) "
)


def year_tables_before(using: str, year: str) -> list[YearTable]:
    """Every archive table (both formats) of the academic years sorting before ``year``."""
    rows = fetch_rows(
        using,
        _YEAR_TABLES + "WHERE y.academic_year < %s ORDER BY y.academic_year, y.rows_format",
        [year],
    )
    return [(y, t, int(b), bool(f)) for y, t, b, f in rows]


def year_tables(using: str) -> list[YearTable]:
    """Every archive table of both formats, by academic year."""
    rows = fetch_rows(using, _YEAR_TABLES + "ORDER BY y.academic_year, y.rows_format")
    return [(y, t, int(b), bool(f)) for y, t, b, f in rows]


def is_marked_year_table(cur: Cursor, table: str, marker: str) -> bool:
    """Whether ``table`` carries ``marker`` and is a partition of an archive parent."""
    cur.execute(
        "SELECT obj_description(c.oid, 'pg_class') = %s "
        "AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid "
        "            AND i.inhparent IN (to_regclass(%s), to_regclass(%s))) "
        "FROM pg_class c WHERE c.oid = to_regclass(quote_ident(%s))",
        [marker, ARCHIVE_CHUNK_PARENT, ARCHIVE_ROWS_PARENT, table],
    )
    row = cur.fetchone()
    return bool(row and row[0])


def forget_year(cur: Cursor, year: str, rows_format: bool = False) -> None:
    """Remove a dropped year table from its registry."""
    cur.execute(
        "DELETE FROM activity_grades_archive_rows_year WHERE academic_year = %s"
        if rows_format
        else "DELETE FROM activity_grades_archive_year WHERE academic_year = %s",
        [year],
    )


def year_stats(using: str) -> list[tuple[str, str, bool, int, int, int]]:
    """(year, table, row format, total bytes, grades, source bytes) of every archive table.

    Chunk tables: grades and source bytes from their registry row (kept by every archive,
    restore and conversion, in its transaction). Row tables: the planner's estimate of
    their rows (``reltuples``, no scan) and no source bytes.
    """
    rows = fetch_rows(
        using,
        "SELECT y.academic_year, y.table_name, y.rows_format, "
        "coalesce(pg_total_relation_size(c.oid), 0), "
        "CASE WHEN y.rows_format THEN greatest(coalesce(c.reltuples, 0), 0)::bigint "
        "ELSE y.rows END, y.source_bytes "
        "FROM (SELECT academic_year, table_name, false AS rows_format, rows, source_bytes "
        "FROM activity_grades_archive_year UNION ALL SELECT academic_year, table_name, true, "
        "0, 0 FROM activity_grades_archive_rows_year) y "
        "LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(y.table_name)) "
        "ORDER BY y.academic_year, y.rows_format",
    )
    return [(y, t, bool(f), int(b), int(n), int(s)) for y, t, f, b, n, s in rows]


# -- compress_archive: row archive <-> chunks ----------------------------------------

_ROW_GROUP = sql.SQL(
    " WHERE r.class_id IS NOT DISTINCT FROM %s AND r.term_id IS NOT DISTINCT FROM %s"
)


def row_groups(cur: Cursor, table: str) -> list[tuple[str | None, str | None, int]]:
    """(class, term, grades) of every group in one row archive table."""
    execute(
        cur,
        sql.SQL(
            "SELECT class_id, term_id, count(*) FROM ONLY {} GROUP BY 1, 2 ORDER BY 1, 2"
        ).format(sql.Identifier(table)),
    )
    return [(c, t, int(n)) for c, t, n in cur.fetchall()]


def checksum_row_group(
    cur: Cursor, cols: list[str], table: str, class_id: str | None, term_id: str | None
) -> Checksum:
    """Checksum of ``cols`` (grade columns and ``archived_at``) of one group's rows."""
    execute(
        cur,
        _checksum(cols, "r")
        + sql.SQL(" FROM ONLY {} r").format(sql.Identifier(table))
        + _ROW_GROUP,
        [class_id, term_id],
    )
    return _one(cur)


def delete_row_group(cur: Cursor, table: str, class_id: str | None, term_id: str | None) -> int:
    execute(
        cur,
        sql.SQL("DELETE FROM ONLY {} r").format(sql.Identifier(table)) + _ROW_GROUP,
        [class_id, term_id],
    )
    return cur.rowcount


def share_of_size(cur: Cursor, table: str, rows: int) -> int:
    """Bytes of ``rows`` grades of ``table``: its total size in proportion to its rows
    (the planner's row estimate; a count when the table was never analyzed)."""
    cur.execute(
        "SELECT pg_total_relation_size(c.oid), c.reltuples FROM pg_class c "
        "WHERE c.oid = to_regclass(quote_ident(%s))",
        [table],
    )
    size, estimate = cur.fetchone()
    total = estimate if estimate and estimate > 0 else catalog_count(cur, table)
    return int(size * rows / max(total, rows)) if total or rows else 0


def catalog_count(cur: Cursor, table: str) -> int:
    execute(cur, sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table)))
    return int(cur.fetchone()[0])


def ensure_rows_year(cur: Cursor, year: str) -> str:
    """The row archive table of ``year``, created as migration 0003 made them if missing."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"rows-year|{year}"])
    table = year_table(cur, year, rows_format=True)
    if table is not None:
        return table
    cur.execute(
        "SELECT CASE WHEN s = %s AND s <> '' AND length('archived_activity_grades_y_' || s) <= 63 "
        "AND to_regclass(quote_ident('archived_activity_grades_y_' || s)) IS NULL "
        "THEN 'archived_activity_grades_y_' || s ELSE 'archived_activity_grades_y_' "
        "|| left(s, 20) || '_' || substr(md5(%s), 1, 10) END "
        "FROM activity_grades_slug(%s) s",
        [year, year, year],
    )
    name: str = cur.fetchone()[0]
    table_id = sql.Identifier(name)
    execute(
        cur,
        sql.SQL(
            "CREATE TABLE {} PARTITION OF {} FOR VALUES IN (%s) "
            "WITH (fillfactor = 100, toast_tuple_target = 128)"
        ).format(table_id, sql.Identifier(ARCHIVE_ROWS_PARENT)),
        [year],
    )
    execute(
        cur,
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (id)").format(
            table_id, sql.Identifier(f"{name[:58]}_pkey")
        ),
    )
    execute(cur, sql.SQL("COMMENT ON TABLE {} IS 'activity_grades:archive'").format(table_id))
    cur.execute(
        "INSERT INTO activity_grades_archive_rows_year (academic_year, table_name) VALUES (%s, %s)",
        [year, name],
    )
    return name


def rows_year_of_table(cur: Cursor, table: str) -> str | None:
    """The academic year a row archive table is registered for, if it is."""
    cur.execute(
        "SELECT academic_year FROM activity_grades_archive_rows_year WHERE table_name = %s",
        [table],
    )
    row = cur.fetchone()
    return row[0] if row else None
