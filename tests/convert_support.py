"""Scratch databases for the conversion tests: an LMS with its own activity_grades table.

Each test gets its own database (``CREATE DATABASE ... TEMPLATE``) made from one template
(``test_convert.template``): the LMS's table and data, then ``manage.py migrate`` as a
user runs it (the app's objects staged beside the table). Commands run as child
processes against the scratch database; checks read it with psycopg.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection
from psycopg import sql

from bench.db import with_database

from . import archive_support
from .archive_support import database_url

CLASSES = 4
ACTIVITIES = 5
ROWS = 3000
# Every column of the LMS's table, for whole-row comparisons.
LMS_COLUMNS = (
    "id, activity_id, student_id, score, points, feedback, status, submitted_at, graded_at, "
    "graded_by_id, content, attachments, created_at, updated_at, is_archived, is_committed, "
    "commitment_id, commitment_deadline, commitment_met, lms_source"
)


def url(name: str, application_name: str = "convert_test") -> str:
    return with_database(database_url(application_name), name)


def admin_connect() -> psycopg.Connection:
    return psycopg.connect(url(connection.settings_dict["NAME"]), autocommit=True)


def manage(
    name: str, args: list[str], application_name: str = "convert_cmd", env: dict | None = None
) -> subprocess.Popen:
    """manage.py ``args`` as a child process against the scratch database ``name``."""
    return archive_support.manage(
        args, application_name, {"DATABASE_URL": url(name, application_name), **(env or {})}
    )


def run(name: str, *args: str, check: bool = True, env: dict | None = None) -> tuple[int, str]:
    """Run a manage.py command to the end: (exit code, stdout + stderr)."""
    proc = manage(name, list(args), env=env)
    out, err = proc.communicate(timeout=600)
    if check and proc.returncode:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{out}\n{err}")
    return proc.returncode, out + err


def drop_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_database(name: str, template: str | None = None) -> None:
    drop_database(name)
    with admin_connect() as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def connect(name: str, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(url(name, "convert_check"), autocommit=autocommit)


def checksum(conn: psycopg.Connection) -> tuple[int, int]:
    """count and sum of row hashes of every LMS column, read through activity_grades."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(hash_record_extended(ROW(" + LMS_COLUMNS + "), 0)), 0) "
        "FROM activity_grades"
    ).fetchone()
    assert row is not None
    return row[0], int(row[1])


def scalar(conn: psycopg.Connection, query: str, params: tuple = ()) -> object:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def kill(proc: subprocess.Popen, name: str) -> None:
    """kill -9 the command, end its server backend the same way, and wait until it is gone
    (its transaction rolled back, its locks released)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with connect(name) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'convert_cmd' AND datname = current_database()"
        )
        wait_for(
            lambda: (
                scalar(
                    conn,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'convert_cmd' "
                    "AND datname = current_database()",
                )
                == 0
            )
        )


def lms_triggers(conn: psycopg.Connection) -> int:
    """The triggers on the LMS's own table (none until a conversion starts)."""
    count = scalar(
        conn,
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.activity_grades'::regclass "
        "AND NOT tgisinternal",
    )
    assert isinstance(count, int)
    return count


@contextmanager
def scratch(template: str, name: str) -> Iterator[str]:
    create_database(name, template)
    try:
        yield name
    finally:
        drop_database(name)
