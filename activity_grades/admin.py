"""Django admin: a dashboard of the partitions and a grade list that never counts the tree.

- ``PartitionAdmin`` replaces the registry's changelist with a page built from one
  catalog query (``stats.overview``): sizes, estimates, scans, maintenance times,
  totals, a chart of size per term, sort/filter/search/drill-down and pagination in
  Python (the registry is small next to the data: 5,000 rows at most in practice).
  Read-only for everyone; superusers also get "create partitions for upcoming terms"
  (and "archive a term" when ``activity_grades.archiving`` is installed), each behind a
  confirmation page showing the plan, calling the same API as the commands.
- ``ActivityGradeAdmin`` lists grades with filters read from the registry, exact
  searches by student/activity (indexed), no full count and a column naming the
  partition that holds each row.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.http import urlencode

from . import archiving, conf, health, partitioning, stats
from .models import ActivityGrade, Partition
from .service import table_of_grade

PER_PAGE = 100


@dataclass(frozen=True)
class Column:
    key: str  # attribute of stats.PartitionDetail, also the ?o= sort key
    label: str
    numeric: bool = False


COLUMNS = (
    Column("class_id", "Class"),
    Column("term_id", "Term"),
    Column("table_name", "Table"),
    Column("status", "Status"),
    Column("rows", "Est. rows", True),
    Column("table_bytes", "Table", True),
    Column("index_bytes", "Indexes", True),
    Column("toast_bytes", "TOAST", True),
    Column("total_bytes", "Total", True),
    Column("share", "Share", True),
    Column("dead_rows", "Dead rows", True),
    Column("seq_scan", "Seq scans", True),
    Column("seq_tup_read", "Seq rows read", True),
    Column("idx_scan", "Index scans", True),
    Column("last_vacuum", "Last vacuum"),
    Column("last_analyze", "Last analyze"),
)
SORT_KEYS = {c.key for c in COLUMNS}
STATUSES = ("live", "archived", "detached")


def _sort_value(detail: stats.PartitionDetail, key: str):
    value = getattr(detail, key)
    # None sorts first ascending, last descending, without comparing None to values.
    return (value is not None, value if value is not None else 0)


def filter_partitions(parts: list[stats.PartitionDetail], params) -> list[stats.PartitionDetail]:
    """Apply ?class=, ?term=, ?status=, ?kind=class|term and ?q= (class id contains)."""
    class_id, term_id = params.get("class"), params.get("term")
    status, kind, q = params.get("status"), params.get("kind"), (params.get("q") or "").strip()
    out = parts
    if class_id:
        out = [p for p in out if p.class_id == class_id]
    if term_id:
        out = [p for p in out if (p.term_id or "-") == term_id]
    if status in STATUSES:
        out = [p for p in out if p.status == status]
    if kind in ("class", "term"):
        out = [p for p in out if p.kind == kind]
    if q:
        needle = q.lower()
        out = [p for p in out if needle in p.class_id.lower()]
    return out


def sort_partitions(parts: list[stats.PartitionDetail], order: str | None):
    key = (order or "").lstrip("-")
    if key not in SORT_KEYS:
        return parts, "", False
    desc = (order or "").startswith("-")
    return sorted(parts, key=lambda p: _sort_value(p, key), reverse=desc), key, desc


@admin.register(Partition)
class PartitionAdmin(admin.ModelAdmin):
    """The partition dashboard; the registry itself is never edited here."""

    list_display = ("table_name", "class_id", "term_id", "status")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path(
                "create-upcoming/",
                wrap(self.create_upcoming_view),
                name="{}_{}_create".format(*info),
            ),
            path("archive-term/", wrap(self.archive_term_view), name="{}_{}_archive".format(*info)),
            path("health/", wrap(self.health_view), name="{}_{}_health".format(*info)),
        ] + super().get_urls()

    # -- the dashboard ---------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        ov = stats.overview()
        shown = filter_partitions(ov.partitions, request.GET)
        shown, sort_key, desc = sort_partitions(shown, request.GET.get("o"))
        page = Paginator(shown, PER_PAGE).get_page(request.GET.get("p"))
        params = {k: v for k, v in request.GET.items() if k != "p"}
        chart_source = (
            stats.Overview(filter_partitions(ov.partitions, {"class": params["class"]}), 0)
            if params.get("class")
            else ov
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Activity grade partitions",
            "overview": ov,
            "page": page,
            "shown_count": len(shown),
            "columns": [
                {
                    "col": c,
                    "sorted": c.key == sort_key,
                    "desc": desc,
                    "url": "?"
                    + urlencode(
                        {**params, "o": c.key if (c.key != sort_key or desc) else "-" + c.key}
                    ),
                }
                for c in COLUMNS
            ],
            "params": params,
            "query_without": {
                k: "?" + urlencode({kk: vv for kk, vv in params.items() if kk != k})
                for k in ("class", "term", "status", "kind", "q")
            },
            "page_urls": {n: "?" + urlencode({**params, "p": n}) for n in page.paginator.page_range}
            if page.paginator.num_pages <= 50
            else {},
            "class_ids": sorted({p.class_id for p in ov.partitions})[:500],
            "term_ids": [t.term_id or "-" for t in ov.by_term()],
            "statuses": STATUSES,
            "terms_chart": _chart(chart_source.by_term()),
            "chart_class": params.get("class"),
            "query_stats": stats.slow_statements(),
            "is_superuser": request.user.is_superuser,
            "create_url": reverse("admin:activity_grades_partition_create"),
            "archive_url": reverse("admin:activity_grades_partition_archive"),
            "health_url": reverse("admin:activity_grades_partition_health"),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "activity_grades/admin/partitions.html", context)

    # -- health ----------------------------------------------------------------

    def health_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return self._page(request, "health.html", "Partition health", problems=health.run())

    def _page(self, request: HttpRequest, template: str, title: str, **extra) -> HttpResponse:
        """One of this admin's own pages, inside the admin site's frame."""
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title}
        return TemplateResponse(request, f"activity_grades/admin/{template}", {**context, **extra})

    # -- superuser actions -----------------------------------------------------

    def _require_superuser(self, request: HttpRequest) -> None:
        if not (request.user.is_active and request.user.is_superuser):
            raise PermissionDenied

    def create_upcoming_view(self, request: HttpRequest) -> HttpResponse:
        """Confirmation page with the plan (GET), then partitioning.apply (POST)."""
        self._require_superuser(request)
        the_plan = partitioning.plan(with_sql=True)
        changelist = reverse("admin:activity_grades_partition_changelist")
        if request.method == "POST":
            result = partitioning.apply(the_plan)
            if result.created:
                messages.success(
                    request,
                    f"Created {len(result.created)} partition(s) in {result.seconds:.1f} s: "
                    + ", ".join(result.created[:20]),
                )
            else:
                messages.info(request, "Nothing to do: every partition exists.")
            return HttpResponseRedirect(changelist)
        return self._page(
            request,
            "create_confirm.html",
            "Create partitions for upcoming terms",
            plan=the_plan,
            changelist_url=changelist,
        )

    def archive_term_view(self, request: HttpRequest) -> HttpResponse:
        self._require_superuser(request)
        changelist = reverse("admin:activity_grades_partition_changelist")
        term_id = request.POST.get("term") or request.GET.get("term")
        terms = [t.term_id for t in partitioning.list_terms()]
        if term_id not in terms:
            return self._page(
                request,
                "archive_confirm.html",
                "Archive a term",
                terms=terms,
                changelist_url=changelist,
            )
        try:
            the_plan = archiving.plan_archive([term_id])
        except archiving.ArchiveError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(request.path)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            result = archiving.archive(the_plan)
            messages.success(
                request,
                f"Archived term {term_id}: {len(result.archived)} partition(s), "
                f"{result.rows} row(s) in {result.seconds:.1f} s"
                + (f"; skipped {len(result.skipped)}" if result.skipped else ""),
            )
            return HttpResponseRedirect(changelist)
        return self._page(
            request,
            "archive_confirm.html",
            f"Archive term {term_id}",
            term=term_id,
            plan=the_plan,
            changelist_url=changelist,
        )


def _chart(totals: list[stats.TermTotal]) -> dict:
    """Geometry of a horizontal SVG bar chart of total bytes per term."""
    bar_h, gap, label_w, width = 18, 6, 130, 420
    bars = []
    for i, t in enumerate(totals):
        y = i * (bar_h + gap)
        bars.append(
            {
                "label": t.term_id or "(class tables)",
                "y": y,
                "text_y": y + bar_h - 5,
                "w": max(1, round(t.share * width)) if t.total_bytes else 0,
                "bytes": t.total_bytes,
                "rows": t.rows,
                "partitions": t.partitions,
            }
        )
    return {
        "bars": bars,
        "label_w": label_w,
        "bar_h": bar_h,
        "width": label_w + width + 110,
        "height": max(1, len(bars) * (bar_h + gap)),
        "value_x": label_w + width + 6,
    }


# ---------------------------------------------------------------------------
# Grades
# ---------------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """Never counts the whole tree: an estimate without filters, a capped count with."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not qs.query.where:
            return estimated_grade_rows(qs.db)
        return qs.order_by()[: self.CAP + 1].count()


def estimated_grade_rows(using: str = "default") -> int:
    """Estimated rows of every live partition, from the catalog."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint, 0)), 0)"
            " FROM activity_grades_partition p"
            " JOIN pg_class c ON c.oid = to_regclass(quote_ident(p.table_name))"
            " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE p.status = 'live'"
        )
        return int(cursor.fetchone()[0])


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
        limit = conf.get("ADMIN_PARENT_PARTITION_LIMIT")
        if limit is None or request.GET.get("class"):
            return 0
        n = Partition.objects.filter(status="live").count()
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
            table = table_of_grade(object_id, self.model.objects.db)
            if table is None:
                return None
            return self.get_queryset(request).for_table(table).filter(pk=object_id).first()
        return super().get_object(request, object_id, from_field)

    @admin.display(description="partition")
    def partition(self, obj) -> str:
        return getattr(obj, "_partition", None) or "-"
