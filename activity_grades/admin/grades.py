"""``ActivityGradeAdmin``: a grade list that never counts, nor by default plans, the whole tree.

Filters read their choices from the registry; the class filter reads the class table (or
the leaf) instead of the parent; searches are exact matches on indexed columns; the
count is an estimate; a grade's change form reads the one table the key index names.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models.expressions import RawSQL
from django.utils.functional import cached_property

from ..core.settings import app_settings
from ..db import catalog, registry
from ..models import ActivityGrade, Partition

__all__ = ["ActivityGradeAdmin", "EstimatedCountPaginator"]


class EstimatedCountPaginator(Paginator):
    """Never counts the whole tree: an estimate without filters, a capped count with."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not qs.query.where:
            return catalog.estimated_live_rows(qs.db)
        return qs.order_by()[: self.CAP + 1].count()


class RegistryFilter(admin.SimpleListFilter):
    """A filter whose choices come from the partition registry, not from the grades."""

    field = ""

    def lookups(self, request, model_admin):
        values = (
            Partition.objects.exclude(**{f"{self.field}__isnull": True})
            .order_by(self.field)
            .values_list(self.field, flat=True)
            .distinct()[:500]
        )
        return [(v, v) for v in values]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class ClassFilter(RegistryFilter):
    """Reads the class table (or the (class, term) leaf with ?term=), not the parent."""

    title = "class"
    parameter_name = "class"
    field = "class_id"

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.for_class(self.value(), request.GET.get("term") or None)


class TermFilter(RegistryFilter):
    title = "term"
    parameter_name = "term"
    field = "term_id"


@admin.register(ActivityGrade)
class ActivityGradeAdmin(admin.ModelAdmin):
    list_display = ("id", "student_id", "activity_id", "score", "status", "created_at", "partition")
    list_filter = (ClassFilter, TermFilter)
    # Exact matches use the per-partition indexes on student_id and activity_id.
    search_fields = ("=student_id", "=activity_id")
    search_help_text = "Exact student id or activity id."
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    readonly_fields = ("id", "class_id", "term_id", "partition")

    def get_queryset(self, request):
        # tableoid names the child that holds each row: no registry lookup per row.
        qs = (
            super()
            .get_queryset(request)
            .annotate(_partition=RawSQL("activity_grades.tableoid::regclass::text", []))
        )
        return qs.none() if getattr(request, "_activity_grades_empty", False) else qs

    def _parent_too_big(self, request) -> int:
        """Partitions, when the unfiltered list would plan and lock too many of them."""
        limit = app_settings.ADMIN_PARENT_PARTITION_LIMIT
        if limit is None or request.GET.get("class"):
            return 0
        n = registry.live_count(self.model.objects.db)
        return n if n > limit else 0

    def changelist_view(self, request, extra_context=None):
        too_many = self._parent_too_big(request)
        if too_many:
            request._activity_grades_empty = True
            messages.warning(
                request,
                f"Choose a class: listing grades across all {too_many} partitions would plan "
                "and lock every one of them (setting ADMIN_PARENT_PARTITION_LIMIT).",
            )
        return super().changelist_view(request, extra_context)

    def get_object(self, request, object_id, from_field=None):
        # The key index says which partition holds the grade: read that table only.
        if from_field is None:
            table = registry.table_of_grade(object_id, self.model.objects.db)
            if table is None:
                return None
            return self.get_queryset(request).for_table(table).filter(pk=object_id).first()
        return super().get_object(request, object_id, from_field)

    @admin.display(description="partition")
    def partition(self, obj) -> str:
        return getattr(obj, "_partition", None) or "-"
