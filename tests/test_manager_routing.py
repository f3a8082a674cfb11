"""The default manager reads and writes only the partitions its filters pin.

Every shape is compared with the same query through the parent
(``across_all_partitions()``), and the relations it locked are read from ``pg_locks``
inside its transaction: a routed query never locks a partition it does not need.
"""

from __future__ import annotations

import logging

import pytest
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.db.models import Avg, Count

from activity_grades import ActivityGrade, UnroutableQuery
from tests.helpers import INSERT

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = [
    # id, activity, student, created_at -> (class 123 | 456) x (2023_fall | 2024_spring)
    ("f1", "123/a0", "s1", "2023-09-15 10:00+00"),
    ("f2", "123/a1", "s2", "2023-10-15 10:00+00"),
    ("p1", "123/a0", "s3", "2024-02-15 10:00+00"),
    ("o1", "123/a1", "s1", "2024-07-01 10:00+00"),  # outside every term: the class table
    ("g1", "456/a0", "s1", "2023-09-20 10:00+00"),
    ("g2", "456/a1", "s2", "2024-03-01 10:00+00"),
]


@pytest.fixture
def tree(committed_lms):
    with connection.cursor() as cursor:
        for row in ROWS:
            cursor.execute(INSERT, list(row))


def _locked(run) -> tuple[object, set[str]]:
    """run() inside a transaction; its result and the app's tables it locked."""
    with transaction.atomic(), connection.cursor() as cursor:
        result = run()
        cursor.execute(
            "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.pid = pg_backend_pid() AND c.relkind = 'r' "
            "AND c.relname LIKE 'activity\\_grades%%'"
        )
        return result, {r[0] for r in cursor.fetchall()}


def _ids(qs) -> list[str]:
    return sorted(qs.values_list("id", flat=True))


C123F = "activity_grades_class_123_term_2023_fall"
C123S = "activity_grades_class_123_term_2024_spring"
C456F = "activity_grades_class_456_term_2023_fall"
C456S = "activity_grades_class_456_term_2024_spring"
C123 = "activity_grades_class_123"


@pytest.mark.parametrize(
    ("filters", "tables"),
    [
        ({"pk": "f1"}, {C123F}),
        ({"id__in": ["f1", "g2"]}, {C123F, C456S}),
        ({"student_id": "s1"}, {C123F, C123, C456F}),
        ({"student_id__in": ["s2", "s3"]}, {C123F, C123S, C456S}),
        (
            {"activity_id": "123/a0"},
            {C123, C123F, C123S},
        ),
        ({"class_id": "456", "term_id": "2023_fall"}, {C456F}),
        ({"term_id": "2024_spring"}, {C123S, C456S}),
        ({"student_id": "s1", "activity_id": "456/a0"}, {C456F}),
        ({"pk": "nope"}, set()),
        ({"student_id": "s1", "class_id": "456", "score__isnull": True}, {C456F}),
    ],
)
def test_each_pinned_shape_reads_only_its_partitions_and_finds_what_the_parent_finds(
    tree, filters, tables
):
    routed, locked = _locked(lambda: _ids(ActivityGrade.objects.filter(**filters)))
    assert routed == _ids(ActivityGrade.objects.across_all_partitions().filter(**filters))
    # The parent is locked too (Django names it); no other partition is.
    assert locked - {"activity_grades", "activity_grades_key", "activity_grades_partition"} == (
        tables
    )


def test_counts_aggregates_values_slicing_ordering_and_paging_match_the_parent(tree):
    routed = ActivityGrade.objects.filter(student_id__in=["s1", "s2"])
    parent = ActivityGrade.objects.across_all_partitions().filter(student_id__in=["s1", "s2"])
    assert routed.count() == parent.count() == 5
    assert routed.exists() and not ActivityGrade.objects.filter(pk="nope").exists()
    assert routed.aggregate(n=Count("id"), avg=Avg("points")) == parent.aggregate(
        n=Count("id"), avg=Avg("points")
    )
    assert list(routed.order_by("-created_at").values("id", "class_id")[1:4]) == list(
        parent.order_by("-created_at").values("id", "class_id")[1:4]
    )
    assert [g.id for g in routed.order_by("id").iterator(chunk_size=2)] == _ids(parent)
    page = Paginator(routed.order_by("id"), 2).page(2)
    assert [g.id for g in page] == [g.id for g in Paginator(parent.order_by("id"), 2).page(2)]
    assert list(routed.values("class_id").annotate(n=Count("id")).order_by("class_id")) == list(
        parent.values("class_id").annotate(n=Count("id")).order_by("class_id")
    )


def test_get_get_or_create_and_update_or_create(tree):
    assert ActivityGrade.objects.get(pk="g1").student_id == "s1"
    grade, created = ActivityGrade.objects.get_or_create(
        activity_id="456/a0",
        student_id="s1",
        defaults={"status": "graded", "submitted_at": "2023-09-20 10:00+00"},
    )
    assert not created and grade.id == "g1"
    grade, created = ActivityGrade.objects.update_or_create(
        activity_id="456/a1",
        student_id="s9",
        defaults={
            "status": "graded",
            "submitted_at": "2024-03-02 10:00+00",
            "created_at": "2024-03-02 10:00+00",
        },
    )
    assert created and ActivityGrade.objects.get(pk=grade.pk).term_id == "2024_spring"


def test_update_and_delete_reach_only_their_partitions_and_move_rows(tree):
    count, locked = _locked(lambda: ActivityGrade.objects.filter(student_id="s1").update(points=7))
    # The class table's own row (outside every term) is updated through the class table,
    # which locks its term tables too (one class's, never the tree's); no other class's.
    assert count == 3 and locked >= {C123F, C123, C456F} and C456S not in locked
    assert set(
        ActivityGrade.objects.across_all_partitions().filter(points=7).values_list("id", flat=True)
    ) == {"f1", "o1", "g1"}
    # A change of created_at moves the grade to its new term's partition.
    ActivityGrade.objects.filter(pk="o1").update(created_at="2023-11-01 10:00+00")
    assert ActivityGrade.objects.get(pk="o1").term_id == "2023_fall"
    deleted, _ = ActivityGrade.objects.filter(activity_id="456/a1").delete()
    assert deleted == 1
    assert _ids(ActivityGrade.objects.across_all_partitions()) == ["f1", "f2", "g1", "o1", "p1"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM activity_grades_key")
        assert cursor.fetchone()[0] == 5


def test_select_for_update_locks_one_partition_and_refuses_a_union(tree):
    with transaction.atomic():
        assert [g.id for g in ActivityGrade.objects.select_for_update().filter(pk="f1")] == ["f1"]
        with pytest.raises(UnroutableQuery, match="select_for_update"):
            list(ActivityGrade.objects.select_for_update().filter(student_id="s1"))


def test_a_query_that_pins_nothing_is_refused_above_the_limit_and_logged(tree, settings, caplog):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "ROUTING_PARTITION_LIMIT": 2}
    with caplog.at_level(logging.WARNING, logger="activity_grades"):
        with pytest.raises(UnroutableQuery, match="lock all 6 partitions"):
            ActivityGrade.objects.filter(score__gt=1).count()
        with pytest.raises(UnroutableQuery):
            ActivityGrade.objects.filter(score__gt=1).update(points=1)
    assert "refused a query on every partition (6)" in caplog.text and "score" in caplog.text
    assert ActivityGrade.objects.across_all_partitions().filter(score__isnull=True).count() == 6
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "ROUTING_PARTITION_LIMIT": 100}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="activity_grades"):
        assert ActivityGrade.objects.count() == 6
    assert "a query reads every partition (6)" in caplog.text
