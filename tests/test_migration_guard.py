"""Unapplying a migration never drops grades silently (issue 12, items 1 and 2).

A reverse that would drop live or archived rows refuses, before anything is unapplied,
naming the rows and what to run instead; ``ACTIVITY_GRADES_ALLOW_DATA_LOSS=1`` opts in.
With no rows, ``migrate activity_grades zero`` leaves no object of the app behind.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from psycopg import sql

from activity_grades.operations import archive, create
from activity_grades.sql.guard import ALLOW_DATA_LOSS, DataLossRefused, RefuseDataLoss
from tests.archive_support import drop_archive
from tests.helpers import INSERT

FALL = dt.datetime(2023, 9, 15, tzinfo=dt.timezone.utc)
SPRING = dt.datetime(2024, 2, 15, tzinfo=dt.timezone.utc)

# Everything the app creates is named like this (tables, functions, triggers, types).
APP_OBJECTS = """
SELECT 'table ' || relname FROM pg_class
 WHERE relname ~ '^(archived_)?activity_grades' AND relnamespace = current_schema()::regnamespace
UNION ALL
SELECT 'function ' || proname FROM pg_proc
 WHERE proname ~ '^activity_grades' AND pronamespace = current_schema()::regnamespace
UNION ALL
SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname ~ '^activity_grades'
UNION ALL
SELECT 'type ' || typname FROM pg_type
 WHERE typname ~ '^_?(archived_)?activity_grades' AND typnamespace = current_schema()::regnamespace
"""


def applied() -> set[str]:
    recorder = MigrationRecorder(connection)
    return {name for app, name in recorder.applied_migrations() if app == "activity_grades"}


def count(query: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


def app_objects() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(APP_OBJECTS)
        return sorted(row[0] for row in cursor.fetchall())


def empty_archive(cursor) -> None:
    """Empty the archive by hand (both formats; the view archived_activity_grades reads
    them)."""
    cursor.execute("DELETE FROM archived_activity_grades_chunk")
    cursor.execute("DELETE FROM archived_activity_grades_rows")


@pytest.fixture
def archive_clean(committed_lms):
    drop_archive()
    yield
    drop_archive()


@pytest.fixture
def back_to_latest():
    """Whatever a test unapplied, the database is migrated forward again afterwards."""
    yield
    call_command("migrate", "activity_grades", verbosity=0)


def grade(grade_id: str, activity: str, student: str, at: dt.datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [grade_id, activity, student, at])


@pytest.mark.django_db(transaction=True)
def test_unapplying_0003_refuses_while_the_archive_holds_grades(archive_clean, back_to_latest):
    for i in range(5):
        grade(f"old{i}", "123/a0", f"s{i}", FALL)
    grade("live", "123/a0", "s9", SPRING)
    archive.plan(["2023_fall"]).apply()
    assert count("SELECT count(*) FROM archived_activity_grades") == 5
    before = applied()
    with pytest.raises(DataLossRefused) as refused:
        call_command("migrate", "activity_grades", "0002", verbosity=0)
    message = str(refused.value)
    assert "0003_archive" in message and "5 grade row(s)" in message
    assert "restore_grades --term" in message and ALLOW_DATA_LOSS in message
    # Refused before the plan started: nothing unapplied, nothing dropped.
    assert applied() == before
    assert count("SELECT count(*) FROM archived_activity_grades") == 5
    assert count("SELECT count(*) FROM activity_grades") == 1


@pytest.mark.django_db(transaction=True)
def test_the_operation_refuses_on_its_own_inside_the_reverse(archive_clean):
    """Without the pre_migrate check (a plan run by other means) the operation still stops."""
    grade("old", "123/a0", "s1", FALL)
    archive.plan(["2023_fall"]).apply()
    guard = RefuseDataLoss("the archive", tables=["archived_activity_grades"], keep=["x"])
    with connection.schema_editor() as editor, pytest.raises(DataLossRefused, match="1 grade"):
        guard.database_backwards("activity_grades", editor, None, None)
    empty = RefuseDataLoss("nothing", tables=["activity_grades_maintenance_run"])
    with connection.schema_editor() as editor:
        empty.database_backwards("activity_grades", editor, None, None)  # no rows: no error


@pytest.mark.django_db(transaction=True)
def test_migrating_to_zero_refuses_while_live_or_detached_tables_hold_grades(
    archive_clean, back_to_latest
):
    for i in range(3):
        grade(f"f{i}", "123/a0", f"s{i}", FALL)
    grade("s", "456/a1", "s1", SPRING)
    before = applied()
    with pytest.raises(DataLossRefused) as refused:
        call_command("migrate", "activity_grades", "zero", verbosity=0)
    assert "4 grade row(s)" in str(refused.value)
    assert "convert_grades_table --to plain" in str(refused.value)
    assert applied() == before
    assert count("SELECT count(*) FROM activity_grades") == 4
    # Archived with --keep-detached, then the archive emptied by hand: the detached
    # copy is the last place its grades live, and it counts too.
    archive.plan(["2023_fall"], keep_detached=True).apply()
    with connection.cursor() as cursor:
        empty_archive(cursor)
        cursor.execute("DELETE FROM activity_grades WHERE id = 's'")
    with pytest.raises(DataLossRefused, match="3 grade row"):
        call_command("migrate", "activity_grades", "zero", verbosity=0)
    assert applied() == before


@pytest.mark.django_db(transaction=True)
def test_migrating_to_zero_with_no_grades_leaves_nothing_behind(archive_clean, back_to_latest):
    create.plan(all_terms=True).apply()
    grade("old", "123/a0", "s1", FALL)
    # Detached copies of archived leaves (one per class), emptied with the archive.
    archive.plan(["2023_fall"], keep_detached=True).apply()
    with connection.cursor() as cursor:
        empty_archive(cursor)
        cursor.execute(
            "SELECT relname FROM pg_class WHERE obj_description(oid, 'pg_class') = %s",
            ["activity_grades:detached"],
        )
        detached = [row[0] for row in cursor.fetchall()]
        assert len(detached) == 2
        for table in detached:
            cursor.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)).as_string())
    call_command("migrate", "activity_grades", "zero", verbosity=0)
    assert applied() == set()
    assert app_objects() == []
    call_command("migrate", "activity_grades", verbosity=0)
    grade("again", "123/a0", "s1", SPRING)
    assert count("SELECT count(*) FROM activity_grades") == 1


@pytest.mark.django_db(transaction=True)
def test_allow_data_loss_drops_the_grades_on_purpose(archive_clean, back_to_latest, monkeypatch):
    grade("f", "123/a0", "s1", FALL)
    grade("s", "123/a0", "s2", SPRING)
    archive.plan(["2023_fall"]).apply()
    monkeypatch.setenv(ALLOW_DATA_LOSS, "1")
    call_command("migrate", "activity_grades", "zero", verbosity=0)
    assert applied() == set()
    assert app_objects() == []


@pytest.mark.django_db(transaction=True)
def test_allowed_loss_of_the_archive_leaves_no_registry_row_saying_archived(
    archive_clean, back_to_latest, monkeypatch
):
    grade("f", "123/a0", "s1", FALL)
    archive.plan(["2023_fall"]).apply()
    assert count("SELECT count(*) FROM activity_grades_partition WHERE status = 'archived'") == 1
    monkeypatch.setenv(ALLOW_DATA_LOSS, "1")
    call_command("migrate", "activity_grades", "0002", verbosity=0)
    call_command("migrate", "activity_grades", verbosity=0)
    assert count("SELECT count(*) FROM activity_grades_partition WHERE status = 'archived'") == 0
    grade("again", "123/a0", "s1", FALL)  # the term is graded (and archivable) again
    assert count("SELECT count(*) FROM activity_grades") == 1
