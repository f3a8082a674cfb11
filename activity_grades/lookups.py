"""The SQL functions that read the LMS's own tables, built from settings.

The routing trigger (fixed text in migration 0001) calls functions whose bodies
depend on where the LMS keeps activities and terms. They are (re)installed
after every ``migrate`` from ``ACTIVITY_GRADES`` settings, with every identifier
quoted by psycopg and the time zone passed as a literal.
"""

from __future__ import annotations

from django.db import connections, transaction
from psycopg import sql

from . import conf


def _column_type(cursor, table: str, column: str) -> str:
    """The SQL type of ``table.column`` so lookups compare without casting the column."""
    cursor.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        [sql.Identifier(table).as_string(), column],
    )
    row = cursor.fetchone()
    return row[0] if row else "text"


def lookup_functions_sql(cursor) -> sql.Composed:
    """Build CREATE OR REPLACE statements for the lookup functions."""
    g = conf.get
    activities = sql.Identifier(g("ACTIVITIES_TABLE"))
    terms = sql.Identifier(g("TERMS_TABLE"))
    act_id_type = _column_type(cursor, g("ACTIVITIES_TABLE"), g("ACTIVITY_ID_COLUMN"))
    term_id_type = _column_type(cursor, g("TERMS_TABLE"), g("TERM_ID_COLUMN"))
    params = {
        "activities": activities,
        "act_id": sql.Identifier(g("ACTIVITY_ID_COLUMN")),
        "act_class": sql.Identifier(g("ACTIVITY_CLASS_COLUMN")),
        "act_id_type": sql.SQL(act_id_type),
        "terms": terms,
        "term_id": sql.Identifier(g("TERM_ID_COLUMN")),
        "term_id_type": sql.SQL(term_id_type),
        "start": sql.Identifier(g("TERM_START_COLUMN")),
        "end": sql.Identifier(g("TERM_END_COLUMN")),
        "year": sql.Identifier(g("TERM_YEAR_COLUMN")),
        "tz": sql.Literal(g("TERM_TIME_ZONE")),
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
