"""The write rule every path applies before a grade is stored (issue 12).

One rule, the same text in Python and in SQL (``activity_grades_check_timestamps`` and
``activity_grades_check_placement``, called by the routing and move triggers):

- every timestamp must be readable back: a timezone-aware ``datetime`` (Python), finite
  and, in UTC, from year 1 to year 9999 (``InvalidTimestamp``; SQLSTATE 22008 from SQL);
- a ``class_id`` the caller gives must be the activity's class (``ClassMismatch``;
  SQLSTATE 23514 from SQL);
- a ``term_id`` the caller gives must be the term of ``created_at`` *as stored*: the
  column is ``timestamptz(3)``, so the value is first rounded to the millisecond the way
  PostgreSQL rounds it (``stored``); where terms overlap, the one that starts last wins
  (``TermMismatch``; 23514). ``None`` means "derive it".

No database access here: the callers look the class and term up (``db.lms``).
"""

from __future__ import annotations

import datetime as dt

from .exceptions import ClassMismatch, InvalidTimestamp, TermMismatch

__all__ = [
    "REQUIRED_TIMESTAMPS",
    "TIMESTAMP_COLUMNS",
    "check_placement",
    "check_timestamp",
    "class_mismatch",
    "quote_literal",
    "stored",
    "term_mismatch",
    "timestamp_out_of_range",
]

TIMESTAMP_COLUMNS = ("submitted_at", "graded_at", "created_at", "updated_at", "commitment_deadline")
"""The ``timestamptz(3)`` columns of a grade."""

REQUIRED_TIMESTAMPS = frozenset({"created_at", "updated_at"})
"""Timestamps that are never None once the defaults are filled in."""

# PostgreSQL counts timestamps in microseconds from 2000-01-01 00:00 UTC and rounds to a
# coarser precision half away from zero *from that epoch* (timestamp.c, AdjustTimestamp-
# ForTypmod): 1999-12-31 23:59:59.9995 rounds down, 2000-01-01 00:00:00.0005 up.
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
_US = dt.timedelta(microseconds=1)
_STEP = 1000  # microseconds per millisecond: timestamptz(3)


def quote_literal(value: str) -> str:
    """``value`` as PostgreSQL's ``quote_literal`` writes it (so messages match)."""
    quoted = "'" + value.replace("'", "''") + "'"
    if "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted


def timestamp_out_of_range(column: str) -> str:
    return f"activity_grades: {column} must be a finite timestamp from year 1 to year 9999 (UTC)"


def class_mismatch(activity_id: str, actual: str, given: str) -> str:
    return (
        f"activity_grades: activity {quote_literal(activity_id)} belongs to class "
        f"{quote_literal(actual)}, not to class {quote_literal(given)}"
    )


def term_mismatch(derived: str | None, given: str) -> str:
    where = f"term {quote_literal(derived)}" if derived is not None else "no term"
    return f"activity_grades: created_at falls in {where}, not in term {quote_literal(given)}"


def stored(value: dt.datetime, column: str = "created_at") -> dt.datetime:
    """``value`` rounded to the millisecond as ``timestamptz(3)`` stores it, in its own zone.

    Raises:
        InvalidTimestamp: the rounded value is outside what can be stored and read back.
    """
    us = (value - _EPOCH) // _US
    if us % _STEP == 0:
        return value
    magnitude = (abs(us) + _STEP // 2) // _STEP * _STEP
    try:
        rounded = _EPOCH + (magnitude if us >= 0 else -magnitude) * _US
        return rounded.astimezone(value.tzinfo)
    except OverflowError:
        raise InvalidTimestamp(timestamp_out_of_range(column)) from None


def check_timestamp(column: str, value: object) -> dt.datetime | None:
    """``value`` if it can be stored in ``column`` and read back; else a clear error.

    None passes for the nullable columns (``REQUIRED_TIMESTAMPS`` excepted).

    Raises:
        InvalidTimestamp: not a datetime, naive, or outside year 1..9999 in UTC.
    """
    if value is None:
        if column in REQUIRED_TIMESTAMPS:
            raise InvalidTimestamp(
                f"activity_grades: {column} must be a timezone-aware datetime, not None "
                f"(leave {column} out for the current time)"
            )
        return None
    if not isinstance(value, dt.datetime):
        raise InvalidTimestamp(
            f"activity_grades: {column} must be a timezone-aware datetime, not "
            f"{type(value).__name__} {value!r}"
        )
    if value.utcoffset() is None:
        raise InvalidTimestamp(
            f"activity_grades: {column} is a naive datetime ({value.isoformat()}): give it a "
            "time zone (django.utils.timezone.make_aware) so the grade lands in the right term"
        )
    try:
        value.astimezone(dt.timezone.utc)
    except OverflowError:
        raise InvalidTimestamp(timestamp_out_of_range(column)) from None
    return value


def check_placement(
    activity_id: str,
    given_class: str | None,
    given_term: str | None,
    actual_class: str,
    derived_term: str | None,
) -> None:
    """Refuse a class or term the caller gave that is not where the grade belongs.

    Raises:
        ClassMismatch: ``given_class`` is not the activity's class.
        TermMismatch: ``given_term`` is not the term of ``created_at`` as stored.
    """
    if given_class is not None and given_class != actual_class:
        raise ClassMismatch(class_mismatch(activity_id, actual_class, given_class))
    if given_term is not None and given_term != derived_term:
        raise TermMismatch(term_mismatch(derived_term, given_term))
