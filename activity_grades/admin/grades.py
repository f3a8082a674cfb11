"""``ActivityGradeAdmin``: a grade list that never counts, nor by default plans, the whole tree.

Filters read their choices from the registry; the class filter reads the class table (or
the leaf) instead of the parent; searches are exact matches on indexed columns; the
count is an estimate; a grade's change form reads the one table the key index names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.functional import cached_property

from ..core import rules
from ..core.exceptions import InvalidTimestamp
from ..core.settings import app_settings
from ..db import catalog, lms, registry
from ..models import ActivityGrade, ActivityGradeQuerySet, Partition
from ..service import MOVED_RETRIES

__all__ = ["ActivityGradeAdmin", "ActivityGradeForm", "EstimatedCountPaginator"]

if TYPE_CHECKING:  # generic in django-stubs only, not at run time
    _Paginator = Paginator[ActivityGrade]
    _ModelAdmin = admin.ModelAdmin[ActivityGrade]
    _ModelForm = forms.ModelForm[ActivityGrade]
else:
    _Paginator = Paginator
    _ModelAdmin = admin.ModelAdmin
    _ModelForm = forms.ModelForm

# Set on a request whose grade list must stay empty (too many partitions to plan).
_EMPTY_LIST = "_activity_grades_empty"


class EstimatedCountPaginator(_Paginator):
    """Never counts the whole tree: an estimate without filters, a capped count with."""

    CAP = 10_000
    object_list: QuerySet[ActivityGrade]  # the admin paginates its queryset

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not qs.query.where:
            return catalog.estimated_live_rows(qs.db)
        return qs.order_by()[: self.CAP + 1].count()


class RegistryFilter(admin.SimpleListFilter):
    """A filter whose choices come from the partition registry, not from the grades."""

    field = ""

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        values = (
            Partition.objects.exclude(**{f"{self.field}__isnull": True})
            .order_by()  # the model's ordering would add columns to DISTINCT
            .values_list(self.field, flat=True)
            .distinct()
        )
        return [(v, v) for v in sorted(values, key=self.sort_key(model_admin))[:500]]

    def sort_key(self, model_admin: admin.ModelAdmin[Any]) -> Callable[[str], Any]:
        return str

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class ClassFilter(RegistryFilter):
    """Reads the class table (or the (class, term) leaf with ?term=), not the parent."""

    title = "class"
    parameter_name = "class"
    field = "class_id"

    def sort_key(self, model_admin: admin.ModelAdmin[Any]) -> Callable[[str], Any]:
        return lms.class_id_order(model_admin.model.objects.db)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        class_id = self.value()
        if not class_id:
            return queryset
        grades = cast("ActivityGradeQuerySet[ActivityGrade]", queryset)  # the admin's queryset
        return grades.for_class(class_id, request.GET.get("term") or None)


class TermFilter(RegistryFilter):
    title = "term"
    parameter_name = "term"
    field = "term_id"


class ActivityGradeForm(_ModelForm):
    """The grade form applies the write rule (``core.rules``) as a form error, not a 500.

    An activity that does not exist or has no class, and a timestamp that could not be
    read back, are reported on their field with the text the other write paths use.
    """

    class Meta:
        model = ActivityGrade
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        for name in rules.TIMESTAMP_COLUMNS:
            if data.get(name) is not None:
                try:
                    rules.check_timestamp(name, data[name])
                except InvalidTimestamp as exc:
                    self.add_error(name, str(exc))
        activity = data.get("activity_id")
        if activity and not self.errors:
            using = ActivityGrade.objects.db
            located = lms.locate(activity, data.get("created_at") or timezone.now(), using)
            if located is None:
                self.add_error(
                    "activity_id",
                    f"activity_grades: activity {rules.quote_literal(activity)} does not exist: "
                    "create the activity before grading it",
                )
            elif located[0] is None:
                self.add_error(
                    "activity_id",
                    f"activity_grades: activity {rules.quote_literal(activity)} has no class: "
                    "give the activity a class before grading it",
                )
        return data


@admin.register(ActivityGrade)
class ActivityGradeAdmin(_ModelAdmin):
    form = ActivityGradeForm
    list_display = ("id", "student_id", "activity_id", "score", "status", "created_at", "partition")
    list_filter = (ClassFilter, TermFilter)
    # Exact matches use the per-partition indexes on student_id and activity_id.
    search_fields = ("=student_id", "=activity_id")
    search_help_text = "Exact student id or activity id."
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    readonly_fields = ("id", "class_id", "term_id", "partition")

    def get_queryset(self, request: HttpRequest) -> ActivityGradeQuerySet[ActivityGrade]:
        # The default manager's queryset (ActivityGradeQuerySet); the stubs say QuerySet.
        base = cast("ActivityGradeQuerySet[ActivityGrade]", super().get_queryset(request))
        if not any(request.GET.get(k) for k in ("class", "term", "q")):
            # The whole list, on purpose: changelist_view refuses it above
            # ADMIN_PARENT_PARTITION_LIMIT partitions (filters route by themselves).
            base = base.across_all_partitions()
        # tableoid names the child that holds each row: no registry lookup per row.
        qs = base.annotate(_partition=RawSQL(catalog.TABLE_OF_ROW, []))
        return qs.none() if getattr(request, _EMPTY_LIST, False) else qs

    def _parent_too_big(self, request: HttpRequest) -> int:
        """Partitions, when the unfiltered list would plan and lock too many of them."""
        limit = app_settings.ADMIN_PARENT_PARTITION_LIMIT
        if limit is None or request.GET.get("class"):
            return 0
        n = registry.live_count(self.model.objects.db)
        return n if n > limit else 0

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        too_many = self._parent_too_big(request)
        if too_many:
            setattr(request, _EMPTY_LIST, True)
            messages.warning(
                request,
                f"Choose a class: listing grades across all {too_many} partitions would plan "
                "and lock every one of them (setting ADMIN_PARENT_PARTITION_LIMIT).",
            )
        return super().changelist_view(request, extra_context)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> ActivityGrade | None:
        # The key index says which partition holds the grade: read that table only.
        if from_field is None:
            for _ in range(MOVED_RETRIES):
                table = registry.table_of_grade(object_id, self.model.objects.db)
                if table is None:
                    return None
                found = self.get_queryset(request).for_table(table).filter(pk=object_id).first()
                if found is not None:
                    return found
                # Moved meanwhile (a conversion, archiving): look it up again.
            return None
        return super().get_object(request, object_id, from_field)

    @admin.display(description="partition")
    def partition(self, obj: ActivityGrade) -> str:
        table: str | None = getattr(obj, "_partition", None)
        return table or "-"
