"""The default manager reads and writes only the partitions its filters pin.

Every shape is compared with the same query through the parent
(``across_all_partitions()``), and the relations it locked are read from ``pg_locks``
inside its transaction: a routed query never locks a partition it does not need.
"""

from __future__ import annotations

import logging

import pytest
from django.core.paginator import Paginator
from django.db import ProgrammingError, connection, transaction
from django.db.models import Avg, Count, signals
from django.test.utils import CaptureQueriesContext

from activity_grades import ActivityGrade, UnroutableQuery
from activity_grades.db import registry
from activity_grades.operations import archive
from tests.archive_support import drop_archive
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
C456 = "activity_grades_class_456"


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
        # One class pinned: read whole in one statement (its own tables, never others').
        ({"student_id": "s1", "activity_id": "456/a0"}, {C456, C456F, C456S}),
        ({"pk": "nope"}, set()),
        ({"student_id": "s1", "class_id": "456", "score__isnull": True}, {C456, C456F, C456S}),
        # Two classes pinned: the key index narrows them to the student's partitions.
        ({"student_id": "s1", "class_id__in": ["123", "456"]}, {C123F, C123, C456F}),
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


@pytest.mark.parametrize(
    ("filters", "tables"),
    [
        # Inside one term: its leaves only.
        (
            {"created_at__gte": "2023-09-01 00:00+00", "created_at__lt": "2023-11-01 00:00+00"},
            {C123F, C456F},
        ),
        # Across the gap between two terms: their leaves and the class tables.
        (
            {"created_at__range": ("2023-12-01 00:00+00", "2024-02-01 00:00+00")},
            {C123F, C456F, C123S, C456S, C123, C456},
        ),
        # Outside every term: the class tables only.
        ({"created_at": "2024-07-01 10:00+00"}, {C123, C456}),
        ({"created_at__gt": "2024-06-01 00:00+00"}, {C123, C456}),
        ({"created_at__lte": "2023-08-15 00:00+00", "class_id": "123"}, {C123, C123F, C123S}),
    ],
)
def test_created_at_ranges_read_the_terms_they_overlap(tree, filters, tables):
    routed, locked = _locked(lambda: _ids(ActivityGrade.objects.filter(**filters)))
    assert routed == _ids(ActivityGrade.objects.across_all_partitions().filter(**filters))
    assert locked - {"activity_grades", "activity_grades_key", "activity_grades_partition"} == (
        tables
    )


def _statements(run) -> list[str]:
    with CaptureQueriesContext(connection) as sent:
        run()
    return [q["sql"] for q in sent.captured_queries]


def test_common_reads_are_one_statement_once_the_cache_is_warm(tree):
    """Reads by class, (class, term) or activity name their tables from the cache; a grade
    read by id is read where the last lookup found it."""
    assert len(_statements(lambda: ActivityGrade.objects.get(pk="g1"))) == 2  # lookup, read
    sent = _statements(lambda: ActivityGrade.objects.get(pk="g1"))
    assert len(sent) == 1 and C456F in sent[0]
    for filters in (
        {"class_id": "123"},
        {"class_id": "123", "term_id": "2023_fall", "student_id": "s1"},
        {"activity_id": "123/a0"},
        {"pk": "f1"},
    ):
        expected = ActivityGrade.objects.across_all_partitions().filter(**filters).count()
        ActivityGrade.objects.filter(**filters).count()  # warms the cache
        with CaptureQueriesContext(connection) as sent:
            counted = ActivityGrade.objects.filter(**filters).count()
        assert len(sent.captured_queries) == 1 and counted == expected, filters
    # A read by student or several ids asks the key index first, every time.
    list(ActivityGrade.objects.filter(student_id="s1"))
    assert len(_statements(lambda: list(ActivityGrade.objects.filter(student_id="s1")))) == 2


def test_a_grade_moved_since_the_cache_saw_it_is_looked_up_again(tree):
    assert ActivityGrade.objects.get(pk="o1").term_id is None  # cached: the class table
    with connection.cursor() as cursor:  # another process moves it into 2023_fall
        cursor.execute(
            "UPDATE activity_grades SET created_at = '2023-11-01 10:00+00' WHERE id = 'o1'"
        )
    sent = _statements(lambda: ActivityGrade.objects.get(pk="o1"))
    assert len(sent) == 3 and C123 in sent[0] and C123F in sent[2]  # stale, lookup, read
    assert ActivityGrade.objects.get(pk="o1").term_id == "2023_fall"
    assert ActivityGrade.objects.filter(pk="o1").exists()
    assert ActivityGrade.objects.filter(pk="o1", term_id__isnull=True).count() == 0
    with pytest.raises(ActivityGrade.DoesNotExist):
        ActivityGrade.objects.get(pk="nope")


def test_a_table_dropped_since_its_name_was_cached_is_read_again(tree):
    """Another process archived the term: this one's cached name of the leaf is stale."""
    try:
        _read_a_dropped_leaf()
    finally:
        drop_archive()  # unmanaged: Django's flush leaves archived rows behind


def _read_a_dropped_leaf() -> None:
    leaf = {"class_id": "123", "term_id": "2023_fall"}
    assert ActivityGrade.objects.filter(**leaf).count() == 2
    archive.plan(["2023_fall"], force=True).apply()
    stale = ("123", "2023_fall")
    registry._names.put("default", stale, C123F)  # what the other process still holds
    assert ActivityGrade.objects.filter(**leaf).count() == 0  # forgotten and read again
    assert registry._names.get("default", stale) is None
    registry._names.put("default", stale, C123F)
    # Inside a transaction the statement cannot be retried: the error, and the cache is clear.
    with pytest.raises(ProgrammingError), transaction.atomic():
        ActivityGrade.objects.filter(**leaf).count()
    assert registry._names.get("default", stale) is None
    assert ActivityGrade.objects.filter(**leaf).count() == 0


def test_a_partition_of_a_rolled_back_transaction_is_never_cached(tree):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(INSERT, ["n1", "123/a0", "s7", "2024-09-01 10:00+00"])
        assert ActivityGrade.objects.filter(class_id="123", term_id="2024_fall").count() == 1
        transaction.set_rollback(True)
    assert registry._names.get("default", ("123", "2024_fall")) is None
    assert ActivityGrade.objects.filter(class_id="123", term_id="2024_fall").count() == 0


def test_a_query_pinning_more_partitions_than_the_limit_is_refused(tree, settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "ROUTING_PARTITION_LIMIT": 1}
    with pytest.raises(UnroutableQuery, match="pins more partitions than the limit"):
        ActivityGrade.objects.filter(term_id="2024_spring").count()
    assert ActivityGrade.objects.filter(class_id="123", term_id="2024_spring").count() == 1


def test_delete_with_signal_receivers_sends_them_and_deletes_from_the_partitions(tree):
    seen: list[tuple[str, str]] = []

    def pre(sender, instance, **kwargs):
        seen.append(("pre", instance.pk))

    def post(sender, instance, **kwargs):
        seen.append(("post", instance.pk))

    signals.pre_delete.connect(pre, sender=ActivityGrade)
    signals.post_delete.connect(post, sender=ActivityGrade)
    try:
        (count, by_model), locked = _locked(
            lambda: ActivityGrade.objects.filter(student_id="s1", class_id="123").delete()
        )
        assert count == 2 and by_model == {"activity_grades.ActivityGrade": 2}
        assert seen == [("pre", "f1"), ("pre", "o1"), ("post", "f1"), ("post", "o1")]
        assert not locked & {C456, C456F, C456S}  # never the parent's other children
        assert _ids(ActivityGrade.objects.across_all_partitions()) == ["f2", "g1", "g2", "p1"]

        def refuse(sender, instance, **kwargs):
            raise RuntimeError("kept")

        signals.post_delete.connect(refuse, sender=ActivityGrade)
        with pytest.raises(RuntimeError, match="kept"):
            ActivityGrade.objects.filter(student_id="s2").delete()
        signals.post_delete.disconnect(refuse, sender=ActivityGrade)
        # The receiver's error rolled the whole delete back.
        assert _ids(ActivityGrade.objects.across_all_partitions()) == ["f2", "g1", "g2", "p1"]
    finally:
        signals.pre_delete.disconnect(pre, sender=ActivityGrade)
        signals.post_delete.disconnect(post, sender=ActivityGrade)
