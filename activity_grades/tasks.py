"""Celery tasks of activity_grades (the ``[celery]`` extra: ``pip install
'django-activity-grades[celery]'``).

``run_partition_maintenance`` runs what ``manage.py run_partition_maintenance`` runs
(``operations.maintenance``): the same session advisory lock, so two workers (or a worker
and cron) never run it at once; the one that finds the lock taken returns
``{"ran": False, ...}`` at once. It retries, with exponential backoff and jitter, only when
the database connection failed or was lost (``db.connection.is_connection_error``); any
other error fails the task at once. Every run is recorded in ``MAINTENANCE_RUNS_TABLE``
with its origin (``celery task <id>``), so the admin's health page shows the last run,
its counts or its error, and logged on the ``activity_grades`` logger.

Celery's ``autodiscover_tasks()`` finds this module. ``BEAT_SCHEDULE`` is the documented
schedule (every 15 minutes)::

    from activity_grades.tasks import BEAT_SCHEDULE
    CELERY_BEAT_SCHEDULE = {**BEAT_SCHEDULE}
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections

try:
    from celery import Task, shared_task
    from celery.utils.time import get_exponential_backoff_interval
except ImportError as exc:  # the app works without Celery; only this module needs it
    raise ImportError(
        "activity_grades.tasks needs Celery: pip install 'django-activity-grades[celery]'"
    ) from exc

from .core.constants import LOGGER_NAME
from .db.connection import is_connection_error
from .operations import maintenance

__all__ = [
    "BEAT_SCHEDULE",
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_MAX",
    "TASK_NAME",
    "run_partition_maintenance",
]

logger = logging.getLogger(LOGGER_NAME)

TASK_NAME = "activity_grades.tasks.run_partition_maintenance"
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "activity-grades-maintenance": {"task": TASK_NAME, "schedule": 900.0},
}
MAX_RETRIES = 5
RETRY_BACKOFF = 2  # seconds: retry n waits a random time up to 2 * 2**n ...
RETRY_BACKOFF_MAX = 600  # ... and never more than this


@shared_task(bind=True, name=TASK_NAME, max_retries=MAX_RETRIES)
def run_partition_maintenance(self: Task[Any, Any], using: str = "default") -> dict[str, Any]:
    """One maintenance run; its summary (counts, ``ran``, ``origin``, ``retries``).

    Raises:
        celery.exceptions.Retry: the database connection failed; retried with backoff.
        Exception: any other failure (recorded in the runs table), not retried.
    """
    origin = f"celery task {self.request.id}"
    try:
        result = maintenance.run(using=using, origin=origin)
    except Exception as exc:
        if not is_connection_error(exc) or self.request.retries >= MAX_RETRIES:
            logger.error("%s failed: %s: %s", origin, type(exc).__name__, exc)
            raise
        connections[using].close()  # the next try opens a new connection
        countdown = get_exponential_backoff_interval(
            RETRY_BACKOFF, self.request.retries, RETRY_BACKOFF_MAX, full_jitter=True
        )
        logger.warning(
            "%s lost its database connection (%s); retry %s of %s in %s s",
            origin,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            self.request.retries + 1,
            MAX_RETRIES,
            countdown,
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
    summary = {**result.summary(), "retries": self.request.retries}
    if result.ran:
        logger.info("%s done: %s", origin, summary)
    else:
        logger.info("%s: another run holds the lock; nothing done", origin)
    return summary
