"""Lock-table headroom: what one query through the parent takes of the server's lock table."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from activity_grades import ActivityGrade
from activity_grades.reporting import locks
from activity_grades.reporting.metrics import collect
from activity_grades.reporting.prometheus import exposition
from tests.helpers import INSERT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tree(committed_lms):
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["f1", "123/a0", "s1", "2023-09-15 10:00+00"])
        cursor.execute(INSERT, ["g1", "456/a0", "s1", "2024-02-15 10:00+00"])


def test_the_estimate_is_what_a_query_through_the_parent_locks(tree):
    room = locks.headroom()
    with transaction.atomic(), connection.cursor() as cursor:
        ActivityGrade.objects.across_all_partitions().filter(score__gt=0).count()
        cursor.execute(
            "WITH RECURSIVE tree(oid) AS (SELECT 'activity_grades'::regclass::oid UNION ALL "
            "SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid) "
            "SELECT count(*) FROM pg_locks l WHERE l.pid = pg_backend_pid() "
            "AND l.relation IN (SELECT oid FROM tree UNION ALL SELECT indexrelid FROM pg_index "
            "WHERE indrelid IN (SELECT oid FROM tree))"
        )
        (taken,) = cursor.fetchone()
        cursor.execute("SELECT current_setting('max_locks_per_transaction')::int")
        (per_transaction,) = cursor.fetchone()
    assert room.tables == 5  # the parent, two class tables, two term tables
    assert room.locks_per_whole_tree_query == taken
    assert room.capacity >= per_transaction * 2
    assert room.queries_to_fill == room.capacity // taken and not room.low


def test_reported_by_check_partitions_metrics_and_the_health_page(tree, admin_client):
    room = locks.headroom()
    out = _command_output("check_partitions")
    assert (
        f"Lock headroom: a query through the parent locks {room.locks_per_whole_tree_query}" in out
    )
    data = collect()
    assert data["locks"]["whole_tree_query_locks"] == room.locks_per_whole_tree_query
    text = exposition(data)[0].decode()
    assert f"activity_grades_lock_capacity {float(room.capacity)}" in text
    assert f"activity_grades_whole_tree_queries_to_fill {float(room.queries_to_fill)}" in text
    page = admin_client.get("/admin/activity_grades/partition/health/").content.decode()
    assert "Lock headroom" in page and f"{room.capacity} lock slots" in page


def test_low_headroom_says_so():
    room = locks.Headroom(tables=10_001, locks_per_whole_tree_query=60_000, capacity=6_400)
    assert room.low and room.queries_to_fill == 0
    assert "60000 relations (10001 tables" in room.sentence()


def _command_output(name: str) -> str:
    out = StringIO()
    call_command(name, stdout=out)
    return out.getvalue()
