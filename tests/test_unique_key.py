"""ACTIVITY_GRADES['UNIQUE_KEY']: one grade per (activity, student), or several attempts.

With the key off (None) every write path stores a second grade of one activity and
student, in one leaf and across leaves, while ``id`` stays unique across the tree;
``upsert`` refuses clearly, forms accept a second attempt. ``apply_unique_key`` switches a
database (refusing to turn the key on over duplicates), and the health check reports a
database that disagrees with the setting.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django import forms
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from psycopg import sql

from activity_grades import (
    ActivityGradesError,
    ActivityGradeService,
    NoUniqueKey,
    unique_key,
)
from activity_grades.checks import settings_check
from activity_grades.models import ActivityGrade
from activity_grades.operations import repair

from .helpers import INSERT, assert_tree_consistent, leaf

FALL = dt.datetime(2023, 9, 1, 12, tzinfo=dt.timezone.utc)
SPRING = dt.datetime(2024, 2, 1, 12, tzinfo=dt.timezone.utc)


def set_key(settings, value) -> None:
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "UNIQUE_KEY": value}


@pytest.fixture
def key_off(lms, settings):
    """UNIQUE_KEY = None, and the database switched to it (rolled back with the test)."""
    set_key(settings, None)
    unique_key.plan().apply()


def problems() -> list[repair.Problem]:
    """The health check's problems but E007 (the fixtures' classes lack class tables)."""
    return [p for p in repair.plan().problems if p.id != "activity_grades.E007"]


def apply_command(*args: str) -> str:
    out = StringIO()
    call_command("apply_unique_key", *args, stdout=out)
    return out.getvalue()


def scalar(query: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()[0]


def pair_count(activity_id: str = "123/a0", student_id: str = "s1") -> int:
    return ActivityGrade.objects.filter(activity_id=activity_id, student_id=student_id).count()


def key_indexes(table: str) -> set[tuple[str, bool]]:
    """(index name, unique) of the indexes of ``table`` on the key's columns."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ic.relname, x.indisunique FROM pg_index x "
            "JOIN pg_class ic ON ic.oid = x.indexrelid "
            "WHERE x.indrelid = to_regclass(quote_ident(%s)) AND NOT x.indisprimary "
            "AND x.indnatts = 2",
            [table],
        )
        return set(cursor.fetchall())


def new(activity_id: str, student_id: str, at: dt.datetime, **kw) -> ActivityGrade:
    return ActivityGrade(
        activity_id=activity_id, student_id=student_id, status="graded", submitted_at=at,
        created_at=at, **kw,
    )  # fmt: skip


# -- the setting --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [("activity_id", "student_id"), ["activity_id", "student_id"], None]
)
def test_the_setting_accepts_the_key_a_list_of_it_or_none(settings, value):
    set_key(settings, value)
    assert settings_check() == []


@pytest.mark.parametrize(
    "value", [("student_id", "activity_id"), ("activity_id",), "activity_id", True, ()]
)
def test_any_other_unique_key_is_e100_naming_the_key(settings, value):
    set_key(settings, value)
    errors = settings_check()
    assert [e.id for e in errors] == ["activity_grades.E100"]
    assert "ACTIVITY_GRADES['UNIQUE_KEY']" in errors[0].msg


# -- several attempts ----------------------------------------------------------------


@pytest.mark.django_db
def test_sql_stores_two_grades_of_one_pair_in_one_leaf_and_in_two_leaves(key_off):
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["g1", "123/a0", "s1", "2023-09-01+00"])
        cursor.execute(INSERT, ["g2", "123/a0", "s1", "2023-09-02+00"])  # same leaf
        cursor.execute(INSERT, ["g3", "123/a0", "s1", "2024-02-01+00"])  # another leaf
        assert assert_tree_consistent(cursor) == 3
    assert pair_count() == 3
    assert scalar("SELECT count(*) FROM activity_grades_key WHERE student_id = 's1'") == 3


@pytest.mark.django_db
def test_orm_create_and_bulk_create_store_several_attempts(key_off):
    ActivityGrade.objects.create(**vars_of(new("123/a0", "s1", FALL)))
    ActivityGrade.objects.create(**vars_of(new("123/a0", "s1", FALL)))
    ActivityGrade.objects.bulk_create(
        [new("123/a0", "s1", FALL), new("123/a0", "s1", SPRING), new("123/a0", "s1", SPRING)]
    )
    assert pair_count() == 5
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 5


def vars_of(grade: ActivityGrade) -> dict:
    return {
        f.name: getattr(grade, f.attname)
        for f in ActivityGrade._meta.concrete_fields
        if getattr(grade, f.attname) is not None and f.name != "id"
    }


@pytest.mark.django_db
def test_record_and_record_many_store_several_attempts(key_off):
    svc = ActivityGradeService()
    first = svc.record("123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL)
    second = svc.record("123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL)
    assert first.id != second.id
    row = {"activity_id": "123/a0", "student_id": "s1", "status": "graded", "submitted_at": FALL}
    result = svc.record_many([{**row, "created_at": FALL}, {**row, "created_at": SPRING}] * 2)
    assert result.rows == 4
    assert pair_count() == 6
    assert len(svc.student_grades_in_class("s1", "123", "2023_fall")) == 4


@pytest.mark.django_db
def test_upsert_is_refused_clearly_without_the_key(key_off):
    svc = ActivityGradeService()
    with pytest.raises(NoUniqueKey, match=r"UNIQUE_KEY.*record\(\)") as raised:
        svc.upsert("123/a0", "s1", status="graded", submitted_at=FALL)
    assert isinstance(raised.value, ActivityGradesError)
    assert pair_count() == 0


GradeForm = forms.modelform_factory(
    ActivityGrade, fields=["activity_id", "student_id", "status", "submitted_at"]
)


def form_data() -> dict:
    return {"activity_id": "123/a0", "student_id": "s1", "status": "graded", "submitted_at": FALL}


@pytest.mark.django_db
def test_a_form_accepts_a_second_attempt_without_the_key(key_off):
    GradeForm(form_data()).save()
    second = GradeForm(form_data())
    assert second.is_valid(), second.errors
    second.save()
    assert pair_count() == 2


@pytest.mark.django_db
def test_a_form_refuses_a_second_grade_with_the_key(lms):
    GradeForm(form_data()).save()
    second = GradeForm(form_data())
    assert not second.is_valid()
    assert "already exists" in str(second.errors)


@pytest.mark.django_db
def test_moves_archive_and_restore_keep_several_attempts(key_off):
    svc = ActivityGradeService()
    for at in (FALL, FALL, SPRING):
        svc.record("123/a0", "s1", status="graded", submitted_at=at, created_at=at)
    # Move one fall attempt to spring (its created_at changes term): two in spring now.
    moved = ActivityGrade.objects.filter(term_id="2023_fall").first()
    moved.created_at = SPRING
    moved.save()
    assert ActivityGrade.objects.filter(term_id="2024_spring").count() == 2
    call_command("archive_grades", "--term", "2024_spring", "--noinput", stdout=StringIO())
    assert pair_count() == 1
    call_command("restore_grades", "--term", "2024_spring", "--noinput", stdout=StringIO())
    assert pair_count() == 3
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 3


@pytest.mark.django_db
def test_partitions_created_without_the_key_get_a_plain_index(key_off):
    ActivityGradeService().record(
        "456/a0", "s1", status="graded", submitted_at=SPRING, created_at=SPRING
    )
    table = leaf("456", "2024_spring")
    assert key_indexes(table) == {(f"{table}_activity_student_idx", False)}
    assert key_indexes("activity_grades_key") == {("activity_grades_student_activity_idx", False)}
    assert key_indexes("activity_grades") == {("activity_grades_activity_student_idx", False)}
    assert problems() == []


# -- switching ----------------------------------------------------------------------


@pytest.mark.django_db
def test_switching_on_with_duplicates_refuses_lists_them_and_changes_nothing(key_off, settings):
    svc = ActivityGradeService()
    for student in ("s1", "s2"):
        for at in (FALL, SPRING):
            svc.record("123/a0", student, status="graded", submitted_at=at, created_at=at)
    svc.record("123/a1", "s1", status="graded", submitted_at=FALL, created_at=FALL)
    set_key(settings, ("activity_id", "student_id"))
    with connection.cursor() as cursor:
        before = unique_key_states(cursor)
    with pytest.raises(CommandError) as raised:
        apply_command("--noinput")
    message = str(raised.value)
    assert "2 (activity, student) pair(s) have several grades" in message
    assert "activity '123/a0' student 's1': 2 grades" in message
    assert "activity '123/a0' student 's2': 2 grades" in message
    assert "nothing was changed" in message
    with connection.cursor() as cursor:
        assert unique_key_states(cursor) == before
    with pytest.raises(ActivityGradesError, match="2 .* pair"):
        unique_key.plan().apply()
    assert pair_count() == 2


def unique_key_states(cursor) -> list:
    from activity_grades.db import unique_key as db_unique_key

    return db_unique_key.states(cursor)


@pytest.mark.django_db
def test_switching_on_without_duplicates_refuses_duplicates_again(key_off, settings):
    svc = ActivityGradeService()
    for at in (FALL, SPRING):
        svc.record("123/a0", "s1", status="graded", submitted_at=at, created_at=at)
    ActivityGrade.objects.filter(term_id="2024_spring").delete()
    set_key(settings, ["activity_id", "student_id"])
    out = apply_command("--noinput")
    assert "Switched" in out and "activity_grades_key" in out
    assert apply_command("--noinput").startswith("Nothing to do.")
    assert problems() == []
    assert key_indexes("activity_grades_key") == {("activity_grades_unique_student_activity", True)}
    with connection.cursor() as cursor:
        with pytest.raises(IntegrityError, match="activity_grades_unique_student_activity"):
            with transaction.atomic():
                cursor.execute(INSERT, ["again", "123/a0", "s1", "2024-02-01+00"])
        with pytest.raises(IntegrityError, match="activity_student_key"):
            with transaction.atomic():  # straight into the leaf: its own constraint
                cursor.execute(
                    sql.SQL(
                        "INSERT INTO {} (id, activity_id, student_id, status, submitted_at, "
                        "created_at, class_id, term_id) SELECT 'y', activity_id, student_id, "
                        "status, submitted_at, created_at, class_id, term_id "
                        "FROM activity_grades WHERE student_id = 's1'"
                    )
                    .format(sql.Identifier(leaf("123", "2023_fall")))
                    .as_string()
                )
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            svc.record("123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL)


@pytest.mark.django_db
def test_dry_run_changes_nothing(lms, settings):
    ActivityGradeService().record(
        "123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL
    )
    set_key(settings, None)
    with connection.cursor() as cursor:
        before = unique_key_states(cursor)
    out = apply_command("--dry-run")
    assert "Would switch 4 table(s) to the uniqueness key off" in out
    assert "key table activity_grades_key: UNIQUE (student_id, activity_id) -> plain" in out
    assert "Dry run: nothing was changed." in out
    with connection.cursor() as cursor:
        assert unique_key_states(cursor) == before


@pytest.mark.django_db
def test_the_health_check_reports_the_mismatch_and_the_command_fixes_it(lms, settings):
    ActivityGradeService().record(
        "123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL
    )
    set_key(settings, None)
    found = problems()
    assert [p.id for p in found] == ["activity_grades.E012"]
    assert "UNIQUE_KEY'] is None" in found[0].message
    assert "activity_grades_key" in found[0].message
    assert "apply_unique_key" in found[0].hint
    checked = run_checks(databases=["default"], include_deployment_checks=False)
    assert "activity_grades.E012" in [m.id for m in checked]
    with pytest.raises(CommandError, match="problem"):
        call_command("check_partitions", stdout=StringIO())
    out = apply_command("--noinput")
    assert "Switching tables: 4/4 tables (100%)" in out
    assert problems() == []
    # And the other way round: the setting back on, the database still off.
    set_key(settings, ("activity_id", "student_id"))
    found = problems()
    assert [p.id for p in found] == ["activity_grades.E012"]
    assert "do not enforce it" in found[0].message
    apply_command("--noinput")
    assert problems() == []


@pytest.mark.django_db
def test_a_missing_key_index_without_the_key_is_e004_and_fixed_as_a_plain_index(key_off):
    ActivityGradeService().record(
        "123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL
    )
    table = leaf("123", "2023_fall")
    with connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX "{table}_activity_student_idx"')
    assert [p.id for p in problems()] == ["activity_grades.E004"]
    repair.plan().apply()
    assert key_indexes(table) == {(f"{table}_activity_student_idx", False)}
    assert problems() == []


@pytest.mark.django_db(transaction=True)
def test_migrating_back_to_0006_refuses_a_database_without_the_key(committed_lms, settings):
    set_key(settings, None)
    unique_key.plan().apply()
    try:
        with pytest.raises(Exception, match="not unique in this database"):
            call_command("migrate", "activity_grades", "0006", verbosity=0)
        assert scalar("SELECT to_regprocedure('activity_grades_unique_key()') IS NOT NULL")
    finally:
        set_key(settings, ("activity_id", "student_id"))
        unique_key.plan().apply()
    assert "activity_grades.E012" not in [p.id for p in problems()]
