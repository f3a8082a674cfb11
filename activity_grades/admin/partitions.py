"""The partition dashboard: ``PartitionAdmin`` over the registry, read-only.

Its changelist is a page built from one catalog query (``reporting.stats.overview``):
sizes, estimates, scans, maintenance times, totals, a chart of size per term,
sort/filter/search/drill-down and pagination in Python (``listing``). Superusers also get
"create partitions for upcoming terms" and "archive a term", each behind a confirmation
page showing the plan, calling the same operations as the commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from .. import replicas
from ..core.exceptions import ArchiveError
from ..core.shards import LOCAL
from ..db import lms, runs
from ..db import placement as recorded_placement
from ..models import Partition
from ..operations import archive, create, repair
from ..reporting import locks, stats
from ..reporting.archive import archive_years
from .chart import term_chart
from .listing import COLUMNS, PER_PAGE, STATUSES, filter_partitions, sort_partitions

__all__ = ["PartitionAdmin"]

if TYPE_CHECKING:  # generic in django-stubs only, not at run time
    _ModelAdmin = admin.ModelAdmin[Partition]
else:
    _ModelAdmin = admin.ModelAdmin


def _class_placement(ov: stats.Overview, class_id: str | None) -> dict[str, Any] | None:
    """Where a drilled-down class lives: its recorded placement (never decided here) and
    where its partitions are, with the error of a shard that did not answer."""
    if not class_id:
        return None
    record = recorded_placement.recorded("default", class_id) if ov.sharded else None
    parts = [p for p in ov.partitions if p.class_id == class_id]
    places = sorted({p.shard for p in parts})
    shard = record.shard if record is not None else (places[0] if len(places) == 1 else LOCAL)
    return {
        "shard": shard,
        "recorded": record,
        "places": places,
        "error": ov.shards.get(shard),
    }


@admin.register(Partition)
class PartitionAdmin(_ModelAdmin):
    """The partition dashboard; the registry itself is never edited here."""

    list_display = ("table_name", "class_id", "term_id", "status")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
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

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        ov = stats.overview(using=replicas.reader())
        shown = filter_partitions(ov.partitions, request.GET)
        shown, sort_key, desc = sort_partitions(shown, request.GET.get("o"))
        page = Paginator(shown, PER_PAGE).get_page(request.GET.get("p"))
        params = {k: request.GET[k] for k in request.GET if k != "p"}  # last value, as items()
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
                for k in ("class", "term", "status", "kind", "shard", "q")
            },
            "page_urls": {
                n: "?" + urlencode({**params, "p": str(n)}) for n in page.paginator.page_range
            }
            if page.paginator.num_pages <= 50
            else {},
            "class_ids": list(dict.fromkeys(p.class_id for p in ov.partitions))[:500],
            "term_ids": [t.term_id or "-" for t in ov.by_term()],
            "statuses": STATUSES,
            "sharded": ov.sharded,
            "shard_totals": ov.by_shard() if ov.sharded else [],
            "class_placement": _class_placement(ov, params.get("class")),
            "terms_chart": term_chart(chart_source.by_term()),
            "chart_class": params.get("class"),
            "query_stats": stats.slow_statements(),
            "archive_years": archive_years(),
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
        return self._page(
            request,
            "health.html",
            "Partition health",
            problems=repair.plan().problems,
            headroom=locks.headroom(),
            concurrent=locks.CONCURRENT,
            replicas=replicas.replica_states(),
            maintenance=runs.last_run(),
        )

    def _page(self, request: HttpRequest, template: str, title: str, **extra: Any) -> HttpResponse:
        """One of this admin's own pages, inside the admin site's frame."""
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title}
        return TemplateResponse(request, f"activity_grades/admin/{template}", {**context, **extra})

    # -- superuser actions -----------------------------------------------------

    def _require_superuser(self, request: HttpRequest) -> None:
        if not (request.user.is_active and request.user.is_superuser):
            raise PermissionDenied

    def create_upcoming_view(self, request: HttpRequest) -> HttpResponse:
        """Confirmation page with the plan (GET), then its apply (POST)."""
        self._require_superuser(request)
        the_plan = create.plan(with_sql=True)
        changelist = reverse("admin:activity_grades_partition_changelist")
        if request.method == "POST":
            result = the_plan.apply()
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
        terms = [t.term_id for t in lms.terms()]
        if term_id not in terms:
            return self._page(
                request,
                "archive_confirm.html",
                "Archive a term",
                terms=terms,
                changelist_url=changelist,
            )
        try:
            archive_plan = archive.plan([term_id])
        except ArchiveError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(request.path)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            result = archive_plan.apply()
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
            plan=archive_plan,
            changelist_url=changelist,
        )
