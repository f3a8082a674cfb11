"""The LMS's activities and terms, read through SQL functions built from settings.

The routing trigger (fixed text, ``activity_grades/sql``) calls functions whose bodies
depend on where the LMS keeps activities and terms. ``install`` (re)creates them after
every ``migrate`` from ``ACTIVITY_GRADES``, with every identifier quoted by psycopg and
the time zone passed as a literal. The rest of this module reads the LMS through them,
so Python and the trigger share one definition of "the class of an activity" and "the
term of a moment".
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connections, transaction
from psycopg import sql

from ..core.settings import app_settings
from .connection import Cursor, fetch_column, fetch_rows, fetch_value

__all__ = [
    "Term",
    "TermIndex",
    "class_ids",
    "class_of",
    "classes_of",
    "install",
    "locate",
    "lookup_functions_sql",
    "term_at",
    "terms",
]


def _column_type(cursor: Cursor, table: str, column: str) -> str:
    """The SQL type of ``table.column`` so lookups compare without casting the column."""
    cursor.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        [sql.Identifier(table).as_string(), column],
    )
    row = cursor.fetchone()
    return row[0] if row else "text"


def lookup_functions_sql(cursor: Cursor) -> sql.Composed:
    """Build CREATE OR REPLACE statements for the lookup functions."""
    s = app_settings
    activities = sql.Identifier(s.ACTIVITIES_TABLE)
    terms = sql.Identifier(s.TERMS_TABLE)
    act_id_type = _column_type(cursor, s.ACTIVITIES_TABLE, s.ACTIVITY_ID_COLUMN)
    term_id_type = _column_type(cursor, s.TERMS_TABLE, s.TERM_ID_COLUMN)
    params = {
        "activities": activities,
        "act_id": sql.Identifier(s.ACTIVITY_ID_COLUMN),
        "act_class": sql.Identifier(s.ACTIVITY_CLASS_COLUMN),
        "act_id_type": sql.SQL(act_id_type),
        "terms": terms,
        "term_id": sql.Identifier(s.TERM_ID_COLUMN),
        "term_id_type": sql.SQL(term_id_type),
        "start": sql.Identifier(s.TERM_START_COLUMN),
        "end": sql.Identifier(s.TERM_END_COLUMN),
        "year": sql.Identifier(s.TERM_YEAR_COLUMN),
        "tz": sql.Literal(s.time_zone),
    }
    # Term dates are whole days in the school's zone; ranges are half-open
    # [start 00:00, day after end 00:00), so the last day counts to midnight.
    # When terms overlap, the one that starts last wins.
    params["term_at"] = sql.SQL(
        "SELECT t.{term_id}::text FROM {terms} t"
        " WHERE p_at >= t.{start}::timestamp AT TIME ZONE {tz}"
        " AND p_at < (t.{end} + 1)::timestamp AT TIME ZONE {tz}"
        " ORDER BY t.{start} DESC, t.{term_id} DESC LIMIT 1"
    ).format(**params)
    return sql.SQL(
        """
CREATE OR REPLACE FUNCTION activity_grades_class_of(p_activity_id text) RETURNS text
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN (SELECT a.{act_class}::text FROM {activities} a
             WHERE a.{act_id} = p_activity_id::{act_id_type});
END $fn$;

CREATE OR REPLACE FUNCTION activity_grades_term_at(p_at timestamptz) RETURNS text
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN ({term_at});
END $fn$;

-- The routing trigger's lookup: class and term of a new grade in one query. One SELECT
-- in LANGUAGE sql returning a set, so the planner inlines it into the trigger's plan.
CREATE OR REPLACE FUNCTION activity_grades_locate(p_activity_id text, p_at timestamptz)
RETURNS TABLE (class_id text, term_id text) LANGUAGE sql STABLE AS $fn$
    SELECT a.{act_class}::text, ({term_at})
      FROM {activities} a WHERE a.{act_id} = p_activity_id::{act_id_type}
$fn$;

CREATE OR REPLACE FUNCTION activity_grades_term_bounds(
    p_term_id text, OUT starts_at timestamptz, OUT ends_at timestamptz, OUT academic_year text
) LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    SELECT t.{start}::timestamp AT TIME ZONE {tz}, (t.{end} + 1)::timestamp AT TIME ZONE {tz},
           t.{year}::text
      INTO starts_at, ends_at, academic_year
      FROM {terms} t WHERE t.{term_id} = p_term_id::{term_id_type};
END $fn$;

CREATE OR REPLACE FUNCTION activity_grades_terms() RETURNS TABLE (
    term_id text, starts_at timestamptz, ends_at timestamptz, academic_year text
) LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN QUERY
    SELECT t.{term_id}::text, t.{start}::timestamp AT TIME ZONE {tz},
           (t.{end} + 1)::timestamp AT TIME ZONE {tz}, t.{year}::text
      FROM {terms} t ORDER BY t.{start}, t.{term_id};
END $fn$;

CREATE OR REPLACE FUNCTION activity_grades_class_ids() RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN QUERY SELECT DISTINCT a.{act_class}::text FROM {activities} a
                  WHERE a.{act_class} IS NOT NULL ORDER BY 1;
END $fn$;
"""
    ).format(**params)


def install(using: str = "default") -> None:
    """Install the lookup functions on one database."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # Like the PL/pgSQL ones, the SQL function is checked when it runs, not when it
        # is created: `migrate activity_grades` may run before the LMS's own tables exist,
        # and a misnamed table is reported (by name) on the first grade routed.
        cursor.execute("SET LOCAL check_function_bodies = off")
        statement = lookup_functions_sql(cursor)
        cursor.execute(statement.as_string(cursor.connection))


@dataclass(frozen=True)
class Term:
    """One term of the LMS, as the routing trigger sees it."""

    term_id: str
    starts_at: datetime
    ends_at: datetime  # exclusive: the day after the last day, 00:00 in TERM_TIME_ZONE
    academic_year: str | None


class TermIndex:
    """Python twin of ``activity_grades_term_at`` over a list of terms (latest start wins)."""

    def __init__(self, all_terms: Iterable[Term]) -> None:
        self.terms = sorted(all_terms, key=lambda t: (t.starts_at, t.term_id))
        self.starts = [t.starts_at for t in self.terms]

    def at(self, ts: datetime) -> str | None:
        for i in range(bisect.bisect_right(self.starts, ts) - 1, -1, -1):
            if ts < self.terms[i].ends_at:
                return self.terms[i].term_id
        return None


def terms(using: str = "default") -> list[Term]:
    """Every term of the LMS, ordered by start."""
    return [Term(*row) for row in fetch_rows(using, "SELECT * FROM activity_grades_terms()")]


def class_ids(using: str = "default") -> list[str]:
    """Every class that has at least one activity."""
    return fetch_column(using, "SELECT * FROM activity_grades_class_ids()")


def class_of(activity_id: str, using: str = "default") -> str | None:
    class_id: str | None = fetch_value(using, "SELECT activity_grades_class_of(%s)", [activity_id])
    return class_id


def term_at(at: datetime, using: str = "default") -> str | None:
    term_id: str | None = fetch_value(using, "SELECT activity_grades_term_at(%s)", [at])
    return term_id


def locate(activity_id: str, at: datetime, using: str = "default") -> tuple[str | None, str | None]:
    """(class, term) of a grade in one round trip, as the routing trigger finds them."""
    found = fetch_rows(
        using, "SELECT class_id, term_id FROM activity_grades_locate(%s, %s)", [activity_id, at]
    )
    return found[0] if found else (None, None)


def classes_of(activity_ids: set[str], using: str = "default") -> dict[str, str]:
    """activity -> class for those of ``activity_ids`` that exist and have a class."""
    if not activity_ids:
        return {}
    found = fetch_rows(
        using,
        "SELECT a, activity_grades_class_of(a) FROM unnest(%s::text[]) AS a",
        [list(activity_ids)],
    )
    return {a: c for a, c in found if c is not None}
