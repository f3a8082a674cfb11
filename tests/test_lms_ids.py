"""An LMS whose ids are integers (Django's default primary keys), and activities without a class.

The LMS here keeps quizzes in ``quiz(id integer, course_id integer NULL)`` and semesters
with integer ids, as a Django LMS with AutoFields does; ids reach the app as ``int``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from activity_grades import (
    ActivityGrade,
    ActivityGradeService,
    ActivityWithoutClass,
    InvalidId,
    UnknownActivity,
)
from activity_grades.admin.grades import ClassFilter
from activity_grades.db import lms
from activity_grades.operations import create
from activity_grades.reporting import stats
from tests.admin_support import staff

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
AT = dt.datetime(2030, 3, 1, 12, tzinfo=UTC)  # in semester 1
COURSES = (1, 2, 10)


@pytest.fixture
def int_lms(settings):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE quiz (id integer PRIMARY KEY, course_id integer);"
            "CREATE TABLE semester (id integer PRIMARY KEY, opens date, closes date, yr text);"
            "INSERT INTO semester VALUES (1, '2030-01-01', '2030-06-30', '2029-2030');"
            "INSERT INTO quiz VALUES (16, 1), (17, 2), (18, 10), (99, NULL);"
        )
    settings.ACTIVITY_GRADES = {
        "ACTIVITIES_TABLE": "quiz",
        "ACTIVITY_CLASS_COLUMN": "course_id",
        "TERMS_TABLE": "semester",
        "TERM_START_COLUMN": "opens",
        "TERM_END_COLUMN": "closes",
        "TERM_YEAR_COLUMN": "yr",
    }
    lms.install()
    yield
    settings.ACTIVITY_GRADES = {}
    lms.install()


def grade(**extra):
    return {"status": "graded", "submitted_at": AT, "created_at": AT, **extra}


def test_the_service_takes_integer_and_uuid_ids(int_lms):
    svc = ActivityGradeService()
    g = svc.record(16, 7, **grade(graded_by_id=3))
    assert (g.activity_id, g.student_id, g.class_id, g.term_id) == ("16", "7", "1", "1")
    assert g.graded_by_id == "3"
    updated, created = svc.upsert(16, 7, score=9.5)
    assert not created and updated.id == g.id and updated.score == 9.5
    fresh, created = svc.upsert(17, 7, **grade(score=4.0))
    assert created and fresh.class_id == "2"
    result = svc.record_many([grade(activity_id=18, student_id=8)])  # said "does not exist"
    assert result.rows == 1
    picked = uuid.uuid4()
    svc.record(16, 9, **grade(id=picked))
    assert svc.get(picked).student_id == "9"
    assert [x.activity_id for x in svc.student_record(7)] == ["16", "17"]
    assert [x.student_id for x in svc.gradebook(1, 1)] == ["7", "9"]
    assert len(svc.student_grades_in_class(7, 2)) == 1
    assert [s.activity_id for s in svc.activity_stats(10)] == ["18"]
    assert [x.student_id for x in svc.activity_grades(16)] == ["7", "9"]
    assert ActivityGrade.objects.for_class(1, 1).count() == 2
    assert ActivityGrade.objects.for_class(10).get().student_id == "8"


@pytest.mark.parametrize("bad", [None, 1.5, True, b"16", ["16"]])
def test_an_id_of_another_type_is_refused_by_name(int_lms, bad):
    svc = ActivityGradeService()
    with pytest.raises(InvalidId, match="activity_id must be a str, an int or a UUID"):
        svc.record(bad, 7, **grade())
    with pytest.raises(InvalidId, match="student_id"):
        svc.student_record(bad)
    assert ActivityGrade.objects.count() == 0


def test_an_activity_without_a_class_is_not_an_unknown_activity(int_lms):
    svc = ActivityGradeService()
    with pytest.raises(ActivityWithoutClass, match="activity '99' has no class"):
        svc.record(99, 7, **grade())
    with pytest.raises(UnknownActivity, match="activity '98' does not exist"):
        svc.record(98, 7, **grade())
    with pytest.raises(ActivityWithoutClass, match="'99' has no class"):
        svc.record(99, 7, term_id="1", **grade())
    with pytest.raises(ActivityWithoutClass, match="'99' has no class"), transaction.atomic():
        svc.record_many([grade(activity_id=99, student_id=7)])
    with pytest.raises(UnknownActivity, match="'98' does not exist"), transaction.atomic():
        svc.record_many([grade(activity_id=98, student_id=7)])
    # upsert does not retry what a retry cannot fix
    with pytest.raises(UnknownActivity), transaction.atomic():
        svc.upsert(98, 7, **grade())
    assert isinstance(ActivityWithoutClass("x"), IntegrityError)  # old except clauses


def _insert(cursor, activity_id):
    cursor.execute(
        "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
        "created_at) VALUES (%s, %s, 's1', 'graded', %s, %s)",
        [str(uuid.uuid4()), activity_id, AT, AT],
    )


def test_the_routing_trigger_says_which_of_the_two_it_is(int_lms):
    with connection.cursor() as cursor:
        with pytest.raises(IntegrityError, match="activity '99' has no class") as no_class:
            with transaction.atomic():
                _insert(cursor, "99")
        with pytest.raises(IntegrityError, match="activity '98' does not exist") as unknown:
            with transaction.atomic():
                _insert(cursor, "98")
        assert no_class.value.__cause__.sqlstate == "23502"  # not_null_violation
        assert "give the activity a class" in no_class.value.__cause__.diag.message_hint
        assert unknown.value.__cause__.sqlstate == "23503"  # foreign_key_violation
        _insert(cursor, "16")
        # The move trigger: an update to a classless or unknown activity.
        with pytest.raises(IntegrityError, match="'99' has no class"), transaction.atomic():
            ActivityGrade.objects.for_class(1).update(activity_id="99")
        with pytest.raises(IntegrityError, match="'98' does not exist"), transaction.atomic():
            ActivityGrade.objects.for_class(1).update(activity_id="98")
    assert ActivityGrade.objects.for_class(1).get().activity_id == "16"


def test_integer_class_ids_sort_as_numbers_in_the_report_and_the_admin(int_lms, client):
    create.plan(all_terms=True).apply()
    order = [p.class_id for p in stats.overview().partitions if p.term_id is None]
    assert order == ["1", "2", "10"]
    out = io.StringIO()
    call_command("partition_report", "--format", "json", stdout=out)
    classes = [p["class_id"] for p in json.loads(out.getvalue())["partitions"]]
    assert list(dict.fromkeys(classes)) == ["1", "2", "10"]
    out = io.StringIO()
    call_command("partition_report", stdout=out)
    lines = [line.split()[0] for line in out.getvalue().splitlines()[1:-1]]
    assert list(dict.fromkeys(lines)) == ["1", "2", "10"]
    client.force_login(staff("root", superuser=True))
    page = client.get("/admin/activity_grades/partition/", {"o": "-class_id", "kind": "class"})
    assert page.status_code == 200
    shown = [p.class_id for p in page.context["page"].object_list]
    assert shown == ["10", "2", "1"]
    assert page.context["class_ids"] == ["1", "2", "10"]
    choices = ClassFilter(None, {}, ActivityGrade, _admin()).lookup_choices
    assert [c for c, _ in choices] == ["1", "2", "10"]


def test_text_class_ids_keep_text_order(lms_text_classes):
    assert [p.class_id for p in stats.overview().partitions if p.term_id is None] == [
        "10",
        "2",
        "b",
    ]


@pytest.fixture
def lms_text_classes():
    from gradeproject.lms.models import Activity, SchoolClass

    for class_id in ("b", "10", "2"):
        cls = SchoolClass.objects.create(id=class_id, name=class_id)
        Activity.objects.create(id=f"{class_id}/a", school_class=cls, title="A")
    with connection.cursor() as cursor:
        for class_id in ("b", "10", "2"):
            cursor.execute("SELECT activity_grades_ensure_partition(%s, NULL)", [class_id])


def _admin():
    from django.contrib import admin

    return admin.site._registry[ActivityGrade]


def test_lms_tables_in_another_schema(settings):
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE SCHEMA lms; CREATE TABLE lms."Quiz" (id integer PRIMARY KEY, course integer);'
            "CREATE TABLE lms.semester (id integer PRIMARY KEY, opens date, closes date, yr text);"
            "INSERT INTO lms.semester VALUES (1, '2030-01-01', '2030-06-30', '2029-2030');"
            'INSERT INTO lms."Quiz" VALUES (16, 1);'
        )
    settings.ACTIVITY_GRADES = {
        "ACTIVITIES_TABLE": "lms.Quiz",  # schema "lms", table "Quiz" (case kept)
        "ACTIVITY_CLASS_COLUMN": "course",
        "TERMS_TABLE": "lms.semester",
        "TERM_START_COLUMN": "opens",
        "TERM_END_COLUMN": "closes",
        "TERM_YEAR_COLUMN": "yr",
    }
    try:
        assert [
            m.id
            for m in checks.run_checks(databases=["default"])
            if m.id.startswith("activity_grades.E1")
        ] == []
        lms.install()
        g = ActivityGradeService().record(16, 7, **grade())
        assert (g.class_id, g.term_id) == ("1", "1")
        with connection.cursor() as cursor:
            _insert(cursor, "16")  # through the parent: the trigger's lookups find lms."Quiz"
        assert ActivityGrade.objects.for_class(1, 1).count() == 2
        settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "ACTIVITIES_TABLE": "lms.quiz"}
        found = [m for m in checks.run_checks(databases=["default"]) if m.id.endswith("E101")]
        assert len(found) == 1 and "'lms.quiz'" in found[0].msg
    finally:
        settings.ACTIVITY_GRADES = {}
        lms.install()
