"""One maintenance job for cron / systemd timers / Celery beat.

Steps (each switchable by a setting): create partitions for the current and upcoming
terms, archive terms of past academic years, apply retention, ANALYZE what was created.
A session advisory lock on a fixed key keeps it to one run at a time across machines.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.db import DatabaseError, connections
from django.utils import timezone
from psycopg import sql

from . import archiving, conf, partitioning, retention

logger = logging.getLogger("activity_grades")

# pg_try_advisory_lock key: the ASCII bytes of "ag_maint" as a bigint.
LOCK_KEY = 0x61675F6D61696E74
JOB_NAME = "run_partition_maintenance"


@dataclass
class MaintenanceResult:
    ran: bool  # False: another run held the lock
    created: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    archived_rows: int = 0
    retention_dropped: list[str] = field(default_factory=list)
    retention_rows: int = 0
    analyzed: list[str] = field(default_factory=list)
    skipped_steps: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return asdict(self)


def _record(cursor, column: str, **extra) -> None:
    table = sql.Identifier(conf.get("MAINTENANCE_RUNS_TABLE"))
    cursor.execute(
        sql.SQL(
            "INSERT INTO {t} (name, {c}, error, summary) VALUES (%s, now(), %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET {c} = now(), error = EXCLUDED.error, "
            "summary = coalesce(EXCLUDED.summary, {t}.summary)"
        )
        .format(t=table, c=sql.Identifier(column))
        .as_string(cursor.connection),
        [JOB_NAME, extra.get("error"), extra.get("summary")],
    )


def last_success(using: str = "default") -> datetime | None:
    """When the last successful run finished (None: never)."""
    table = sql.Identifier(conf.get("MAINTENANCE_RUNS_TABLE"))
    with connections[using].cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT finished_at FROM {} WHERE name = %s")
            .format(table)
            .as_string(cursor.connection),
            [JOB_NAME],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def run(now: datetime | None = None, using: str = "default") -> MaintenanceResult:
    """Run every enabled step once, unless another run holds the lock."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            logger.info("maintenance: another run holds the lock; nothing done")
            return MaintenanceResult(ran=False)
    started = time.monotonic()
    result = MaintenanceResult(ran=True)
    try:
        with connection.cursor() as cursor:
            _record(cursor, "started_at")
        _steps(result, now or timezone.now(), using)
        result.seconds = time.monotonic() - started
        with connection.cursor() as cursor:
            _record(cursor, "finished_at", summary=json.dumps(result.summary()))
        logger.info("maintenance: done %s", result.summary())
        return result
    except Exception as exc:
        logger.exception("maintenance failed")
        try:
            with connection.cursor() as cursor:
                _record(cursor, "failed_at", error=f"{type(exc).__name__}: {exc}")
        except DatabaseError:  # the connection itself is what failed
            logger.warning("maintenance: could not record the failure")
        raise
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def _steps(result: MaintenanceResult, now: datetime, using: str) -> None:
    if conf.get("MAINTENANCE_CREATE"):
        created = partitioning.apply(partitioning.plan(using=using), using=using)
        result.created = created.created
        logger.info("maintenance: created %s partitions", len(created.created))
    else:
        result.skipped_steps.append("create")

    year = retention.current_academic_year(now, using)
    if conf.get("MAINTENANCE_ARCHIVE") and year is not None:
        plan = archiving.plan_archive(before_academic_year=year, now=now, using=using)
        done = archiving.archive(plan, using=using)
        result.archived, result.archived_rows = done.archived, done.rows
        logger.info("maintenance: archived %s partitions, %s rows", len(done.archived), done.rows)
    elif not conf.get("MAINTENANCE_ARCHIVE"):
        result.skipped_steps.append("archive")

    if conf.get("MAINTENANCE_RETENTION") and conf.get("RETENTION_YEARS") is not None:
        done = retention.apply_retention(
            retention.plan_retention(now=now, using=using), using=using
        )
        result.retention_dropped, result.retention_rows = done.dropped, done.rows
        logger.info("maintenance: retention dropped %s archive tables", len(done.dropped))
    else:
        result.skipped_steps.append("retention")

    if conf.get("MAINTENANCE_ANALYZE"):
        with connections[using].cursor() as cursor:
            for table in result.created:
                query = sql.SQL("ANALYZE {}").format(sql.Identifier(table))
                cursor.execute(query.as_string(cursor.connection))
                result.analyzed.append(table)
    else:
        result.skipped_steps.append("analyze")
