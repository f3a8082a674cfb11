"""Configurable LMS table names, the report command and the demo data command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from activity_grades.db import lms
from tests.helpers import INSERT, assert_tree_consistent, where_is

pytestmark = pytest.mark.django_db


def test_an_lms_with_other_table_and_column_names_needs_only_settings(settings):
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE "Course Work" (pk integer PRIMARY KEY, "course" text);'
            "CREATE TABLE semesters (code text PRIMARY KEY, opens date, closes date, yr int);"
            "INSERT INTO \"Course Work\" VALUES (7, 'MATH-1');"
            "INSERT INTO semesters VALUES ('S1', '2030-01-01', '2030-06-30', 2030);"
        )
        settings.ACTIVITY_GRADES = {
            "ACTIVITIES_TABLE": "Course Work",
            "ACTIVITY_ID_COLUMN": "pk",
            "ACTIVITY_CLASS_COLUMN": "course",
            "TERMS_TABLE": "semesters",
            "TERM_ID_COLUMN": "code",
            "TERM_START_COLUMN": "opens",
            "TERM_END_COLUMN": "closes",
            "TERM_YEAR_COLUMN": "yr",
        }
        lms.install()
        cursor.execute(INSERT, ["g1", "7", "s1", "2030-06-30 23:00+00"])
        assert (
            where_is(cursor, "g1")
            == "activity_grades_class_math_1_term_s1_" + where_is(cursor, "g1").rsplit("_", 1)[1]
        )  # capitals: hashed suffix
        cursor.execute("SELECT class_id, term_id FROM activity_grades WHERE id = 'g1'")
        assert cursor.fetchone() == ("MATH-1", "S1")
        assert lms.class_ids() == ["MATH-1"]
        assert [t.term_id for t in lms.terms()] == ["S1"]
        assert assert_tree_consistent(cursor) == 1


def test_missing_lms_table_is_a_clear_error(settings):
    settings.ACTIVITY_GRADES = {"ACTIVITIES_TABLE": "no_such_table"}
    lms.install()
    with pytest.raises(Exception, match="no_such_table"), connection.cursor() as cursor:
        cursor.execute(INSERT, ["g1", "7", "s1", "2030-06-30 23:00+00"])


def test_partition_report_table_and_json(lms):
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["g1", "123/a0", "s1", "2023-09-01+00"])
        cursor.execute(INSERT, ["g2", "123/a1", "s1", "2024-01-02+00"])
    out = StringIO()
    call_command("partition_report", "--exact", stdout=out)
    text = out.getvalue()
    assert "activity_grades_class_123_term_2023_fall" in text
    assert "2 partitions, 2 rows (exact)" in text and "rows in the parent itself: 0" in text
    out = StringIO()
    call_command("partition_report", "--format", "json", "--exact", stdout=out)
    data = json.loads(out.getvalue())
    by_table = {p["table_name"]: p["rows"] for p in data["partitions"]}
    assert by_table == {
        "activity_grades_class_123": 1,
        "activity_grades_class_123_term_2023_fall": 1,
    }


def test_partition_report_prints_long_table_names_whole():
    from gradeproject.lms.models import SchoolClass, Term

    Term.objects.create(
        id="Fall Term 2030", start_date="2030-08-01", end_date="2030-12-31", academic_year="2030"
    )
    SchoolClass.objects.create(id="Advanced Placement Chemistry " * 5, name="x")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM activity_grades_ensure_partition(%s, %s)",
            ["Advanced Placement Chemistry " * 5, "Fall Term 2030"],
        )
        table = cursor.fetchone()[0]
    assert len(table) == 63
    out = StringIO()
    call_command("partition_report", stdout=out)
    assert table in out.getvalue()


def test_load_demo_data_routes_every_grade_and_is_idempotent():
    out = StringIO()
    args = [
        "--terms",
        "3",
        "--classes",
        "3",
        "--activities",
        "4",
        "--students",
        "20",
        "--per-class",
        "10",
    ]
    call_command("load_demo_data", *args, stdout=out)
    assert "Grades:" in out.getvalue()
    with connection.cursor() as cursor:
        rows = assert_tree_consistent(cursor)
        assert rows > 50
    call_command("load_demo_data", *args, "--grades-only", stdout=StringIO())
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == rows


def test_load_demo_data_bad_sizes():
    with pytest.raises(CommandError, match="--classes must be at least 1"):
        call_command("load_demo_data", "--classes", "0", stdout=StringIO())
