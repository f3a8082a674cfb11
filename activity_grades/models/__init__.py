"""Models over the app's tables (all unmanaged: migrations create the tables in SQL)."""

from .archive import ArchivedActivityGrade
from .grade import ActivityGrade
from .querysets import ActivityGradeManager, ActivityGradeQuerySet
from .registry import Partition

__all__ = [
    "ActivityGrade",
    "ActivityGradeManager",
    "ActivityGradeQuerySet",
    "ArchivedActivityGrade",
    "Partition",
]
