"""id and (activity_id, student_id) are unique across the whole tree."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from tests.helpers import INSERT, assert_tree_consistent, connect
from tests.test_unique_key import key_off  # noqa: F401  (fixture)


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["key on", "key off"])
def test_same_id_in_two_partitions_is_refused(lms, mode, request):
    if mode == "key off":  # several attempts per activity: id stays unique all the same
        request.getfixturevalue("key_off")
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["dup", "123/a0", "s1", "2023-09-01+00"])
        with pytest.raises(IntegrityError, match="activity_grades_unique_id"):
            with transaction.atomic():
                cursor.execute(INSERT, ["dup", "456/a0", "s2", "2024-02-01+00"])


@pytest.mark.django_db
def test_same_activity_and_student_in_two_terms_is_refused(lms):
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["g1", "123/a0", "s1", "2023-09-01+00"])
        with pytest.raises(IntegrityError, match="activity_grades_unique_student_activity"):
            with transaction.atomic():
                cursor.execute(INSERT, ["g2", "123/a0", "s1", "2024-02-01+00"])


@pytest.mark.django_db
def test_update_cannot_create_a_duplicate(lms):
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["g1", "123/a0", "s1", "2023-09-01+00"])
        cursor.execute(INSERT, ["g2", "123/a1", "s1", "2024-02-01+00"])
        with pytest.raises(IntegrityError):
            with transaction.atomic():
                cursor.execute("UPDATE activity_grades SET activity_id = '123/a0' WHERE id='g2'")
        with pytest.raises(IntegrityError):
            with transaction.atomic():
                cursor.execute("UPDATE activity_grades SET id = 'g1' WHERE id = 'g2'")
        cursor.execute("UPDATE activity_grades SET id = 'g3', student_id = 's9' WHERE id = 'g2'")
        assert assert_tree_consistent(cursor) == 2


def _race(statements):
    """Run each (sql, params) in its own connection at the same moment; return outcomes."""
    barrier = threading.Barrier(len(statements))
    outcomes = [None] * len(statements)

    def worker(i, sql, params):
        with connect(autocommit=False) as conn:
            try:
                barrier.wait()
                conn.execute(sql, params)
                conn.commit()
                outcomes[i] = "ok"
            except psycopg.errors.UniqueViolation:
                conn.rollback()
                outcomes[i] = "duplicate"

    threads = [
        threading.Thread(target=worker, args=(i, s, p)) for i, (s, p) in enumerate(statements)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_duplicates_from_separate_connections(committed_lms, round_):
    # Different partitions (terms, classes), same (activity, student) or same id.
    outcomes = _race(
        [
            (INSERT, ["p1", "123/a0", "s1", "2023-09-01+00"]),
            (INSERT, ["p2", "123/a0", "s1", "2024-02-01+00"]),
            (INSERT, ["p3", "123/a0", "s1", "2024-09-01+00"]),
        ]
    )
    assert sorted(outcomes) == ["duplicate", "duplicate", "ok"]
    outcomes = _race(
        [
            (INSERT, ["same", "123/a1", "s2", "2023-09-01+00"]),
            (INSERT, ["same", "456/a1", "s3", "2024-02-01+00"]),
        ]
    )
    assert sorted(outcomes) == ["duplicate", "ok"]
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 2
