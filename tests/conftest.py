"""Shared fixtures: a small LMS and a clean partition tree for committed tests.

Tests marked ``django_db`` run in a transaction that is rolled back, DDL included
(PostgreSQL DDL is transactional), so partitions they create vanish with it.
Tests that need committed data (several connections, processes) use ``committed``,
which drops every partition the app created afterwards.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from psycopg import sql

from activity_grades.db.registry import invalidate_cache
from gradeproject.lms.models import Activity, SchoolClass, Term


def drop_all_partitions() -> None:
    """Drop every table in the tree under activity_grades, checking the ownership marker.

    Walks pg_inherits rather than the registry, so a table a failed test left
    without a registry row is dropped too.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE tree(oid, depth) AS (
                SELECT inhrelid, 1 FROM pg_inherits WHERE inhparent = 'activity_grades'::regclass
                UNION ALL
                SELECT i.inhrelid, t.depth + 1 FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
            )
            SELECT c.relname, obj_description(c.oid, 'pg_class')
              FROM tree t JOIN pg_class c ON c.oid = t.oid ORDER BY t.depth DESC
            """
        )
        for table, marker in cursor.fetchall():
            assert marker == "activity_grades:partition", (table, marker)
            cursor.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)).as_string()
            )
        cursor.execute("DELETE FROM activity_grades_partition")
        cursor.execute("SELECT to_regclass('activity_grades_month') IS NOT NULL")
        if cursor.fetchone()[0]:  # migration 0015 applied
            cursor.execute("DELETE FROM activity_grades_month")
        cursor.execute("DELETE FROM activity_grades_key")


@pytest.fixture(autouse=True)
def _fresh_partition_cache():
    """A test's partitions roll back with it: the process's table-name cache must forget them."""
    invalidate_cache()
    yield
    invalidate_cache()


@pytest.fixture
def committed(transactional_db):
    """Committed data visible to other connections; the tree is emptied afterwards."""
    drop_all_partitions()
    yield
    drop_all_partitions()


TERMS = [
    ("2023_fall", dt.date(2023, 8, 1), dt.date(2023, 12, 31), "2023-2024"),
    ("2024_spring", dt.date(2024, 1, 15), dt.date(2024, 5, 31), "2023-2024"),
    ("2024_fall", dt.date(2024, 8, 1), dt.date(2024, 12, 20), "2024-2025"),
]


def make_lms(class_ids=("123", "456"), activities_per_class=2, terms=TERMS):
    for term_id, start, end, year in terms:
        Term.objects.create(id=term_id, start_date=start, end_date=end, academic_year=year)
    for class_id in class_ids:
        cls = SchoolClass.objects.create(id=class_id, name=f"Class {class_id}")
        for i in range(activities_per_class):
            Activity.objects.create(id=f"{class_id}/a{i}", school_class=cls, title=f"A{i}")


@pytest.fixture
def lms(db):
    make_lms()


@pytest.fixture
def committed_lms(committed):
    make_lms()
