"""SQL clients whose search_path does not hold the app's schema are routed like Django.

Migration 0009 gives the functions the triggers call the app's schema as their
search_path, and the generated LMS lookups name the LMS's tables with their schema.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from tests.helpers import conninfo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def elsewhere(committed_lms):
    """A client whose search_path is an empty schema of its own (and pg_catalog)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
        cursor.execute("CREATE SCHEMA IF NOT EXISTS client_only")
    with psycopg.connect(conninfo(), autocommit=True, options="-c search_path=client_only") as c:
        yield c, schema
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA client_only")


def test_insert_update_delete_through_the_parent_from_another_search_path(elsewhere):
    conn, schema = elsewhere
    parent = sql.Identifier(schema, "activity_grades")
    key = sql.Identifier(schema, "activity_grades_key")

    def q(text: str) -> sql.Composed:
        return sql.SQL(text).format(parent=parent, key=key)

    conn.execute(
        q(
            "INSERT INTO {parent} (id, activity_id, student_id, status, submitted_at, created_at)"
            " VALUES ('x1', '123/a0', 's1', 'graded', now(), '2023-09-15 10:00+00')"
        )
    )
    row = conn.execute(
        q("SELECT tableoid::regclass::text, class_id, term_id FROM {parent} WHERE id = 'x1'")
    ).fetchone()
    # The partition was created for this client beside the parent, not in client_only.
    assert row == (f"{schema}.activity_grades_class_123_term_2023_fall", "123", "2023_fall")
    assert conn.execute(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'client_only'::regnamespace"
    ).fetchone() == (0,)
    conn.execute(q("UPDATE {parent} SET created_at = '2024-02-01 10:00+00' WHERE id = 'x1'"))
    assert conn.execute(
        q("SELECT tableoid::regclass::text, term_id FROM {parent} WHERE id = 'x1'")
    ).fetchone() == (f"{schema}.activity_grades_class_123_term_2024_spring", "2024_spring")
    assert conn.execute(q("SELECT term_id FROM {key} WHERE id = %s"), ["x1"]).fetchone() == (
        "2024_spring",
    )
    conn.execute(q("DELETE FROM {parent} WHERE id = 'x1'"))
    assert conn.execute(q("SELECT count(*) FROM {key}")).fetchone() == (0,)
    with pytest.raises(psycopg.errors.RaiseException, match="TRUNCATE"):
        conn.execute(q("TRUNCATE {parent}"))


def test_an_unknown_activity_is_still_named_from_another_search_path(elsewhere):
    conn, schema = elsewhere
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="activity 'nope' does not exist"):
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (activity_id, student_id, status, submitted_at) "
                "VALUES ('nope', 's1', 'graded', now())"
            ).format(sql.Identifier(schema, "activity_grades"))
        )


def test_the_lookups_name_the_lms_tables_with_their_schema(committed_lms):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'activity_grades_locate'")
        (body,) = cursor.fetchone()
    assert f'"{schema}"."activities"' in body and f'"{schema}"."terms"' in body
