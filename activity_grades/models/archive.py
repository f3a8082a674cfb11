"""``ArchivedActivityGrade``: the unmanaged, read-only model over the archive."""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models

from ..core.exceptions import ReadOnlyError
from .columns import GradeColumns

__all__ = ["ArchivedActivityGrade"]


class ArchivedActivityGrade(GradeColumns):
    """A grade moved to the archive: every live column plus archive data.

    ``archived_activity_grades`` is a view (migration 0012) over the compressed chunks,
    one row per grade, and the row archive of before 0012; filter on ``academic_year``
    to read one year's tables only, on ``class_id`` / ``term_id`` to read only their
    chunks. For one student's grades use ``student_history`` (a GIN index names the
    chunks that hold the student). Rows come and go through ``manage.py archive_grades``
    / ``restore_grades``.
    """

    archived_at = models.DateTimeField()
    academic_year = models.TextField()

    class Meta:
        managed = False
        db_table = "archived_activity_grades"
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{super().__str__()} (archived)"

    def save(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ReadOnlyError("archived grades are read-only: use manage.py restore_grades")

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ReadOnlyError("archived grades are read-only: use manage.py apply_retention")
