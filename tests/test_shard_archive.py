"""Archiving, restoring and retention of a sharded term (issue 16).

The archive stays on the coordinator: a foreign leaf's rows are read through its foreign
table into the coordinator's chunks, verified, and then the foreign table is dropped on
the coordinator and the remote table on the shard. Class 123 is on shard1, 456 on shard2,
789 is local (tests/test_shard_partitions.py's ``sharded`` fixture, two real servers).
"""

from __future__ import annotations

import threading
import time
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from psycopg import sql

from activity_grades.core.exceptions import ArchiveError
from activity_grades.operations import archive, restore, retention
from activity_grades.operations.faults import FAULT_ENV
from tests.archive_support import drop_archive

from .shard_support import (
    SHARD_DATABASE,
    shard_servers,  # noqa: F401 - a fixture
)
from .test_shard_partitions import (  # noqa: F401 - sharded is a fixture
    FALL,
    SPRING,
    here,
    leaf,
    on_shard,
    problems,
    relkind,
    rows_in,
    shard_test,
    sharded,
)

pytestmark = pytest.mark.usefixtures("shard_servers")

CLASSES = ("123", "456", "789")
COLS = sql.SQL(", ").join(
    map(
        sql.Identifier,
        (
            "id activity_id student_id score points feedback status submitted_at graded_at "
            "graded_by_id content attachments created_at updated_at is_archived is_committed "
            "commitment_id commitment_deadline commitment_met class_id term_id"
        ).split(),
    )
)


@pytest.fixture
def archiving(sharded):  # noqa: F811
    drop_archive()
    call_command(
        "create_partitions",
        *[a for c in CLASSES for a in ("--class", c)],
        *[a for t in ("2023_fall", "2024_spring") for a in ("--term", t)],
        stdout=StringIO(),
    )
    seed()
    try:
        yield sharded
    finally:
        drop_archive()


def seed() -> None:
    """Grades with every kind of column value in each (class, term)."""
    with connection.cursor() as cur:
        for class_id in CLASSES:
            for term, at, n in (("f", FALL, 7), ("s", SPRING, 5)):
                cur.execute(
                    "INSERT INTO activity_grades (id, activity_id, student_id, score, points, "
                    "feedback, status, submitted_at, graded_at, content, attachments, "
                    "created_at, commitment_met) "
                    "SELECT %s || '-' || %s || '-' || i, %s || '/a' || (i %% 2), "
                    "%s || '-s' || i, i * 1.25, i, CASE WHEN i %% 3 = 0 THEN NULL "
                    "ELSE repeat('é', i) END, 'graded', %s, %s + interval '1 ms' * i, "
                    "jsonb_build_object('i', i, 'x', array[i, i + 1]), '[]'::jsonb, "
                    "%s + interval '1 s' * i, i %% 2 = 0 FROM generate_series(1, %s) i",
                    [class_id, term, class_id, term, at, at, at, n],
                )


def live_text(alias: str, table: str) -> list[str]:
    """Every row of ``table`` on ``alias`` as text, column by column, by id."""
    query = sql.SQL("SELECT ROW({})::text FROM ONLY {} ORDER BY id").format(
        COLS, sql.Identifier(table)
    )
    return [r[0] for r in on_shard(alias, query.as_string(None))]


def archived_text(class_id: str, term_id: str) -> list[str]:
    return [
        r[0]
        for r in here(
            sql.SQL(
                "SELECT ROW({})::text FROM archived_activity_grades "
                "WHERE class_id = %s AND term_id = %s ORDER BY id"
            )
            .format(COLS)
            .as_string(None),
            [class_id, term_id],
        )
    ]


def on_shard_exists(alias: str, table: str) -> bool:
    return bool(on_shard(alias, "SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [table])[0][0])


def status(table: str) -> str:
    return str(
        here("SELECT status FROM activity_grades_partition WHERE table_name = %s", [table])[0][0]
    )


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, "--noinput", stdout=out)
    return out.getvalue()


@shard_test
def test_archive_and_restore_a_term_with_local_and_sharded_classes(archiving):
    fall = {c: leaf(c, "2023_fall") for c in CLASSES}
    before = {
        "123": live_text("shard1", fall["123"]),
        "456": live_text("shard2", fall["456"]),
        "789": live_text("default", fall["789"]),
    }
    assert [len(v) for v in before.values()] == [7, 7, 7]

    dry = StringIO()
    call_command("archive_grades", "--term", "2023_fall", "--dry-run", stdout=dry)
    assert f"DROP TABLE public.{fall['123']} on shard shard1" in dry.getvalue()
    assert "on shard shard2" in dry.getvalue()
    assert relkind(fall["123"]) == "f" and on_shard_exists("shard1", fall["123"])

    assert "Archived 21 rows from 3 partitions" in run("archive_grades", "--term", "2023_fall")
    for class_id, rows in before.items():
        assert archived_text(class_id, "2023_fall") == rows  # bit for bit, every column
        assert status(fall[class_id]) == "archived"
        assert here("SELECT to_regclass(quote_ident(%s))", [fall[class_id]]) == [(None,)]
    assert not on_shard_exists("shard1", fall["123"])
    assert not on_shard_exists("shard2", fall["456"])
    assert here("SELECT count(*) FROM activity_grades_key WHERE term_id = '2023_fall'") == [(0,)]
    assert rows_in("shard1", leaf("123", "2024_spring")) == 5  # the other term untouched
    assert problems() == []

    dry = StringIO()
    call_command("restore_grades", "--term", "2023_fall", "--dry-run", stdout=dry)
    assert "on shard shard1: its partition made there again" in dry.getvalue()
    assert "Restored 21 rows into 3 partitions" in run("restore_grades", "--term", "2023_fall")
    assert relkind(fall["123"]) == "f" and status(fall["123"]) == "live"
    assert live_text("shard1", fall["123"]) == before["123"]
    assert live_text("shard2", fall["456"]) == before["456"]
    assert live_text("default", fall["789"]) == before["789"]
    assert here("SELECT count(*) FROM archived_activity_grades") == [(0,)]
    assert here("SELECT count(*) FROM activity_grades_key WHERE term_id = '2023_fall'") == [(21,)]
    assert problems() == []
    # Live again: writes reach the shard, and the term archives again.
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
            "created_at) VALUES ('late', '123/a0', 'late', 'graded', %s, %s)",
            [FALL, FALL],
        )
    assert rows_in("shard1", fall["123"], "late") == 1
    assert "Archived 22 rows" in run("archive_grades", "--term", "2023_fall")
    assert not on_shard_exists("shard1", fall["123"])


@shard_test
def test_archive_by_year_then_retention_drops_the_year(archiving):
    spring = leaf("123", "2024_spring")
    assert "Archived 36 rows from 6 partitions" in run(
        "archive_grades", "--before-academic-year", "2024-2025"
    )
    assert not on_shard_exists("shard1", spring)
    # Only the class tables stay on the shards (empty: class tables are never archived).
    assert on_shard("shard1", "SELECT count(*) FROM pg_inherits") == [(1,)]
    assert on_shard("shard2", "SELECT count(*) FROM pg_inherits") == [(1,)]
    assert here("SELECT count(*) FROM archived_activity_grades WHERE class_id = '123'") == [(12,)]
    assert problems() == []
    kept = retention.plan(years=1)
    assert [item.academic_year for item in kept.items] == ["2023-2024"]
    result = kept.apply()
    assert result.rows == 36 and len(result.dropped) == 1
    assert here("SELECT count(*) FROM activity_grades_archive_year") == [(0,)]
    assert here("SELECT count(*) FROM archived_activity_grades") == [(0,)]


@shard_test
def test_keep_detached_is_refused_for_a_sharded_partition(archiving):
    with pytest.raises(ArchiveError, match="--keep-detached cannot keep a partition of a class"):
        archive.plan(["2023_fall"], keep_detached=True)
    assert status(leaf("123", "2023_fall")) == "live"


@shard_test
def test_a_shard_that_is_down_is_named_and_nothing_changes(archiving):
    archiving[0].stop()  # shard1: class 123
    connections["shard1"].close()
    with pytest.raises(CommandError, match="shard 'shard1' does not answer"):
        run("archive_grades", "--term", "2023_fall")
    assert {status(leaf(c, "2023_fall")) for c in CLASSES} == {"live"}
    assert here("SELECT count(*) FROM activity_grades_archive_year") == [(0,)]
    assert here("SELECT count(*) FROM activity_grades_key") == [(36,)]
    archiving[0].start()
    # Archived while it is up; restoring while it is down is refused the same way.
    run("archive_grades", "--term", "2023_fall")
    archiving[0].stop()
    connections["shard1"].close()
    with pytest.raises(CommandError, match="shard 'shard1' does not answer"):
        run("restore_grades", "--term", "2023_fall")
    assert here("SELECT count(*) FROM archived_activity_grades") == [(21,)]
    assert status(leaf("123", "2023_fall")) == "archived"
    archiving[0].start()
    connections["shard1"].close()
    run("restore_grades", "--term", "2023_fall")
    assert rows_in("shard1", leaf("123", "2023_fall")) == 7


def _coordinator() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"], port=s["PORT"], user=s["USER"], dbname=s["NAME"], autocommit=True
    )


def _end_shard_session_after_commit(server, table: str, done: list[bool]) -> None:
    """Once the coordinator has archived ``table``, end the shard session that holds it:
    the interruption between the coordinator's commit and the shard's drop."""
    deadline = time.monotonic() + 60
    with _coordinator() as here_conn:
        while time.monotonic() < deadline:
            row = here_conn.execute(
                "SELECT status FROM activity_grades_partition WHERE table_name = %s", [table]
            ).fetchone()
            if row and row[0] == "archived":
                break
            time.sleep(0.05)
    with psycopg.connect(server.url(SHARD_DATABASE), autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
            "WHERE l.relation = to_regclass(quote_ident(%s)) AND l.mode = 'ShareRowExclusiveLock'",
            [table],
        ).fetchall()
    done.append(bool(ended) and all(r[0] for r in ended))


@shard_test
def test_an_archive_interrupted_before_the_shards_drop_is_finished_by_the_rerun(
    archiving, monkeypatch
):
    fall = leaf("123", "2023_fall")
    before = live_text("shard1", fall)
    monkeypatch.setenv(FAULT_ENV, "between=2")
    done: list[bool] = []
    killer = threading.Thread(
        target=_end_shard_session_after_commit, args=(archiving[0], fall, done)
    )
    killer.start()
    try:
        plan = archive.plan(["2023_fall"])
        plan.items = [i for i in plan.items if i.class_id == "123"]
        plan.apply()
    finally:
        killer.join()
    monkeypatch.delenv(FAULT_ENV)
    assert done == [True]
    connections["shard1"].close()
    # Archived on the coordinator, the remote table still on the shard: E039.
    assert status(fall) == "archived" and archived_text("123", "2023_fall") == before
    assert on_shard_exists("shard1", fall)
    found = [p for p in problems() if p.id == "activity_grades.E039"]
    assert len(found) == 1 and fall in found[0].message and found[0].fixable
    # The next archive run finishes it (check_partitions --fix does the same).
    out = run("archive_grades", "--term", "2023_fall")
    assert "left by an interrupted archive" in out
    assert not on_shard_exists("shard1", fall)
    assert problems() == []
    assert archived_text("123", "2023_fall") == before


@shard_test
def test_check_partitions_fix_finishes_an_interrupted_archive_only_when_rows_match(archiving):
    fall = leaf("123", "2023_fall")
    before = live_text("shard1", fall)
    keep_copy(fall)
    run("archive_grades", "--term", "2023_fall")
    # What an interruption leaves: the remote table, with the archived rows ...
    put_back(fall)
    assert live_text("shard1", fall) == before
    (found,) = [p for p in problems() if p.id == "activity_grades.E039"]
    # ... but one row differs: not dropped.
    with connections["shard1"].cursor() as cur:
        cur.execute(
            sql.SQL("UPDATE {} SET score = -1 WHERE id = '123-f-1'")
            .format(sql.Identifier(fall))
            .as_string(None)
        )
    with pytest.raises(ArchiveError, match="differ from the archive"):
        assert found.fix is not None
        found.fix()
    assert on_shard_exists("shard1", fall)
    # A restore of the term refuses while it is there (its rows would be there twice).
    with pytest.raises(ArchiveError, match="E039"):
        restore.plan(["2023_fall"], ["123"]).apply()
    assert here("SELECT count(*) FROM archived_activity_grades WHERE class_id = '123'") == [(7,)]
    assert status(fall) == "archived" and relkind_or_none(fall) is None
    with connections["shard1"].cursor() as cur:
        cur.execute(
            sql.SQL("UPDATE {} SET score = 1.25 WHERE id = '123-f-1'")
            .format(sql.Identifier(fall))
            .as_string(None)
        )
    call_command("check_partitions", "--fix", stdout=StringIO())
    assert not on_shard_exists("shard1", fall)
    assert problems() == []


def relkind_or_none(table: str) -> str | None:
    found = here("SELECT relkind::text FROM pg_class WHERE relname = %s", [table])
    return str(found[0][0]) if found else None


def keep_copy(table: str) -> None:
    """A copy of ``table`` on shard1, without the marker (clean_shard drops it)."""
    with connections["shard1"].cursor() as cur:
        query = sql.SQL("CREATE TABLE e2e_leaf AS SELECT * FROM ONLY {}").format(
            sql.Identifier(table)
        )
        cur.execute(query.as_string(None))


def put_back(table: str) -> None:
    """``table`` made again on shard1, marked, with the rows kept by ``keep_copy``."""
    ident = sql.Identifier(table)
    with connections["shard1"].cursor() as cur:
        for query in (
            sql.SQL("CREATE TABLE {} () INHERITS (activity_grades)").format(ident),
            sql.SQL("COMMENT ON TABLE {} IS 'activity_grades:partition'").format(ident),
            sql.SQL("INSERT INTO {} SELECT * FROM e2e_leaf").format(ident),
        ):
            cur.execute(query.as_string(None))
