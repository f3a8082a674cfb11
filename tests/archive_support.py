"""Helpers for the archiving, retention and maintenance tests (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg import sql

from gradeproject.lms.models import Term

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = (
    "id, activity_id, student_id, score, points, feedback, status, submitted_at, graded_at, "
    "graded_by_id, content, attachments, created_at, updated_at, is_archived, is_committed, "
    "commitment_id, commitment_deadline, commitment_met, class_id, term_id"
)

# Every column set, so a lost column shows up in a whole-row comparison.
INSERT = """
INSERT INTO activity_grades (id, activity_id, student_id, score, points, feedback, status,
    submitted_at, graded_at, graded_by_id, content, attachments, created_at, updated_at,
    is_archived, is_committed, commitment_id, commitment_deadline, commitment_met)
SELECT %(prefix)s || i, a.id, %(student)s || (i %% %(students)s), i * 1.25, i,
       'feedback ' || repeat('ok ', i %% 40),
       CASE WHEN i %% 2 = 0 THEN 'graded' ELSE 'submitted' END,
       %(at)s::timestamptz + i * interval '1 second', %(at)s::timestamptz + i * interval '2 second',
       'teacher' || (i %% 7), jsonb_build_object('answer', repeat('x', i %% 300), 'n', i),
       jsonb_build_array(jsonb_build_object('file', 'f' || i || '.pdf')),
       %(at)s::timestamptz + i * interval '1 second', %(at)s::timestamptz + i * interval '3 second',
       i %% 5 = 0, i %% 3 = 0, 'c' || i, %(at)s::timestamptz + interval '7 days', i %% 4 = 0
  FROM generate_series(1, %(n)s) i
  JOIN activities a ON a.id = %(activity)s
"""


def add_grades(
    activity: str, at: str, n: int, prefix: str, students: int = 1_000_000, student: str = "stu"
) -> None:
    """n grades on one activity created from ``at`` on (one per second), students distinct."""
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT,
            {
                "prefix": prefix,
                "students": students,
                "student": student,
                "at": at,
                "n": n,
                "activity": activity,
            },
        )


def rows(where: str = "TRUE", params=(), table: str = "activity_grades") -> dict:
    """id -> the whole row as JSON text (every column of the live table)."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT id, row_to_json(r)::text FROM (SELECT {} FROM {} WHERE {}) r").format(
                sql.SQL(COLUMNS), sql.Identifier(table), sql.SQL(where)
            ),
            params,
        )
        return dict(cursor.fetchall())


def scalar(query: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()[0]


def ids(query: str, params=()) -> set:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return {r[0] for r in cursor.fetchall()}


def add_current_term(term_id: str = "current", year: str = "2099-2100") -> Term:
    today = timezone.now().date()
    return Term.objects.create(
        id=term_id,
        start_date=today - dt.timedelta(days=30),
        end_date=today + dt.timedelta(days=30),
        academic_year=year,
    )


def drop_archive() -> None:
    """Drop every archive year table of both formats (Django's flush does not empty them)."""
    with connection.cursor() as cursor:
        for registry in ("activity_grades_archive_year", "activity_grades_archive_rows_year"):
            cursor.execute(sql.SQL("SELECT table_name FROM {}").format(sql.Identifier(registry)))
            for (table,) in cursor.fetchall():
                cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            cursor.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(registry)))
        cursor.execute("DELETE FROM activity_grades_maintenance_run")
        # Detached copies are outside the registry's drop loop: drop them here.
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' "
            "AND obj_description(oid, 'pg_class') = 'activity_grades:detached'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def _host() -> str | None:
    s = connection.settings_dict
    return s["HOST"] or s.get("OPTIONS", {}).get("host") or None


def conninfo() -> dict:
    s = connection.settings_dict
    info = {"dbname": s["NAME"], "user": s["USER"], "host": _host()}
    if s.get("PORT"):
        info["port"] = s["PORT"]
    if s.get("PASSWORD"):
        info["password"] = s["PASSWORD"]
    return {k: v for k, v in info.items() if v is not None}


def connect(autocommit: bool = True, **kwargs) -> psycopg.Connection:
    return psycopg.connect(**conninfo(), autocommit=autocommit, **kwargs)


def database_url(application_name: str) -> str:
    """A DATABASE_URL for a child process that points at this (test) database."""
    s = connection.settings_dict
    user = quote(s["USER"] or "", safe="")
    password = quote(s["PASSWORD"] or "", safe="")
    host = _host() or ""
    query = f"application_name={application_name}"
    if host.startswith("/"):
        return f"postgresql://{user}:{password}@/{s['NAME']}?host={quote(host)}&{query}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgresql://{user}:{password}@{host}{port}/{s['NAME']}?{query}"


def manage(
    args: list[str], application_name: str, extra_env: dict | None = None
) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("TEST_DATABASE_NAME", None)
    env["DATABASE_URL"] = database_url(application_name)
    env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
    env.update(extra_env or {})
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
