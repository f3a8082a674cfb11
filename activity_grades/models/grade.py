"""``ActivityGrade``: the unmanaged model over the inheritance parent ``activity_grades``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models import Field, QuerySet, signals
from django.db.models.sql import DeleteQuery, UpdateQuery

from ..core.constants import LEGACY_TABLE
from ..core.settings import app_settings
from ..db import leaves, registry
from .columns import GradeColumns
from .querysets import ActivityGradeManager

__all__ = ["ActivityGrade"]


class ActivityGrade(GradeColumns):
    """One student's grade on one activity, stored in a (class, term) partition.

    The table is the inheritance parent ``activity_grades``; a trigger routes every
    inserted row into its partition and fills ``class_id`` and ``term_id`` when they
    are left empty. Changing ``activity_id`` or ``created_at`` moves the row.
    """

    objects = ActivityGradeManager()

    class Meta(GradeColumns.Meta):
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

    def validate_constraints(self, exclude: Any = None) -> None:
        # Django would check (activity, student) with a query on the parent, which plans
        # every child (forms, the admin); the key index answers from one unique index.
        # Without the key (UNIQUE_KEY = None) a second attempt is a valid grade.
        if not app_settings.unique_key_on:
            return
        fields = ("activity_id", "student_id")
        if set(exclude or ()) & set(fields) or None in (self.activity_id, self.student_id):
            return
        using = router.db_for_write(type(self), instance=self)
        if leaves.key_taken(using, self.activity_id, self.student_id, self.pk):
            raise ValidationError(self.unique_error_message(type(self), fields), code="unique")

    # Django's private API; its stubs have Django 6's signature only (see `more` below).
    # save() always passes a database alias.
    def _do_update(  # type: ignore[override]
        self,
        base_qs: QuerySet[ActivityGrade],
        using: str,
        pk_val: Any,
        values: list[tuple[Field[Any, Any], type[models.Model] | None, Any]],
        update_fields: Iterable[str] | None,
        forced_update: bool,
        *more: Any,
    ) -> bool | list[Any]:
        # Django sends save()'s UPDATE to the parent, which plans and locks every child
        # (and runs out of lock memory at a few thousand partitions). The key index
        # names the one table that holds the grade; update that table only.
        # `more` is Django 6's returning_fields; it then expects rows back, not a bool.
        if not values:
            args = (base_qs, using, pk_val, values, update_fields, forced_update, *more)
            return super()._do_update(*args)
        rows = type(self).objects.db_manager(using).filter(pk=pk_val)
        updated = (
            _in_own_table(
                pk_val,
                using,
                lambda table: rows._write_table(
                    table, UpdateQuery, lambda q: q.add_update_fields(values)
                ),
                update=True,
            )
            > 0
        )
        if not more:
            return updated
        # Nothing is read back: Django defers fields set from expressions, to be
        # fetched again on access (as on a database without RETURNING).
        return [()] if updated else []

    def delete(self, using: Any = None, keep_parents: bool = False) -> Any:
        # Like save(): delete from the grade's own table, not through the parent.
        # Cascades (a model with a ForeignKey to grades) need Django's Collector.
        using = using or router.db_for_write(type(self), instance=self)
        # _is_pk_set() (Django 5.2+, private) is not in django-stubs.
        pk_set = self._is_pk_set()  # type: ignore[attr-defined]
        table = registry.table_of_grade(self.pk, using) if pk_set else None
        if table is None or self._meta.related_objects:
            return super().delete(using=using, keep_parents=keep_parents)
        with transaction.atomic(using=using, savepoint=False):
            signals.pre_delete.send(type(self), instance=self, using=using, origin=self)
            rows = type(self).objects.db_manager(using).filter(pk=self.pk)
            count = _in_own_table(
                self.pk, using, lambda table: rows._write_table(table, DeleteQuery), table
            )
            signals.post_delete.send(type(self), instance=self, using=using, origin=self)
        self.pk = None
        return count, {self._meta.label: count}

    delete.alters_data = True  # type: ignore[attr-defined]


def _in_own_table(
    pk: Any,
    using: str,
    write: Callable[[str], int],
    table: str | None = None,
    *,
    update: bool = False,
) -> int:
    """Run ``write`` on the table that holds grade ``pk``; the rows it changed.

    0 rows where the grade went between the LMS's own table and a partition meanwhile
    (``convert_grades_table``): ``write`` runs again where it is now. Otherwise 0 rows of
    an ``update`` of a grade still stored count as done (1): the move trigger sent it to
    another partition as part of this very update.
    """
    table = table or registry.table_of_grade(pk, using)
    for _ in range(3):
        if table is None:
            return 0
        changed = write(table)
        if changed:
            return changed
        now = registry.table_of_grade(pk, using)
        if now is not None and now != table and LEGACY_TABLE in (table, now):
            table = now
            continue
        return int(update and now is not None)
    return 0
