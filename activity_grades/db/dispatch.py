"""The routing trigger's fast path: a generated INSERT dispatcher for recent leaves.

PL/pgSQL caches the plan of a static statement per session, but the table a grade goes
to is known only at run time, and ``EXECUTE format('INSERT INTO %I ...')`` plans again
for every row (about half the trigger's cost, docs/performance.md). The dispatcher is
``activity_grades_insert_into(p_table, r)``: a binary search on the table name down to
one static ``INSERT INTO <leaf> SELECT (r).*`` per leaf, so each is planned once per
session. The trigger asks it to insert into the table the *registry* named and falls
back to the dynamic INSERT when it answers false, so a dispatcher built before a
partition was created, archived or renamed is only slower, never wrong.

It covers the ``FAST_ROUTE_PARTITIONS`` term leaves that end last (the terms being
graded): a session compiles it once per rebuild, ~60 ms for 2,000 leaves and over a
second for 10,000 (measured on PostgreSQL 15), so it is kept small and rebuilt only
when the set of leaves changed.
"""

from __future__ import annotations

import hashlib

from django.db import connections, transaction
from psycopg import sql

from ..core.constants import Status
from ..core.settings import app_settings
from . import staging
from .connection import Cursor

__all__ = ["FUNCTION", "function_sql", "install"]

FUNCTION = "activity_grades_insert_into"


def _branch(names: list[str]) -> sql.Composable:
    """IF-tree over sorted ``names``; each leaf is one static INSERT."""
    if len(names) == 1:
        return sql.SQL(
            "IF p_table = {name} THEN INSERT INTO {table} SELECT (r).*; RETURN true; END IF;\n"
        ).format(name=sql.Literal(names[0]), table=sql.Identifier(names[0]))
    mid = len(names) // 2
    return sql.SQL('IF p_table COLLATE "C" < {pivot} THEN\n{low}ELSE\n{high}END IF;\n').format(
        pivot=sql.Literal(names[mid]), low=_branch(names[:mid]), high=_branch(names[mid:])
    )


def function_sql(names: list[str]) -> sql.Composable:
    """CREATE OR REPLACE statement of the dispatcher for ``names`` (any order)."""
    # Partition names are ASCII (activity_grades_partition_name), so Python's order
    # is the "C" collation the IF-tree compares with.
    names = sorted(set(names))
    body = _branch(names) if names else sql.SQL("")
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {fn}(p_table text, r activity_grades) RETURNS boolean\n"
        "LANGUAGE plpgsql AS $fn$\nBEGIN\n{body}RETURN false;\nEND $fn$"
    ).format(fn=sql.Identifier(FUNCTION), body=body)


def _wanted(cursor: Cursor, limit: int) -> list[str]:
    cursor.execute("SELECT to_regclass('activity_grades_month') IS NULL")
    if cursor.fetchone()[0]:  # migrated back before 0015
        cursor.execute(
            "SELECT table_name FROM activity_grades_partition "
            "WHERE status = %s AND term_id IS NOT NULL "
            "ORDER BY ends_at DESC, table_name LIMIT %s",
            [Status.LIVE.value, limit],
        )
        return [row[0] for row in cursor.fetchall()]
    # The leaves: term tables of granularity 'term' and month tables (issue 15); a term
    # table of granularity 'month' receives no grades.
    cursor.execute(
        "SELECT table_name FROM (SELECT table_name, ends_at FROM activity_grades_partition "
        "WHERE status = %s AND term_id IS NOT NULL AND granularity = 'term' "
        "UNION ALL SELECT table_name, ends_at FROM activity_grades_month WHERE status = %s) l "
        "ORDER BY ends_at DESC, table_name LIMIT %s",
        [Status.LIVE.value, Status.LIVE.value, limit],
    )
    return [row[0] for row in cursor.fetchall()]


def install(using: str = "default") -> list[str]:
    """Rebuild the dispatcher from the registry if the leaves it should cover changed.

    Returns the leaves it covers. Safe to call from concurrent processes: rebuilds are
    serialized by an advisory lock (two ``CREATE OR REPLACE`` of one function at once
    would fail with "tuple concurrently updated").
    """
    app_settings.require_valid("FAST_ROUTE_PARTITIONS")
    limit = app_settings.FAST_ROUTE_PARTITIONS
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        staging.use(cursor, app_settings.SCHEMA)  # created beside the app's other functions
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [FUNCTION])
        names = sorted(_wanted(cursor, limit)) if limit else []
        # The comment records what the current version covers: an unchanged set is not
        # rebuilt, so sessions keep their compiled copy.
        digest = "activity_grades:dispatch " + hashlib.sha256("\n".join(names).encode()).hexdigest()
        cursor.execute(
            "SELECT to_regprocedure(%s) IS NULL, obj_description(to_regprocedure(%s), 'pg_proc')",
            [f"{FUNCTION}(text, activity_grades)"] * 2,
        )
        missing, current = cursor.fetchone()
        if missing:
            return []  # migrated back before 0005: the trigger does not use it
        if current == digest:
            return names
        cursor.execute(function_sql(names).as_string(cursor.connection))
        cursor.execute(
            sql.SQL("COMMENT ON FUNCTION {}(text, activity_grades) IS {}")
            .format(sql.Identifier(FUNCTION), sql.Literal(digest))
            .as_string(cursor.connection)
        )
    return names
