"""The service's writes straight to a sharded class's shard (issue 16).

``record_many`` COPYs a sharded partition's rows into its remote table on the shard's
alias and writes their key-index rows on the coordinator; ``record`` and ``record_many``
make a missing partition of a sharded class on its shard. The fixtures are
``test_shard_partitions``': class 123 on shard1, 456 on shard2, 789 local, two real
PostgreSQL servers; without them (or without postgres_fdw) the tests skip and say why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from activity_grades.core.exceptions import InvalidTimestamp, ShardError
from activity_grades.service import ActivityGradeService

from .shard_support import (
    CLOSED_PORT,
    SHARD_DBS,
    shard_servers,  # noqa: F401 - a fixture
)
from .test_shard_partitions import (
    FALL,
    SPRING,
    create_partitions,
    here,
    leaf,
    premade,
    problems,
    relkind,
    rows_in,
    sharded,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.usefixtures("shard_servers", "sharded")
shard_test = pytest.mark.django_db(transaction=True, databases=SHARD_DBS)


def grade(activity: str, student: str, at: dt.datetime = FALL, **extra: object) -> dict:
    return {
        "activity_id": activity,
        "student_id": student,
        "status": "graded",
        "submitted_at": at,
        "created_at": at,
        **extra,
    }


def keys(class_id: str) -> int:
    found = here("SELECT count(*) FROM activity_grades_key WHERE class_id = %s", [class_id])
    return int(found[0][0])


KEY_FINDINGS = ("activity_grades.E016", "activity_grades.E017")  # key row / grade missing


def check_keys_clean() -> None:
    """What ``check_partitions --keys`` reports about the key index: nothing."""
    assert [p for p in problems() if p.id in KEY_FINDINGS] == []


@shard_test
def test_record_many_copies_into_the_shard_and_writes_the_keys_here():
    premade()
    fall = leaf("123", "2023_fall")
    svc = ActivityGradeService()
    with (
        CaptureQueriesContext(connections["shard1"]) as on_shard1,
        CaptureQueriesContext(connection) as on_coordinator,
    ):
        result = svc.record_many([grade(f"123/a{i % 2}", f"s{i}", score=i) for i in range(20)])
    assert result.rows == 20 and result.per_table == {fall: 20}
    assert result.partitions_created == []
    assert rows_in("shard1", fall) == 20  # through the shard's own alias
    assert keys("123") == 20
    assert here("SELECT count(*) FROM ONLY activity_grades") == [(0,)]
    # Straight to the shard, one key statement here, no write through the foreign table.
    assert not any(f'INTO "{fall}"' in q["sql"] for q in on_coordinator.captured_queries)
    assert "COMMIT" in [q["sql"] for q in on_shard1.captured_queries]  # its own transaction
    key_inserts = [q for q in on_coordinator.captured_queries if "activity_grades_key" in q["sql"]]
    assert len(key_inserts) == 1 and "unnest" in key_inserts[0]["sql"]
    # The grades read back whole, by every path.
    got = svc.get(result_id := here("SELECT id FROM activity_grades_key LIMIT 1")[0][0])
    assert got is not None and got.id == result_id and got.class_id == "123"
    assert sorted(g.score for g in svc.gradebook("123", "2023_fall")) == list(range(20))
    out = StringIO()
    call_command("check_partitions", "--keys", stdout=out)  # raises on any problem
    assert problems() == []


@shard_test
def test_a_duplicate_in_the_batch_stores_nothing_anywhere():
    premade()
    svc = ActivityGradeService()
    rows = [
        grade("789/a0", "s1"),  # local
        grade("456/a0", "s1"),  # shard2
        grade("123/a0", "s1"),  # shard1 ...
        grade("123/a0", "s1", SPRING),  # ... the same (activity, student), another term
    ]
    with pytest.raises(IntegrityError):
        svc.record_many(rows)
    assert here("SELECT count(*) FROM activity_grades_key") == [(0,)]
    assert here("SELECT count(*) FROM ONLY activity_grades") == [(0,)]
    assert rows_in("default", leaf("789", "2023_fall")) == 0
    assert rows_in("shard1", "activity_grades") == 0
    assert rows_in("shard2", "activity_grades") == 0
    check_keys_clean()


@shard_test
def test_a_duplicate_of_a_stored_grade_stores_nothing_anywhere():
    premade()
    svc = ActivityGradeService()
    svc.record_many([grade("123/a0", "s1", id="g1")])
    taken_pair = [grade("456/a1", "s2"), grade("123/a0", "s1", SPRING)]
    taken_id = [grade("456/a1", "s2"), grade("123/a1", "s3", id="g1")]
    local_taken_id = [grade("456/a1", "s2"), grade("789/a0", "s3", id="g1")]
    for rows in (taken_pair, taken_id, local_taken_id):
        with pytest.raises(IntegrityError):
            svc.record_many(rows)
    assert here("SELECT id FROM activity_grades_key") == [("g1",)]
    assert rows_in("shard1", "activity_grades") == 1
    assert rows_in("shard2", "activity_grades") == 0
    assert here("SELECT count(*) FROM ONLY activity_grades") == [(0,)]
    check_keys_clean()


@shard_test
def test_a_mixed_batch_goes_to_the_coordinator_and_both_shards():
    premade()
    rows = [
        *(grade("123/a0", f"s{i}") for i in range(5)),
        *(grade("123/a1", f"s{i}", SPRING) for i in range(3)),
        *(grade("456/a0", f"s{i}") for i in range(4)),
        *(grade("789/a0", f"s{i}") for i in range(6)),
    ]
    result = ActivityGradeService().record_many(rows)
    assert result.per_table == {
        leaf("123", "2023_fall"): 5,
        leaf("123", "2024_spring"): 3,
        leaf("456", "2023_fall"): 4,
        leaf("789", "2023_fall"): 6,
    }
    assert rows_in("shard1", "activity_grades") == 8
    assert rows_in("shard2", "activity_grades") == 4
    assert rows_in("default", leaf("789", "2023_fall")) == 6
    assert (keys("123"), keys("456"), keys("789")) == (8, 4, 6)
    check_keys_clean()


@shard_test
def test_record_many_makes_a_missing_term_on_the_shard():
    create_partitions("--class", "123", "--term", "2023_fall")  # no spring
    result = ActivityGradeService().record_many(
        [grade("123/a0", "s1"), grade("123/a0", "s2", SPRING), grade("789/a0", "s1", SPRING)]
    )
    spring = leaf("123", "2024_spring")
    assert spring in result.partitions_created
    assert relkind(spring) == "f"  # a foreign table here ...
    assert rows_in("shard1", spring) == 1  # ... and the rows in its remote table
    assert relkind(leaf("789", "2024_spring")) == "r"  # a local class, made here
    assert keys("123") == 2
    check_keys_clean()
    found = {p.id for p in problems()}
    assert not found & {"activity_grades.E037", "activity_grades.E038"}  # made on the shard


@shard_test
def test_record_makes_a_sharded_partition_on_demand():
    svc = ActivityGradeService()
    assert here("SELECT count(*) FROM activity_grades_partition WHERE class_id = '123'") == [(0,)]
    recorded = svc.record("123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL)
    fall = leaf("123", "2023_fall")
    assert relkind(fall) == "f" and relkind(leaf("123", None)) == "f"
    assert rows_in("shard1", fall, recorded.id) == 1
    assert keys("123") == 1
    # The SQL trigger path still refuses a missing partition of a sharded class.
    with pytest.raises(Exception, match="create_partitions"), transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at) VALUES ('t1', '123/a0', 's2', 'graded', %s, %s)",
                [SPRING, SPRING],
            )
    # upsert goes the same way (inside its own transaction).
    _, created = svc.upsert("123/a1", "s1", status="graded", submitted_at=SPRING, created_at=SPRING)
    assert created and rows_in("shard1", leaf("123", "2024_spring")) == 1
    check_keys_clean()


@shard_test
def test_inside_a_callers_transaction_record_many_goes_through_the_foreign_tables():
    premade()
    svc = ActivityGradeService()
    with pytest.raises(RuntimeError, match="caller"), transaction.atomic():
        with CaptureQueriesContext(connections["shard1"]) as on_shard1:
            svc.record_many([grade("123/a0", "s1")])
        assert on_shard1.captured_queries == []  # postgres_fdw wrote it, in this transaction
        raise RuntimeError("the caller rolls back")
    assert rows_in("shard1", "activity_grades") == 0  # rolled back with the caller
    assert keys("123") == 0
    with transaction.atomic():
        svc.record_many([grade("123/a0", "s1")])
    assert rows_in("shard1", "activity_grades") == 1 and keys("123") == 1
    check_keys_clean()


@shard_test
def test_a_timestamp_the_shard_could_not_give_back_is_refused():
    premade()
    edge = dt.datetime(9999, 12, 31, 23, 59, 59, 999900, tzinfo=dt.UTC)  # rounds to 10000
    with pytest.raises(InvalidTimestamp, match="graded_at"):
        ActivityGradeService().record_many([grade("123/a0", "s1", graded_at=edge)])
    assert rows_in("shard1", "activity_grades") == 0 and keys("123") == 0


@contextmanager
def shard2_down(settings) -> Iterator[None]:
    """shard2's alias pointed where nothing listens for the duration."""
    shard2 = settings.DATABASES["shard2"]
    port = shard2["PORT"]
    connections["shard2"].close()
    shard2["PORT"] = str(CLOSED_PORT)
    try:
        yield
    finally:
        connections["shard2"].close()
        shard2["PORT"] = port


@shard_test
def test_a_shard_that_is_down_is_named_and_nothing_is_stored(settings):
    premade()
    svc = ActivityGradeService()
    with shard2_down(settings):
        rows = [grade("123/a0", "s1"), grade("789/a0", "s1"), grade("456/a0", "s1")]
        with pytest.raises(ShardError, match="shard 'shard2'"):
            svc.record_many(rows)
        # The other shard and the local class keep working.
        svc.record_many([grade("123/a1", "s2"), grade("789/a1", "s2")])
    assert rows_in("shard2", "activity_grades") == 0
    assert rows_in("shard1", "activity_grades") == 1
    assert rows_in("default", leaf("789", "2023_fall")) == 1
    assert here("SELECT id FROM activity_grades_key ORDER BY class_id").__len__() == 2
    check_keys_clean()


@shard_test
def test_a_partition_made_on_demand_on_a_down_shard_names_it(settings):
    """No partition of class 456 yet: record() would make it on shard2, which is down."""
    svc = ActivityGradeService()
    with shard2_down(settings):
        with pytest.raises(ShardError, match="shard 'shard2' did not answer"):
            svc.record("456/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL)
        svc.record("123/a0", "s1", status="graded", submitted_at=FALL, created_at=FALL)
    assert here("SELECT count(*) FROM activity_grades_partition WHERE class_id = '456'") == [(0,)]
    assert keys("456") == 0 and keys("123") == 1
