"""Machine-readable partition metrics: Prometheus text format and JSON.

``metrics_view`` answers ``GET .../metrics`` (Prometheus text exposition 0.0.4) and
``GET .../metrics?format=json``. Access: a staff user with the ``view_partition``
permission (session login), or ``Authorization: Bearer <ACTIVITY_GRADES["METRICS_TOKEN"]>``
when that setting is set. Cost: the same single catalog query as the admin page.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import conf, stats

VIEW_PERMISSION = "activity_grades.view_partition"
# Where the maintenance job records its runs (another module owns the table); the
# first of these timestamp columns that exists is read.
MAINTENANCE_TIME_COLUMNS = ("finished_at", "ended_at", "completed_at", "started_at")


@dataclass
class MaintenanceAge:
    table_present: bool
    last_run: object  # datetime or None
    seconds: float  # NaN when unknown


def maintenance_age(using: str = "default") -> MaintenanceAge:
    """Age of the latest maintenance run, NaN when the runs table or any run is missing."""
    table = conf.get("MAINTENANCE_RUNS_TABLE")
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
            "AND a.attnum > 0 AND NOT a.attisdropped",
            [table],
        )
        columns = {row[0] for row in cursor.fetchall()}
        if not columns:
            return MaintenanceAge(False, None, math.nan)
        column = next((c for c in MAINTENANCE_TIME_COLUMNS if c in columns), None)
        if column is None:
            return MaintenanceAge(True, None, math.nan)
        from psycopg import sql

        query = sql.SQL("SELECT max({}) FROM {}").format(
            sql.Identifier(column), sql.Identifier(table)
        )
        cursor.execute(query.as_string(cursor.connection))
        last = cursor.fetchone()[0]
    if last is None:
        return MaintenanceAge(True, None, math.nan)
    return MaintenanceAge(True, last, (timezone.now() - last).total_seconds())


def _label(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return repr(value) if isinstance(value, float) else str(value)


PER_PARTITION = (
    ("activity_grades_partition_bytes", "gauge", "Total size", "total_bytes"),
    ("activity_grades_partition_table_bytes", "gauge", "Heap size without TOAST", "table_bytes"),
    ("activity_grades_partition_index_bytes", "gauge", "Size of the indexes", "index_bytes"),
    ("activity_grades_partition_toast_bytes", "gauge", "Size of the TOAST table", "toast_bytes"),
    ("activity_grades_partition_rows_estimate", "gauge", "Estimated live rows", "rows"),
    ("activity_grades_partition_dead_rows", "gauge", "Dead tuples", "dead_rows"),
    ("activity_grades_partition_seq_scans_total", "counter", "Sequential scans", "seq_scan"),
    (
        "activity_grades_partition_seq_tuples_read_total",
        "counter",
        "Tuples read by seq scans",
        "seq_tup_read",
    ),
    ("activity_grades_partition_idx_scans_total", "counter", "Index scans", "idx_scan"),
    (
        "activity_grades_partition_idx_tuples_fetched_total",
        "counter",
        "Index fetches",
        "idx_tup_fetch",
    ),
)


def collect(using: str = "default") -> dict:
    """Everything the endpoint reports, as plain data (the JSON format)."""
    ov = stats.overview(using)
    age = maintenance_age(using)
    by_status: dict[str, int] = {"live": 0, "archived": 0, "detached": 0}
    for p in ov.partitions:
        by_status[p.status] = by_status.get(p.status, 0) + 1
    return {
        "partitions": [p.as_dict() for p in ov.partitions],
        "partitions_by_status": by_status,
        "total_rows": ov.total_rows,
        "total_bytes": ov.total_bytes,
        "rows_in_parent": ov.rows_in_parent,
        "rows_in_class_tables": ov.rows_in_class_tables,
        "rows_outside_leaves": ov.rows_in_parent + ov.rows_in_class_tables,
        "maintenance": {
            "table_present": age.table_present,
            "last_run": age.last_run.isoformat() if age.last_run else None,
            "age_seconds": None if math.isnan(age.seconds) else age.seconds,
        },
        "_overview": ov,
        "_age": age,
    }


def prometheus_text(data: dict) -> str:
    ov: stats.Overview = data["_overview"]
    lines: list[str] = []
    for name, kind, help_text, attr in PER_PARTITION:
        lines += [
            f"# HELP {name} {help_text} of one activity_grades partition.",
            f"# TYPE {name} {kind}",
        ]
        for p in ov.partitions:
            labels = (
                f'class="{_label(p.class_id)}",term="{_label(p.term_id or "")}",'
                f'table="{_label(p.table_name)}",status="{p.status}"'
            )
            lines.append(f"{name}{{{labels}}} {getattr(p, attr)}")
    lines += [
        "# HELP activity_grades_partitions Registered partitions by status.",
        "# TYPE activity_grades_partitions gauge",
    ]
    for status, n in sorted(data["partitions_by_status"].items()):
        lines.append(f'activity_grades_partitions{{status="{status}"}} {n}')
    scalars = (
        ("activity_grades_total_bytes", "Bytes of every partition.", data["total_bytes"]),
        (
            "activity_grades_total_rows_estimate",
            "Estimated rows of every partition.",
            data["total_rows"],
        ),
        (
            "activity_grades_rows_in_parent",
            "Rows in the parent itself (must be 0).",
            data["rows_in_parent"],
        ),
        (
            "activity_grades_rows_in_class_tables",
            "Estimated rows in class tables (outside terms).",
            data["rows_in_class_tables"],
        ),
        (
            "activity_grades_rows_outside_leaves",
            "Rows in the parent plus rows in class tables.",
            data["rows_outside_leaves"],
        ),
        (
            "activity_grades_maintenance_table_present",
            "1 when the maintenance runs table exists.",
            int(data["_age"].table_present),
        ),
        (
            "activity_grades_last_maintenance_age_seconds",
            "Seconds since the last maintenance run (NaN: unknown).",
            data["_age"].seconds,
        ),
    )
    for name, help_text, value in scalars:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_num(value)}"]
    return "\n".join(lines) + "\n"


def _allowed(request: HttpRequest) -> bool:
    token = conf.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), str(token).encode())
    user = request.user if hasattr(request, "user") else None
    return bool(user and user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        response = HttpResponse("forbidden\n", status=403, content_type="text/plain")
        anonymous = not getattr(request, "user", None) or not request.user.is_authenticated
        if anonymous and not request.headers.get("Authorization"):
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="activity_grades"'
        return response
    data = collect()
    if request.GET.get("format") == "json":
        public = {k: v for k, v in data.items() if not k.startswith("_")}
        return JsonResponse(public, json_dumps_params={"indent": 1})
    return HttpResponse(
        prometheus_text(data), content_type="text/plain; version=0.0.4; charset=utf-8"
    )


__all__ = ["collect", "maintenance_age", "metrics_view", "prometheus_text"]
