"""move_class: a class's partitions moved between servers, online, verified, resumable.

Two real shard servers (tests/shard_support.py); class 123 on shard1, 456 on shard2, 789
local (tests/test_shard_partitions.py's ``sharded`` fixture), each with partitions for two
terms and grades of every kind of column value (tests/test_shard_archive.py's ``seed``),
plus grades outside every term, kept in the class table.
"""

from __future__ import annotations

import datetime as dt
import threading
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, connections, transaction
from psycopg import sql

from activity_grades import placement
from activity_grades.core.exceptions import MoveError
from activity_grades.db import months
from activity_grades.db import placement as recorded_placement
from activity_grades.models import ActivityGrade
from activity_grades.operations import move_class, repair
from activity_grades.service import ActivityGradeService

from .archive_support import drop_archive
from .shard_support import shard_servers  # noqa: F401 - a fixture
from .test_shard_archive import COLS, seed
from .test_shard_partitions import (  # noqa: F401 - sharded is a fixture
    TERMS,
    here,
    leaf,
    on_shard,
    premade,
    problems,
    relkind,
    shard_test,
    sharded,
)

pytestmark = pytest.mark.usefixtures("shard_servers")

OUTSIDE = dt.datetime(2022, 1, 5, 9, tzinfo=dt.timezone.utc)  # in no term: the class table


@pytest.fixture
def classes(sharded):  # noqa: F811
    premade()
    seed()
    with connection.cursor() as cur:
        for class_id in ("123", "456", "789"):
            cur.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at) VALUES (%s, %s, 'early', 'graded', %s, %s)",
                [f"{class_id}-early", f"{class_id}/a0", OUTSIDE, OUTSIDE],
            )
    yield sharded
    with connection.cursor() as cur:
        cur.execute("DELETE FROM activity_grades_move_state")
        cur.execute("DELETE FROM activity_grades_move_log")


def grades(class_id: str) -> list[str]:
    """Every grade of the class, read through the coordinator's parent, as text by id."""
    query = sql.SQL(
        "SELECT ROW({})::text FROM activity_grades WHERE class_id = %s ORDER BY id"
    ).format(COLS)
    return [r[0] for r in here(query.as_string(None), [class_id])]


def remote_tables(alias: str) -> set[str]:
    return {
        r[0]
        for r in on_shard(
            alias,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'activity_grades'::regclass",
        )
    }


def class_tables(class_id: str) -> list[str]:
    return [leaf(class_id, None), *(leaf(class_id, t) for t in TERMS)]


def new_grade(grade_id: str, activity: str, student: str, at: dt.datetime) -> None:
    ActivityGrade.objects.create(
        id=grade_id,
        activity_id=activity,
        student_id=student,
        status="graded",
        submitted_at=at,
        created_at=at,
    )


def move(class_id: str, to: str, **kwargs) -> move_class.MoveResult:
    return move_class.move_class(class_id, to, **kwargs)


def rows_in(alias: str, table: str, *, only: bool = False) -> int:
    query = sql.SQL("SELECT count(*) FROM {}{}").format(
        sql.SQL("ONLY " if only else ""), sql.Identifier(table)
    )
    return int(on_shard(alias, query.as_string(None))[0][0])


def rows_on(alias: str, class_id: str) -> int:
    return int(
        on_shard(alias, "SELECT count(*) FROM activity_grades WHERE class_id = %s", [class_id])[0][
            0
        ]
    )


# -- the moves ---------------------------------------------------------------------------


@shard_test
def test_a_local_class_moves_to_a_shard_and_back(classes):
    before = grades("789")
    names = class_tables("789")
    result = move("789", "shard1", batch_size=3)  # several batches per table
    assert result.rows == len(before) == 13
    assert sorted(result.tables) == sorted(names) and result.copied_again == []
    assert [relkind(n) for n in names] == ["f", "f", "f"]
    assert remote_tables("shard1") >= set(names)
    assert rows_on("shard1", "789") == 13
    assert grades("789") == before  # every column, read through the coordinator
    found = placement.placement_of("789")
    assert (found.shard, found.decided_by) == ("shard1", "move")
    assert here(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'activity_grades_move_capture'"
    ) == [(0,)]
    assert here("SELECT count(*) FROM activity_grades_move_state") == [(0,)]
    assert problems() == []  # keys, triggers, CHECKs, placement: all healthy

    back = move("789", "local", batch_size=4)
    assert back.rows == 13
    assert [relkind(n) for n in names] == ["r", "r", "r"]
    assert not remote_tables("shard1") & set(names)  # dropped on the shard
    assert grades("789") == before
    assert placement.shard_of("789") == "local"
    # A local partition again: indexes under the app's names, marker, the app's triggers.
    fall = leaf("789", "2023_fall")
    assert here("SELECT obj_description(%s::regclass, 'pg_class')", [fall]) == [
        ("activity_grades:partition",)
    ]
    assert here("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [fall]) == [(4,)]
    assert here(
        "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'activity_grades_moving_%%'"
    ) == [(0,)]
    assert problems() == []
    # Uniqueness still holds across the tree, and writes route into the moved class.
    with pytest.raises(IntegrityError), transaction.atomic():
        new_grade("789-f-1", "789/a0", "x", OUTSIDE)
    new_grade("789-new", "789/a1", "new", OUTSIDE)
    assert len(grades("789")) == 14


@shard_test
def test_a_class_moves_between_shards(classes):
    before = grades("123")
    names = class_tables("123")
    result = move("123", "shard2")
    assert result.rows == 13 and result.source == "shard1"
    assert not remote_tables("shard1") & set(names)
    assert remote_tables("shard2") >= set(names)
    assert rows_on("shard2", "123") == 13
    assert grades("123") == before
    server = here(
        "SELECT s.srvname FROM pg_foreign_table f JOIN pg_foreign_server s "
        "ON s.oid = f.ftserver WHERE f.ftrelid = %s::regclass",
        [names[1]],
    )
    assert server == [("activity_grades_shard_shard2",)]
    # The service reads the class straight from its new shard.
    book = ActivityGradeService().gradebook("123", "2023_fall")
    assert len(book) == 7
    assert problems() == []


@shard_test
def test_writes_during_the_copy_reach_the_target(classes):
    """Inserts, updates, deletes and a move between terms made while the class is being
    copied are noted by the capture triggers and copied again before the swap."""
    done = []

    def write_once(line: str) -> None:
        if done or "rows copied" not in line:
            return
        done.append(line)
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at) VALUES ('789-during', '789/a1', 'd', 'graded', "
                "%s, %s)",
                [OUTSIDE, dt.datetime(2023, 9, 20, tzinfo=dt.timezone.utc)],
            )
            cur.execute("UPDATE activity_grades SET score = 99.5 WHERE id = '789-f-7'")
            cur.execute("DELETE FROM activity_grades WHERE id = '789-s-1'")
            # Into the spring term: the move trigger deletes it from fall, inserts it there.
            cur.execute(
                "UPDATE activity_grades SET created_at = %s, term_id = '2024_spring' "
                "WHERE id = '789-f-2'",
                [dt.datetime(2024, 2, 20, tzinfo=dt.timezone.utc)],
            )

    move("789", "shard2", batch_size=2, progress=write_once)
    assert done
    after = grades("789")
    assert len(after) == 13  # one inserted, one deleted
    assert rows_on("shard2", "789") == 13
    got = here(
        "SELECT id, score, term_id FROM activity_grades WHERE id IN "
        "('789-during', '789-f-7', '789-f-2', '789-s-1') ORDER BY id"
    )
    assert [(i, t) for i, _, t in got] == [
        ("789-during", "2023_fall"),
        ("789-f-2", "2024_spring"),
        ("789-f-7", "2023_fall"),
    ]
    assert float(got[2][1]) == 99.5
    assert problems() == []


@shard_test
def test_an_interrupted_copy_is_reported_and_resumes(classes):
    before = grades("789")

    class Killed(Exception):
        pass

    def die(line: str) -> None:
        if "rows copied" in line:
            raise Killed

    with pytest.raises(Killed):
        move("789", "shard1", batch_size=2, progress=die)
    # Reported; the class is served from its source meanwhile, reads and writes.
    found = [p for p in repair.plan().problems if p.id == move_class.UNFINISHED_MOVE]
    assert len(found) == 1 and not found[0].fixable and "--abort" in found[0].hint
    assert [relkind(n) for n in class_tables("789")] == ["r", "r", "r"]
    assert grades("789") == before
    ActivityGrade.objects.filter(id="789-f-3").update(score=3)
    with pytest.raises(MoveError, match="unfinished move to 'shard1'"):
        move("789", "shard2")

    result = move("789", "shard1", batch_size=2)
    assert result.rows < 13  # the first batch was not copied again
    assert rows_on("shard1", "789") == 13
    assert here("SELECT score FROM activity_grades WHERE id = '789-f-3'")[0][0] == 3
    assert [p for p in problems() if p.id == move_class.UNFINISHED_MOVE] == []


@shard_test
def test_abort_undoes_a_move_that_did_not_swap(classes):
    with pytest.raises(RuntimeError):
        move("123", "shard2", batch_size=2, progress=_raise_on_copy)
    assert remote_tables("shard2") >= set(class_tables("123"))  # the target's, half full
    out = StringIO()
    call_command("move_class", "123", "--abort", stdout=out)
    assert "dropped 3 target tables" in out.getvalue()
    assert not remote_tables("shard2") & set(class_tables("123"))
    assert remote_tables("shard1") >= set(class_tables("123"))
    assert here(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'activity_grades_move_capture'"
    ) == [(0,)]
    assert placement.shard_of("123") == "shard1"
    assert problems() == []
    with pytest.raises(CommandError, match="no unfinished move"):
        call_command("move_class", "123", "--abort", stdout=StringIO())


def _raise_on_copy(line: str) -> None:
    if "rows copied" in line:
        raise RuntimeError("interrupted")


@shard_test
def test_a_target_that_differs_is_copied_again_before_the_swap(classes):
    """A row changed on the target behind the move's back (not through the coordinator,
    so not noted) is found by the checksums and the table copied again whole."""
    fall = leaf("456", "2023_fall")
    tampered = []

    def tamper(line: str) -> None:
        if "writes paused" in line and not tampered:
            with connections["shard1"].cursor() as cur:
                cur.execute(
                    sql.SQL("UPDATE {} SET feedback = 'changed' WHERE id = '456-f-2'")
                    .format(sql.Identifier(fall))
                    .as_string(None)
                )
            tampered.append(True)

    before = grades("456")
    result = move("456", "shard1", progress=tamper)
    assert tampered and result.copied_again == [fall]
    assert grades("456") == before


@shard_test
def test_an_interruption_after_the_swap_is_finished_by_check_partitions(classes):
    def stop_after_swap(line: str) -> None:
        if "swapped to" in line:
            raise RuntimeError("killed after the coordinator's commit")

    before = grades("123")
    with pytest.raises(RuntimeError):
        move("123", "shard2", progress=stop_after_swap)
    # The coordinator reads the class from shard2 already; shard1 still has the old tables.
    assert grades("123") == before
    assert remote_tables("shard1") >= set(class_tables("123"))
    found = [p for p in repair.plan().problems if p.id == move_class.UNFINISHED_MOVE]
    assert len(found) == 1 and found[0].fixable and "shard1" in found[0].message
    out = StringIO()
    call_command("check_partitions", "--fix", stdout=out)
    assert not remote_tables("shard1") & set(class_tables("123"))
    assert problems() == []
    assert grades("123") == before


@shard_test
def test_writers_wait_for_the_swap_and_readers_do_not(classes):
    """During the swap a write into the class waits and then lands in the new table of
    the same name; a read of the class answers at once."""
    new_at = dt.datetime(2023, 9, 25, tzinfo=dt.timezone.utc)
    results: dict[str, object] = {}

    def write() -> None:
        try:
            new_grade("789-waited", "789/a0", "w", new_at)
            results["write"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results["write"] = exc
        finally:
            connection.close()

    def read() -> None:
        try:
            results["read"] = ActivityGrade.objects.filter(class_id="789").count()
        finally:
            connection.close()

    writer = threading.Thread(target=write)

    def during_swap(line: str) -> None:
        if "writes paused" not in line:
            return
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=20)
        results["read_finished_during_swap"] = not reader.is_alive()
        writer.start()

    move("789", "shard1", progress=during_swap)
    writer.join(timeout=60)
    assert results["read_finished_during_swap"] is True and results["read"] == 13
    assert results["write"] == "ok"
    assert on_shard("shard1", "SELECT count(*) FROM activity_grades WHERE id = '789-waited'") == [
        (1,)
    ]
    assert here("SELECT class_id FROM activity_grades_key WHERE id = '789-waited'") == [("789",)]
    assert problems() == []


# -- bad input and the command -----------------------------------------------------------


@shard_test
def test_bad_requests_change_nothing(classes):
    with pytest.raises(MoveError, match="not a shard"):
        move("789", "nowhere")
    with pytest.raises(MoveError, match="batch size"):
        move("789", "shard1", batch_size=0)
    assert move("123", "shard1").done.endswith("nothing to do")
    # A class without partitions is only placed.
    assert "has no partitions" in move("999", "shard2").done
    assert placement.placement_of("999").decided_by == "move"
    assert here("SELECT count(*) FROM activity_grades_move_state") == [(0,)]


@shard_test
def test_a_shard_that_is_down_is_named_and_nothing_changes(classes, settings):
    settings.ACTIVITY_GRADES = {
        **settings.ACTIVITY_GRADES,
        "SHARDS": ["shard1", "shard2", "shard3"],
    }
    with pytest.raises(MoveError, match="shard 'shard3' does not answer"):
        move("789", "shard3")
    assert here("SELECT count(*) FROM activity_grades_move_state") == [(0,)]
    assert [relkind(n) for n in class_tables("789")] == ["r", "r", "r"]


@shard_test
def test_the_command_dry_run_and_run(classes):
    out = StringIO()
    call_command("move_class", "789", "--to", "shard2", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "Would move class 789 to shard2" in text
    assert f"copy {leaf('789', '2023_fall')} on default (7 rows)" in text
    assert here("SELECT count(*) FROM activity_grades_move_state") == [(0,)]
    assert rows_on("shard2", "789") == 0
    with pytest.raises(CommandError, match="--to"):
        call_command("move_class", "789", stdout=StringIO())
    out = StringIO()
    call_command("move_class", "789", "--to", "shard2", "-v", "2", stdout=out)
    assert "moved class '789' from 'local' to 'shard2'" in out.getvalue()
    assert rows_on("shard2", "789") == 13
    assert recorded_placement.recorded("default", "789").shard == "shard2"


@shard_test
def test_a_term_split_by_month_moves_whole_into_one_term_table(classes):
    """A local term kept in month tables (create_partitions --regranulate) becomes one
    term table on the shard: a shard's term tables are leaves."""
    call_command(
        "create_partitions", "--regranulate", "2023_fall", "--to", "month", stdout=StringIO()
    )
    fall = leaf("789", "2023_fall")
    month_tables = [m.table_name for m in months.live_months(class_id="789")]
    assert month_tables and rows_in("default", fall, only=True) == 0
    before = grades("789")
    move("789", "shard1")
    assert grades("789") == before
    assert rows_in("shard1", fall) == 7
    assert months.live_months(class_id="789") == []
    assert all(here("SELECT to_regclass(%s) IS NULL", [m])[0][0] for m in month_tables)
    assert months.term_granularities()[("789", "2023_fall")] == "term"
    assert relkind(leaf("123", "2023_fall")) == "f"  # regranulate skipped the sharded class
    assert problems() == []


@shard_test
def test_one_run_per_class_at_a_time(classes):
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as holder:
        holder.execute(
            "SELECT pg_advisory_lock(hashtext('activity_grades_move_state'), hashtext('789'))"
        )
        with pytest.raises(MoveError, match="another move_class of class '789' is running"):
            move("789", "shard1")
    assert here("SELECT count(*) FROM activity_grades_move_state") == [(0,)]
    assert move("789", "shard1").rows == 13


@shard_test
def test_record_many_of_a_moving_class_goes_through_the_coordinator(classes):
    """record_many writes a sharded class straight to its shard, except while the class
    is being moved: then through the coordinator, whose capture triggers note the rows,
    so the swap finds nothing to copy again."""
    at = dt.datetime(2023, 9, 28, tzinfo=dt.timezone.utc)
    spring = leaf("123", "2024_spring")
    written = []

    def ingest(line: str) -> None:
        if written or not line.startswith(spring):  # the fall table is copied already
            return
        result = ActivityGradeService().record_many(
            [
                {
                    "activity_id": "123/a1",
                    "student_id": f"m{i}",
                    "status": "graded",
                    "submitted_at": at,
                    "created_at": at,
                }
                for i in range(3)
            ]
        )
        written.append(result.rows)

    result = move("123", "shard2", batch_size=2, progress=ingest)
    assert written == [3] and result.copied_again == []
    assert rows_on("shard2", "123") == 16
    assert problems() == []


@shard_test
def test_an_archived_term_is_restored_where_the_class_is_now(classes):
    """Archived terms stay in the coordinator's archive through a move; restoring one
    makes its partition where the class lives after the move."""
    drop_archive()
    try:
        call_command("archive_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
        fall = here(
            "SELECT table_name FROM activity_grades_partition WHERE class_id = '123' "
            "AND term_id = '2023_fall'"
        )[0][0]
        result = move("123", "local")
        assert sorted(result.tables) == sorted([leaf("123", None), leaf("123", "2024_spring")])
        out = StringIO()
        call_command(
            "restore_grades", "--term", "2023_fall", "--class", "123", "--noinput", stdout=out
        )
        assert "Restored 7 rows" in out.getvalue()
        assert relkind(fall) == "r"
        assert len(grades("123")) == 13
        assert not remote_tables("shard1") & {fall, leaf("123", None)}
        assert problems() == []
    finally:
        drop_archive()


@shard_test
def test_the_copy_does_not_chase_rows_inserted_after_it_began(classes):
    """Each table is copied up to the greatest id it held when its copy began; a row
    inserted later (past that id) is in the log and copied once, from there."""
    fall = leaf("789", "2023_fall")
    inserted = []

    def insert_past_the_end(line: str) -> None:
        if inserted or not line.startswith(fall):
            return
        new_grade("789-zz", "789/a1", "late", dt.datetime(2023, 9, 30, tzinfo=dt.timezone.utc))
        inserted.append(True)

    result = move("789", "shard1", batch_size=2, progress=insert_past_the_end)
    assert inserted and result.rows == 13  # the rows there when the copy began
    assert rows_in("shard1", fall) == 8  # and the late one, from the log
    assert problems() == []


@shard_test
def test_archiving_waits_for_an_unfinished_move(classes):
    with pytest.raises(RuntimeError):
        move("123", "shard2", batch_size=2, progress=_raise_on_copy)
    with pytest.raises(CommandError, match="being moved by move_class"):
        call_command("archive_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    assert relkind(leaf("123", "2023_fall")) == "f"  # nothing archived
    move("123", "shard2")
    drop_archive()
    try:
        out = StringIO()
        call_command("archive_grades", "--term", "2023_fall", "--noinput", stdout=out)
        assert "Archived 21 rows from 3 partitions" in out.getvalue()
    finally:
        drop_archive()


@shard_test
def test_a_class_placed_on_a_shard_with_local_tables_moves_there(classes):
    """E038: the placement says shard1, the tables are local (made before the class was
    placed); move_class moves them where the placement says."""
    with connection.cursor() as cur:
        recorded_placement.record(cur, "789", "shard1", "place")
    assert "activity_grades.E038" in {p.id for p in problems()}
    before = grades("789")
    result = move("789", "shard1")
    assert result.source == "local" and result.rows == 13
    assert [relkind(n) for n in class_tables("789")] == ["f", "f", "f"]
    assert grades("789") == before
    assert problems() == []
