"""Raw SQL through the parent: every row lands in the right leaf, nothing is lost."""

from __future__ import annotations

import pytest
from django.db import DataError, IntegrityError, connection, transaction

from tests.helpers import INSERT, assert_tree_consistent, where_is

pytestmark = pytest.mark.django_db


def insert(gid, activity, student, created_at):
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [gid, activity, student, created_at])


def test_row_goes_to_its_class_term_leaf_and_fills_class_and_term(lms):
    insert("g1", "123/a0", "s1", "2023-09-15 10:00+00")
    with connection.cursor() as cursor:
        assert where_is(cursor, "g1") == "activity_grades_class_123_term_2023_fall"
        cursor.execute("SELECT class_id, term_id FROM activity_grades WHERE id = 'g1'")
        assert cursor.fetchone() == ("123", "2023_fall")
        assert assert_tree_consistent(cursor) == 1


def test_last_instant_of_the_end_day_belongs_to_the_term(lms):
    # The seed's BETWEEN '2023-08-01' AND '2023-12-31' would drop this one.
    insert("late", "123/a0", "s1", "2023-12-31 23:59:59.999+00")
    insert("next", "123/a0", "s2", "2024-01-01 00:00:00+00")
    with connection.cursor() as cursor:
        assert where_is(cursor, "late") == "activity_grades_class_123_term_2023_fall"
        # Between fall (ends Dec 31) and spring (starts Jan 15): the class table.
        assert where_is(cursor, "next") == "activity_grades_class_123"
        assert assert_tree_consistent(cursor) == 2


def test_first_instant_of_a_term_and_back_dated_rows(lms):
    insert("first", "123/a0", "s1", "2024-01-15 00:00:00+00")
    insert("old", "123/a1", "s1", "2023-08-01 00:00:00+00")  # back-dated into an old term
    with connection.cursor() as cursor:
        assert where_is(cursor, "first") == "activity_grades_class_123_term_2024_spring"
        assert where_is(cursor, "old") == "activity_grades_class_123_term_2023_fall"
        assert assert_tree_consistent(cursor) == 2


def test_term_time_zone_setting_moves_the_day_boundary(lms, settings):
    from activity_grades.db import lms as lookups

    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "TERM_TIME_ZONE": "America/New_York"}
    lookups.install()
    # 03:00 UTC on Jan 1 is still Dec 31 in New York: the fall term.
    insert("ny", "123/a0", "s1", "2024-01-01 03:00:00+00")
    with connection.cursor() as cursor:
        assert where_is(cursor, "ny") == "activity_grades_class_123_term_2023_fall"
        assert assert_tree_consistent(cursor) == 1


def test_unknown_activity_is_a_clear_error_naming_it(lms):
    with pytest.raises(IntegrityError, match="activity 'nope/a9' does not exist"):
        with transaction.atomic():
            insert("x", "nope/a9", "s1", "2023-09-15+00")


def test_given_class_and_term_are_kept(lms):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at,"
            " created_at, class_id, term_id) VALUES ('g', '123/a0', 's', 'x', now(),"
            " '2023-09-01+00', '123', '2023_fall')"
        )
        assert where_is(cursor, "g") == "activity_grades_class_123_term_2023_fall"


def test_term_id_that_contradicts_created_at_is_rejected_not_misfiled(lms):
    # Refused by the write rule (issue 12) before the leaf's CHECK would refuse it.
    with pytest.raises(
        IntegrityError, match="created_at falls in term '2024_spring', not in term '2023_fall'"
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at,"
                " created_at, term_id) VALUES ('g', '123/a0', 's', 'x', now(),"
                " '2024-03-01+00', '2023_fall')"
            )


def test_unknown_term_id_is_a_clear_error(lms):
    with pytest.raises(IntegrityError, match="falls in no term, not in term 'no-such-term'"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at,"
                " term_id) VALUES ('g', '123/a0', 's', 'x', now(), 'no-such-term')"
            )


def test_parent_cannot_hold_rows_even_without_the_trigger(lms):
    with pytest.raises(IntegrityError, match="activity_grades_parent_holds_no_rows"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("ALTER TABLE activity_grades DISABLE TRIGGER activity_grades_route")
            insert("g", "123/a0", "s", "2023-09-01+00")


def test_copy_through_the_parent_is_routed(lms):
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY activity_grades (id, activity_id, student_id, status, submitted_at, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(50):
                copy.write_row(
                    [f"c{i}", f"123/a{i % 2}", f"s{i}", "graded", "2024-02-01+00", "2024-02-01+00"]
                )
        assert assert_tree_consistent(cursor) == 50
        assert where_is(cursor, "c7") == "activity_grades_class_123_term_2024_spring"


def test_set_based_insert_select_through_the_parent(lms):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at,"
            " created_at) SELECT 'q' || i, '456/a' || (i % 2), 's' || i, 'graded', now(),"
            " timestamptz '2023-08-01' + i * interval '1 day' FROM generate_series(0, 499) i"
        )
        assert assert_tree_consistent(cursor) == 500
        cursor.execute("SELECT count(DISTINCT tableoid) FROM activity_grades")
        assert cursor.fetchone()[0] >= 4  # fall, spring, fall 2024 and the gaps


def test_constraint_exclusion_skips_other_partitions(lms):
    insert("a", "123/a0", "s1", "2023-09-01+00")
    insert("b", "123/a0", "s2", "2024-02-01+00")
    insert("c", "456/a0", "s1", "2024-02-01+00")
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (COSTS OFF) SELECT * FROM activity_grades "
            "WHERE class_id = '123' AND term_id = '2024_spring'"
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert "activity_grades_class_123_term_2024_spring" in plan
    assert "2023_fall" not in plan and "class_456" not in plan
    assert "activity_grades_class_123 " not in plan + " "  # the class table itself is skipped


def test_lost_is_never_silent_numeric_overflow_errors(lms):
    with pytest.raises(DataError):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at,"
                " points) VALUES ('g', '123/a0', 's', 'x', now(), 99999999999)"
            )
