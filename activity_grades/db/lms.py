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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import connections, transaction
from psycopg import sql

from ..core.settings import app_settings
from . import staging
from .cache import TtlCache
from .catalog import date_kind, lms_table, lms_table_in
from .connection import Cursor, fetch_column, fetch_rows, fetch_value

__all__ = [
    "Term",
    "TermIndex",
    "class_ids",
    "class_of",
    "class_id_order",
    "classes_of",
    "classes_of_cached",
    "install",
    "locate",
    "lookup_functions_sql",
    "month_bounds_sql",
    "term_at",
    "terms",
]


def _column_type(cursor: Cursor, table: str, column: str) -> str:
    """The SQL type of ``table.column`` so lookups compare without casting the column."""
    cursor.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        [lms_table(table).as_string(), column],
    )
    row = cursor.fetchone()
    return row[0] if row else "text"


def _term_day(cursor: Cursor, column: str, tz: sql.Composable) -> sql.Composable:
    """The day of ``t.<column>`` in TERM_TIME_ZONE: a date as is, a timestamp by its date."""
    value = sql.SQL("t.{}").format(sql.Identifier(column))
    kind = date_kind(_column_type(cursor, app_settings.TERMS_TABLE, column))
    if kind == "timestamptz":
        return sql.SQL("({} AT TIME ZONE {})::date").format(value, tz)
    if kind == "timestamp":
        return sql.SQL("{}::date").format(value)
    # A date; or a table not created yet (the next migrate rebuilds the lookups), or a
    # type the check activity_grades.E104 reports.
    return value


def _term_year(cursor: Cursor, start_day: sql.Composable) -> sql.Composable:
    """The academic year of a terms row ``t`` as text, from the source the settings name."""
    s = app_settings
    source = s.term_year_source
    if source == "rule":
        # "YYYY-YYYY" of the year that holds the first day: from TERM_YEAR_STARTS on,
        # the year that starts that calendar year, before it the one that started before.
        month, day = (int(part) for part in str(s.TERM_YEAR_STARTS).split("-"))
        year = sql.SQL(
            "(extract(year FROM {d})::int"
            " - ((extract(month FROM {d}), extract(day FROM {d})) < ({m}, {dd}))::int)"
        ).format(d=start_day, m=sql.Literal(month), dd=sql.Literal(day))
        return sql.SQL("({y}::text || '-' || ({y} + 1)::text)").format(y=year)
    column = sql.SQL("t.{}").format(sql.Identifier(str(s.TERM_YEAR_COLUMN)))
    if source == "table":
        return sql.SQL("(SELECT y.{label}::text FROM {table} y WHERE y.{id} = {column})").format(
            label=sql.Identifier(s.TERM_YEAR_TABLE_LABEL_COLUMN),
            table=lms_table_in(cursor, str(s.TERM_YEAR_TABLE)),
            id=sql.Identifier(s.TERM_YEAR_TABLE_ID_COLUMN),
            column=column,
        )
    return sql.SQL("{}::text").format(column)


def _term_sql(cursor: Cursor, tz: sql.Composable) -> dict[str, sql.Composable]:
    """Expressions over a terms row ``t``: its first day, first instant, end, and year.

    Term dates are whole days in TERM_TIME_ZONE, whatever the column type; ranges are
    half-open [first day 00:00, day after the last day 00:00), so the last day counts
    to midnight whether the LMS stores it as a date, as midnight or as 23:59:59.
    """
    s = app_settings
    # Impossible year settings (E100) would build wrong SQL: refuse them by name.
    s.require_valid("TERM_YEAR_COLUMN", "TERM_YEAR_STARTS", "TERM_YEAR_TABLE")
    start_day = _term_day(cursor, s.TERM_START_COLUMN, tz)
    end_day = _term_day(cursor, s.TERM_END_COLUMN, tz)
    return {
        "start_day": start_day,
        "starts_at": sql.SQL("{}::timestamp AT TIME ZONE {}").format(start_day, tz),
        "ends_at": sql.SQL("({} + 1)::timestamp AT TIME ZONE {}").format(end_day, tz),
        "year": _term_year(cursor, start_day),
    }


def lookup_functions_sql(cursor: Cursor) -> sql.Composed:
    """Build CREATE OR REPLACE statements for the lookup functions."""
    s = app_settings
    activities = lms_table_in(cursor, s.ACTIVITIES_TABLE)
    terms = lms_table_in(cursor, s.TERMS_TABLE)
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
        "tz": sql.Literal(s.time_zone),
    }
    params.update(_term_sql(cursor, params["tz"]))
    # When terms overlap, the one whose first day is last wins, then the greatest id as
    # text in code point order (as TermIndex.at, whatever the id column's type).
    params["term_at"] = sql.SQL(
        "SELECT t.{term_id}::text FROM {terms} t"
        " WHERE p_at >= {starts_at} AND p_at < {ends_at}"
        ' ORDER BY {start_day} DESC, t.{term_id}::text COLLATE "C" DESC LIMIT 1'
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
    SELECT {starts_at}, {ends_at}, {year}
      INTO starts_at, ends_at, academic_year
      FROM {terms} t WHERE t.{term_id} = p_term_id::{term_id_type};
END $fn$;

CREATE OR REPLACE FUNCTION activity_grades_terms() RETURNS TABLE (
    term_id text, starts_at timestamptz, ends_at timestamptz, academic_year text
) LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN QUERY
    SELECT t.{term_id}::text, {starts_at}, {ends_at}, {year}
      FROM {terms} t ORDER BY {start_day}, t.{term_id};
END $fn$;

CREATE OR REPLACE FUNCTION activity_grades_class_ids() RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN QUERY SELECT DISTINCT a.{act_class}::text FROM {activities} a
                  WHERE a.{act_class} IS NOT NULL ORDER BY 1;
END $fn$;
"""
    ).format(**params)


def month_bounds_sql() -> sql.Composed:
    """CREATE OR REPLACE statement of ``activity_grades_month_bounds`` (migration 0015): the
    calendar month of an instant in the terms' zone and its label 'YYYY_MM'."""
    return sql.SQL(
        """
CREATE OR REPLACE FUNCTION activity_grades_month_bounds(
    p_at timestamptz, OUT starts_at timestamptz, OUT ends_at timestamptz, OUT label text
) LANGUAGE sql STABLE AS $fn$
    SELECT date_trunc('month', p_at AT TIME ZONE {tz}) AT TIME ZONE {tz},
           (date_trunc('month', p_at AT TIME ZONE {tz}) + interval '1 month') AT TIME ZONE {tz},
           to_char(p_at AT TIME ZONE {tz}, 'YYYY_MM')
$fn$;
"""
    ).format(tz=sql.Literal(app_settings.time_zone))


def install(using: str = "default") -> None:
    """Install the lookup functions on one database."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # Like the PL/pgSQL ones, the SQL function is checked when it runs, not when it
        # is created: `migrate activity_grades` may run before the LMS's own tables exist,
        # and a misnamed table is reported (by name) on the first grade routed.
        cursor.execute("SET LOCAL check_function_bodies = off")
        staging.use(cursor, app_settings.SCHEMA)  # created beside the app's other functions
        statement = lookup_functions_sql(cursor)
        cursor.execute(statement.as_string(cursor.connection))
        cursor.execute("SELECT to_regclass('activity_grades_month') IS NOT NULL")
        if cursor.fetchone()[0]:  # migration 0015 applied
            cursor.execute(month_bounds_sql().as_string(cursor.connection))


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


def locate(
    activity_id: str, at: datetime, using: str = "default"
) -> tuple[str | None, str | None] | None:
    """(class, term) of a grade in one round trip, as the routing trigger finds them.

    None: the activity does not exist; a None class: it exists but has no class.
    """
    found = fetch_rows(
        using, "SELECT class_id, term_id FROM activity_grades_locate(%s, %s)", [activity_id, at]
    )
    return found[0] if found else None


def classes_of(activity_ids: set[str], using: str = "default") -> dict[str, str | None]:
    """activity -> class (None: it has no class) for those of ``activity_ids`` that exist."""
    if not activity_ids:
        return {}
    # activity_grades_locate returns no row for an activity that does not exist.
    found = fetch_rows(
        using,
        "SELECT a, l.class_id FROM unnest(%s::text[]) AS a "
        "CROSS JOIN LATERAL activity_grades_locate(a, now()) l",
        [list(activity_ids)],
    )
    return dict(found)


# activity -> its class (None: it has no class), for the default manager's routing.
_classes: TtlCache[str, str | None] = TtlCache()


def classes_of_cached(activity_ids: set[str], using: str = "default") -> dict[str, str | None]:
    """``classes_of`` through this process's cache (db/cache.py): an activity's class is
    LMS data that does not change under a running query; one query for the misses."""
    cached, missing = _classes.split(using, activity_ids)
    found: dict[str, str | None] = dict(cached)
    for activity_id, class_id in classes_of(set(missing), using).items():
        found[activity_id] = class_id
        if class_id is not None:
            _classes.put(using, activity_id, class_id)
    return found


_NUMERIC_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision")


def class_id_order(using: str = "default") -> Callable[[str], tuple[int, Decimal, str]]:
    """A sort key for class ids in their own type: numbers by value when the LMS's class
    column is numeric (1, 2, 10 rather than 1, 10, 2), text otherwise."""
    with connections[using].cursor() as cur:
        type_name = _column_type(
            cur, app_settings.ACTIVITIES_TABLE, app_settings.ACTIVITY_CLASS_COLUMN
        )
    numeric = type_name.startswith(_NUMERIC_TYPES)

    def key(class_id: str) -> tuple[int, Decimal, str]:
        if numeric:
            try:
                return (0, Decimal(class_id), class_id)
            except InvalidOperation:
                pass  # not a number after all: after the numbers, as text
        return (1, _ZERO, class_id)

    return key


_ZERO = Decimal(0)
