"""The app's metrics as a prometheus_client collector (the ``[prometheus]`` extra).

``PartitionCollector`` builds its metric families from one ``metrics.collect()`` snapshot
per scrape, so they hold the same values as the JSON format. Bounded at any partition
count: totals and per-status counts always, per-term totals, per-class totals for the
``METRICS_TOP_CLASSES`` largest classes (the rest summed as ``class="_other"``),
per-partition series only for the ``METRICS_TOP_PARTITIONS`` largest partitions (each
labelled with its ``shard``), and per-shard totals (bounded by ``SHARDS``).

Two ways to expose it: the app's own endpoint (``activity_grades.views``, a registry of
its own), and a project's existing ``/metrics`` (django-prometheus or
``prometheus_client.make_wsgi_app``): ``register()`` adds the collector to
prometheus_client's default ``REGISTRY``; ``ACTIVITY_GRADES["PROMETHEUS_REGISTER"] = True``
makes the app do it at start-up.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import DatabaseError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from ..core.constants import LOGGER_NAME
from ..core.settings import app_settings
from ..core.shards import LOCAL
from . import metrics, stats

__all__ = [
    "OTHER_CLASSES",
    "PARTITION_LABELS",
    "PER_PARTITION",
    "SCALARS",
    "PartitionCollector",
    "exposition",
    "families",
    "register",
    "up",
]

logger = logging.getLogger(LOGGER_NAME)

OTHER_CLASSES = "_other"  # the class label of the classes outside the top ones

# name, kind, help, attribute of PartitionStats
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
# shard: where the table is, "local" or a shard's alias, so a dashboard can group the
# largest partitions by server. It adds no series: a table is in one place, and its
# values are bounded by SHARDS.
PARTITION_LABELS = ["class", "term", "table", "status", "shard"]

# name, help, value from collect()'s data
SCALARS: tuple[tuple[str, str, Callable[[dict[str, Any]], float | int | None]], ...] = (
    ("activity_grades_total_bytes", "Bytes of every partition.", lambda d: d["total_bytes"]),
    (
        "activity_grades_total_rows_estimate",
        "Estimated rows of every partition.",
        lambda d: d["total_rows"],
    ),
    (
        "activity_grades_rows_in_parent",
        "Rows in the parent itself (must be 0).",
        lambda d: d["rows_in_parent"],
    ),
    (
        "activity_grades_rows_in_class_tables",
        "Estimated rows in class tables (outside terms).",
        lambda d: d["rows_in_class_tables"],
    ),
    (
        "activity_grades_month_tables",
        "Live month tables (children of terms partitioned by month).",
        lambda d: d["month_tables"],
    ),
    (
        "activity_grades_rows_outside_leaves",
        "Rows in the parent plus rows in class tables.",
        lambda d: d["rows_outside_leaves"],
    ),
    (
        "activity_grades_whole_tree_query_locks",
        "Relation locks one query through the parent takes (tables and indexes).",
        lambda d: d["locks"]["whole_tree_query_locks"],
    ),
    (
        "activity_grades_lock_capacity",
        "Slots of the server's shared lock table.",
        lambda d: d["locks"]["lock_capacity"],
    ),
    (
        "activity_grades_whole_tree_queries_to_fill",
        "Queries through the parent at once that fill the server's lock table.",
        lambda d: d["locks"]["whole_tree_queries_to_fill"],
    ),
    (
        "activity_grades_maintenance_table_present",
        "1 when the maintenance runs table exists.",
        lambda d: int(d["maintenance"]["table_present"]),
    ),
    (
        "activity_grades_last_maintenance_age_seconds",
        "Seconds since the last successful maintenance run (NaN: unknown).",
        lambda d: d["maintenance"]["age_seconds"],
    ),
    (
        "activity_grades_maintenance_last_success_timestamp_seconds",
        "Unix time the last successful maintenance run finished (NaN: never).",
        lambda d: d["maintenance"]["last_success_timestamp"],
    ),
    (
        "activity_grades_maintenance_last_duration_seconds",
        "Wall time of the last successful maintenance run (NaN: unknown).",
        lambda d: d["maintenance"]["last_duration_seconds"],
    ),
    (
        "activity_grades_maintenance_last_failure_timestamp_seconds",
        "Unix time of the last failed maintenance run (NaN: none recorded).",
        lambda d: d["maintenance"]["last_failure_timestamp"],
    ),
    (
        "activity_grades_maintenance_failed_last",
        "1 when the most recent maintenance run failed.",
        lambda d: int(d["maintenance"]["failed_last"]),
    ),
)


def _value(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def _family(
    name: str, kind: str, help_text: str, labels: list[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


def _largest(partitions: list[stats.PartitionStats], n: int) -> list[stats.PartitionStats]:
    return heapq.nlargest(n, partitions, key=lambda p: (p.total_bytes, p.table_name))


def _class_families(ov: stats.Overview, top: int | None) -> Iterator[Metric]:
    classes = ov.by_class()
    shown = classes if top is None else heapq.nlargest(top, classes, key=lambda c: c.total_bytes)
    kept = {c.class_id for c in shown}
    rest = [c for c in classes if c.class_id not in kept]
    if rest:
        shown = [
            *shown,
            stats.ClassTotal(
                OTHER_CLASSES,
                sum(c.partitions for c in rest),
                sum(c.rows for c in rest),
                sum(c.total_bytes for c in rest),
            ),
        ]
    for name, help_text, attr in (
        ("activity_grades_class_bytes", "Bytes of a class's tables", "total_bytes"),
        ("activity_grades_class_rows_estimate", "Estimated rows of a class's tables", "rows"),
        ("activity_grades_class_partitions", "Partitions of a class", "partitions"),
    ):
        family = GaugeMetricFamily(
            name, f"{help_text} (largest classes; rest: _other).", labels=["class"]
        )
        for c in shown:
            family.add_metric([c.class_id], getattr(c, attr))
        yield family


def _term_families(ov: stats.Overview) -> Iterator[Metric]:
    terms = ov.by_term()
    for name, help_text, attr in (
        (
            "activity_grades_term_bytes",
            'Bytes of a term\'s tables (term "": class tables)',
            "total_bytes",
        ),
        ("activity_grades_term_rows_estimate", "Estimated rows of a term's tables", "rows"),
        ("activity_grades_term_partitions", "Partitions of a term", "partitions"),
    ):
        family = GaugeMetricFamily(name, f"{help_text}.", labels=["term"])
        for t in terms:
            family.add_metric([t.term_id or ""], getattr(t, attr))
        yield family


def _shard_families(ov: stats.Overview) -> Iterator[Metric]:
    """Per place (``local`` and each shard: bounded by SHARDS), with sharding only:
    whether a shard answered, and its totals (NaN while it does not answer)."""
    if not ov.sharded:
        return
    totals = ov.by_shard()
    shard_up = GaugeMetricFamily(
        "activity_grades_shard_up",
        "1 when the shard answered the statistics query, 0 when not.",
        labels=["shard"],
    )
    for t in totals:
        if t.shard != LOCAL:
            shard_up.add_metric([t.shard], int(t.up))
    yield shard_up
    for name, help_text, attr in (
        ("activity_grades_shard_bytes", "Bytes of the partitions in one place", "total_bytes"),
        ("activity_grades_shard_rows", "Estimated rows of the partitions in one place", "rows"),
        ("activity_grades_shard_partitions", "Partitions in one place", "partitions"),
    ):
        family = GaugeMetricFamily(
            name,
            f'{help_text} (shard "local": the coordinator; NaN: the shard did not answer).',
            labels=["shard"],
        )
        for t in totals:
            value = getattr(t, attr)
            family.add_metric([t.shard], value if t.up or attr == "partitions" else math.nan)
        yield family


def families(
    data: dict[str, Any], top_partitions: int, top_classes: int | None
) -> Iterator[Metric]:
    """The metric families of one ``metrics.collect()`` snapshot."""
    ov: stats.Overview = data["_overview"]
    largest = _largest(ov.partitions, top_partitions)
    for name, kind, help_text, attr in PER_PARTITION:
        family = _family(
            name,
            kind,
            f"{help_text} of one of the {top_partitions} largest activity_grades partitions.",
            PARTITION_LABELS,
        )
        for p in largest:
            family.add_metric(
                [p.class_id, p.term_id or "", p.table_name, p.status, p.shard], getattr(p, attr)
            )
        yield family
    by_status = GaugeMetricFamily(
        "activity_grades_partitions", "Registered partitions by status.", labels=["status"]
    )
    for status, n in sorted(data["partitions_by_status"].items()):
        by_status.add_metric([status], n)
    yield by_status
    yield from _class_families(ov, top_classes)
    yield from _term_families(ov)
    yield from _shard_families(ov)
    for name, help_text, value in SCALARS:
        yield GaugeMetricFamily(name, help_text, value=_value(value(data)))
    yield from _replica_families(data["_replicas"])
    yield up(True)


def _replica_families(states: list[Any]) -> Iterator[Metric]:
    """Per read replica (``READ_REPLICAS``): fit to read, and its lag (NaN: unknown)."""
    if not states:
        return
    fit = GaugeMetricFamily(
        "activity_grades_replica_fit",
        "1 when reporting reads may go to the read replica, 0 when they go to the primary.",
        labels=["replica"],
    )
    lag = GaugeMetricFamily(
        "activity_grades_replica_lag_seconds",
        "Seconds the read replica's replay is behind the primary (NaN: unknown).",
        labels=["replica"],
    )
    behind = GaugeMetricFamily(
        "activity_grades_replica_lag_bytes",
        "Bytes of WAL the read replica has not replayed yet (NaN: unknown).",
        labels=["replica"],
    )
    for r in states:
        fit.add_metric([r.alias], int(r.ok))
        lag.add_metric([r.alias], _value(r.lag_seconds))
        behind.add_metric([r.alias], _value(r.lag_bytes))
    yield from (fit, lag, behind)


def up(read: bool) -> Metric:
    """``activity_grades_metrics_up``: 1 when the snapshot could be read, 0 when not."""
    return GaugeMetricFamily(
        "activity_grades_metrics_up",
        "1 when the app's metrics could be read from the database, 0 when not.",
        value=int(read),
    )


class PartitionCollector(Collector):
    """Collects the app's metrics at each scrape (one catalog snapshot).

    Args:
        using: the database alias to read.
        top_partitions: per-partition series for this many (None: METRICS_TOP_PARTITIONS).
        top_classes: per-class series for this many (None: METRICS_TOP_CLASSES).
    """

    def __init__(
        self,
        using: str = "default",
        top_partitions: int | None = None,
        top_classes: int | None = None,
    ) -> None:
        self.using = using
        self.top_partitions = top_partitions
        self.top_classes = top_classes

    def collect(self) -> Iterable[Metric]:
        """The families of a new snapshot; only ``activity_grades_metrics_up 0`` when the
        database cannot be read, so the rest of a project's ``/metrics`` still answers."""
        try:
            data = metrics.collect(self.using)
        except DatabaseError:
            logger.warning("metrics: could not read the database", exc_info=True)
            return [up(False)]
        return list(self.families_of(data))

    def families_of(self, data: dict[str, Any]) -> Iterator[Metric]:
        """The families of an existing ``metrics.collect()`` snapshot."""
        top = self.top_partitions
        classes = self.top_classes
        return families(
            data,
            app_settings.METRICS_TOP_PARTITIONS if top is None else top,
            app_settings.METRICS_TOP_CLASSES if classes is None else classes,
        )

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not read the database (the registry then skips its
        check for duplicate names, and collects only at scrapes)."""
        return []


class _Snapshot(Collector):
    def __init__(self, collector: PartitionCollector, data: dict[str, Any]) -> None:
        self.collector, self.data = collector, data

    def collect(self) -> Iterable[Metric]:
        return self.collector.families_of(self.data)


def exposition(data: dict[str, Any], accept: str = "", using: str = "default") -> tuple[bytes, str]:
    """``collect()``'s snapshot in the text format the ``Accept`` header asks for.

    Returns:
        (body, content type): Prometheus text 0.0.4 by default, OpenMetrics on request.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(PartitionCollector(using), data))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def register(registry: CollectorRegistry = REGISTRY, using: str = "default") -> PartitionCollector:
    """Add a ``PartitionCollector`` to ``registry`` (default: prometheus_client's REGISTRY)."""
    collector = PartitionCollector(using)
    registry.register(collector)
    return collector
