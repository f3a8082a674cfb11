"""One write rule on every path (issue 12, items 3, 4, 10, 11, 12).

A class_id that contradicts the activity's class, a term_id that contradicts created_at
and a timestamp that cannot be read back are refused with the same text from SQL, COPY,
the ORM, ``record``, ``record_many`` and ``upsert``; the term is derived from the value as
stored (``timestamptz(3)``), identically in SQL and Python, latest start winning where
terms overlap (the class-table adoption of a new partition included).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models.expressions import RawSQL
from psycopg import sql

from activity_grades import (
    ActivityGrade,
    ActivityGradeService,
    ClassMismatch,
    InvalidTimestamp,
    TermMismatch,
    UnknownActivity,
)
from activity_grades.core import rules
from activity_grades.db import lms as lms_db
from activity_grades.operations import create
from gradeproject.lms.models import Term
from tests.helpers import assert_tree_consistent

UTC = dt.timezone.utc
FALL = dt.datetime(2023, 9, 15, tzinfo=UTC)
CLASS_MISMATCH = "activity_grades: activity '123/a0' belongs to class '123', not to class '456'"
TERM_MISMATCH = "activity_grades: created_at falls in term '2023_fall', not in term '2024_fall'"
BAD_CREATED_AT = "activity_grades: created_at must be a finite timestamp from year 1 to year 9999"

SQL_INSERT = (
    "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
    "created_at, class_id, term_id) VALUES (%s, %s, %s, 'graded', now(), %s, %s, %s)"
)


def registry_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM activity_grades_partition")
        return cursor.fetchone()[0]


def sql_insert(grade_id, activity, at, class_id=None, term_id=None, student="s1"):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(SQL_INSERT, [grade_id, activity, student, at, class_id, term_id])


def copy_insert(grade_id, activity, at, class_id=None, term_id=None):
    """COPY into the parent (the routing trigger fires per row, as for INSERT)."""
    line = "\t".join([grade_id, activity, "s1", "graded", "2023-09-01 00:00+00", str(at)])
    line += "\t" + (class_id if class_id is not None else "\\N")
    line += "\t" + (term_id if term_id is not None else "\\N") + "\n"
    # Django does not wrap psycopg's COPY: its errors are translated here, as for execute().
    with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.copy(
            "COPY activity_grades (id, activity_id, student_id, status, submitted_at, "
            "created_at, class_id, term_id) FROM STDIN"
        ) as copy:
            copy.write(line)


def orm_create(grade_id, activity, at, class_id=None, term_id=None):
    with transaction.atomic():
        ActivityGrade.objects.create(
            id=grade_id,
            activity_id=activity,
            student_id="s1",
            status="graded",
            submitted_at=FALL,
            created_at=at,
            class_id=class_id,
            term_id=term_id,
        )


def record(grade_id, activity, at, class_id=None, term_id=None, student="s1"):
    with transaction.atomic():
        ActivityGradeService().record(
            activity,
            student,
            id=grade_id,
            status="graded",
            submitted_at=FALL,
            created_at=at,
            class_id=class_id,
            term_id=term_id,
        )


def record_many(grade_id, activity, at, class_id=None, term_id=None, student="s1"):
    row = {"id": grade_id, "activity_id": activity, "student_id": student, "status": "graded"}
    row.update(submitted_at=FALL, created_at=at, class_id=class_id, term_id=term_id)
    with transaction.atomic():
        ActivityGradeService().record_many([row])


SQL_PATHS = [sql_insert, copy_insert, orm_create]
PYTHON_PATHS = [record, record_many]


# -- item 3: class_id ---------------------------------------------------------------


@pytest.mark.parametrize("path", SQL_PATHS + PYTHON_PATHS, ids=lambda p: p.__name__)
def test_a_class_id_that_contradicts_the_activity_is_refused_everywhere(lms, path):
    before = registry_rows()
    for wrong in ("456", "no-such-class", ""):
        with pytest.raises(IntegrityError) as refused:
            path("g1", "123/a0", FALL, class_id=wrong)
        expected = CLASS_MISMATCH.replace("'456'", "'" + wrong + "'")
        assert str(refused.value).splitlines()[0] == expected
    assert registry_rows() == before, "a refused grade created partitions"
    path("g1", "123/a0", FALL, class_id="123")  # the right class is accepted
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1


def test_python_paths_raise_the_apps_errors(lms):
    with pytest.raises(ClassMismatch, match="not to class '456'"):
        record("g", "123/a0", FALL, class_id="456")
    with pytest.raises(TermMismatch, match="not in term '2024_fall'"):
        record_many("g", "123/a0", FALL, term_id="2024_fall")


# -- a term_id that contradicts created_at, and item 12 --------------------------------


@pytest.mark.parametrize("path", SQL_PATHS + PYTHON_PATHS, ids=lambda p: p.__name__)
def test_a_term_id_that_contradicts_created_at_is_refused_everywhere(lms, path):
    with pytest.raises(IntegrityError) as refused:
        path("g1", "123/a0", FALL, term_id="2024_fall")
    assert str(refused.value).splitlines()[0] == TERM_MISMATCH
    path("g2", "123/a0", FALL, term_id="2023_fall")
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1


def test_record_many_with_term_id_none_derives_the_term(lms):
    fall_2024 = dt.datetime(2024, 10, 1, tzinfo=UTC)
    record_many("g", "123/a0", fall_2024, term_id=None)
    grade = ActivityGradeService().get("g")
    assert grade is not None and grade.term_id == "2024_fall"
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1


# -- item 4: timestamps that cannot be read back ---------------------------------------


@pytest.mark.parametrize("path", [sql_insert, copy_insert], ids=lambda p: p.__name__)
@pytest.mark.parametrize(
    "value", ["infinity", "-infinity", "0044-03-15 12:00+00 BC", "10000-01-01 00:00+00"]
)
def test_sql_refuses_timestamps_that_cannot_be_read_back(lms, path, value):
    with pytest.raises(DataError) as refused:
        path("g", "123/a0", value)
    assert str(refused.value).startswith(BAD_CREATED_AT)
    with connection.cursor() as cursor, pytest.raises(DataError, match="graded_at must be"):
        with transaction.atomic():
            cursor.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
                "graded_at) VALUES ('h', '123/a0', 's2', 'x', now(), %s)",
                [value],
            )


@pytest.mark.parametrize("path", SQL_PATHS, ids=lambda p: p.__name__)
def test_an_update_to_an_unreadable_timestamp_is_refused(lms, path):
    path("g", "123/a0", FALL)
    with pytest.raises(DataError, match="created_at must be a finite"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE activity_grades SET created_at = 'infinity' WHERE id = 'g'")
    svc = ActivityGradeService()
    assert [g.id for g in svc.activity_grades("123/a0")] == ["g"]


# Columns no routing trigger watches: activity_grades_readable (migration 0013) does.
UNWATCHED = ["submitted_at", "graded_at", "updated_at", "commitment_deadline"]


@pytest.mark.parametrize("column", UNWATCHED)
@pytest.mark.parametrize("value", ["infinity", "-infinity", "0044-03-15 12:00+00 BC"])
def test_an_update_of_any_timestamp_to_an_unreadable_value_is_refused(lms, column, value):
    sql_insert("g", "123/a0", FALL)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM activity_grades WHERE id = 'g'")
        table = cursor.fetchone()[0]
    assert table != "activity_grades"
    for target in ("activity_grades", table):  # through the parent, and on the leaf itself
        with pytest.raises(DataError) as refused:
            with transaction.atomic(), connection.cursor() as cursor:
                update = sql.SQL("UPDATE {} SET {} = %s WHERE id = 'g'")
                cursor.execute(
                    update.format(sql.Identifier(target), sql.Identifier(column)).as_string(
                        cursor.connection
                    ),
                    [value],
                )
        assert str(refused.value).startswith(
            f"activity_grades: {column} must be a finite timestamp from year 1 to year 9999"
        )
    # The ORM's update() and save() take the same path.
    with pytest.raises(DataError, match=f"{column} must be a finite"):
        with transaction.atomic():
            ActivityGrade.objects.filter(pk="g").update(
                **{column: RawSQL("%s::timestamptz", [value])}
            )
    grade = ActivityGrade.objects.get(pk="g")
    assert getattr(grade, column) is None or getattr(grade, column).year < 10000
    # What is readable still updates, and the reads a poisoned row broke still work.
    ActivityGrade.objects.filter(pk="g").update(**{column: FALL})
    assert getattr(ActivityGrade.objects.get(pk="g"), column) == FALL
    assert [g.id for g in ActivityGradeService().activity_grades("123/a0")] == ["g"]


def test_an_insert_straight_into_a_partition_is_refused_too(lms):
    sql_insert("g", "123/a0", FALL)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM activity_grades WHERE id = 'g'")
        table = cursor.fetchone()[0]
    with pytest.raises(DataError, match="submitted_at must be a finite"):
        with transaction.atomic(), connection.cursor() as cursor:
            insert = sql.SQL(
                "INSERT INTO {t} (id, activity_id, student_id, status, submitted_at, created_at, "
                "class_id, term_id) SELECT 'h', activity_id, 's9', status, 'infinity', "
                "created_at, class_id, term_id FROM {t} WHERE id = 'g'"
            )
            cursor.execute(insert.format(t=sql.Identifier(table)).as_string(cursor.connection))


@pytest.mark.parametrize("path", PYTHON_PATHS, ids=lambda p: p.__name__)
def test_python_refuses_timestamps_that_cannot_be_read_back(lms, path):
    east = dt.timezone(dt.timedelta(hours=5))
    west = dt.timezone(dt.timedelta(hours=-5))
    for value in (
        dt.datetime(1, 1, 1, 2, 0, tzinfo=east),
        dt.datetime(9999, 12, 31, 22, tzinfo=west),
    ):
        with pytest.raises(InvalidTimestamp) as refused:
            path("g", "123/a0", value)
        assert str(refused.value) == BAD_CREATED_AT + " (UTC)"
    # The reads a poisoned row broke work (nothing was stored).
    svc = ActivityGradeService()
    assert svc.activity_grades("123/a0") == []
    assert list(ActivityGrade.objects.for_class("123")) == []
    assert svc.student_record("s1") == []


# -- item 11: the term of the value as stored -------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2000-01-01 00:00:00.0005+00",
        "1999-12-31 23:59:59.9995+00",
        "1999-12-31 23:59:59.9994+00",
        "2023-12-31 23:59:59.9997+00",
        "2024-01-14 23:59:59.9995+00",
        "2024-01-14 23:59:59.9994+00",
        "1969-07-20 20:17:40.0005+00",
        "2023-05-05 10:00:00.1234+02",
    ],
)
def test_python_rounds_timestamps_as_postgresql_stores_them(db, value):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz, %s::timestamptz(3)", [value, value])
        exact, stored = cursor.fetchone()
    assert rules.stored(exact) == stored


@pytest.mark.parametrize("path", SQL_PATHS + PYTHON_PATHS, ids=lambda p: p.__name__)
@pytest.mark.parametrize(
    ("at", "term"),
    [
        # The last instant of 2023_fall rounds to the first of the gap after it.
        (dt.datetime(2023, 12, 31, 23, 59, 59, 999700, tzinfo=UTC), None),
        (dt.datetime(2023, 12, 31, 23, 59, 59, 999400, tzinfo=UTC), "2023_fall"),
        # The day before 2024_spring rounds to its first instant.
        (dt.datetime(2024, 1, 14, 23, 59, 59, 999600, tzinfo=UTC), "2024_spring"),
        (dt.datetime(2024, 1, 14, 23, 59, 59, 999400, tzinfo=UTC), None),
    ],
)
def test_sub_millisecond_timestamps_land_where_the_stored_value_belongs(lms, path, at, term):
    path("g", "123/a0", at)
    with connection.cursor() as cursor:
        cursor.execute("SELECT term_id, created_at FROM activity_grades WHERE id = 'g'")
        stored_term, created_at = cursor.fetchone()
        assert stored_term == term
        assert created_at == rules.stored(at)
        assert assert_tree_consistent(cursor) == 1


# -- item 10: overlapping terms: latest start wins everywhere ------------------------------


def test_overlapping_terms_latest_start_wins_in_sql_python_and_adoption(lms):
    at = dt.datetime(2024, 7, 1, 12, tzinfo=UTC)
    # No term covers July: the grade waits in the class table.
    sql_insert("waiting", "123/a0", at)
    Term.objects.create(
        id="summer_a",
        start_date=dt.date(2024, 6, 1),
        end_date=dt.date(2024, 7, 25),
        academic_year="2023-2024",
    )
    Term.objects.create(
        id="summer_b",
        start_date=dt.date(2024, 6, 20),
        end_date=dt.date(2024, 7, 20),
        academic_year="2023-2024",
    )
    assert lms_db.term_at(at) == "summer_b"
    assert lms_db.TermIndex(lms_db.terms()).at(at) == "summer_b"
    # Creating the earlier-starting term's partition leaves the row for summer_b.
    create.plan(class_ids=["123"], term_ids=["summer_a"]).apply()
    with connection.cursor() as cursor:
        cursor.execute("SELECT term_id FROM activity_grades WHERE id = 'waiting'")
        assert cursor.fetchone()[0] is None
    create.plan(class_ids=["123"], term_ids=["summer_b"]).apply()
    for path, grade_id in ((sql_insert, "sql"), (record, "rec"), (record_many, "many")):
        path(grade_id, "123/a0", at + dt.timedelta(minutes=1), student=grade_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, term_id FROM activity_grades ORDER BY id")
        assert dict(cursor.fetchall()) == {
            "waiting": "summer_b",
            "sql": "summer_b",
            "rec": "summer_b",
            "many": "summer_b",
        }
        assert assert_tree_consistent(cursor) == 4
    # A term id given for the earlier term is refused on every path.
    with pytest.raises(IntegrityError, match="falls in term 'summer_b', not in term 'summer_a'"):
        record_many("x", "123/a0", at, term_id="summer_a")


def test_copy_helper_is_a_real_copy(lms):
    """The COPY path above goes through COPY (not INSERT): the row lands in its leaf."""
    copy_insert("c", "123/a0", FALL)
    with connection.cursor() as cursor:
        cursor.execute("SELECT term_id FROM activity_grades WHERE id = 'c'")
        assert cursor.fetchone()[0] == "2023_fall"


# -- item 13: clear errors -------------------------------------------------------------


def test_upsert_of_an_unknown_activity_says_so(lms):
    svc = ActivityGradeService()
    with pytest.raises(UnknownActivity, match="activity 'nope' does not exist"):
        svc.upsert("nope", "s1", status="graded", submitted_at=FALL)
    # Naming a class does not make an unknown activity gradable.
    with pytest.raises(UnknownActivity, match="activity 'nope' does not exist"):
        svc.upsert("nope", "s1", class_id="123", status="graded", submitted_at=FALL)
    with pytest.raises(TermMismatch, match="not in term '2024_fall'"):
        svc.upsert("123/a0", "s1", term_id="2024_fall", status="g", submitted_at=FALL)
    assert registry_rows() == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "created_at must be a timezone-aware datetime, not None"),
        (dt.datetime(2023, 9, 1), "created_at is a naive datetime (2023-09-01T00:00:00)"),
        ("2023-09-01", "created_at must be a timezone-aware datetime, not str '2023-09-01'"),
        (dt.date(2023, 9, 1), "created_at must be a timezone-aware datetime, not date"),
    ],
)
@pytest.mark.parametrize("path", PYTHON_PATHS, ids=lambda p: p.__name__)
def test_record_and_record_many_say_what_is_wrong_with_created_at(lms, path, value, message):
    with pytest.raises(InvalidTimestamp) as refused:
        path("g", "123/a0", value)
    assert message in str(refused.value)
    assert registry_rows() == 0
