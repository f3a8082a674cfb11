"""The maintenance job's record of its runs (``MAINTENANCE_RUNS_TABLE``, migration 0003).

One row per job, updated in place: ``started_at``, ``finished_at`` (the end of the last
*successful* run), ``failed_at`` with ``error``, and a JSON ``summary``. Monitoring reads
the age of ``finished_at`` through ``last_success``, the only reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from ..core.constants import MAINTENANCE_JOB, MAINTENANCE_LOCK_KEY
from ..core.settings import app_settings
from .connection import Cursor, execute, fetch_value

__all__ = ["LastSuccess", "last_success", "record", "try_lock", "unlock"]


@dataclass(frozen=True)
class LastSuccess:
    table_present: bool
    finished_at: datetime | None  # None: no successful run recorded


def record(cur: Cursor, column: str, error: str | None = None, summary: str | None = None) -> None:
    """Stamp ``column`` (started_at, finished_at or failed_at) of the job's row with now()."""
    if column not in ("started_at", "finished_at", "failed_at"):
        raise ValueError(f"not a run time column: {column!r}")
    table = sql.Identifier(app_settings.MAINTENANCE_RUNS_TABLE)
    execute(
        cur,
        sql.SQL(
            "INSERT INTO {t} (name, {c}, error, summary) VALUES (%s, now(), %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET {c} = now(), error = EXCLUDED.error, "
            "summary = coalesce(EXCLUDED.summary, {t}.summary)"
        ).format(t=table, c=sql.Identifier(column)),
        [MAINTENANCE_JOB, error, summary],
    )


def last_success(using: str = "default") -> LastSuccess:
    """When the last successful run finished, and whether the runs table exists at all."""
    name = app_settings.MAINTENANCE_RUNS_TABLE
    exists = fetch_value(
        using, "SELECT to_regclass(%s) IS NOT NULL", [sql.Identifier(name).as_string()]
    )
    if not exists:
        return LastSuccess(False, None)
    query = sql.SQL("SELECT max(finished_at) FROM {}").format(sql.Identifier(name))
    return LastSuccess(True, fetch_value(using, query))


def try_lock(using: str = "default") -> bool:
    """Take the job's session advisory lock if it is free (one run at a time, any machine)."""
    return bool(fetch_value(using, "SELECT pg_try_advisory_lock(%s)", [MAINTENANCE_LOCK_KEY]))


def unlock(using: str = "default") -> None:
    fetch_value(using, "SELECT pg_advisory_unlock(%s)", [MAINTENANCE_LOCK_KEY])
