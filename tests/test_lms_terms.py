"""Terms as LMSs store them: timestamp(tz) columns, years from a joined table or a rule.

The LMS here is shaped like a public Django LMS: ``semesters(id, session_id ->
sessions(id, name), starts, ends)``, with the last day stored either as 23:59:59 or as
midnight. Term dates are whole days in TERM_TIME_ZONE whatever the column type.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from activity_grades.db import lms
from tests.conftest import make_lms
from tests.helpers import INSERT, assert_tree_consistent

pytestmark = pytest.mark.django_db

ZONE = "America/New_York"

# (id, session, first day, last day as the LMS stores it), local times in ZONE.
SEMESTERS = [
    (1, 1, "2023-09-04 00:00:00", "2023-12-22 23:59:59"),  # last day as 23:59:59
    (2, 1, "2024-01-15 00:00:00", "2024-05-31 00:00:00"),  # last day as midnight
    (3, 2, "2024-09-02 00:00:00", "2024-12-20 23:59:59"),
]

SESSIONS = "CREATE TABLE sessions (id int PRIMARY KEY, name text NOT NULL)"


def semesters_lms(column_type: str, *, zone: str = ZONE) -> None:
    """The sessions/semesters tables (columns of ``column_type``), classes 123 and 456."""
    make_lms(terms=[])
    # A timestamptz holds the instant the LMS meant: midnight (etc.) in the school's zone.
    suffix = f" {zone}" if column_type == "timestamptz" else ""
    with connection.cursor() as cursor:
        cursor.execute(SESSIONS)
        cursor.execute("INSERT INTO sessions VALUES (1, '2023/2024'), (2, '2024/2025')")
        cursor.execute(
            "CREATE TABLE semesters (id int PRIMARY KEY,"
            " session_id int REFERENCES sessions (id),"
            f" starts {column_type} NOT NULL, ends {column_type} NOT NULL)"
        )
        for term_id, session, starts, ends in SEMESTERS:
            cursor.execute(
                "INSERT INTO semesters VALUES (%s, %s, %s, %s)",
                [term_id, session, starts + suffix, ends + suffix],
            )


def semesters_settings(**extra: object) -> dict[str, object]:
    return {
        "TERMS_TABLE": "semesters",
        "TERM_START_COLUMN": "starts",
        "TERM_END_COLUMN": "ends",
        "TERM_YEAR_COLUMN": "session_id",
        "TERM_YEAR_TABLE": "sessions",
        "TERM_YEAR_TABLE_LABEL_COLUMN": "name",
        "TERM_TIME_ZONE": ZONE,
        **extra,
    }


def term_of(grade_id: str, created_at: str) -> str | None:
    """Route one grade through the parent; the term the trigger gave it."""
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [grade_id, "123/a0", "s-" + grade_id, created_at])
        cursor.execute("SELECT term_id FROM activity_grades WHERE id = %s", [grade_id])
        term_id: str | None = cursor.fetchone()[0]
        return term_id


@pytest.fixture(params=["timestamptz", "timestamp"])
def semesters(request, settings) -> str:
    semesters_lms(request.param)
    settings.ACTIVITY_GRADES = semesters_settings()
    lms.install()
    return str(request.param)


def test_grades_route_by_whole_days_in_the_term_time_zone(semesters):
    edges = {
        # semester 1: first instant of the first day, and the moment before it
        "first": ("2023-09-04 00:00:00 America/New_York", "1"),
        "before": ("2023-09-03 23:59:59.999 America/New_York", None),
        # stored end 23:59:59: the whole last day counts, to its last instant
        "late": ("2023-12-22 23:59:59.999 America/New_York", "1"),
        "late_utc": ("2023-12-23 04:30:00+00", "1"),  # still Dec 22 in New York
        "next": ("2023-12-23 00:00:00 America/New_York", None),
        # semester 2: stored end midnight of May 31: May 31 is a whole day of the term
        "may31": ("2024-05-31 23:59:59.999 America/New_York", "2"),
        "june1": ("2024-06-01 00:00:00 America/New_York", None),
    }
    for grade_id, (created_at, term_id) in edges.items():
        assert term_of(grade_id, created_at) == term_id, (semesters, grade_id)
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == len(edges)


def test_python_terms_and_term_at_agree_with_the_trigger(semesters):
    found = {t.term_id: t for t in lms.terms()}
    assert [found[k].academic_year for k in ("1", "2", "3")] == ["2023/2024"] * 2 + ["2024/2025"]
    spring = found["2"]
    assert spring.starts_at.isoformat() == "2024-01-15T05:00:00+00:00"  # EST midnight
    assert spring.ends_at.isoformat() == "2024-06-01T04:00:00+00:00"  # EDT midnight, June 1
    index = lms.TermIndex(found.values())
    assert index.at(spring.ends_at) is None and lms.term_at(spring.ends_at) is None
    assert lms.term_at(spring.starts_at) == index.at(spring.starts_at) == "2"


def test_create_partitions_and_the_report_use_the_joined_year_labels(semesters):
    call_command("create_partitions", "--all-terms", stdout=StringIO())
    out = StringIO()
    call_command("partition_report", "--format", "json", stdout=out)
    leaves = [p for p in json.loads(out.getvalue())["partitions"] if p["term_id"]]
    assert {(p["class_id"], p["term_id"], p["academic_year"]) for p in leaves} == {
        (c, t, y)
        for c in ("123", "456")
        for t, y in (("1", "2023/2024"), ("2", "2023/2024"), ("3", "2024/2025"))
    }
    fall = next(p for p in leaves if p["term_id"] == "1")
    assert fall["starts_at"] == "2023-09-04T04:00:00+00:00"
    assert fall["ends_at"] == "2023-12-23T05:00:00+00:00"


def test_archive_before_academic_year_takes_the_joined_label(semesters):
    term_of("old", "2023-10-01 12:00 America/New_York")
    term_of("new", "2024-10-01 12:00 America/New_York")
    with pytest.raises(CommandError, match=r"known years: 2023/2024, 2024/2025$"):
        call_command("archive_grades", "--before-academic-year", "2", "--noinput")
    out = StringIO()
    call_command("archive_grades", "--before-academic-year", "2024/2025", "--noinput", stdout=out)
    assert "(2023/2024)" in out.getvalue()
    with connection.cursor() as cursor:
        cursor.execute("SELECT academic_year FROM archived_activity_grades WHERE id = 'old'")
        assert cursor.fetchall() == [("2023/2024",)]
        cursor.execute("SELECT term_id FROM activity_grades")
        assert cursor.fetchall() == [("3",)]


@pytest.mark.parametrize("column_type", ["date", "timestamptz"])
def test_years_derived_from_the_first_day_by_the_rule(settings, column_type):
    semesters_lms(column_type, zone="Asia/Tokyo")
    # 00:00 on Aug 1 in Tokyo is still Jul 31 in UTC: the day counts in the zone.
    suffix = " 00:00 Asia/Tokyo" if column_type == "timestamptz" else ""
    with connection.cursor() as cursor:
        for term_id, starts, ends in (
            (4, "2024-08-01", "2024-08-20"),
            (5, "2024-07-31", "2024-07-31"),
        ):
            cursor.execute(
                "INSERT INTO semesters VALUES (%s, NULL, %s, %s)",
                [term_id, starts + suffix, ends + suffix],
            )
    settings.ACTIVITY_GRADES = {
        "TERMS_TABLE": "semesters",
        "TERM_START_COLUMN": "starts",
        "TERM_END_COLUMN": "ends",
        "TERM_YEAR_COLUMN": None,
        "TERM_YEAR_STARTS": "08-01",
        "TERM_TIME_ZONE": "Asia/Tokyo",
    }
    lms.install()
    years = {t.term_id: t.academic_year for t in lms.terms()}
    assert years == {
        "1": "2023-2024",  # starts 2023-09-04
        "2": "2023-2024",  # starts 2024-01-15: still the year that began in August 2023
        "3": "2024-2025",
        "4": "2024-2025",  # starts on the rule's day itself
        "5": "2023-2024",  # the day before it
    }
    call_command("create_partitions", "--all-terms", "--class", "123", stdout=StringIO())
    with connection.cursor() as cursor:
        cursor.execute("SELECT term_id, academic_year FROM activity_grades_partition")
        assert dict(cursor.fetchall()) == {None: None, **years}


# -- the checks -----------------------------------------------------------------------------


def errors(*, database: bool = False) -> list[checks.CheckMessage]:
    found = checks.run_checks(databases=["default"] if database else None)
    return [m for m in found if m.id.startswith("activity_grades.E1")]


@pytest.mark.parametrize(
    ("values", "key", "says"),
    [
        (
            {"TERM_YEAR_STARTS": "08-01", "TERM_YEAR_TABLE": "sessions"},
            "TERM_YEAR_STARTS",
            "and TERM_YEAR_TABLE exclude each other",
        ),
        ({"TERM_YEAR_COLUMN": None}, "TERM_YEAR_COLUMN", "None only when TERM_YEAR_STARTS"),
        (
            {"TERM_YEAR_COLUMN": "session_id", "TERM_YEAR_STARTS": "08-01"},
            "TERM_YEAR_COLUMN",
            "names a column while TERM_YEAR_STARTS derives the year",
        ),
        ({"TERM_YEAR_TABLE_LABEL_COLUMN": "name"}, "TERM_YEAR_TABLE_LABEL_COLUMN", "is not"),
        ({"TERM_YEAR_TABLE_ID_COLUMN": "id"}, "TERM_YEAR_TABLE_ID_COLUMN", "is not"),
        ({"TERM_YEAR_TABLE": " "}, "TERM_YEAR_TABLE", "must name a table"),
        ({"TERM_YEAR_TABLE": 7}, "TERM_YEAR_TABLE", "must be str or None"),
    ],
)
def test_impossible_year_settings_are_e100_naming_the_key(settings, values, key, says):
    settings.ACTIVITY_GRADES = values
    (error,) = errors()
    assert error.id == "activity_grades.E100"
    assert f"ACTIVITY_GRADES[{key!r}]" in error.msg and says in error.msg, error.msg


@pytest.mark.parametrize("value", ["8-01", "08/01", "13-01", "02-30", "02-29", "0801"])
def test_term_year_starts_must_be_a_month_and_day(settings, value):
    settings.ACTIVITY_GRADES = {"TERM_YEAR_STARTS": value, "TERM_YEAR_COLUMN": None}
    (error,) = errors()
    assert error.id == "activity_grades.E100"
    assert "ACTIVITY_GRADES['TERM_YEAR_STARTS']" in error.msg and "'MM-DD'" in error.msg


def test_the_semesters_settings_pass_every_check(semesters):
    assert errors(database=True) == []


def test_a_missing_year_table_is_e101_naming_the_setting(semesters, settings):
    settings.ACTIVITY_GRADES = semesters_settings(TERM_YEAR_TABLE="academic_years")
    (error,) = errors(database=True)
    assert error.id == "activity_grades.E101"
    assert "'academic_years'" in error.msg and "ACTIVITY_GRADES['TERM_YEAR_TABLE']" in error.msg


def test_a_missing_year_table_column_is_e102_naming_the_setting(semesters, settings):
    settings.ACTIVITY_GRADES = semesters_settings(
        TERM_YEAR_TABLE_LABEL_COLUMN="title", TERM_YEAR_TABLE_ID_COLUMN="pk"
    )
    found = errors(database=True)
    assert [e.id for e in found] == ["activity_grades.E102"] * 2
    id_error, label_error = sorted(found, key=lambda e: "title" in e.msg)
    assert "'pk'" in id_error.msg and "['TERM_YEAR_TABLE_ID_COLUMN']" in id_error.msg
    assert "'title'" in label_error.msg and "['TERM_YEAR_TABLE_LABEL_COLUMN']" in label_error.msg
    assert "'sessions'" in label_error.msg and "name" in label_error.hint


def test_a_foreign_key_year_column_without_the_year_table_is_e103(semesters, settings):
    settings.ACTIVITY_GRADES = {
        k: v
        for k, v in semesters_settings().items()
        if k not in ("TERM_YEAR_TABLE", "TERM_YEAR_TABLE_LABEL_COLUMN")
    }
    (error,) = errors(database=True)
    assert error.id == "activity_grades.E103"
    assert "'session_id'" in error.msg and "foreign key to table 'sessions'" in error.msg
    for key in ("TERM_YEAR_TABLE", "TERM_YEAR_TABLE_ID_COLUMN", "TERM_YEAR_TABLE_LABEL_COLUMN"):
        assert key in error.msg
    assert "name" in error.hint


@pytest.mark.parametrize("column_type", ["timestamp(0) with time zone", "timestamp(3)", "date"])
def test_term_date_columns_of_any_precision_pass_the_check(semesters, settings, column_type):
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE semesters ADD COLUMN opens {column_type}")
    settings.ACTIVITY_GRADES = semesters_settings(TERM_END_COLUMN="opens")
    assert errors(database=True) == []


@pytest.mark.parametrize("column_type", ["text", "integer", "time"])
def test_a_term_date_column_of_another_type_is_e104(semesters, settings, column_type):
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE semesters ADD COLUMN opens {column_type}")
    settings.ACTIVITY_GRADES = semesters_settings(TERM_START_COLUMN="opens")
    (error,) = errors(database=True)
    assert error.id == "activity_grades.E104"
    shown = "time without time zone" if column_type == "time" else column_type
    assert "'opens'" in error.msg and f"type {shown!r}" in error.msg
    assert "ACTIVITY_GRADES['TERM_START_COLUMN']" in error.msg
