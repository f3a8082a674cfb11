"""Settings are one typed, validated object: bad keys are system check errors naming them."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from activity_grades.core.exceptions import SettingsError
from activity_grades.core.settings import app_settings


def errors(*, database: bool = False) -> list[checks.CheckMessage]:
    found = checks.run_checks(databases=["default"] if database else None)
    return [m for m in found if m.id.startswith("activity_grades.E1")]


def test_the_demo_settings_are_valid():
    assert app_settings.validate() == [] and errors() == []


def test_an_unknown_key_is_an_error_that_names_it_and_the_likely_fix(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "UPCOMMING_TERMS": 2}
    (error,) = errors()
    assert error.id == "activity_grades.E100"
    assert "'UPCOMMING_TERMS'" in error.msg and "did you mean 'UPCOMING_TERMS'" in error.msg


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("UPCOMING_TERMS", "2", "must be int, not str '2'"),
        ("UPCOMING_TERMS", -1, "must be 0 or more"),
        ("UPCOMING_TERMS", True, "must be int, not True"),
        ("FAST_ROUTE_PARTITIONS", 2.5, "must be int"),
        ("ARCHIVE_KEEP_DETACHED", "yes", "must be bool"),
        ("LOCK_TIMEOUT", "five seconds", "PostgreSQL duration"),
        ("ARCHIVE_LOCK_TIMEOUT", 5, "must be str or None"),
        ("SHARD_STATS_TIMEOUT", "a while", "PostgreSQL duration"),
        ("SHARD_STATS_TIMEOUT", 5, "must be str"),
        ("TERM_TIME_ZONE", "Mars/Olympus", "unknown time zone"),
        ("RETENTION_YEARS", 0, "must be 1 or more"),
        ("ARCHIVE_CHUNK_ROWS", 0, "must be 1 or more"),
        ("ARCHIVE_CHUNK_ROWS", None, "must be int"),
        ("RETENTION_EXPORT_DIR", 5, "must be str or None"),
        ("ACTIVITIES_TABLE", " ", "must name a table or column"),
        ("ADMIN_PARENT_PARTITION_LIMIT", "1000", "must be int or None"),
    ],
)
def test_a_wrong_type_or_value_is_an_error_that_names_the_key(settings, key, value, says):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, key: value}
    (error,) = errors()
    assert f"ACTIVITY_GRADES[{key!r}]" in error.msg and says in error.msg, error.msg


def test_an_impossible_combination_is_an_error(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "MAINTENANCE_RETENTION": True}
    (error,) = errors()
    assert "MAINTENANCE_RETENTION" in error.msg and "RETENTION_YEARS is not set" in error.msg
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "RETENTION_YEARS": 3}
    assert errors() == []


def test_settings_that_are_not_a_dict_are_an_error(settings):
    settings.ACTIVITY_GRADES = [("UPCOMING_TERMS", 1)]
    (error,) = errors()
    assert "must be a dict" in error.msg


def test_manage_py_refuses_to_start_with_a_bad_setting(settings):
    settings.ACTIVITY_GRADES = {"FAST_ROUTE_PARTITIONS": "all"}
    with pytest.raises(SystemCheckError, match=r"FAST_ROUTE_PARTITIONS.*must be int"):
        call_command("check")


def test_code_that_needs_a_setting_refuses_a_bad_one(settings):
    settings.ACTIVITY_GRADES = {"FAST_ROUTE_PARTITIONS": -5}
    with pytest.raises(SettingsError, match=r"'FAST_ROUTE_PARTITIONS'\] must be 0 or more"):
        app_settings.require_valid("FAST_ROUTE_PARTITIONS")
    app_settings.require_valid("UPCOMING_TERMS")  # other keys are not its business


def test_values_are_read_on_every_access(settings):
    assert app_settings.UPCOMING_TERMS == settings.ACTIVITY_GRADES["UPCOMING_TERMS"]
    settings.ACTIVITY_GRADES = {}
    assert app_settings.UPCOMING_TERMS == 1 and app_settings.LOCK_TIMEOUT == "5s"
    assert app_settings.archive_lock_timeout == "5s"
    settings.ACTIVITY_GRADES = {"ARCHIVE_LOCK_TIMEOUT": "300ms", "TERM_TIME_ZONE": None}
    assert app_settings.archive_lock_timeout == "300ms" and app_settings.time_zone == "UTC"


# -- against the database (manage.py check --database default) ---------------------


@pytest.mark.django_db
def test_the_lms_tables_and_columns_of_the_demo_exist():
    assert errors(database=True) == []


@pytest.mark.django_db
def test_a_missing_table_names_the_table_and_the_setting(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "TERMS_TABLE": "semesters"}
    (error,) = errors(database=True)
    assert error.id == "activity_grades.E101"
    assert "'semesters'" in error.msg and "ACTIVITY_GRADES['TERMS_TABLE']" in error.msg


@pytest.mark.django_db
def test_a_missing_column_names_the_column_the_table_and_the_setting(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "ACTIVITY_CLASS_COLUMN": "course_id"}
    (error,) = errors(database=True)
    assert error.id == "activity_grades.E102"
    assert "'course_id'" in error.msg and "ACTIVITY_GRADES['ACTIVITY_CLASS_COLUMN']" in error.msg
    assert "'activities'" in error.msg and "class_id" in error.hint


@pytest.mark.django_db
def test_names_that_need_quoting_are_found(settings):
    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE "Course Work" (pk int, "Course" text)')
    settings.ACTIVITY_GRADES = {
        **settings.ACTIVITY_GRADES,
        "ACTIVITIES_TABLE": "Course Work",
        "ACTIVITY_ID_COLUMN": "pk",
        "ACTIVITY_CLASS_COLUMN": "Course",
    }
    assert errors(database=True) == []
    settings.ACTIVITY_GRADES["ACTIVITY_CLASS_COLUMN"] = "course"  # case matters when quoted
    assert [e.id for e in errors(database=True)] == ["activity_grades.E102"]


@pytest.mark.django_db
def test_manage_py_check_database_reports_a_misnamed_column(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "TERM_YEAR_COLUMN": "session_id"}
    with pytest.raises(SystemCheckError, match=r"activity_grades.E102.*'session_id'"):
        call_command("check", "--database", "default")


@pytest.mark.django_db(transaction=True)
def test_migrate_on_a_database_without_the_lms_tables_yet_runs_its_checks_and_succeeds():
    """migrate runs the database checks before it creates the LMS's tables: no E101 then."""
    call_command("migrate", "lms", "zero", verbosity=0)
    try:
        assert "activities" not in connection.introspection.table_names()
        assert errors(database=True) == []  # migrations pending: not checked yet
        call_command("migrate", verbosity=0, skip_checks=False)
        assert "activities" in connection.introspection.table_names()
        assert errors(database=True) == []
    finally:
        call_command("migrate", verbosity=0)
