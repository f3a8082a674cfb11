"""ActivityGradeService and ActivityGrade.objects.for_class against real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.paginator import Paginator
from django.db import connection, connections, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from psycopg import sql

from activity_grades.models import ActivityGrade
from activity_grades.service import ActivityGradeService
from tests.archive_support import drop_archive
from tests.helpers import assert_tree_consistent
from tests.helpers import leaf as registry

UTC = dt.timezone.utc
FALL = dt.datetime(2023, 9, 10, 12, tzinfo=UTC)
SPRING = dt.datetime(2024, 2, 10, 12, tzinfo=UTC)
GAP = dt.datetime(2024, 7, 1, 12, tzinfo=UTC)  # between terms: the class table


def grade(activity, student, at=FALL, **extra):
    return {
        "activity_id": activity,
        "student_id": student,
        "status": "graded",
        "submitted_at": at,
        "created_at": at,
        "score": 1.0,
        **extra,
    }


def where_is(grade_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM activity_grades WHERE id = %s", [grade_id]
        )
        rows = cursor.fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]


def keys():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, activity_id, student_id, class_id, term_id FROM activity_grades_key"
        )
        key_rows = set(cursor.fetchall())
        cursor.execute("SELECT id, activity_id, student_id, class_id, term_id FROM activity_grades")
        grade_rows = set(cursor.fetchall())
    return key_rows, grade_rows


@pytest.mark.django_db
def test_record_lands_in_leaf_and_key_index(lms):
    svc = ActivityGradeService()
    g = svc.record(
        "123/a0",
        "s1",
        status="graded",
        submitted_at=FALL,
        created_at=FALL,
        score=9.5,
        content={"answer": [1, 2]},
    )
    assert (g.class_id, g.term_id) == ("123", "2023_fall")
    assert g.content == {"answer": [1, 2]}
    assert where_is(g.id) == registry("123", "2023_fall")
    gap = svc.record("123/a1", "s1", status="graded", submitted_at=GAP, created_at=GAP)
    assert gap.term_id is None and where_is(gap.id) == registry("123", None)
    key_rows, grade_rows = keys()
    assert key_rows == grade_rows and len(key_rows) == 2
    assert ActivityGrade.objects.get(pk=g.id).score == 9.5


@pytest.mark.django_db
def test_record_rejects_duplicates_across_partitions(lms):
    svc = ActivityGradeService()
    svc.record("123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL)
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        # Same (activity, student), other term: another leaf; the key index refuses it.
        svc.record("123/a0", "s1", status="graded", submitted_at=SPRING, created_at=SPRING)


@pytest.mark.django_db
def test_record_many_groups_by_partition(lms):
    svc = ActivityGradeService()
    rows = [grade("123/a0", f"s{i}") for i in range(5)]
    rows += [grade("456/a1", f"s{i}", SPRING) for i in range(3)]
    rows += [grade("456/a0", "s9", GAP)]
    result = svc.record_many(rows)
    assert result.rows == 9
    assert result.per_table == {
        registry("123", "2023_fall"): 5,
        registry("456", "2024_spring"): 3,
        registry("456", None): 1,
    }
    # Leaves made on demand (their class tables come with them, not listed).
    assert set(result.partitions_created) == {
        registry("123", "2023_fall"),
        registry("456", "2024_spring"),
    }
    for table, n in result.per_table.items():
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table)))
            assert cursor.fetchone()[0] == n
    key_rows, grade_rows = keys()
    assert key_rows == grade_rows and len(key_rows) == 9


@pytest.mark.django_db
def test_upsert_updates_in_place(lms):
    svc = ActivityGradeService()
    first, created = svc.upsert(
        "123/a0", "s1", status="submitted", submitted_at=FALL, created_at=FALL
    )
    assert created
    second, created = svc.upsert("123/a0", "s1", status="graded", score=7.0)
    assert not created and second.id == first.id and second.score == 7.0
    assert ActivityGrade.objects.filter(activity_id="123/a0", student_id="s1").count() == 1
    # Changing created_at moves it to another term's leaf (activity_grades_move).
    moved, _ = svc.upsert("123/a0", "s1", created_at=SPRING)
    assert moved.term_id == "2024_spring" and where_is(first.id) == registry("123", "2024_spring")
    key_rows, grade_rows = keys()
    assert key_rows == grade_rows and len(key_rows) == 1


def test_upsert_concurrent_connections_end_with_one_row(committed_lms):
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    results = []

    def worker(score):
        try:
            barrier.wait(timeout=10)
            results.append(
                ActivityGradeService().upsert(
                    "123/a0",
                    "s1",
                    status="graded",
                    submitted_at=FALL,
                    created_at=FALL,
                    score=score,
                )
            )
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(created for _, created in results) == [False, True]
    rows = list(ActivityGrade.objects.filter(activity_id="123/a0", student_id="s1"))
    assert len(rows) == 1 and rows[0].score in (1.0, 2.0)
    key_rows, grade_rows = keys()
    assert key_rows == grade_rows and len(key_rows) == 1


@pytest.fixture
def loaded(lms):
    svc = ActivityGradeService()
    rows = []
    for cls in ("123", "456"):
        for a in ("a0", "a1"):
            for i, at in enumerate((FALL, SPRING, GAP, FALL, SPRING)):
                rows.append(grade(f"{cls}/{a}", f"s{i}", at, score=float(i)))
    svc.record_many(rows)
    return svc


def ids(grades):
    return sorted(g.id for g in grades)


@pytest.mark.django_db
def test_reads_match_the_parent(loaded):
    svc = loaded
    parent = ActivityGrade.objects
    assert ids(svc.gradebook("123", "2023_fall")) == ids(
        parent.filter(class_id="123", term_id="2023_fall")
    )
    assert ids(svc.student_grades_in_class("s1", "456", "2024_spring")) == ids(
        parent.filter(student_id="s1", class_id="456", term_id="2024_spring")
    )
    assert ids(svc.student_grades_in_class("s2", "456")) == ids(
        parent.filter(student_id="s2", class_id="456")
    )
    assert ids(svc.activity_grades("123/a1")) == ids(parent.filter(activity_id="123/a1"))
    record = svc.student_record("s0")
    assert ids(record) == ids(parent.filter(student_id="s0")) and len(record) == 4
    one = parent.filter(student_id="s2").first()
    got = svc.get(one.id)
    assert got is not None and got.id == one.id and got.created_at == one.created_at
    assert svc.get("missing") is None
    assert svc.gradebook("123", "2024_fall") == []
    stats = {s.activity_id: s for s in svc.activity_stats("123", "2023_fall")}
    assert set(stats) == {"123/a0", "123/a1"}
    assert stats["123/a0"].grades == 2 and stats["123/a0"].avg_score == 1.5


@pytest.mark.django_db
def test_for_class_querysets(loaded):
    leaf = registry("123", "2023_fall")
    qs = ActivityGrade.objects.for_class("123", "2023_fall")
    assert qs.partition_table_name() == leaf
    assert str(qs.query).count(leaf) == 1 and " activity_grades.class_id" not in str(qs.query)
    assert ids(qs) == ids(ActivityGrade.objects.filter(class_id="123", term_id="2023_fall"))
    ordered = list(qs.filter(score__gte=0).order_by("-score", "id").values_list("score", flat=True))
    assert ordered == sorted(ordered, reverse=True) and len(ordered) == 4
    whole = ActivityGrade.objects.for_class("123")
    assert whole.count() == ActivityGrade.objects.filter(class_id="123").count() == 10
    page = Paginator(whole.order_by("id"), 3).page(2)
    assert [g.id for g in page] == ids(ActivityGrade.objects.filter(class_id="123"))[3:6]
    assert ActivityGrade.objects.for_class("nope").count() == 0
    assert ActivityGrade.objects.for_class("123", "2024_fall").count() == 0
    # Writes through it are sent to the partition itself, scoped to the QuerySet's rows.
    with CaptureQueriesContext(connection) as queries:
        assert qs.filter(student_id="s0").update(score=F("score") + 40) == 2
        assert qs.filter(student_id="s0").delete() == (2, {"activity_grades.ActivityGrade": 2})
    statements = [q["sql"].split(" SET ")[0].split(" WHERE ")[0] for q in queries]
    assert statements == [f'UPDATE "{leaf}"', f'DELETE FROM "{leaf}"'], statements  # noqa: S608
    assert not ActivityGrade.objects.filter(class_id="123", student_id="s0").exists()
    assert whole.filter(student_id="s1").update(score=7.0) == 2  # class table + its leaves
    assert ActivityGrade.objects.filter(student_id="s1", score=7.0).count() == 2
    key_rows, grade_rows = keys()
    assert key_rows == grade_rows


@pytest.mark.django_db
def test_for_class_update_that_moves_rows_and_delete_with_signals(loaded):
    from django.db.models.signals import pre_delete

    qs = ActivityGrade.objects.for_class("123", "2023_fall").filter(student_id="s0")
    moved_ids = ids(qs)
    qs.update(created_at=dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc))  # into 2024_spring
    moved = ActivityGrade.objects.filter(pk__in=moved_ids)
    assert {g.term_id for g in moved} == {"2024_spring"} and moved.count() == len(moved_ids)
    seen: list[str] = []

    def receiver(instance, **kwargs):
        seen.append(instance.pk)

    pre_delete.connect(receiver, sender=ActivityGrade)
    try:  # with a receiver, Django's collector deletes (and sends the signals)
        spring = ActivityGrade.objects.for_class("123", "2024_spring")
        assert spring.filter(pk__in=moved_ids).delete()[0] == len(moved_ids)
    finally:
        pre_delete.disconnect(receiver, sender=ActivityGrade)
    assert sorted(seen) == sorted(moved_ids)
    with connection.cursor() as cursor:
        assert_tree_consistent(cursor)


def relation_locks(cursor) -> set[str]:
    cursor.execute(
        "SELECT l.relation::regclass::text FROM pg_locks l WHERE l.pid = pg_backend_pid() "
        "AND l.locktype = 'relation' AND l.relation::regclass::text NOT LIKE 'pg_%%'"
    )
    return {r[0] for r in cursor.fetchall()}


@pytest.fixture
def committed_loaded(committed_lms):
    rows = [
        grade(f"{c}/a0", f"s{i}", at)
        for c in ("123", "456")
        for i, at in enumerate((FALL, SPRING, GAP))
    ]
    ActivityGradeService().record_many(rows)
    return {registry(c, t) for c in ("123", "456") for t in (None, "2023_fall", "2024_spring")}


def test_point_query_locks_only_its_leaf(committed_loaded):
    svc = ActivityGradeService()
    leaf = registry("456", "2024_spring")
    svc.student_grades_in_class("s1", "456", "2024_spring")  # warm the table-name cache
    with transaction.atomic(), connection.cursor() as cursor:
        got = svc.student_grades_in_class("s1", "456", "2024_spring")
        locked = relation_locks(cursor)
    assert len(got) == 1
    assert leaf in locked
    assert locked & committed_loaded == {leaf}, locked
    # Besides the leaf, only its own indexes (named after it) are locked.
    assert all(t.startswith(leaf) for t in locked), locked


def test_student_record_reads_only_the_students_partitions(committed_loaded):
    svc = ActivityGradeService()
    mine = {registry(c, "2023_fall") for c in ("123", "456")}
    with transaction.atomic(), connection.cursor() as cursor:
        got = svc.student_record("s0")
        locked = relation_locks(cursor)
    assert sorted(g.class_id for g in got) == ["123", "456"]
    assert {g.student_id for g in got} == {"s0"}
    assert locked & committed_loaded == mine, locked


def test_parent_query_locks_every_partition_for_contrast(committed_loaded):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM activity_grades WHERE student_id = 's1' AND class_id = '456' "
            "AND term_id = '2024_spring'"
        )
        locked = relation_locks(cursor)
    assert committed_loaded <= locked


@pytest.mark.skipif(bool(os.environ.get("SKIP_BENCH_SMOKE")), reason="SKIP_BENCH_SMOKE set")
def test_bench_runs_end_to_end(tmp_path):
    """The benchmark command at a tiny size (its own scratch database)."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)  # DATABASE_URL: settings export the embedded server's URL
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--rows",
            "2000",
            "--leaves",
            "4",
            "--partition-counts",
            "10",
            "--create-count",
            "6",
            "--repeat",
            "1",
            "--single-rows",
            "50",
            "--batch-rows",
            "200",
            "--archive-rows",
            "1000",
            "--database-name",
            f"bench_smoke_{os.getpid()}",
            "--output",
            str(tmp_path),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = (tmp_path / "results.md").read_text()
    assert "| single-row INSERT" in report
    assert "| archive one term | app archive_grades" in report
    assert "| student record @" in report
    assert (tmp_path / "results.png").stat().st_size > 0


@pytest.mark.django_db(transaction=True)
def test_archiving_a_term_clears_the_service_table_cache(committed_lms):
    """After archive(), this process's service reads nothing from the dropped leaf."""
    import datetime as dt

    from activity_grades.db import registry
    from activity_grades.operations import archive

    at = dt.datetime(2023, 9, 1, tzinfo=dt.timezone.utc)
    svc = ActivityGradeService()
    svc.record("123/a0", "s1", status="graded", submitted_at=at, created_at=at)
    assert len(svc.gradebook("123", "2023_fall")) == 1  # caches the leaf's name
    assert registry._names.get("default", ("123", "2023_fall"))
    try:
        archive.plan(["2023_fall"], force=True).apply()
        assert registry._names.get("default", ("123", "2023_fall")) is None
        assert svc.gradebook("123", "2023_fall") == []
    finally:
        drop_archive()  # unmanaged: Django's flush leaves archived rows behind


@pytest.mark.django_db
def test_registry_lookups_can_use_its_indexes(loaded):
    """Lookups of a grade's or a student's tables never need to scan the whole registry
    (a join on term_id IS NOT DISTINCT FROM could not use an index)."""
    from activity_grades.db import registry

    live = registry.LIVE_TABLE
    queries = [
        sql.SQL("SELECT {} FROM activity_grades_key k WHERE k.id = 'x'").format(live),
        sql.SQL("SELECT {} FROM (SELECT '123'::text AS class_id, NULL::text AS term_id) k").format(
            live
        ),
    ]
    old_join = sql.SQL(
        "SELECT p.table_name FROM activity_grades_key k JOIN activity_grades_partition p"
        " ON p.class_id = k.class_id AND p.term_id IS NOT DISTINCT FROM k.term_id WHERE k.id = 'x'"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # any plan left with one has no index
        for query in queries:
            cursor.execute(sql.SQL("EXPLAIN {}").format(query).as_string(cursor.connection))
            plan = "\n".join(r[0] for r in cursor.fetchall())
            assert "activity_grades_partition" in plan and "Seq Scan" not in plan, plan
        cursor.execute(sql.SQL("EXPLAIN {}").format(old_join).as_string(cursor.connection))
        assert "Seq Scan on activity_grades_partition" in str(cursor.fetchall())  # the contrast


@pytest.mark.django_db
def test_record_of_an_unknown_activity_is_refused(lms):
    from django.db import IntegrityError

    svc = ActivityGradeService()
    for given in ({}, {"term_id": "2023_fall"}):
        with pytest.raises(IntegrityError, match="'nope/a0' does not exist"):
            svc.record("nope/a0", "s1", status="graded", submitted_at=FALL, **given)
    assert ActivityGrade.objects.count() == 0
    # Between terms: class found, no term, the class table.
    g = svc.record("123/a0", "s1", status="graded", submitted_at=GAP, created_at=GAP)
    assert (g.class_id, g.term_id) == ("123", None)
