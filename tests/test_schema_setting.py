"""ACTIVITY_GRADES['SCHEMA']: the app's tables and functions in a schema of their own.

Child processes run the demo project with ``ACTIVITY_GRADES_SCHEMA=grades`` (its settings
then set ``SCHEMA`` and put ``grades`` first on the connection's search_path) against
scratch databases; a fresh install, and an LMS with its own table converted into it.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from bench import legacy

from .convert_support import (
    ACTIVITIES,
    CLASSES,
    checksum,
    connect,
    create_database,
    drop_database,
    kill,
    manage,
    run,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)
IN_GRADES = {"ACTIVITY_GRADES_SCHEMA": "grades"}


def _schemas_of_app_tables(conn) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT relnamespace::regnamespace::text FROM pg_class "
        "WHERE relname LIKE 'activity\\_grades%%' AND relkind IN ('r', 'p')"
    ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def scratch_name():
    name = f"{connection.settings_dict['NAME']}_schema"
    create_database(name)
    yield name
    drop_database(name)


def test_a_fresh_install_lives_in_the_schema_and_routes(scratch_name):
    run(scratch_name, "migrate", "-v0", env=IN_GRADES)
    with connect(scratch_name) as conn:
        legacy.seed(conn, CLASSES, ACTIVITIES)
    run(scratch_name, "create_partitions", "--all-terms", env=IN_GRADES)
    with connect(scratch_name) as conn:
        assert _schemas_of_app_tables(conn) == {"grades"}
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'activity\\_grades%%' "
            "AND pronamespace <> 'grades'::regnamespace"
        ).fetchone() == (0,)
        # A client with only public on its search_path, through the qualified parent.
        conn.execute(
            "INSERT INTO grades.activity_grades (id, activity_id, student_id, status, "
            "submitted_at, created_at) VALUES ('x1', 'c1/a1', 's1', 'graded', now(), "
            "'2023-09-10 10:00+00')"
        )
        assert conn.execute(
            "SELECT tableoid::regclass::text FROM grades.activity_grades WHERE id = 'x1'"
        ).fetchone() == ("grades.activity_grades_class_c1_term_2023_fall",)
    _, out = run(scratch_name, "check", "--database", "default", env=IN_GRADES)
    assert "no issues" in out
    _, out = run(scratch_name, "partition_report", "--exact", env=IN_GRADES)
    assert "activity_grades_class_c1_term_2023_fall" in out and "1 rows" in out


def test_an_lms_table_converts_into_the_schema_and_back(scratch_name):
    run(scratch_name, "migrate", "lms", "-v0")
    with connect(scratch_name) as conn:
        legacy.create_table(conn)
        legacy.seed(conn, CLASSES, ACTIVITIES)
        legacy.add_grades(conn, 500, CLASSES, ACTIVITIES)
        expected = checksum(conn)
    _, out = run(scratch_name, "migrate", "-v1", env=IN_GRADES)
    assert "left as it is" in out
    # Killed after the swap: the old table is in public, the app's objects in grades; the
    # rerun finds it there and finishes.
    proc = manage(
        scratch_name,
        ["convert_grades_table", "--to", "partitioned", "--noinput"],
        env={**IN_GRADES, "ACTIVITY_GRADES_ARCHIVE_FAULT_SLEEP": "convert_after_swap=60"},
    )
    with connect(scratch_name) as conn:
        wait_for(
            lambda: (
                conn.execute("SELECT to_regclass('grades.activity_grades_conversion')").fetchone()[
                    0
                ]
                is not None
                and conn.execute("SELECT step FROM grades.activity_grades_conversion").fetchone()
                == ("move",)
            )
        )
    kill(proc, scratch_name)
    _, out = run(
        scratch_name, "convert_grades_table", "--to", "partitioned", "--noinput", env=IN_GRADES
    )
    assert "Converted to partitioned: 500 rows moved" in out
    with connect(scratch_name) as conn:
        assert _schemas_of_app_tables(conn) == {"grades"}
        assert conn.execute("SELECT to_regclass('public.activity_grades')").fetchone() == (None,)
        conn.execute("SET search_path = grades, public")
        assert checksum(conn) == expected
        assert conn.execute(
            "SELECT proconfig FROM pg_proc WHERE proname = 'activity_grades_route'"
        ).fetchone() == (["search_path=grades, pg_temp"],)
    run(scratch_name, "convert_grades_table", "--to", "plain", "--noinput", env=IN_GRADES)
    with connect(scratch_name) as conn:
        # Back where it was, in public; the app waits in the staging schema again.
        assert checksum(conn) == expected
        assert _schemas_of_app_tables(conn) == {"activity_grades_staging", "public"}
        assert conn.execute(
            "SELECT array_agg(relname::text) FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'public'::regnamespace AND relname LIKE 'activity\\_grades%%'"
        ).fetchone() == (["activity_grades"],)


def test_a_schema_missing_from_search_path_is_a_check_error(settings):
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS grades_elsewhere")
    try:
        settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "SCHEMA": "grades_elsewhere"}
        with pytest.raises(SystemCheckError, match="activity_grades.E013"):
            call_command("check", databases=["default"])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA grades_elsewhere")


def test_the_setting_is_validated(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "SCHEMA": "  "}
    with pytest.raises(SystemCheckError, match="SCHEMA"):
        call_command("check")
