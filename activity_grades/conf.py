"""Settings of activity_grades, read lazily from ``settings.ACTIVITY_GRADES``.

Every key is optional; the defaults are the seed design's names, so an LMS whose
tables are named otherwise only overrides what differs::

    ACTIVITY_GRADES = {"ACTIVITIES_TABLE": "courses_activity", "ACTIVITY_CLASS_COLUMN": "course_id"}
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Where a grade's class comes from: activities(<id>, <class>).
    "ACTIVITIES_TABLE": "activities",
    "ACTIVITY_ID_COLUMN": "id",
    "ACTIVITY_CLASS_COLUMN": "class_id",
    # Where terms come from: dates, end date inclusive, as in the seed.
    "TERMS_TABLE": "terms",
    "TERM_ID_COLUMN": "id",
    "TERM_START_COLUMN": "start_date",
    "TERM_END_COLUMN": "end_date",
    "TERM_YEAR_COLUMN": "academic_year",
    # Term dates are days in this zone (None: settings.TIME_ZONE).
    "TERM_TIME_ZONE": None,
    # create_partitions without --term: the current term and this many after it.
    "UPCOMING_TERMS": 1,
    # The routing trigger plans one INSERT per session for this many of the most recent
    # term leaves (activity_grades.dispatch); others take a slower dynamic INSERT. 0: off.
    "FAST_ROUTE_PARTITIONS": 2000,
    # Metrics endpoint: also accept "Authorization: Bearer <token>" (None: login only).
    "METRICS_TOKEN": None,
    # Table where the maintenance job records its runs (read for the age metric).
    "MAINTENANCE_RUNS_TABLE": "activity_grades_maintenance_run",
    # Admin grade list: above this many live partitions, ask for a class filter instead
    # of querying the parent (which plans and locks every child). None: never ask.
    "ADMIN_PARENT_PARTITION_LIMIT": 1000,
    # Archiving (docs/archiving.md): keep an archived leaf as a detached table
    # (NO INHERIT, registry status 'detached') instead of dropping it.
    "ARCHIVE_KEEP_DETACHED": False,
    # lock_timeout for archive/restore/retention DDL, so grading traffic never queues long.
    "ARCHIVE_LOCK_TIMEOUT": "5s",
    # Keep archived grades for this many academic years (current one included); None: forever.
    "RETENTION_YEARS": None,
    # run_partition_maintenance steps, each can be turned off.
    "MAINTENANCE_CREATE": True,
    "MAINTENANCE_ARCHIVE": False,
    "MAINTENANCE_RETENTION": False,
    "MAINTENANCE_ANALYZE": True,
}


def get(name: str) -> Any:
    """Return one setting; unknown names are a programming error."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown activity_grades setting {name!r}")
    value = getattr(settings, "ACTIVITY_GRADES", {}).get(name, DEFAULTS[name])
    if name == "TERM_TIME_ZONE" and value is None:
        value = settings.TIME_ZONE or "UTC"
    return value
