"""archive_grades / restore_grades against real PostgreSQL: whole rows, keys, markers, late
grades, crashes (SIGKILL and pg_terminate_backend of a real child process) and writers."""

from __future__ import annotations

import os
import signal
import threading
import time
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from psycopg import sql

from activity_grades.db.registry import tables_of_student
from activity_grades.models import ArchivedActivityGrade
from activity_grades.operations.faults import FAULT_ENV
from activity_grades.service import student_history
from gradeproject.lms.models import Activity

from .archive_support import (
    add_current_term,
    add_grades,
    connect,
    drop_archive,
    ids,
    manage,
    rows,
    scalar,
)

ARCHIVE_COLS_WHERE = "term_id = %s"


def seed() -> None:
    """Both classes in every term (one activity per term), plus rows between terms.

    2023_fall: 40 + 40 rows, 2024_spring: 30 + 30, 2024_fall: 20 + 20, class 123's
    class table: 5. Student stuN has one grade per (class, term).
    """
    for class_id in ("123", "456"):
        Activity.objects.create(id=f"{class_id}/a2", school_class_id=class_id, title="A2")
        add_grades(f"{class_id}/a0", "2023-09-01", 40, f"f23-{class_id}-")
        add_grades(f"{class_id}/a1", "2024-02-01", 30, f"s24-{class_id}-")
        add_grades(f"{class_id}/a2", "2024-09-01", 20, f"f24-{class_id}-")
    add_grades("123/a2", "2024-07-01", 5, "gap-", student="gap")  # between terms


def archive(*args, **kwargs) -> str:
    out = StringIO()
    call_command("archive_grades", *args, "--noinput", stdout=out, **kwargs)
    return out.getvalue()


def live_tables(term: str) -> set:
    return ids("SELECT table_name FROM activity_grades_partition WHERE term_id = %s", [term])


def test_archive_keeps_every_column_and_touches_nothing_else(lms):
    seed()
    before_term = rows("term_id = %s", ["2023_fall"])
    before_others = rows("term_id IS DISTINCT FROM %s", ["2023_fall"])
    tables = live_tables("2023_fall")
    assert len(before_term) == 80 and len(tables) == 2

    out = archive("--term", "2023_fall")

    assert "Archived 80 rows from 2 partitions" in out
    archived = rows("term_id = %s", ["2023_fall"], table="archived_activity_grades")
    assert archived == before_term  # every column of every row, equal
    assert rows("term_id IS DISTINCT FROM %s", ["2023_fall"]) == before_others
    assert rows("term_id = %s", ["2023_fall"]) == {}
    for table in tables:
        assert scalar("SELECT to_regclass(quote_ident(%s))", [table]) is None
    assert ids("SELECT status FROM activity_grades_partition WHERE term_id = '2023_fall'") == {
        "archived"
    }
    assert scalar("SELECT count(*) FROM activity_grades_key WHERE term_id = '2023_fall'") == 0
    assert ids("SELECT id FROM activity_grades_key") == set(before_others)
    assert set(
        ArchivedActivityGrade.objects.filter(academic_year="2023-2024").values_list("id", flat=True)
    ) == set(before_term)


def test_before_academic_year_archives_every_older_term(lms):
    seed()
    out = archive("--before-academic-year", "2024-2025")
    assert "Archived 140 rows from 4 partitions" in out
    assert scalar("SELECT count(*) FROM activity_grades WHERE term_id = '2024_fall'") == 40
    assert scalar("SELECT count(*) FROM ONLY activity_grades_class_123") == 5  # class rows stay
    assert scalar("SELECT count(*) FROM archived_activity_grades") == 140
    assert "Nothing to do." in archive("--before-academic-year", "2024-2025")  # rerun


def test_dry_run_changes_nothing(lms):
    seed()
    before = rows()
    out = StringIO()
    call_command("archive_grades", "--term", "2023_fall", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "Would archive 2 partitions, 80 rows" in text
    assert "activity_grades_class_123_term_2023_fall" in text and "Dry run" in text
    assert rows() == before
    assert scalar("SELECT count(*) FROM archived_activity_grades") == 0
    assert ids("SELECT DISTINCT status FROM activity_grades_partition") == {"live"}


def test_confirmation_no_changes_nothing(lms, monkeypatch):
    seed()
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    out = StringIO()
    call_command("archive_grades", "--term", "2023_fall", stdout=out)
    assert "Aborted" in out.getvalue()
    assert scalar("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 80


@pytest.mark.parametrize(
    "args, message",
    [
        (["--term", "nope"], "unknown term 'nope'"),
        (["--before-academic-year", "1999"], "unknown academic year '1999'"),
        ([], "--term ID and/or --before-academic-year"),
        (["--term", "current"], "needs --force"),
    ],
)
def test_user_errors(lms, args, message):
    add_current_term()
    with pytest.raises(CommandError, match=message):
        call_command("archive_grades", *args, "--noinput", stdout=StringIO())


def test_current_term_with_force(lms):
    add_current_term()
    add_grades("123/a0", "now", 3, "now-")
    assert "Archived 3 rows" in archive("--term", "current", "--force")


def test_refuses_a_table_without_the_marker(lms):
    seed()
    with connection.cursor() as cursor:
        cursor.execute("COMMENT ON TABLE activity_grades_class_456_term_2023_fall IS 'mine'")
    with pytest.raises(CommandError, match="refusing to archive"):
        archive("--term", "2023_fall")
    # The 123 leaf went first in its own transaction; 456 is untouched and still live.
    assert scalar("SELECT count(*) FROM ONLY activity_grades_class_456_term_2023_fall") == 40
    assert scalar("SELECT count(*) FROM activity_grades_key WHERE class_id = '456'") == 90


def test_verification_catches_a_changed_column(lms):
    """A copy that differs in one column of one row is refused and rolled back."""
    seed()
    before = rows()
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM activity_grades_archive_year('2023-2024')")
        table = cursor.fetchone()[0]
        # The chunk holding grade f23-456-7 gets another graded_by_id for that grade.
        cursor.execute(
            "CREATE FUNCTION pg_temp.tamper() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "DECLARE i int := array_position(NEW.id, 'f23-456-7'); "
            "BEGIN IF i IS NOT NULL THEN NEW.graded_by_id[i] := 'someone'; END IF; "
            "RETURN NEW; END $$"
        )
        cursor.execute(
            sql.SQL(
                "CREATE TRIGGER tamper BEFORE INSERT ON {} "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.tamper()"
            ).format(sql.Identifier(table))
        )
    with pytest.raises(CommandError, match="verification failed"):
        archive("--term", "2023_fall")
    assert rows("class_id = '456'") == {k: v for k, v in before.items() if "-456-" in k}
    assert scalar("SELECT count(*) FROM archived_activity_grades WHERE class_id = '456'") == 0


def test_late_grade_for_archived_term_recreates_partition(lms):
    seed()
    archive("--term", "2023_fall")
    add_grades("123/a0", "2023-10-01", 1, "late-", student="late")
    table = scalar(
        "SELECT table_name FROM activity_grades_partition "
        "WHERE class_id = '123' AND term_id = '2023_fall' AND status = 'live'"
    )
    assert table == "activity_grades_class_123_term_2023_fall"
    assert scalar("SELECT count(*) FROM ONLY activity_grades_class_123_term_2023_fall") == 1
    assert scalar("SELECT count(*) FROM activity_grades_key WHERE id = 'late-1'") == 1


def test_restore_round_trip(lms):
    seed()
    original = rows("term_id = %s", ["2023_fall"])
    archive("--before-academic-year", "2024-2025")
    out = StringIO()
    call_command("restore_grades", "--term", "2023_fall", "--dry-run", stdout=out)
    assert "Would restore 80 rows" in out.getvalue()
    assert rows("term_id = %s", ["2023_fall"]) == {}

    out = StringIO()
    call_command("restore_grades", "--term", "2023_fall", "--class", "123", "--noinput", stdout=out)
    assert "Restored 40 rows into 1 partitions" in out.getvalue()
    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())

    assert rows("term_id = %s", ["2023_fall"]) == original
    assert scalar("SELECT count(*) FROM archived_activity_grades WHERE term_id = '2023_fall'") == 0
    assert (
        scalar("SELECT count(*) FROM archived_activity_grades WHERE term_id = '2024_spring'") == 60
    )
    assert ids("SELECT status FROM activity_grades_partition WHERE term_id = '2023_fall'") == {
        "live"
    }
    assert ids("SELECT id FROM activity_grades_key WHERE term_id = '2023_fall'") == set(original)


def test_restore_conflict_changes_nothing(lms):
    seed()
    archive("--term", "2023_fall")
    # A late grade for a student/activity that already has an archived grade.
    add_grades("123/a0", "2023-10-01", 1, "dup-")  # student stu1 on 123/a0, like f23-123a0-1
    with pytest.raises(CommandError, match="same id or \\(activity, student\\)"):
        call_command("restore_grades", "--term", "2023_fall", "--class", "123", "--noinput")
    assert scalar("SELECT count(*) FROM archived_activity_grades WHERE class_id = '123'") == 40
    assert scalar("SELECT count(*) FROM ONLY activity_grades_class_123_term_2023_fall") == 1


def test_restore_errors(lms):
    with pytest.raises(CommandError, match="unknown term 'nope'"):
        call_command("restore_grades", "--term", "nope", "--noinput")
    out = StringIO()
    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=out)
    assert "Nothing to do." in out.getvalue()


def test_keep_detached(lms):
    seed()
    with override_settings(
        ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, "ARCHIVE_KEEP_DETACHED": True}
    ):
        out = archive("--term", "2023_fall")
    assert "then detach them" in out
    assert ids("SELECT status FROM activity_grades_partition WHERE term_id = '2023_fall'") == {
        "detached"
    }
    # Kept outside the tree: the parent no longer sees its rows, the archive has them.
    assert scalar("SELECT count(*) FROM activity_grades_class_123_term_2023_fall") == 40
    assert scalar("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 0
    assert (
        scalar("SELECT obj_description('activity_grades_class_123_term_2023_fall'::regclass)")
        == "activity_grades:detached"
    )
    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    assert scalar("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 80
    drop_archive()  # the detached copies (the committed fixtures' cleanup refuses them)


def test_student_history_reads_only_that_students_partitions(lms):
    seed()
    add_grades("456/a1", "2024-09-02", 1, "other-", students=1, student="x")
    archive("--term", "2023_fall")
    history = student_history("stu1")
    assert {g.id for g in history.live} == {
        "s24-123-1",
        "s24-456-1",
        "f24-123-1",
        "f24-456-1",
    }
    assert {g.id for g in history.archived} == {"f23-123-1", "f23-456-1"}
    assert [g.id for g in history.all][:2] == ["f23-123-1", "f23-456-1"]
    assert tables_of_student("x0") == ["activity_grades_class_456_term_2024_fall"]


def _bytes_per_row(table_sql: str, n: int) -> float:
    return scalar(f"SELECT ({table_sql})::float / %s", [n])


def test_archive_takes_fewer_bytes_per_row(lms):
    add_grades("123/a0", "2023-09-01", 3000, "b-")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    live = (
        scalar(
            "SELECT pg_total_relation_size('activity_grades_class_123_term_2023_fall') "
            "+ pg_total_relation_size('activity_grades_key')"
        )
        / 3000
    )
    archive("--term", "2023_fall")
    table = scalar("SELECT table_name FROM activity_grades_archive_year")
    archived = scalar("SELECT pg_total_relation_size(%s::regclass)", [table]) / 3000
    assert archived < live * 0.8, (live, archived)


# ----------------------------------------------------------------- crashes and concurrency


@pytest.fixture
def clean_archive(committed_lms):
    drop_archive()
    yield
    drop_archive()


def invariant(original: set) -> tuple[set, set]:
    live = ids("SELECT id FROM activity_grades")
    archived = ids("SELECT id FROM archived_activity_grades")
    assert not live & archived, "a grade is both live and archived"
    assert live | archived == original, "a grade was lost or invented"
    assert scalar("SELECT count(*) FROM archived_activity_grades") == len(archived)
    assert ids("SELECT id FROM activity_grades_key") == live
    return live, archived


def _wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _backend_pid(app: str):
    return scalar(
        "SELECT max(pid) FROM pg_stat_activity WHERE application_name = %s "
        "AND query LIKE 'SELECT pg_sleep%%' AND state = 'active' "
        "AND datname = current_database()",
        [app],
    )


def _wait_until_gone(app: str) -> None:
    """Until the server has ended every backend of the child (it rolls back first)."""
    _wait(
        lambda: (
            scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND datname = current_database()",
                [app],
            )
            == 0
        )
    )


@pytest.mark.parametrize(
    "stage, how",
    [
        ("after_copy", "sigkill"),
        ("after_keys", "terminate"),
        ("before_commit", "sigkill"),
        ("before_commit", "terminate"),
        ("between", "sigkill"),
    ],
)
def test_killed_archive_loses_nothing_and_rerun_finishes(clean_archive, stage, how):
    seed()
    original = ids("SELECT id FROM activity_grades")
    app = f"archiver_crash_{stage}_{how}"
    child = manage(
        ["archive_grades", "--before-academic-year", "2024-2025", "--noinput"],
        app,
        {FAULT_ENV: f"{stage}=30"},
    )
    try:
        if stage == "between":
            # Killed in Python after the first partition committed.
            _wait(
                lambda: (
                    scalar(
                        "SELECT count(*) FROM activity_grades_partition WHERE status = 'archived'"
                    )
                    >= 1
                    or child.poll() is not None
                )
            )
            os.kill(child.pid, signal.SIGKILL)
        else:
            _wait(lambda: _backend_pid(app) is not None or child.poll() is not None)
            assert child.poll() is None, child.communicate()
            if how == "sigkill":
                os.kill(child.pid, signal.SIGKILL)
            # A killed client's backend only notices at its next write: end it too, as
            # the server would; for "terminate" this is the whole failure.
            scalar("SELECT pg_terminate_backend(%s)", [_backend_pid(app)])
        child.wait(timeout=30)
        assert child.returncode != 0
        _wait_until_gone(app)
    finally:
        if child.poll() is None:
            child.kill()

    live, archived = invariant(original)
    assert len(archived) < 140
    # Killed inside the first partition's transaction: nothing archived; killed after
    # its commit ("between"): exactly that partition (class 123, 2023_fall) archived.
    assert len(archived) == (40 if stage == "between" else 0)

    call_command(
        "archive_grades", "--before-academic-year", "2024-2025", "--noinput", stdout=StringIO()
    )
    live, archived = invariant(original)
    assert len(archived) == 140
    assert ids(
        "SELECT DISTINCT status FROM activity_grades_partition WHERE term_id IN "
        "('2023_fall', '2024_spring')"
    ) == {"archived"}


def test_concurrent_writers_survive_archiving(clean_archive, monkeypatch):
    seed()
    add_current_term()
    add_grades(
        "123/a0", "now", 1, "warm-123-", student="warm"
    )  # create the current partitions up front
    add_grades("456/a0", "now", 1, "warm-456-", student="warm")
    original = ids("SELECT id FROM activity_grades")
    monkeypatch.setenv(FAULT_ENV, "after_copy=0.3,between=0.2")
    stop = threading.Event()
    written: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        mine: list[str] = []
        try:
            with connect() as conn:
                i = 0
                while not stop.is_set() or i < 20:
                    i += 1
                    grade = f"w{n}-{i}"
                    conn.execute(
                        "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                        "submitted_at) VALUES (%s, %s, %s, 'submitted', now())",
                        [grade, ("123/a1", "456/a1")[n % 2], grade],
                    )
                    mine.append(grade)
        except BaseException as exc:  # reported below
            errors.append(exc)
        written[n] = mine

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        archive("--before-academic-year", "2024-2025")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    new = {g for mine in written.values() for g in mine}
    assert len(new) >= 80
    live, archived = invariant(original | new)
    assert new <= live
    assert len(archived) == 140
    assert scalar("SELECT count(*) FROM activity_grades WHERE term_id = 'current'") == len(new) + 2


def test_reader_holding_the_leaf_makes_archive_time_out_cleanly(clean_archive):
    seed()
    original = ids("SELECT id FROM activity_grades")
    with connect(autocommit=False) as reader:
        # An open transaction that read the leaf holds ACCESS SHARE on it until it ends.
        reader.execute("SELECT count(*) FROM activity_grades_class_123_term_2023_fall")
        with override_settings(
            ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, "ARCHIVE_LOCK_TIMEOUT": "300ms"}
        ):
            with pytest.raises(CommandError, match="could not get a lock"):
                archive("--term", "2023_fall")
        reader.rollback()
    live, archived = invariant(original)
    assert archived == set()
    assert "Archived 80 rows" in archive("--term", "2023_fall")


@pytest.mark.parametrize("stage", ["after_copy", "before_commit"])
def test_killed_restore_loses_nothing_and_rerun_finishes(clean_archive, stage):
    seed()
    original = ids("SELECT id FROM activity_grades")
    archive("--before-academic-year", "2024-2025")
    app = f"archiver_restore_{stage}"
    child = manage(
        ["restore_grades", "--term", "2023_fall", "--noinput"],
        app,
        {FAULT_ENV: f"{stage}=30"},
    )
    try:
        _wait(lambda: _backend_pid(app) is not None or child.poll() is not None)
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGKILL)
        scalar("SELECT pg_terminate_backend(%s)", [_backend_pid(app)])
        child.wait(timeout=30)
        _wait_until_gone(app)
    finally:
        if child.poll() is None:
            child.kill()
    live, archived = invariant(original)
    assert len(archived) == 140  # the interrupted group is still wholly archived
    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    live, archived = invariant(original)
    assert (
        len(archived) == 60
        and scalar("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 80
    )
