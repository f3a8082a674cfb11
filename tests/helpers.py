"""Assertions and connections shared by the tests."""

from __future__ import annotations

import psycopg
from django.db import connection


def connect(autocommit: bool = True) -> psycopg.Connection:
    """A separate, real connection to the test database (not Django's)."""
    return psycopg.connect(conninfo(), autocommit=autocommit)


def conninfo() -> str:
    """libpq connection string of the database Django uses (the test database)."""
    params = connection.get_connection_params()
    keep = {"dbname", "host", "port", "user", "password", "sslmode"}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if k in keep})


INSERT = (
    "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, created_at) "
    "VALUES (%s, %s, %s, 'graded', now(), %s)"
)


def leaf(class_id: str, term_id: str | None) -> str:
    """The registry's table for (class, term); ``term_id=None``: the class table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM activity_grades_partition WHERE class_id = %s "
            "AND term_id IS NOT DISTINCT FROM %s",
            [class_id, term_id],
        )
        return cursor.fetchone()[0]


def where_is(cursor, grade_id: str) -> str:
    cursor.execute("SELECT tableoid::regclass::text FROM activity_grades WHERE id = %s", [grade_id])
    rows = cursor.fetchall()
    assert len(rows) == 1, f"grade {grade_id} found {len(rows)} times"
    return rows[0][0]


def assert_tree_consistent(cursor) -> int:
    """Every row sits in exactly one registered table whose CHECK it satisfies.

    Returns the number of rows. Checks: nothing in the parent, each row's table is
    the registry's table for its (class, term), the row is inside the term's
    half-open range, rows kept in a class table match no term, the key index holds
    exactly one entry per row with the same class and term, and PostgreSQL itself
    finds every CHECK valid (a NOT VALID-free tree re-validated by the planner).
    """
    cursor.execute("SELECT count(*) FROM ONLY activity_grades")
    assert cursor.fetchone()[0] == 0, "rows in the parent table"
    cursor.execute(
        """
        SELECT g.id, g.tableoid::regclass::text, g.class_id, g.term_id, p.table_name,
               (g.term_id IS NULL OR (g.created_at >= p.starts_at AND g.created_at < p.ends_at)),
               (g.term_id IS NOT NULL OR activity_grades_term_at(g.created_at) IS NULL)
          FROM activity_grades g
          LEFT JOIN activity_grades_partition p
                 ON p.class_id = g.class_id AND p.term_id IS NOT DISTINCT FROM g.term_id
        """
    )
    rows = cursor.fetchall()
    for gid, table, class_id, term_id, registered, in_range, no_term in rows:
        assert table == registered, (gid, table, class_id, term_id, registered)
        assert in_range, (gid, table, "outside its term's range")
        assert no_term, (gid, table, "in a class table although a term matches")
    cursor.execute("SELECT count(DISTINCT id) FROM activity_grades")
    assert cursor.fetchone()[0] == len(rows), "duplicate ids in the tree"
    cursor.execute(
        """
        SELECT count(*) FROM activity_grades g
          FULL JOIN activity_grades_key k ON k.id = g.id
         WHERE g.id IS NULL OR k.id IS NULL OR k.class_id IS DISTINCT FROM g.class_id
            OR k.term_id IS DISTINCT FROM g.term_id OR k.activity_id <> g.activity_id
            OR k.student_id <> g.student_id
        """
    )
    assert cursor.fetchone()[0] == 0, "key index out of step with the rows"
    return len(rows)
