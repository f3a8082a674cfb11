"""Machine-readable partition metrics: one snapshot as plain data (the JSON format).

Cost: the same single catalog query as the admin page (``stats.overview``), the lock
headroom's catalog count and the maintenance run's row. ``reporting.prometheus`` turns the
same snapshot into Prometheus metric families (prometheus_client); the HTTP endpoint is
``activity_grades.views``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from .. import replicas
from ..db import runs
from . import locks, stats

__all__ = ["MaintenanceAge", "collect", "maintenance_age", "public"]


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _maintenance(age: MaintenanceAge, last: runs.LastRun | None) -> dict[str, Any]:
    duration = (last.summary.get("seconds") if last else None) if age.last_run else None
    return {
        "table_present": age.table_present,
        "last_run": _iso(age.last_run),
        "age_seconds": None if math.isnan(age.seconds) else age.seconds,
        "last_success_timestamp": age.last_run.timestamp() if age.last_run else None,
        "last_duration_seconds": float(duration) if isinstance(duration, int | float) else None,
        "last_failure": _iso(last.failed_at) if last else None,
        "last_failure_timestamp": last.failed_at.timestamp() if last and last.failed_at else None,
        "last_error": last.error if last else None,
        "last_origin": last.summary.get("origin") if last else None,
        "failed_last": bool(last and last.failed_last),
    }


def collect(using: str = "default") -> dict[str, Any]:
    """Everything the endpoint reports, as plain data (the JSON format).

    Keys starting with ``_`` hold the typed objects behind it (``_overview``, ``_age``,
    ``_headroom``) for the Prometheus families; ``public()`` drops them.
    """
    # Sizes and estimates are the same on a streaming replica: read one when it is fit.
    ov = stats.overview(using=replicas.reader(using))
    age = maintenance_age(using)
    room = locks.headroom(using)
    standbys = replicas.replica_states() if using == DEFAULT_DB_ALIAS else []
    return {
        "replicas": [
            {
                "alias": r.alias,
                "fit": r.ok,
                "lag_seconds": r.lag_seconds,
                "lag_bytes": r.lag_bytes,
                "problem": r.problem,
            }
            for r in standbys
        ],
        "locks": {
            "whole_tree_query_locks": room.locks_per_whole_tree_query,
            "lock_capacity": room.capacity,
            "whole_tree_queries_to_fill": room.queries_to_fill,
        },
        "partitions": [p.as_dict() for p in ov.partitions],
        "partitions_by_status": ov.by_status(),
        "by_class": [asdict(c) for c in ov.by_class()],
        "by_shard": [asdict(t) for t in ov.by_shard()] if ov.sharded else [],
        "by_term": [{k: v for k, v in asdict(t).items() if k != "share"} for t in ov.by_term()],
        "total_rows": ov.total_rows,
        "total_bytes": ov.total_bytes,
        "rows_in_parent": ov.rows_in_parent,
        "rows_in_class_tables": ov.rows_in_class_tables,
        "month_tables": ov.month_tables,
        "rows_outside_leaves": ov.rows_in_parent + ov.rows_in_class_tables,
        "maintenance": _maintenance(age, runs.last_run(using) if age.table_present else None),
        "_overview": ov,
        "_age": age,
        "_headroom": room,
        "_replicas": standbys,
    }


def public(data: dict[str, Any]) -> dict[str, Any]:
    """``collect()``'s data without the typed objects: what the JSON format shows."""
    return {k: v for k, v in data.items() if not k.startswith("_")}
