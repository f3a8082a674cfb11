"""The routing trigger's fast path (activity_grades.db.dispatch): fast, and never wrong."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from psycopg import sql

from activity_grades.db import ddl, dispatch
from activity_grades.operations import create
from tests.conftest import TERMS, make_lms
from tests.helpers import INSERT, assert_tree_consistent, where_is

pytestmark = pytest.mark.django_db

FALL = dt.datetime(2023, 9, 15, tzinfo=dt.timezone.utc)
SPRING = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def covered() -> list[str]:
    """Tables the installed dispatcher has a static INSERT for, read from its source."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (regexp_matches(pg_get_functiondef("
            "'activity_grades_insert_into(text, activity_grades)'::regprocedure), "
            "'INSERT INTO (\\S+) SELECT', 'g'))[1]"
        )
        return sorted(r[0].strip('"') for r in cursor.fetchall())


def insert(cursor, grade_id, activity, at) -> str:
    cursor.execute(INSERT, [grade_id, activity, f"s-{grade_id}", at])
    return where_is(cursor, grade_id)


def registered(class_id, term_id) -> str:
    return ddl.ensure_partition(class_id, term_id)[0]


def test_create_partitions_builds_it_for_the_new_leaves():
    make_lms(class_ids=["123", "O'Brien; --"])
    create.plan(all_terms=True).apply()
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM activity_grades_partition WHERE term_id IS NOT NULL")
        leaves = sorted(r[0] for r in cursor.fetchall())
        assert covered() == leaves and len(leaves) == 6
        # Every covered leaf gets its rows, and only its rows.
        for n, (class_id, at) in enumerate(
            [(c, at) for c in ["123", "O'Brien; --"] for at in (FALL, SPRING)]
        ):
            table = insert(cursor, f"g{n}", f"{class_id}/a0", at)
            assert table == registered(class_id, "2023_fall" if at == FALL else "2024_spring")
        assert assert_tree_consistent(cursor) == 4


def test_a_leaf_it_does_not_know_takes_the_dynamic_path():
    make_lms()
    create.plan(class_ids=["123"], term_ids=["2023_fall"]).apply()
    assert covered() == [registered("123", "2023_fall")]
    with connection.cursor() as cursor:
        # Created on demand by the trigger, after the dispatcher was built.
        assert insert(cursor, "late", "456/a0", SPRING) == registered("456", "2024_spring")
        assert insert(cursor, "known", "123/a0", FALL) == registered("123", "2023_fall")
        assert assert_tree_consistent(cursor) == 2
    assert registered("456", "2024_spring") not in covered()


def test_it_inserts_only_into_the_table_it_is_given():
    make_lms()
    fall = registered("123", "2023_fall")
    dispatch.install()
    with connection.cursor() as cursor:
        row = (
            "ROW('d1', '123/a0', 's1', NULL, NULL, NULL, 'graded', now(), NULL, NULL, NULL, "
            "NULL, %s, now(), false, false, NULL, NULL, NULL, '123', '2023_fall')"
            "::activity_grades"
        )
        cursor.execute(f"SELECT activity_grades_insert_into(%s, {row})", [fall, FALL])
        assert cursor.fetchone()[0] is True
        assert where_is(cursor, "d1") == fall
        # A name it does not cover: false and nothing written (the trigger falls back).
        cursor.execute(
            f"SELECT activity_grades_insert_into('activity_grades_class_x', {row})", [FALL]
        )
        assert cursor.fetchone()[0] is False
        cursor.execute("SELECT count(*) FROM activity_grades")
        assert cursor.fetchone()[0] == 1


def test_a_stale_dispatcher_is_never_wrong():
    """It covers a leaf whose registry row now names another table: rows follow the registry."""
    make_lms()
    old = registered("123", "2023_fall")
    dispatch.install()
    with connection.cursor() as cursor:
        # Archive-and-recreate in miniature: the registry moves the pair to a new table
        # while the old one still exists under its name.
        cursor.execute(
            sql.SQL("ALTER TABLE {} NO INHERIT activity_grades_class_123")
            .format(sql.Identifier(old))
            .as_string()
        )
        cursor.execute(
            "UPDATE activity_grades_partition SET status = 'detached' WHERE table_name = %s",
            [old],
        )
        new = registered("123", "2023_fall")
        assert new != old and old in covered() and new not in covered()
        assert insert(cursor, "g1", "123/a0", FALL) == new
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(old)).as_string())
        assert cursor.fetchone()[0] == 0


def test_it_is_rebuilt_only_when_the_leaves_change():
    make_lms()
    registered("123", "2023_fall")

    def version():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT xmin::text FROM pg_proc "
                "WHERE oid = 'activity_grades_insert_into(text, activity_grades)'::regprocedure"
            )
            return cursor.fetchone()[0]

    dispatch.install()
    first = version()
    dispatch.install()
    assert version() == first
    registered("123", "2024_spring")
    dispatch.install()
    assert version() != first


def test_the_setting_caps_it_to_the_terms_that_end_last(settings):
    make_lms()
    for term_id, *_ in TERMS:
        registered("123", term_id)
    settings.ACTIVITY_GRADES = {"FAST_ROUTE_PARTITIONS": 1}
    assert dispatch.install() == [registered("123", "2024_fall")]
    settings.ACTIVITY_GRADES = {"FAST_ROUTE_PARTITIONS": 0}
    assert dispatch.install() == [] and covered() == []
    with connection.cursor() as cursor:
        assert insert(cursor, "g1", "123/a0", FALL) == registered("123", "2023_fall")
    settings.ACTIVITY_GRADES = {"FAST_ROUTE_PARTITIONS": -1}
    with pytest.raises(ValueError, match="FAST_ROUTE_PARTITIONS"):
        dispatch.install()


@pytest.mark.django_db(transaction=True)
def test_concurrent_rebuilds_do_not_collide(committed_lms):
    registered("123", "2023_fall")
    errors: list[BaseException] = []

    def rebuild(n: int) -> None:
        from django.db import connections

        try:
            for i in range(5):
                registered("456", f"{TERMS[(n + i) % 3][0]}")
                dispatch.install()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=rebuild, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    dispatch.install()
    assert len(covered()) == 4
