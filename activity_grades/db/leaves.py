"""SQL on the rows of one partition table (a leaf or a class table), by name.

The service names the table (from the registry or the key index) and the columns; these
functions build the statement with every identifier quoted and every value a parameter.
Reading a table with ``ONLY`` leaves out its children (a class table's term tables).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg import sql

from .connection import cursor, execute, fetch_rows

__all__ = [
    "Row",
    "activity_stats",
    "copy_rows",
    "insert_keys",
    "insert",
    "key_of",
    "key_taken",
    "routed_from",
    "select",
    "select_student",
    "update",
]

Row = tuple[Any, ...]


def _names(columns: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def insert(using: str, table: str, values: Mapping[str, Any], returning: Sequence[str]) -> Row:
    """INSERT one row into ``table``; the ``returning`` columns of the stored row."""
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier(table),
        _names(values),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
        _names(returning),
    )
    with cursor(using) as cur:
        execute(cur, query, list(values.values()))
        row: Row = cur.fetchone()
        return row


def update(
    using: str, table: str, grade_id: str, values: Mapping[str, Any], returning: Sequence[str]
) -> Row | None:
    """UPDATE one grade in ``table``; None when a trigger moved it to another partition."""
    query = sql.SQL("UPDATE {} SET {} WHERE id = %s RETURNING {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values),
        _names(returning),
    )
    with cursor(using) as cur:
        execute(cur, query, [*values.values(), grade_id])
        row: Row | None = cur.fetchone()
        return row


def select(
    using: str,
    table: str,
    columns: Sequence[str],
    *,
    where: Mapping[str, Any] | None = None,
    only: bool = False,
    order_by: Sequence[str] = (),
) -> list[Row]:
    """SELECT ``columns`` FROM ``table`` WHERE each ``where`` column equals its value."""
    conditions = [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in (where or {})]
    query = sql.SQL("SELECT {} FROM {}{} WHERE {}").format(
        _names(columns),
        sql.SQL("ONLY ") if only else sql.SQL(""),
        sql.Identifier(table),
        sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true"),
    )
    if order_by:
        query += sql.SQL(" ORDER BY {}").format(_names(order_by))
    return fetch_rows(using, query, list((where or {}).values()))


def select_student(
    using: str, tables: Sequence[tuple[str, bool]], columns: Sequence[str], student_id: str
) -> list[Row]:
    """One student's rows from each of ``tables`` in one UNION ALL statement; each is
    (table, ``ONLY``): a class table alone, a term table with its month tables."""
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {} FROM {}{} WHERE student_id = %s").format(
            _names(columns), sql.SQL("ONLY " if only else ""), sql.Identifier(t)
        )
        for t, only in tables
    )
    return fetch_rows(using, query, [student_id] * len(tables))


def activity_stats(using: str, table: str, where: Mapping[str, Any] | None = None) -> list[Row]:
    """(activity, grades, graded, avg, min, max score) per activity of ``table`` (of its rows
    where each ``where`` column equals its value)."""
    conditions = [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in (where or {})]
    query = sql.SQL(
        "SELECT activity_id, count(*), count(graded_at), avg(score), min(score), max(score) "
        "FROM {} WHERE {} GROUP BY activity_id ORDER BY activity_id"
    ).format(
        sql.Identifier(table), sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")
    )
    return fetch_rows(using, query, list((where or {}).values()))


def copy_rows(
    cur: Any,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    schema: str | None = None,
) -> None:
    """COPY ``rows`` into ``table`` (in ``schema``: a shard's) on a Django cursor.

    Its psycopg cursor does the COPY; errors come out as Django's (``IntegrityError``,
    ``OperationalError``), as from ``execute``.
    """
    target = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, _names(columns))
    with cur.db.wrap_database_errors, cur.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


# -- the key index ------------------------------------------------------------------


def key_of(using: str, activity_id: str, student_id: str) -> tuple[str, str, str | None] | None:
    """(id, class, term) of the grade of (activity, student), locked FOR UPDATE."""
    found = fetch_rows(
        using,
        "SELECT id, class_id, term_id FROM activity_grades_key "
        "WHERE student_id = %s AND activity_id = %s FOR UPDATE",
        [student_id, activity_id],
    )
    return found[0] if found else None


def key_taken(using: str, activity_id: str, student_id: str, other_than: Any) -> bool:
    """Whether a grade other than ``other_than`` holds (activity, student) anywhere."""
    found = fetch_rows(
        using,
        "SELECT 1 FROM activity_grades_key WHERE activity_id = %s AND student_id = %s "
        "AND id IS DISTINCT FROM %s",
        [activity_id, student_id, other_than],
    )
    return bool(found)


def insert_keys(
    using: str,
    class_id: str,
    term_id: str | None,
    ids: Sequence[str],
    activities: Sequence[str],
    students: Sequence[str],
) -> None:
    """The key-index rows of grades of one partition written straight to its shard.

    One statement for the lot: what the foreign partition's row trigger
    (``activity_grades_key_insert_row``) does one row at a time. A taken id or
    (activity, student) fails it with ``IntegrityError``; with ``UNIQUE_KEY`` off the key
    table's (student, activity) index is not unique and only the id is refused.
    """
    with cursor(using) as cur:
        cur.execute(
            "INSERT INTO activity_grades_key (id, activity_id, student_id, class_id, term_id) "
            "SELECT k.id, k.activity_id, k.student_id, %s, %s "
            "FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(id, activity_id, student_id)",
            [class_id, term_id, list(ids), list(activities), list(students)],
        )


def routed_from(tables: Sequence[tuple[str, bool]], parent: str, alias: str) -> str:
    """The FROM item that reads ``tables`` under the parent's alias.

    Each is (table, with its children): a class table read whole, or one table ``ONLY``.
    None of them: the parent's own rows (none). Several: a ``UNION ALL`` that keeps each
    row's ``tableoid`` (which partition holds it). Plain text for Django's compiler.
    """
    name = sql.Identifier(alias)

    def source(table: str, children: bool) -> sql.Composable:
        only = sql.SQL("") if children else sql.SQL("ONLY ")
        return sql.SQL("{}{}").format(only, sql.Identifier(table))

    if len(tables) <= 1:
        one = source(*tables[0]) if tables else source(parent, False)
        return sql.SQL("{} {}").format(one, name).as_string(None)
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT t.*, t.tableoid AS tableoid FROM {} t").format(source(*t)) for t in tables
    )
    return sql.SQL("({}) {}").format(union, name).as_string(None)
