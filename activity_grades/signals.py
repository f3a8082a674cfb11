"""The app's signals, where Django projects look for them (defined in ``core.signals``).

See ``activity_grades.core.signals`` for what each carries and when it is sent.
"""

from __future__ import annotations

from .core.signals import (
    maintenance_finished,
    partition_created,
    retention_dropped_year,
    term_archived,
    term_restored,
)

__all__ = [
    "maintenance_finished",
    "partition_created",
    "retention_dropped_year",
    "term_archived",
    "term_restored",
]
