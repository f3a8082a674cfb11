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


@dataclass
class Report:
    partitions: list[PartitionStats]
    rows_in_parent: int

    @property
    def total_rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def total_bytes(self) -> int:
        return sum(p.total_bytes for p in self.partitions)


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
