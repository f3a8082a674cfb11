"""The Django ORM on the partitioned parent behaves as users expect."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction

from activity_grades.models import ActivityGrade
from tests.helpers import assert_tree_consistent, where_is

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc


def grade(**kw) -> ActivityGrade:
    at = kw.pop("created_at", dt.datetime(2023, 9, 15, 10, tzinfo=UTC))
    fields = {
        "activity_id": "123/a0",
        "student_id": "s1",
        "status": "graded",
        "submitted_at": at,
        "created_at": at,
        "score": 80.0,
    }
    return ActivityGrade(**{**fields, **kw})


def table(obj) -> str:
    with connection.cursor() as cursor:
        return where_is(cursor, obj.pk)


def test_create_get_filter(lms):
    at = dt.datetime(2023, 9, 15, tzinfo=UTC)
    g = ActivityGrade.objects.create(
        activity_id="123/a0",
        student_id="s1",
        status="graded",
        submitted_at=at,
        created_at=at,
        content={"a": [1, 2]},
    )
    assert len(g.pk) == 26  # app-generated, time-ordered id
    got = ActivityGrade.objects.get(pk=g.pk)
    assert (got.class_id, got.term_id, got.content) == ("123", "2023_fall", {"a": [1, 2]})
    assert list(ActivityGrade.objects.filter(student_id="s1").values_list("pk", flat=True)) == [
        g.pk
    ]
    assert table(g) == "activity_grades_class_123_term_2023_fall"


def test_save_changed_score_updates_in_place(lms):
    g = grade()
    g.save()
    g.score = 95.5
    g.save()
    assert ActivityGrade.objects.get(pk=g.pk).score == 95.5
    assert ActivityGrade.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_save_updates_only_the_grades_own_table(committed_lms):
    """save() of a stored grade plans and locks its leaf, not every child of the parent.

    Committed (not in a test transaction), so the locks seen are this save's only.
    """
    from django.test.utils import CaptureQueriesContext

    others = [grade(activity_id="456/a0", student_id=f"o{i}") for i in range(2)]
    for g in [*others, grade(activity_id="123/a1", created_at=dt.datetime(2024, 3, 1, tzinfo=UTC))]:
        g.save()  # a few more partitions in the tree
    g = grade()
    g.save()
    leaf = table(g)
    g = ActivityGrade.objects.get(pk=g.pk)
    g.score = 12.0
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        g.save()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT l.relation::regclass::text FROM pg_locks l "
                "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' "
                "AND l.relation::regclass::text LIKE 'activity_grades_class_%%'"
            )
            locked = {r[0] for r in cursor.fetchall()}
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1 and updates[0].startswith(f'UPDATE "{leaf}" SET'), updates
    assert {t for t in locked if not t.startswith(leaf)} == set(), locked
    assert ActivityGrade.objects.get(pk=g.pk).score == 12.0
    assert ActivityGrade.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_delete_of_one_grade_deletes_from_its_own_table(committed_lms):
    from django.db.models.signals import post_delete, pre_delete
    from django.test.utils import CaptureQueriesContext

    for i in range(2):
        grade(activity_id="456/a0", student_id=f"o{i}").save()
    g = grade()
    g.save()
    leaf, pk = table(g), g.pk
    seen: list[str] = []

    def receiver(signal, **kwargs):
        seen.append(f"{signal is pre_delete and 'pre' or 'post'}:{kwargs['instance'].pk}")

    pre_delete.connect(receiver, sender=ActivityGrade)
    post_delete.connect(receiver, sender=ActivityGrade)
    try:
        with CaptureQueriesContext(connection) as queries:
            assert g.delete() == (1, {"activity_grades.ActivityGrade": 1})
    finally:
        pre_delete.disconnect(receiver, sender=ActivityGrade)
        post_delete.disconnect(receiver, sender=ActivityGrade)
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    expected = f'DELETE FROM "{leaf}" WHERE "{leaf}"."id" = \'{pk}\''  # noqa: S608 - compared, not run
    assert deletes == [expected], deletes
    assert seen == [f"pre:{pk}", f"post:{pk}"] and g.pk is None
    assert not ActivityGrade.objects.filter(pk=pk).exists()
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 2  # the key index followed


def test_save_of_a_grade_deleted_meanwhile_inserts_it_again(lms):
    """As Django does for any model: an UPDATE that finds no row becomes an INSERT."""
    g = grade()
    g.save()
    ActivityGrade.objects.filter(pk=g.pk).delete()
    g.score = 1.0
    g.save()
    assert ActivityGrade.objects.get(pk=g.pk).score == 1.0
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1


def test_save_with_created_at_in_another_term_moves_the_row(lms):
    g = grade()
    g.save()
    g.created_at = dt.datetime(2024, 3, 1, tzinfo=UTC)
    g.score = 12.0
    g.save()  # UPDATE reports 0 rows (moved); select_on_save keeps Django from re-inserting
    assert ActivityGrade.objects.count() == 1
    moved = ActivityGrade.objects.get(pk=g.pk)
    assert (moved.term_id, moved.score) == ("2024_spring", 12.0)
    assert table(g) == "activity_grades_class_123_term_2024_spring"
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1


def test_save_with_activity_of_another_class_moves_the_row(lms):
    g = grade()
    g.save()
    g.activity_id = "456/a1"
    g.save()
    moved = ActivityGrade.objects.get(pk=g.pk)
    assert (moved.class_id, moved.term_id) == ("456", "2023_fall")
    assert table(g) == "activity_grades_class_456_term_2023_fall"
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1


def test_move_into_a_gap_between_terms_goes_to_the_class_table(lms):
    g = grade()
    g.save()
    ActivityGrade.objects.filter(pk=g.pk).update(created_at=dt.datetime(2024, 1, 5, tzinfo=UTC))
    assert table(g) == "activity_grades_class_123"
    assert ActivityGrade.objects.get(pk=g.pk).term_id is None


def test_queryset_update_moves_many_and_keeps_everything(lms):
    ActivityGrade.objects.bulk_create(
        [grade(student_id=f"s{i}", activity_id=f"123/a{i % 2}") for i in range(40)]
    )
    # Score only: in place, counted.
    assert ActivityGrade.objects.filter(class_id="123").update(score=1.0) == 40
    # created_at into another term: every row moves; PostgreSQL counts only in-place rows.
    ActivityGrade.objects.filter(class_id="123").update(
        created_at=dt.datetime(2024, 9, 2, tzinfo=UTC)
    )
    assert ActivityGrade.objects.filter(term_id="2024_fall", score=1.0).count() == 40
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 40


def test_bulk_create_routes_every_row(lms):
    objs = [
        grade(
            student_id=f"s{i}", created_at=dt.datetime(2023 + i % 2, 10 - i % 2 * 7, 1, tzinfo=UTC)
        )
        for i in range(30)
    ]
    ActivityGrade.objects.bulk_create(objs)
    assert ActivityGrade.objects.count() == 30
    assert {g.term_id for g in ActivityGrade.objects.all()} == {"2023_fall", "2024_spring"}
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 30


def test_delete_one_and_queryset_delete(lms):
    a, b, c = grade(student_id="a"), grade(student_id="b"), grade(student_id="c")
    ActivityGrade.objects.bulk_create([a, b, c])
    ActivityGrade.objects.get(pk=a.pk).delete()
    assert ActivityGrade.objects.filter(student_id__in=["b", "c"]).delete()[0] == 2
    assert ActivityGrade.objects.count() == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM activity_grades_key")
        assert cursor.fetchone()[0] == 0


def test_duplicate_through_the_orm_is_an_integrity_error(lms):
    grade().save()
    with pytest.raises(IntegrityError), transaction.atomic():
        grade(created_at=dt.datetime(2024, 3, 1, tzinfo=UTC)).save()


def test_get_or_create_and_update_or_create(lms):
    g, created = ActivityGrade.objects.get_or_create(
        activity_id="123/a0",
        student_id="s1",
        defaults={
            "status": "graded",
            "submitted_at": dt.datetime(2023, 9, 1, tzinfo=UTC),
            "created_at": dt.datetime(2023, 9, 1, tzinfo=UTC),
        },
    )
    assert created
    g2, created = ActivityGrade.objects.update_or_create(
        activity_id="123/a0", student_id="s1", defaults={"score": 70.0}
    )
    assert not created and g2.pk == g.pk and ActivityGrade.objects.get().score == 70.0


def test_deletes_through_a_class_table_or_a_leaf_keep_the_key_index(lms):
    ActivityGrade.objects.bulk_create([grade(student_id=f"s{i}") for i in range(6)])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM activity_grades_class_123 WHERE student_id IN ('s0', 's1')")
        cursor.execute(
            "DELETE FROM activity_grades_class_123_term_2023_fall WHERE student_id = 's2'"
        )
        assert assert_tree_consistent(cursor) == 3


@pytest.mark.parametrize("target", ["activity_grades", "activity_grades_class_123_term_2023_fall"])
def test_truncate_is_refused(lms, target):
    grade().save()
    with pytest.raises(Exception, match="TRUNCATE"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {target}")  # noqa: S608 - fixed test names
    assert ActivityGrade.objects.count() == 1
