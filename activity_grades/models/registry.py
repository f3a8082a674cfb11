"""``Partition``: the unmanaged model over the registry ``activity_grades_partition``."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from ..core import constants

__all__ = ["Partition"]


class Partition(models.Model):
    """The registry row of one partition table: (class, term) -> table."""

    class Status(models.TextChoices):
        """The model's choices, from the one list of statuses (``core.constants.Status``)."""

        LIVE = constants.Status.LIVE.value
        DETACHED = constants.Status.DETACHED.value
        ARCHIVED = constants.Status.ARCHIVED.value

    class_id = models.TextField()
    term_id = models.TextField(null=True, blank=True)
    table_name = models.TextField(unique=True)
    parent_table = models.TextField()
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    academic_year = models.TextField(null=True, blank=True)
    status = models.TextField(choices=Status.choices, default=Status.LIVE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        managed = False
        db_table = "activity_grades_partition"
        ordering = ["class_id", "starts_at"]

    def __str__(self) -> str:
        return self.table_name

    @property
    def is_class_table(self) -> bool:
        return self.term_id is None
