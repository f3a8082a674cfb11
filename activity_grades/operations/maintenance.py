"""One maintenance job for cron, systemd timers or Celery beat (``run_partition_maintenance``).

Steps, each switchable by a setting: create partitions for the current and upcoming
terms, archive terms of past academic years, apply retention, ANALYZE what was created.
A session advisory lock on a fixed key keeps it to one run at a time across machines;
every run is recorded in ``MAINTENANCE_RUNS_TABLE`` (db.runs).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from ..core.constants import LOGGER_NAME
from ..core.settings import app_settings
from ..core.signals import maintenance_finished, send_on_commit
from ..db import catalog, runs
from ..db.connection import cursor
from . import archive, create, retention
from .base import Plan, Progress, Result, Stopwatch

__all__ = ["MaintenancePlan", "MaintenanceResult", "last_success", "plan", "run"]

logger = logging.getLogger(LOGGER_NAME)

STEPS = ("create", "archive", "retention", "analyze")


@dataclass
class MaintenanceResult(Result):
    ran: bool  # False: another run held the lock
    created: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    archived_rows: int = 0
    retention_dropped: list[str] = field(default_factory=list)
    retention_rows: int = 0
    analyzed: list[str] = field(default_factory=list)
    skipped_steps: list[str] = field(default_factory=list)
    origin: str = "command"  # who ran it: "command", "celery task <id>", ...

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MaintenancePlan(Plan[str, MaintenanceResult]):
    """The enabled steps (``items``), as of ``now``; each step plans its own work when run."""

    now: datetime = field(default_factory=timezone.now)
    origin: str = "command"

    def apply(self, progress: Progress | None = None) -> MaintenanceResult:
        """Run every step once, unless another run holds the lock; record the run.

        A successful run sends ``maintenance_finished`` (after its record commits).
        """
        using = self.using
        if not runs.try_lock(using):
            logger.info("maintenance (%s): another run holds the lock; nothing done", self.origin)
            return MaintenanceResult(ran=False, origin=self.origin)
        clock = Stopwatch()
        result = MaintenanceResult(ran=True, origin=self.origin)
        try:
            with cursor(using) as cur:
                runs.record(cur, "started_at")
            self._steps(result)
            result.seconds = clock.seconds
            with cursor(using) as cur:
                runs.record(cur, "finished_at", summary=json.dumps(result.summary()))
            logger.info("maintenance: done %s", result.summary())
            send_on_commit(maintenance_finished, using, result=result, summary=result.summary())
            return result
        except Exception as exc:
            logger.exception("maintenance (%s) failed", self.origin)
            try:
                with cursor(using) as cur:
                    error = f"{type(exc).__name__}: {exc}".strip()
                    runs.record(cur, "failed_at", error=f"{error} ({self.origin})")
            except DatabaseError:  # the connection itself is what failed
                logger.warning("maintenance: could not record the failure")
            raise
        finally:
            _unlock(using)

    def _steps(self, result: MaintenanceResult) -> None:
        using, now = self.using, self.now
        result.skipped_steps = [s for s in STEPS if s not in self.items]
        if "create" in self.items:
            created = create.plan(using=using).apply()
            result.created = created.created
            logger.info("maintenance: created %s partitions", len(created.created))
        year = retention.current_academic_year(now, using)
        if "archive" in self.items and year is not None:
            done = archive.plan(before_academic_year=year, now=now, using=using).apply()
            result.archived, result.archived_rows = done.archived, done.rows
            logger.info(
                "maintenance: archived %s partitions, %s rows", len(done.archived), done.rows
            )
        if "retention" in self.items:
            dropped = retention.plan(now=now, using=using).apply()
            result.retention_dropped, result.retention_rows = dropped.dropped, dropped.rows
            logger.info("maintenance: retention dropped %s archive tables", len(dropped.dropped))
        if "analyze" in self.items:
            with cursor(using) as cur:
                for table in result.created:
                    catalog.analyze(cur, table)
                    result.analyzed.append(table)


def _unlock(using: str) -> None:
    try:
        runs.unlock(using)
    except DatabaseError:  # the connection died: its session lock died with it
        logger.warning("maintenance: lost the connection; its lock ended with it")


def plan(
    now: datetime | None = None, using: str = "default", origin: str = "command"
) -> MaintenancePlan:
    """The steps the settings enable (retention only with RETENTION_YEARS set).

    Args:
        origin: who runs it, recorded with the run (the command, a Celery task, ...).
    """
    enabled = {
        "create": app_settings.MAINTENANCE_CREATE,
        "archive": app_settings.MAINTENANCE_ARCHIVE,
        "retention": app_settings.MAINTENANCE_RETENTION
        and app_settings.RETENTION_YEARS is not None,
        "analyze": app_settings.MAINTENANCE_ANALYZE,
    }
    steps = [step for step in STEPS if enabled[step]]
    return MaintenancePlan(steps, using=using, now=now or timezone.now(), origin=origin)


def run(
    now: datetime | None = None, using: str = "default", origin: str = "command"
) -> MaintenanceResult:
    """Plan and apply in one call: what the command, cron and Celery run."""
    return plan(now, using, origin).apply()


def last_success(using: str = "default") -> datetime | None:
    """When the last successful run finished (None: never)."""
    return runs.last_success(using).finished_at
