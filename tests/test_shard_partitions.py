"""Shards, issue 16's second slice: a sharded class's partitions live on its shard.

The test database is the coordinator; shard1 and shard2 are two PostgreSQL servers of the
test's own (tests/shard_support.py). Class 123 is placed on shard1, class 456 on shard2;
a third class, 789, stays local. Where no server can be started, or the coordinator has
no postgres_fdw, the tests skip and say why.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import (
    DatabaseError,
    IntegrityError,
    NotSupportedError,
    connection,
    connections,
    transaction,
)
from django.test.utils import CaptureQueriesContext
from psycopg import sql

from activity_grades import placement
from activity_grades.db import months
from activity_grades.models import ActivityGrade
from activity_grades.operations import create, repair
from activity_grades.service import ActivityGradeService
from tests.conftest import drop_all_partitions, make_lms

from .shard_support import (
    SHARD_DATABASE,
    SHARD_DBS,
    clean_coordinator,
    clean_shard,
    require_servers,
    shard_servers,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.usefixtures("shard_servers")
shard_test = pytest.mark.django_db(transaction=True, databases=SHARD_DBS)

UTC = dt.timezone.utc
FALL = dt.datetime(2023, 9, 10, 12, tzinfo=UTC)
SPRING = dt.datetime(2024, 2, 10, 12, tzinfo=UTC)
TERMS = ("2023_fall", "2024_spring")


def server_running(server) -> bool:
    try:
        psycopg.connect(server.url(), connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture
def sharded(shard_servers, settings):  # noqa: F811
    """setup_shards done, class 123 on shard1 and 456 on shard2 with partitions for two
    terms, 789 local; everything is removed after."""
    require_servers(shard_servers)
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "SHARDS": ["shard1", "shard2"]}
    drop_all_partitions()
    make_lms(class_ids=("123", "456", "789"))
    call_command("setup_shards", stdout=StringIO())
    placement.place("123", "shard1")
    placement.place("456", "shard2")
    placement.place("789", "local")
    try:
        yield shard_servers
    finally:
        for server in shard_servers:
            if not server_running(server):
                server.start()  # a test stopped it
        for alias in ("shard1", "shard2"):
            connections[alias].close()
        clean_coordinator()  # the servers CASCADE: the foreign tables go with them
        drop_all_partitions()
        for server in shard_servers:
            clean_shard(server)
            with psycopg.connect(server.url(SHARD_DATABASE), autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS activity_grades CASCADE")


def create_partitions(*args: str) -> str:
    out = StringIO()
    call_command("create_partitions", *args, stdout=out)
    return out.getvalue()


def premade() -> None:
    args = [a for c in ("123", "456", "789") for a in ("--class", c)]
    create_partitions(*args, *[a for t in TERMS for a in ("--term", t)])


def on_shard(alias: str, query: str, params: list | None = None) -> list[tuple]:
    with connections[alias].cursor() as cur:
        cur.execute(query, params or [])
        return cur.fetchall()


def rows_in(alias: str, table: str, grade_id: str | None = None) -> int:
    """Rows of ``table`` on ``alias`` (a shard, or default), or of one grade there."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE id = %s OR %s IS NULL").format(
        sql.Identifier(table)
    )
    with connections[alias].cursor() as cur:
        cur.execute(query.as_string(None), [grade_id, grade_id])
        return int(cur.fetchone()[0])


def here(query: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(query, params or [])
        return cur.fetchall()


def leaf(class_id: str, term_id: str | None) -> str:
    return here(
        "SELECT table_name FROM activity_grades_partition "
        "WHERE class_id = %s AND term_id IS NOT DISTINCT FROM %s",
        [class_id, term_id],
    )[0][0]


def relkind(table: str) -> str:
    return str(here("SELECT relkind::text FROM pg_class WHERE relname = %s", [table])[0][0])


def problems() -> list[repair.Problem]:
    return repair.plan(keys=True).problems


def insert(grade_id: str, activity: str, student: str, at: dt.datetime) -> None:
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
            "created_at) VALUES (%s, %s, %s, 'graded', %s, %s)",
            [grade_id, activity, student, at, at],
        )


# -- create_partitions -------------------------------------------------------------------


@shard_test
def test_create_partitions_puts_a_sharded_class_on_its_shard(sharded):
    dry = create_partitions("--class", "123", "--term", "2023_fall", "--dry-run", "-v", "2")
    assert "/* on shard shard1 */ CREATE TABLE" in dry
    assert "/* on the coordinator */ CREATE FOREIGN TABLE" in dry
    assert 'SERVER "activity_grades_shard_shard1"' in dry
    assert on_shard("shard1", "SELECT count(*) FROM pg_inherits") == [(0,)]  # nothing made

    premade()
    class_table, fall = leaf("123", None), leaf("123", "2023_fall")
    # On the shard: flat children of its parent, CHECKs, indexes, marker, no trigger.
    remote = on_shard(
        "shard1",
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'activity_grades'::regclass "
        "ORDER BY 1",
    )
    assert sorted(r[0] for r in remote) == sorted([class_table, fall, leaf("123", "2024_spring")])
    assert {r[1] for r in remote} == {"activity_grades:partition"}
    cons = on_shard(
        "shard1",
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY 1",
        [fall],
    )
    assert [c[0] for c in cons if "check" in c[0]] == [
        "activity_grades_class_check",
        "activity_grades_term_check",
    ]
    indexes = on_shard(
        "shard1", "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [fall]
    )
    assert indexes[0][0] == 4  # pkey, activity, student, (activity, student)
    assert on_shard("shard1", "SELECT count(*) FROM pg_trigger") == [(0,)]
    assert on_shard("shard2", "SELECT count(*) FROM pg_inherits") == [(3,)]  # class 456
    # On the coordinator: foreign tables where local partitions would be.
    rows = here(
        "SELECT c.relname, c.relkind::text, p.relname, obj_description(c.oid, 'pg_class') "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE c.relname IN (%s, %s)",
        [class_table, fall],
    )
    assert sorted(rows) == sorted(
        [
            (class_table, "f", "activity_grades", "activity_grades:partition"),
            (fall, "f", class_table, "activity_grades:partition"),
        ]
    )
    assert here(
        "SELECT relkind::text FROM pg_class WHERE relname = %s", [leaf("789", "2023_fall")]
    ) == [("r",)]
    # Idempotent, and healthy.
    again = create.plan(["123", "456", "789"], list(TERMS))
    assert again.to_create == []
    assert problems() == []


@shard_test
def test_a_half_made_partition_is_finished_by_the_next_run(sharded):
    premade()
    fall = leaf("123", "2023_fall")
    # Killed after the shard's step: the remote table exists, the foreign table does not.
    with connection.cursor() as cur:
        cur.execute(f'DROP FOREIGN TABLE "{fall}"')
        cur.execute("DELETE FROM activity_grades_partition WHERE table_name = %s", [fall])
    assert "Created 1" in create_partitions("--class", "123", "--term", "2023_fall") or (
        leaf("123", "2023_fall") == fall
    )
    assert here("SELECT relkind::text FROM pg_class WHERE relname = %s", [fall]) == [("f",)]
    # The reverse: the remote table is gone (E037), the next run makes it again.
    with connections["shard1"].cursor() as cur:
        cur.execute(f'DROP TABLE "{fall}"')
    found = [p for p in repair.plan().problems if p.id == "activity_grades.E037"]
    assert len(found) == 1 and fall in found[0].message and "shard1" in found[0].message
    create_partitions("--class", "123", "--term", "2023_fall")
    assert on_shard("shard1", "SELECT count(*) FROM pg_class WHERE relname = %s", [fall]) == [(1,)]
    assert problems() == []


# -- every path --------------------------------------------------------------------------


@shard_test
def test_every_write_and_read_path_reaches_the_shard(sharded):
    premade()
    fall, spring = leaf("123", "2023_fall"), leaf("123", "2024_spring")
    svc = ActivityGradeService()
    # INSERT through the parent
    insert("g1", "123/a0", "s1", FALL)
    # ORM create and bulk_create
    created = ActivityGrade.objects.create(
        activity_id="123/a1", student_id="s1", status="graded", submitted_at=FALL, created_at=FALL
    )
    ActivityGrade.objects.bulk_create(
        [
            ActivityGrade(
                activity_id="123/a0",
                student_id=f"b{i}",
                status="graded",
                submitted_at=FALL,
                created_at=FALL,
            )
            for i in range(3)
        ]
    )
    # COPY into the parent
    with connection.cursor() as cur:
        with cur.copy(
            "COPY activity_grades (id, activity_id, student_id, status, submitted_at, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(4):
                copy.write_row([f"c{i}", "123/a1", f"c{i}", "graded", SPRING, SPRING])
    # the service
    recorded = svc.record("123/a0", "s2", status="graded", submitted_at=FALL, created_at=FALL)
    svc.record_many(
        [
            {
                "activity_id": "123/a0",
                "student_id": f"m{i}",
                "status": "graded",
                "submitted_at": SPRING,
                "created_at": SPRING,
            }
            for i in range(5)
        ]
    )
    # Everything is on shard1, nothing on the coordinator's local tables.
    assert rows_in("shard1", fall) == 6
    assert rows_in("shard1", spring) == 9
    assert here("SELECT count(*) FROM ONLY activity_grades") == [(0,)]
    assert here("SELECT count(*) FROM activity_grades_key WHERE class_id = '123'") == [(15,)]
    # reads
    book = svc.gradebook("123", "2023_fall")
    assert len(book) == 6 and {g.class_id for g in book} == {"123"}
    assert {g.id for g in svc.student_record("s1")} == {"g1", created.pk}
    assert recorded.id in {g.id for g in svc.student_record("s2")}
    assert ActivityGrade.objects.for_class("123", "2024_spring").count() == 9
    assert ActivityGrade.objects.for_class("123").count() == 15
    assert ActivityGrade.objects.get(pk="g1").student_id == "s1"
    assert ActivityGrade.objects.filter(student_id="c2").count() == 1
    # UPDATE that moves a grade between terms of the class (the move trigger, foreign)
    with connection.cursor() as cur:
        cur.execute("UPDATE activity_grades SET created_at = %s WHERE id = 'g1'", [SPRING])
        assert cur.rowcount in (0, 1)
    assert rows_in("shard1", spring, "g1") == 1
    assert rows_in("shard1", fall, "g1") == 0
    assert here("SELECT term_id FROM activity_grades_key WHERE id = 'g1'") == [("2024_spring",)]
    # ORM save of a column that does not move it
    g = ActivityGrade.objects.get(pk="g1")
    g.score = 9
    g.save()
    assert on_shard("shard1", "SELECT score FROM activity_grades WHERE id = 'g1'") == [(9,)]
    # DELETE
    ActivityGrade.objects.filter(pk="c0").delete()
    with connection.cursor() as cur:
        query = sql.SQL("DELETE FROM {} WHERE id = 'c1'").format(sql.Identifier(spring))
        cur.execute(query.as_string(None))  # naming the partition
    # Through the parent, PostgreSQL refuses a DELETE that reaches a foreign partition:
    # the parent's key trigger collects transition tuples (docs/sharding.md).
    with pytest.raises(NotSupportedError, match="transition tuples from child foreign"):
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("DELETE FROM activity_grades WHERE id = 'c2'")
    assert ActivityGrade.objects.filter(pk="c2").exists()
    # One whose plan reaches only local partitions (the CHECKs skip the foreign ones) works.
    insert("loc", "789/a0", "s1", FALL)
    with connection.cursor() as cur:
        cur.execute("DELETE FROM activity_grades WHERE class_id = '789' AND id = 'loc'")
        assert cur.rowcount == 1
    assert here("SELECT count(*) FROM activity_grades_key WHERE id = 'loc'") == [(0,)]
    # The ORM names the partitions whenever its filters pin them (student, here) ...
    assert ActivityGrade.objects.filter(student_id="c3").delete()[0] == 1
    # ... and one that pins none reads the rows first and deletes them by id, routed.
    assert rows_in("shard1", spring) == 7
    assert ActivityGrade.objects.filter(student_id__startswith="m").delete()[0] == 5
    assert rows_in("shard1", spring) == 2
    assert on_shard("shard1", "SELECT count(*) FROM activity_grades WHERE id IN ('c0', 'c1')") == [
        (0,)
    ]
    assert here("SELECT count(*) FROM activity_grades_key WHERE id IN ('c0', 'c1')") == [(0,)]
    assert problems() == []  # the key index agrees with the shard's rows (--keys)


@shard_test
def test_a_duplicate_is_refused_by_the_key_index_and_leaves_nothing_on_the_shard(sharded):
    premade()
    insert("d1", "123/a0", "s1", FALL)
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            insert("d2", "123/a0", "s1", FALL)  # same (activity, student)
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            insert("d1", "123/a1", "s9", SPRING)  # same id, another term
    assert on_shard("shard1", "SELECT id FROM activity_grades") == [("d1",)]
    # A local grade with the id of a sharded one is refused too: one key index.
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            insert("d1", "789/a0", "s1", FALL)
    assert here("SELECT count(*) FROM activity_grades_key") == [(1,)]


# -- failure and drift -------------------------------------------------------------------


@shard_test
def test_a_shard_that_is_down_fails_only_its_classes(sharded):
    premade()
    insert("x1", "123/a0", "s1", FALL)
    insert("x2", "456/a0", "s1", FALL)
    insert("x3", "789/a0", "s1", FALL)
    sharded[1].stop()  # shard2: class 456
    connections["shard2"].close()
    with pytest.raises(DatabaseError, match="activity_grades_shard_shard2"):
        with transaction.atomic():
            list(ActivityGrade.objects.for_class("456", "2023_fall"))
    with pytest.raises(DatabaseError, match="activity_grades_shard_shard2"):
        with transaction.atomic():
            insert("x4", "456/a1", "s1", FALL)
    # The other shard and the local class keep working, reads and writes.
    assert [g.id for g in ActivityGrade.objects.for_class("123", "2023_fall")] == ["x1"]
    assert [g.id for g in ActivityGrade.objects.for_class("789", "2023_fall")] == ["x3"]
    # Through the parent, naming the class: the CHECKs skip shard2's foreign tables.
    assert here("SELECT id FROM activity_grades WHERE class_id = '123'") == [("x1",)]
    insert("x5", "123/a1", "s1", FALL)
    insert("x6", "789/a1", "s1", FALL)
    assert len(ActivityGradeService().gradebook("123", "2023_fall")) == 2
    codes = {p.id for p in repair.plan().problems}
    assert "activity_grades.E030" in codes


def as_if_local(class_id: str):
    """The class placed 'local' for the block: what the routing trigger did before
    migration 0017 (ensure_partition v3 made a sharded class's partitions locally)."""
    here(
        "UPDATE activity_grades_placement SET shard = 'local' WHERE class_id = %s RETURNING shard",
        [class_id],
    )


@shard_test
def test_the_routing_trigger_makes_no_partition_of_a_sharded_class_on_demand(sharded):
    with pytest.raises(DatabaseError) as refused, transaction.atomic():
        insert("d1", "123/a0", "s1", FALL)
    assert "class '123' is placed on shard 'shard1'" in str(refused.value)
    assert "create_partitions" in str(refused.value)
    assert here("SELECT count(*) FROM activity_grades_partition WHERE class_id = '123'") == [(0,)]
    create_partitions("--class", "123", "--term", "2023_fall")
    insert("d1", "123/a0", "s1", FALL)
    assert rows_in("shard1", leaf("123", "2023_fall"), "d1") == 1
    # A term not premade is refused the same way (no local table under a foreign one).
    with pytest.raises(DatabaseError, match="partition for term '2024_spring'"):
        with transaction.atomic():
            insert("d2", "123/a0", "s2", SPRING)


@shard_test
def test_a_local_partition_of_a_sharded_class_is_reported(sharded):
    # Made before migration 0017, when the routing trigger made a sharded class's
    # partitions on demand, locally (its grades are safe there): check_partitions says
    # what to run.
    as_if_local("123")
    insert("l1", "123/a0", "s1", FALL)
    here(
        "UPDATE activity_grades_placement SET shard = 'shard1' WHERE class_id = '123' "
        "RETURNING shard"
    )
    assert here(
        "SELECT relkind::text FROM pg_class WHERE relname = %s", [leaf("123", "2023_fall")]
    ) == [("r",)]
    found = [p for p in repair.plan().problems if p.id == "activity_grades.E038"]
    assert len(found) == 2  # the class table and the term table
    assert all("create_partitions" in p.hint and "shard1" in p.message for p in found)
    out = StringIO()
    with pytest.raises(Exception, match="problem"):
        call_command("check_partitions", stdout=out)
    assert "activity_grades.E038" in out.getvalue()


@shard_test
def test_a_term_made_on_demand_under_a_foreign_class_table_is_reported(sharded):
    create_partitions("--class", "123", "--term", "2023_fall")
    as_if_local("123")  # before migration 0017: made on demand, locally
    insert("o1", "123/a0", "s1", SPRING)
    here(
        "UPDATE activity_grades_placement SET shard = 'shard1' WHERE class_id = '123' "
        "RETURNING shard"
    )
    spring = leaf("123", "2024_spring")
    assert relkind(spring) == "r" and relkind(leaf("123", None)) == "f"
    assert rows_in("default", spring) == 1
    (found,) = [p for p in repair.plan().problems if p.id == "activity_grades.E038"]
    assert spring in found.message
    # Every read still finds it, and create_partitions goes on for the class.
    assert [g.id for g in ActivityGrade.objects.for_class("123")] == ["o1"]
    assert create.plan(["123"], list(TERMS)).to_create == []


@shard_test
def test_a_dry_run_records_no_placement_and_the_run_places_by_setting(sharded, settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "SHARD_PLACEMENT": {"321": "shard2"}}
    make_lms(class_ids=("321",), terms=())
    dry = create_partitions("--class", "321", "--term", "2023_fall", "--dry-run", "-v", "2")
    assert "/* on shard shard2 */ CREATE TABLE" in dry
    assert here("SELECT count(*) FROM activity_grades_placement WHERE class_id = '321'") == [(0,)]
    create_partitions("--class", "321", "--term", "2023_fall")
    assert placement.placement_of("321").decided_by == "setting"
    assert rows_in("shard2", leaf("321", "2023_fall")) == 0
    assert relkind(leaf("321", "2023_fall")) == "f"


@shard_test
def test_a_missing_trigger_of_a_foreign_partition_is_fixed_row_level(sharded):
    premade()
    fall = leaf("123", "2023_fall")
    with connection.cursor() as cur:
        query = sql.SQL("DROP TRIGGER activity_grades_keys_insert ON {}").format(
            sql.Identifier(fall)
        )
        cur.execute(query.as_string(None))
    (found,) = [p for p in repair.plan().problems if p.id == "activity_grades.E011"]
    assert fall in found.message and found.fixable
    repair.plan().apply()
    assert here(
        "SELECT tgtype & 1 FROM pg_trigger WHERE tgrelid = %s::regclass "
        "AND tgname = 'activity_grades_keys_insert'",
        [fall],
    ) == [(1,)]  # FOR EACH ROW
    insert("t1", "123/a0", "s1", FALL)
    assert here("SELECT count(*) FROM activity_grades_key WHERE id = 't1'") == [(1,)]
    assert problems() == []


@shard_test
def test_a_sharded_class_stays_by_term_when_new_terms_are_by_month(sharded, settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "PARTITION_GRANULARITY": "month"}
    months.install_granularity()
    try:
        premade()
        # The local class's terms are by month; the sharded class's foreign leaves are
        # leaves (a month table under a foreign table would be a local table).
        granularity = dict(
            here(
                "SELECT class_id, granularity FROM activity_grades_partition "
                "WHERE term_id = '2023_fall'"
            )
        )
        assert granularity == {"123": "term", "456": "term", "789": "month"}
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at) VALUES ('m1', '123/a0', 's1', 'graded', now(), %s)",
                [FALL],
            )
        assert rows_in("shard1", leaf("123", "2023_fall"), "m1") == 1
        assert months.live_months(class_id="123") == []
    finally:
        settings.ACTIVITY_GRADES = {
            k: v for k, v in settings.ACTIVITY_GRADES.items() if k != "PARTITION_GRANULARITY"
        }
        months.install_granularity()


@shard_test
def test_single_class_reads_go_straight_to_the_shard(sharded):
    premade()
    for i in range(3):
        insert(f"f{i}", f"123/a{i % 2}", f"s{i}", FALL)
    insert("sp", "123/a1", "s0", SPRING)
    insert("out", "123/a1", "s9", dt.datetime(2023, 6, 1, tzinfo=UTC))  # class table
    insert("loc", "789/a0", "s0", FALL)
    fall = leaf("123", "2023_fall")
    svc = ActivityGradeService()
    with (
        CaptureQueriesContext(connections["shard1"]) as on_shard1,
        CaptureQueriesContext(connection) as here_q,
    ):
        book = svc.gradebook("123", "2023_fall")
        mine = svc.student_grades_in_class("s0", "123")
        stats = svc.activity_stats("123")
        one = svc.get("out")
        activity = svc.activity_grades("123/a1")
    assert sorted(g.id for g in book) == ["f0", "f1", "f2"]
    assert sorted(g.id for g in mine) == ["f0", "sp"]
    assert [(s.activity_id, s.grades) for s in stats] == [("123/a0", 2), ("123/a1", 3)]
    assert one is not None and one.id == "out"
    assert sorted(g.id for g in activity) == ["f1", "out", "sp"]
    # The grades came from shard1's own tables; the coordinator answered catalog and
    # registry look-ups only, never a scan of a foreign partition.
    shard_sql = " ".join(q["sql"] for q in on_shard1.captured_queries)
    assert f'FROM "{fall}"' in shard_sql and 'FROM "activity_grades" WHERE "class_id"' in shard_sql
    assert not any(f'FROM "{fall}"' in q["sql"] for q in here_q.captured_queries)
    # A local class is read here, as before.
    with CaptureQueriesContext(connections["shard1"]) as on_shard1:
        assert [g.id for g in svc.gradebook("789", "2023_fall")] == ["loc"]
    assert on_shard1.captured_queries == []
