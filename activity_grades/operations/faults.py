"""The crash tests' hook: pause the archive or restore of a partition at a named point.

``ACTIVITY_GRADES_ARCHIVE_FAULT_SLEEP="stage=seconds[,stage=seconds]"`` makes
``pause(stage)`` sleep there, so a test can kill the process or its backend at that
point. Inside the partition's transaction the pause is ``pg_sleep`` (the server is busy,
as in a long statement); ``between`` is after the commit. Unset (always, in production):
nothing happens. Archive, restore and retention call it only from ``base.run_steps``.
"""

from __future__ import annotations

import os
import time

from ..db.connection import Cursor, sleep

__all__ = ["FAULT_ENV", "pause"]

FAULT_ENV = "ACTIVITY_GRADES_ARCHIVE_FAULT_SLEEP"


def pause(stage: str, cur: Cursor | None = None) -> None:
    for part in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        name, _, seconds = part.partition("=")
        if name.strip() == stage:
            if cur is None:
                time.sleep(float(seconds))
            else:
                sleep(cur, float(seconds))
