"""Signals an LMS can hook: partitions created, terms archived or restored, retention, maintenance.

Every signal is sent once per event, **after the transaction that made the change
commits** (``transaction.on_commit``): a receiver never sees a change that is later rolled
back, and a dry run (which applies nothing) sends nothing. Outside any ``atomic`` block
the app's operations commit each item on its own, so the signal follows each commit;
inside a caller's ``atomic`` block it waits for the caller's commit.

The sender is the string ``"activity_grades"``; every signal also carries ``using`` (the
database alias)::

    from django.dispatch import receiver
    from activity_grades.signals import term_archived

    @receiver(term_archived)
    def tell_the_gradebook(sender, class_id, term_id, rows, **kwargs):
        ...

A receiver that raises does not stop the operation (its change is committed already):
the error is logged on the ``activity_grades`` logger with its traceback, and the other
receivers still run (``Signal.send_robust``).

Partitions the routing trigger creates on demand (inside an ``INSERT`` in SQL) send no
signal: no Python runs there.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from .constants import LOGGER_NAME

__all__ = [
    "SENDER",
    "maintenance_finished",
    "partition_created",
    "retention_dropped_year",
    "send_on_commit",
    "term_archived",
    "term_restored",
]

# kwargs: class_id, term_id (None: a class table), table, using
partition_created = Signal()
# kwargs: class_id, term_id, academic_year, table (the dropped or detached leaf), rows,
# detached (True: the leaf was kept as a detached table), using
term_archived = Signal()
# kwargs: class_id, term_id, academic_year, table (the live leaf), rows, using
term_restored = Signal()
# kwargs: academic_year, table (the dropped archive table), rows, using
retention_dropped_year = Signal()
# kwargs: result (MaintenanceResult), summary (its counts as a dict), using
maintenance_finished = Signal()


SENDER = "activity_grades"

logger = logging.getLogger(LOGGER_NAME)


def send_on_commit(signal: Signal, using: str, **kwargs: Any) -> None:
    """Send ``signal`` once the current transaction of ``using`` commits (now, in autocommit)."""
    transaction.on_commit(lambda: _send(signal, using, kwargs), using=using)


def _send(signal: Signal, using: str, kwargs: dict[str, Any]) -> None:
    for receiver, response in signal.send_robust(sender=SENDER, using=using, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "a receiver of an activity_grades signal failed: %r", receiver, exc_info=response
            )
