"""The dashboard's table of partitions: its columns, filters and sorting (in Python).

The registry is small next to the data (thousands of rows at most), and its statistics
come from one catalog query, so the page filters, sorts and pages the list in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.constants import Status
from ..reporting.stats import PartitionStats

__all__ = ["COLUMNS", "STATUSES", "Column", "filter_partitions", "sort_partitions"]

PER_PAGE = 100


@dataclass(frozen=True)
class Column:
    key: str  # attribute of PartitionStats, also the ?o= sort key
    label: str
    numeric: bool = False


COLUMNS = (
    Column("class_id", "Class"),
    Column("term_id", "Term"),
    Column("table_name", "Table"),
    Column("status", "Status"),
    Column("shard", "Placement"),  # 'local' or the shard's alias (docs/sharding.md)
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
STATUSES = tuple(s.value for s in Status)


def _sort_value(detail: PartitionStats, key: str) -> tuple[bool, Any]:
    # Class ids sort in their own type (overview ranked them), not as text.
    value = detail.class_rank if key == "class_id" else getattr(detail, key)
    # None sorts first ascending, last descending, without comparing None to values.
    return (value is not None, value if value is not None else 0)


def filter_partitions(
    parts: list[PartitionStats], params: Mapping[str, Any]
) -> list[PartitionStats]:
    """Apply ?class=, ?term=, ?status=, ?kind=class|term|month, ?shard= (``local`` or a
    shard's alias) and ?q= (class id contains)."""
    class_id, term_id, shard = params.get("class"), params.get("term"), params.get("shard")
    status, kind, q = params.get("status"), params.get("kind"), (params.get("q") or "").strip()
    out = parts
    if class_id:
        out = [p for p in out if p.class_id == class_id]
    if term_id:
        out = [p for p in out if (p.term_id or "-") == term_id]
    if status in STATUSES:
        out = [p for p in out if p.status == status]
    if kind in ("class", "term", "month"):
        out = [p for p in out if p.kind == kind]
    if shard:
        out = [p for p in out if p.shard == shard]
    if q:
        needle = q.lower()
        out = [p for p in out if needle in p.class_id.lower()]
    return out


def sort_partitions(
    parts: list[PartitionStats], order: str | None
) -> tuple[list[PartitionStats], str, bool]:
    key = (order or "").lstrip("-")
    if key not in SORT_KEYS:
        return parts, "", False
    desc = (order or "").startswith("-")
    return sorted(parts, key=lambda p: _sort_value(p, key), reverse=desc), key, desc
