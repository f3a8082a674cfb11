"""The columns every grade has, live or archived (the seed's 19 plus class and term)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from ..core.ids import new_grade_id

__all__ = ["GradeColumns"]


class GradeColumns(models.Model):
    """Abstract: the columns of ``activity_grades``, in table order.

    ``class_id`` and ``term_id`` say which partition holds a live grade; the routing
    trigger fills them when they are left empty.
    """

    id = models.TextField(primary_key=True, default=new_grade_id, editable=False)
    activity_id = models.TextField(db_index=True)
    student_id = models.TextField(db_index=True)
    score = models.FloatField(null=True, blank=True)
    points = models.IntegerField(null=True, blank=True)
    feedback = models.TextField(null=True, blank=True)
    status = models.TextField()
    submitted_at = models.DateTimeField()
    graded_at = models.DateTimeField(null=True, blank=True)
    graded_by_id = models.TextField(null=True, blank=True)
    content = models.JSONField(null=True, blank=True)
    attachments = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    is_archived = models.BooleanField(default=False)
    is_committed = models.BooleanField(default=False)
    commitment_id = models.TextField(null=True, blank=True)
    commitment_deadline = models.DateTimeField(null=True, blank=True)
    commitment_met = models.BooleanField(null=True, blank=True)
    class_id = models.TextField(null=True, blank=True, editable=False)
    term_id = models.TextField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.student_id} on {self.activity_id}: {self.score}"
