"""Sizes and row counts of the partitions, from the catalog (cheap at any scale)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db import connections
from psycopg import sql


@dataclass
class PartitionStats:
    class_id: str
    term_id: str | None
    table_name: str
    status: str
    rows: int  # estimate (pg_class.reltuples / live tuples), exact with exact=True
    total_bytes: int
    exact: bool

    def as_dict(self) -> dict:
        return asdict(self)


class _Totals:
    """Sums over ``self.partitions`` (anything with ``rows`` and ``total_bytes``)."""

    partitions: list

    @property
    def total_rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def total_bytes(self) -> int:
        return sum(p.total_bytes for p in self.partitions)


@dataclass
class Report(_Totals):
    partitions: list[PartitionStats]
    rows_in_parent: int


# Live tuples from the statistics collector are fresh after writes; reltuples only
# after ANALYZE. Take the larger so a new partition does not show 0 until analyzed.
_STATS_SQL = """
SELECT p.class_id, p.term_id, p.table_name, p.status,
       greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint, 0) AS rows,
       coalesce(pg_total_relation_size(c.oid), 0) AS total_bytes
  FROM activity_grades_partition p
  LEFT JOIN pg_class c
         ON c.oid = to_regclass(quote_ident(p.table_name))
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 ORDER BY p.class_id, p.starts_at NULLS FIRST, p.term_id
"""


def report(exact: bool = False, using: str = "default") -> Report:
    """Collect one row per registered partition.

    Args:
        exact: count rows with ``count(*)`` on each table (reads every partition).
    """
    with connections[using].cursor() as cursor:
        cursor.execute(_STATS_SQL)
        parts = [PartitionStats(*row, exact=False) for row in cursor.fetchall()]
        if exact:
            for part in parts:
                if part.status == "live":
                    query = sql.SQL("SELECT count(*) FROM ONLY {}").format(
                        sql.Identifier(part.table_name)
                    )
                    cursor.execute(query.as_string(cursor.connection))
                    part.rows, part.exact = cursor.fetchone()[0], True
        # ONLY: rows sitting in the parent itself, which must always be 0.
        cursor.execute("SELECT count(*) FROM ONLY activity_grades")
        in_parent = cursor.fetchone()[0]
    return Report(parts, in_parent)


# ---------------------------------------------------------------------------
# Richer per-partition statistics for the admin page, the metrics endpoint and
# partition_report. One catalog query joined to the registry, whatever the
# number of partitions: never a query per partition, never count(*).
# ---------------------------------------------------------------------------


@dataclass
class PartitionDetail:
    """Catalog figures of one registered partition (estimates, never count(*))."""

    id: int
    class_id: str
    term_id: str | None
    table_name: str
    parent_table: str
    status: str
    starts_at: object
    ends_at: object
    academic_year: str | None
    present: bool  # the table exists in the database
    rows: int  # estimated live rows
    table_bytes: int  # heap + free space map + visibility map, without TOAST
    index_bytes: int
    toast_bytes: int  # TOAST table and its index
    total_bytes: int
    dead_rows: int
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    idx_tup_fetch: int
    inserted: int
    updated: int
    deleted: int
    last_vacuum: object  # latest of manual and auto vacuum
    last_analyze: object  # latest of manual and auto analyze
    last_vacuum_auto: bool
    last_analyze_auto: bool
    share: float = 0.0  # of the total bytes of every partition, 0..1

    @property
    def kind(self) -> str:
        return "class" if self.term_id is None else "term"

    def as_dict(self) -> dict:
        out = asdict(self)
        for key in ("starts_at", "ends_at", "last_vacuum", "last_analyze"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        out["kind"] = self.kind
        return out


@dataclass
class TermTotal:
    term_id: str | None  # None: the class tables (rows outside every term)
    partitions: int
    rows: int
    total_bytes: int
    share: float = 0.0


@dataclass
class Overview(_Totals):
    """Every partition plus the totals the admin page and the endpoint show."""

    partitions: list[PartitionDetail]
    rows_in_parent: int

    @property
    def largest(self) -> PartitionDetail | None:
        return max(self.partitions, key=lambda p: p.total_bytes, default=None)

    @property
    def rows_in_class_tables(self) -> int:
        """Estimated rows sitting in class tables (created outside every term)."""
        return sum(p.rows for p in self.partitions if p.term_id is None)

    def by_term(self) -> list[TermTotal]:
        totals: dict[str | None, TermTotal] = {}
        order: dict[str | None, object] = {}
        for p in self.partitions:
            t = totals.setdefault(p.term_id, TermTotal(p.term_id, 0, 0, 0))
            t.partitions += 1
            t.rows += p.rows
            t.total_bytes += p.total_bytes
            if p.starts_at is not None:
                order.setdefault(p.term_id, p.starts_at)
        out = sorted(
            totals.values(),
            key=lambda t: (t.term_id is not None, str(order.get(t.term_id, "")), t.term_id or ""),
        )
        biggest = max((t.total_bytes for t in out), default=0)
        for t in out:
            t.share = t.total_bytes / biggest if biggest else 0.0
        return out


_DETAIL_SQL = """
WITH reg AS (
    SELECT p.*, to_regclass(quote_ident(p.table_name)) AS oid
      FROM activity_grades_partition p
)
SELECT r.id, r.class_id, r.term_id, r.table_name, r.parent_table, r.status,
       r.starts_at, r.ends_at, r.academic_year,
       c.oid IS NOT NULL AS present,
       greatest(coalesce(s.n_live_tup, 0), coalesce(c.reltuples::bigint, 0), 0) AS rows,
       z.heap - z.toast, z.idx, z.toast, z.heap + z.idx,
       coalesce(s.n_dead_tup, 0), coalesce(s.seq_scan, 0), coalesce(s.seq_tup_read, 0),
       coalesce(s.idx_scan, 0), coalesce(s.idx_tup_fetch, 0),
       coalesce(s.n_tup_ins, 0), coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0),
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       coalesce(s.last_autovacuum > s.last_vacuum OR s.last_vacuum IS NULL, false)
           AND s.last_autovacuum IS NOT NULL,
       coalesce(s.last_autoanalyze > s.last_analyze OR s.last_analyze IS NULL, false)
           AND s.last_autoanalyze IS NOT NULL
  FROM reg r
  LEFT JOIN pg_class c ON c.oid = r.oid
  LEFT JOIN pg_stat_user_tables s ON s.relid = r.oid
  -- Three size calls per table (each stats the table's files): heap incl. TOAST,
  -- indexes, TOAST; the total is heap + indexes, as pg_total_relation_size computes it.
  CROSS JOIN LATERAL (
      SELECT coalesce(pg_table_size(c.oid), 0) AS heap,
             coalesce(pg_indexes_size(c.oid), 0) AS idx,
             CASE WHEN c.reltoastrelid = 0 OR c.oid IS NULL THEN 0
                  ELSE coalesce(pg_total_relation_size(c.reltoastrelid), 0) END AS toast
  ) z
 ORDER BY r.class_id, r.starts_at NULLS FIRST, r.term_id
"""


def overview(using: str = "default") -> Overview:
    """Every registered partition with sizes, estimates and activity, in two queries."""
    with connections[using].cursor() as cursor:
        cursor.execute(_DETAIL_SQL)
        parts = [PartitionDetail(*row) for row in cursor.fetchall()]
        cursor.execute("SELECT count(*) FROM ONLY activity_grades")
        in_parent = cursor.fetchone()[0]
    total = sum(p.total_bytes for p in parts)
    for p in parts:
        p.share = p.total_bytes / total if total else 0.0
    return Overview(parts, in_parent)


@dataclass
class StatementStats:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int


@dataclass
class QueryStats:
    """The slowest statements touching activity_grades, when pg_stat_statements is usable."""

    available: bool
    reason: str  # why not, when not available
    statements: list[StatementStats]


def slow_statements(limit: int = 10, using: str = "default") -> QueryStats:
    """Read pg_stat_statements if the extension is installed and loaded."""
    from django.db import DatabaseError, transaction

    conn = connections[using]
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        if cursor.fetchone() is None:
            return QueryStats(False, "the pg_stat_statements extension is not installed", [])
        try:
            with transaction.atomic(using=using):
                cursor.execute(
                    "SELECT query, calls, total_exec_time, mean_exec_time, rows "
                    "FROM pg_stat_statements "
                    "WHERE query ILIKE %s AND query NOT ILIKE %s "
                    "ORDER BY mean_exec_time DESC LIMIT %s",
                    ["%activity_grades%", "%pg_stat_statements%", limit],
                )
                rows = cursor.fetchall()
        except DatabaseError as exc:  # not in shared_preload_libraries, no privilege
            return QueryStats(False, str(exc).strip().splitlines()[0], [])
    return QueryStats(True, "", [StatementStats(*row) for row in rows])
