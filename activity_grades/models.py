"""Unmanaged models over the tables migration 0001 creates."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models import signals
from django.db.models.sql import DeleteQuery, UpdateQuery
from django.utils import timezone

from .ids import new_grade_id
from .querysets import ActivityGradeManager


class ActivityGrade(models.Model):
    """One student's grade on one activity, stored in a (class, term) partition.

    The table is the inheritance parent ``activity_grades``; a trigger routes every
    inserted row into its partition and fills ``class_id`` and ``term_id`` when they
    are left empty. Changing ``activity_id`` or ``created_at`` moves the row.
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

    objects = ActivityGradeManager()

    class Meta:
        managed = False
        db_table = "activity_grades"
        # The routing triggers redirect rows, so PostgreSQL reports 0 rows for an
        # UPDATE that moved a grade to another partition. _do_update() then asks the
        # key index; select_on_save makes Django's own path (no fields) check too.
        select_on_save = True
        constraints = [
            models.UniqueConstraint(
                fields=["activity_id", "student_id"], name="activity_grades_activity_student_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.student_id} on {self.activity_id}: {self.score}"

    def validate_constraints(self, exclude=None):
        # Django would check (activity, student) with a query on the parent, which plans
        # every child (forms, the admin); the key index answers from one unique index.
        fields = ("activity_id", "student_id")
        if set(exclude or ()) & set(fields) or None in (self.activity_id, self.student_id):
            return
        using = router.db_for_write(type(self), instance=self)
        with connections[using].cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM activity_grades_key WHERE activity_id = %s AND student_id = %s "
                "AND id IS DISTINCT FROM %s",
                [self.activity_id, self.student_id, self.pk],
            )
            taken = cursor.fetchone() is not None
        if taken:
            raise ValidationError(self.unique_error_message(type(self), fields), code="unique")

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update, *more):
        # Django sends save()'s UPDATE to the parent, which plans and locks every child
        # (and runs out of lock memory at a few thousand partitions). The key index
        # names the one table that holds the grade; update that table only.
        # `more` is Django 6's returning_fields; it then expects rows back, not a bool.
        from .service import table_of_grade

        if not values:
            args = (base_qs, using, pk_val, values, update_fields, forced_update, *more)
            return super()._do_update(*args)
        table = table_of_grade(pk_val, using)
        rows = type(self).objects.db_manager(using).filter(pk=pk_val)
        updated = table is not None and (
            rows._write_table(table, UpdateQuery, lambda q: q.add_update_fields(values)) > 0
            # 0 rows: the move trigger sent the grade to another partition (it is still
            # stored, so this was an update), or it was deleted in between.
            or table_of_grade(pk_val, using) is not None
        )
        if not more:
            return updated
        # Nothing is read back: Django defers fields set from expressions, to be
        # fetched again on access (as on a database without RETURNING).
        return [()] if updated else []

    def delete(self, using=None, keep_parents=False):
        # Like save(): delete from the grade's own table, not through the parent.
        # Cascades (a model with a ForeignKey to grades) need Django's Collector.
        from .service import table_of_grade

        using = using or router.db_for_write(type(self), instance=self)
        table = table_of_grade(self.pk, using) if self._is_pk_set() else None
        if table is None or self._meta.related_objects:
            return super().delete(using=using, keep_parents=keep_parents)
        with transaction.atomic(using=using, savepoint=False):
            signals.pre_delete.send(type(self), instance=self, using=using, origin=self)
            rows = type(self).objects.db_manager(using).filter(pk=self.pk)
            count = rows._write_table(table, DeleteQuery)
            signals.post_delete.send(type(self), instance=self, using=using, origin=self)
        self.pk = None
        return count, {self._meta.label: count}

    delete.alters_data = True


class Partition(models.Model):
    """The registry row of one partition table: (class, term) -> table."""

    class Status(models.TextChoices):
        LIVE = "live"
        DETACHED = "detached"
        ARCHIVED = "archived"

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


class ArchivedActivityGrade(models.Model):
    """A grade moved to the archive (read-only): every live column plus archive data.

    The table ``archived_activity_grades`` is list-partitioned by ``academic_year``
    (migration 0003); filter on ``academic_year`` to read one year's table only.
    Rows come and go through ``manage.py archive_grades`` / ``restore_grades``.
    """

    id = models.TextField(primary_key=True)
    activity_id = models.TextField()
    student_id = models.TextField()
    score = models.FloatField(null=True)
    points = models.IntegerField(null=True)
    feedback = models.TextField(null=True)
    status = models.TextField()
    submitted_at = models.DateTimeField()
    graded_at = models.DateTimeField(null=True)
    graded_by_id = models.TextField(null=True)
    content = models.JSONField(null=True)
    attachments = models.JSONField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    is_archived = models.BooleanField()
    is_committed = models.BooleanField()
    commitment_id = models.TextField(null=True)
    commitment_deadline = models.DateTimeField(null=True)
    commitment_met = models.BooleanField(null=True)
    class_id = models.TextField(null=True)
    term_id = models.TextField(null=True)
    archived_at = models.DateTimeField()
    academic_year = models.TextField()

    class Meta:
        managed = False
        db_table = "archived_activity_grades"
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.student_id} on {self.activity_id}: {self.score} (archived)"

    def save(self, *args, **kwargs):
        raise TypeError("archived grades are read-only: use manage.py restore_grades")

    def delete(self, *args, **kwargs):
        raise TypeError("archived grades are read-only: use manage.py apply_retention")
