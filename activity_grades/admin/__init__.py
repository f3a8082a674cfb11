"""The Django admin of activity_grades: the partition dashboard and the grade list."""

from .grades import ActivityGradeAdmin
from .partitions import PartitionAdmin

__all__ = ["ActivityGradeAdmin", "PartitionAdmin"]
