"""``ArchivedActivityGrade``: the unmanaged, read-only model over the archive."""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models

from ..core.exceptions import ReadOnlyError
from .columns import GradeColumns

__all__ = ["ArchivedActivityGrade"]


class ArchivedActivityGrade(GradeColumns):
    """A grade moved to the archive: every live column plus archive data.

    The table ``archived_activity_grades`` is list-partitioned by ``academic_year``
    (migration 0003); filter on ``academic_year`` to read one year's table only.
    Rows come and go through ``manage.py archive_grades`` / ``restore_grades``.
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
