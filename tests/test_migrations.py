"""The app's migrations reverse and apply again on a database that holds grades."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import DataError, connection

from activity_grades.db import dispatch
from activity_grades.operations import create
from tests.helpers import INSERT, assert_tree_consistent

FALL = dt.datetime(2023, 9, 15, tzinfo=dt.timezone.utc)


@pytest.mark.django_db(transaction=True)
def test_back_to_0003_and_forward_again_keeps_routing(committed_lms):
    create.plan(all_terms=True).apply()
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["before", "123/a0", "s1", FALL])
    try:
        call_command("migrate", "activity_grades", "0003", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute(INSERT, ["on-0003", "123/a0", "s2", FALL])  # the 0001 trigger
            cursor.execute(
                "SELECT to_regprocedure('activity_grades_insert_into(text, activity_grades)')"
            )
            assert cursor.fetchone()[0] is None
    finally:
        call_command("migrate", "activity_grades", verbosity=0)
    assert len(dispatch.install()) == 6
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["after", "456/a0", "s3", FALL])
        assert assert_tree_consistent(cursor) == 3


def _partitions_with_readable_trigger() -> tuple[int, int]:
    """(partitions of the tree, those with the trigger activity_grades_readable)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_trigger g "
            "WHERE g.tgrelid = i.inhrelid AND g.tgname = 'activity_grades_readable')) "
            "FROM pg_inherits i WHERE i.inhparent IN (SELECT 'activity_grades'::regclass "
            "UNION SELECT inhrelid FROM pg_inherits WHERE inhparent = 'activity_grades'::regclass)"
        )
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_0013_gives_existing_partitions_the_readable_trigger_and_takes_it_back(committed_lms):
    create.plan(all_terms=True).apply()
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["g", "123/a0", "s1", FALL])
    tables, with_trigger = _partitions_with_readable_trigger()
    assert tables == with_trigger > 4
    try:
        call_command("migrate", "activity_grades", "0012", verbosity=0)
        assert _partitions_with_readable_trigger() == (tables, 0)
        with connection.cursor() as cursor:  # the gap 0013 closes: stored, and unreadable
            cursor.execute("UPDATE activity_grades SET graded_at = 'infinity' WHERE id = 'g'")
            cursor.execute("UPDATE activity_grades SET graded_at = NULL WHERE id = 'g'")
    finally:
        call_command("migrate", "activity_grades", verbosity=0)
    assert _partitions_with_readable_trigger() == (tables, tables)
    with connection.cursor() as cursor, pytest.raises(DataError, match="graded_at must be"):
        cursor.execute("UPDATE activity_grades SET graded_at = 'infinity' WHERE id = 'g'")
