"""The maintenance job's record of its runs (``MAINTENANCE_RUNS_TABLE``, migration 0003).

One row per job, updated in place: ``started_at``, ``finished_at`` (the end of the last
*successful* run), ``failed_at`` with ``error``, and a JSON ``summary``. Monitoring reads
the age of ``finished_at`` through ``last_success``, the only reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from psycopg import sql

from ..core.constants import MAINTENANCE_JOB, MAINTENANCE_LOCK_KEY
from ..core.settings import app_settings
from .connection import Cursor, execute, fetch_value

__all__ = ["LastRun", "LastSuccess", "last_run", "last_success", "record", "try_lock", "unlock"]


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


@dataclass(frozen=True)
class LastRun:
    """The job's row: its last start, last success, last failure and the success's counts."""

    started_at: datetime | None
    finished_at: datetime | None  # end of the last successful run
    failed_at: datetime | None
    error: str | None  # of the last failure (None once a run succeeds)
    summary: dict[str, Any] = field(default_factory=dict)  # of the last successful run

    @property
    def failed_last(self) -> bool:
        """The most recent run ended in a failure (``record`` clears the error otherwise)."""
        return self.failed_at is not None and self.error is not None

    @property
    def running(self) -> bool:
        """Started after its last end (or crashed without recording one)."""
        ends = [t for t in (self.finished_at, self.failed_at) if t is not None]
        return self.started_at is not None and (not ends or self.started_at > max(ends))


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def last_run(using: str = "default") -> LastRun | None:
    """The job's recorded row; None when the runs table or the row is missing.

    Read as JSON, so a runs table with fewer columns (an older or hand-made one) still reads.
    """
    name = app_settings.MAINTENANCE_RUNS_TABLE
    if not fetch_value(
        using, "SELECT to_regclass(%s) IS NOT NULL", [sql.Identifier(name).as_string()]
    ):
        return None
    query = sql.SQL(
        "SELECT to_jsonb(t)::text FROM {} t ORDER BY t.finished_at DESC NULLS LAST LIMIT 1"
    ).format(sql.Identifier(name))
    text = fetch_value(using, query)
    if text is None:
        return None
    row = json.loads(text)
    summary = row.get("summary")
    return LastRun(
        _when(row.get("started_at")),
        _when(row.get("finished_at")),
        _when(row.get("failed_at")),
        row.get("error"),
        summary if isinstance(summary, dict) else {},
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
