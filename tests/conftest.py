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

from gradeproject.lms.models import Activity, SchoolClass, Term


def drop_all_partitions() -> None:
    """Drop every table the registry lists, checking the app's ownership marker."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, obj_description(to_regclass(quote_ident(table_name)), 'pg_class') "
            "FROM activity_grades_partition ORDER BY term_id IS NULL, id"
        )
        for table, marker in cursor.fetchall():
            if marker is None:
                continue  # already gone
            assert marker == "activity_grades:partition", (table, marker)
            cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)).as_string())
        cursor.execute("DELETE FROM activity_grades_partition")
        cursor.execute("DELETE FROM activity_grades_key")


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
