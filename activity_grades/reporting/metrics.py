"""Machine-readable partition metrics: plain data (JSON) and the Prometheus text format.

Cost: the same single catalog query as the admin page (``stats.overview``) plus the age
of the last successful maintenance run. The HTTP endpoint is ``activity_grades.views``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from ..db import runs
from . import locks, stats

__all__ = ["MaintenanceAge", "collect", "maintenance_age", "prometheus_text"]


@dataclass
class MaintenanceAge:
    table_present: bool
    last_run: datetime | None
    seconds: float  # NaN when unknown


def maintenance_age(using: str = "default") -> MaintenanceAge:
    """Age of the last successful maintenance run, NaN when the runs table or any run is missing."""
    last = runs.last_success(using)
    if last.finished_at is None:
        return MaintenanceAge(last.table_present, None, math.nan)
    age = (timezone.now() - last.finished_at).total_seconds()
    return MaintenanceAge(True, last.finished_at, age)


def _label(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: int | float) -> str:
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


def collect(using: str = "default") -> dict[str, Any]:
    """Everything the endpoint reports, as plain data (the JSON format)."""
    ov = stats.overview(using=using)
    age = maintenance_age(using)
    room = locks.headroom(using)
    return {
        "locks": {
            "whole_tree_query_locks": room.locks_per_whole_tree_query,
            "lock_capacity": room.capacity,
            "whole_tree_queries_to_fill": room.queries_to_fill,
        },
        "partitions": [p.as_dict() for p in ov.partitions],
        "partitions_by_status": ov.by_status(),
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


def prometheus_text(data: dict[str, Any]) -> str:
    """The Prometheus text exposition (0.0.4) of ``collect()``'s data."""
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
        (
            "activity_grades_whole_tree_query_locks",
            "Relation locks one query through the parent takes (tables and indexes).",
            data["locks"]["whole_tree_query_locks"],
        ),
        (
            "activity_grades_lock_capacity",
            "Slots of the server's shared lock table.",
            data["locks"]["lock_capacity"],
        ),
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
