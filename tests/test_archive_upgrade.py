"""Archives written before migration 0012 (one row per grade) stay readable, convert to
chunks with compress_archive (resumable, verified) and back; migrating back past 0012
refuses while chunks hold grades."""

from __future__ import annotations

import os
import signal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from psycopg import sql

from activity_grades.core.constants import Status
from activity_grades.db import archive as sql_archive
from activity_grades.db import catalog, ddl, registry
from activity_grades.operations.faults import FAULT_ENV
from activity_grades.sql.guard import DataLossRefused

from .archive_support import add_grades, drop_archive, ids, manage, scalar
from .test_archive_chunks import exact
from .test_archiving import _backend_pid, _wait, _wait_until_gone

YEAR = "2023-2024"
WHERE = "term_id IN ('2023_fall', '2024_spring')"


@pytest.fixture
def clean_archive(committed_lms):
    drop_archive()
    yield
    drop_archive()


def archive_the_old_way() -> None:
    """What archive_grades did before 0012: each leaf's rows into the year's row table."""
    with connection.cursor() as cursor:
        table = sql_archive.ensure_rows_year(cursor, YEAR)
        cols = catalog.grade_columns(cursor)
        for row, _size in registry.live_leaves("default", ["2023_fall", "2024_spring"]):
            sql_archive.copy_leaf(cursor, row.table_name, table, cols, YEAR)
            sql_archive.delete_keys_of(cursor, row.table_name)
            ddl.drop_table(cursor, row.table_name)
            registry.set_status(cursor, row.id, Status.ARCHIVED)


def seed() -> dict:
    for class_id in ("123", "456"):
        add_grades(f"{class_id}/a0", "2023-09-01", 40, f"f23-{class_id}-")
        add_grades(f"{class_id}/a1", "2024-02-01", 30, f"s24-{class_id}-")
    return exact("activity_grades", WHERE)


def compress(*args: str) -> str:
    out = StringIO()
    call_command("compress_archive", *args, "--noinput", stdout=out)
    return out.getvalue()


def test_rows_archived_before_0012_are_read_converted_and_restored(clean_archive):
    original = seed()
    archive_the_old_way()
    stamped = ids("SELECT id || ' ' || archived_at FROM archived_activity_grades")
    assert len(stamped) == 140
    assert exact("archived_activity_grades", WHERE) == original  # read as they are
    assert scalar("SELECT count(*) FROM archived_activity_grades_chunk") == 0

    out = StringIO()
    call_command("compress_archive", "--dry-run", stdout=out)
    assert "Would convert 140 archived grades in 4 (year, class, term) groups" in out.getvalue()
    assert "Converted 140 grades in 4 groups to chunks; dropped 1 emptied row" in compress()
    assert exact("archived_activity_grades", WHERE) == original
    assert scalar("SELECT count(*) FROM archived_activity_grades_rows") == 0
    assert scalar("SELECT count(*) FROM activity_grades_archive_rows_year") == 0
    # Every grade keeps its archived_at (the leaves were archived at different times).
    assert ids("SELECT id || ' ' || archived_at FROM archived_activity_grades") == stamped
    assert scalar("SELECT rows FROM activity_grades_archive_year") == 140
    assert "Nothing to do." in compress()

    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    assert exact("activity_grades", "term_id = '2023_fall'") == {
        k: v for k, v in original.items() if k.startswith("f23-")
    }


def test_migrating_back_refuses_while_chunks_hold_grades(clean_archive):
    original = seed()
    call_command(
        "archive_grades", "--before-academic-year", "2024-2025", "--noinput", stdout=StringIO()
    )
    with pytest.raises(DataLossRefused) as refused:
        call_command("migrate", "activity_grades", "0011", verbosity=0)
    assert "the compressed archive" in str(refused.value)
    assert "holds 140 grade row(s)" in str(refused.value)
    assert "manage.py compress_archive --to rows" in str(refused.value)
    assert exact("archived_activity_grades", WHERE) == original  # nothing changed
    assert "Converted 140 grades in 4 groups to rows" in compress("--to", "rows")
    assert exact("archived_activity_grades", WHERE) == original
    try:
        call_command("migrate", "activity_grades", "0011", verbosity=0)
        # Back on 0011: the row archive is the table archived_activity_grades again.
        assert (
            scalar("SELECT relkind FROM pg_class WHERE relname = 'archived_activity_grades'") == "p"
        )
        assert exact("archived_activity_grades", WHERE) == original
    finally:
        call_command("migrate", "activity_grades", verbosity=0)
    assert exact("archived_activity_grades", WHERE) == original
    assert "Converted 140 grades in 4 groups to chunks" in compress()
    assert exact("archived_activity_grades", WHERE) == original


@pytest.mark.parametrize("stage", ["after_copy", "before_commit"])
def test_killed_conversion_loses_nothing_and_rerun_finishes(clean_archive, stage):
    original = seed()
    archive_the_old_way()
    app = f"archiver_compress_{stage}"
    child = manage(["compress_archive", "--noinput"], app, {FAULT_ENV: f"{stage}=30"})
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
    # The interrupted group is wholly in the row archive still; nothing doubled or lost.
    assert exact("archived_activity_grades", WHERE) == original
    assert scalar("SELECT count(*) FROM archived_activity_grades_chunk") == 0
    compress()
    assert exact("archived_activity_grades", WHERE) == original
    assert scalar("SELECT count(*) FROM archived_activity_grades_rows") == 0
    table = scalar("SELECT table_name FROM activity_grades_archive_year")
    assert (
        scalar(
            sql.SQL("SELECT sum(row_count) FROM {}")
            .format(sql.Identifier(table))
            .as_string(connection.connection)
        )
        == 140
    )
