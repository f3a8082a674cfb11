"""What PostgreSQL's catalog says about the app's tables: markers, columns, sizes, indexes.

Every query here reads the catalog or the statistics views for the whole tree at once
(a fixed number of queries, whatever the number of partitions); ``exact_count`` is the
one that reads a table.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from psycopg import sql

from ..core.constants import PARENT, PARENT_CHECK, ROUTE_TRIGGER, Status
from .connection import Cursor, execute, fetch_dicts, fetch_rows, fetch_value

__all__ = [
    "ROW_ESTIMATE",
    "TABLE_OF_ROW",
    "analyze",
    "columns_of",
    "parent_oid",
    "IndexSignature",
    "DateKind",
    "constraint_exclusion",
    "date_kind",
    "exact_count",
    "foreign_key_target",
    "grade_columns",
    "has_extension",
    "partition_stats",
    "slow_statements",
    "has_parent_check",
    "index_signatures",
    "lms_table",
    "lock_capacity",
    "tree_relations",
    "lms_table_in",
    "marker_of",
    "names_by_table",
    "rows_in_parent",
    "route_trigger_state",
    "tree",
    "estimated_live_rows",
]

# Rows of a table aliased ``c`` (pg_class) / ``s`` (pg_stat_user_tables). Live tuples from
# the statistics collector are fresh after writes, reltuples only after ANALYZE: take the
# larger so a new partition does not show 0 until it is analyzed.
ROW_ESTIMATE = sql.SQL("greatest(coalesce(s.n_live_tup, 0), coalesce(c.reltuples::bigint, 0), 0)")

# The table that holds each row of a query on the parent (aliased as the parent).
TABLE_OF_ROW = "activity_grades.tableoid::regclass::text"

# (columns, unique, primary, access method) of one index.
IndexSignature = tuple[tuple[str, ...], bool, bool, str]


def marker_of(cur: Cursor, table: str) -> str | None:
    """The ownership comment of a table (None: no comment or no table)."""
    cur.execute("SELECT obj_description(to_regclass(quote_ident(%s)), 'pg_class')", [table])
    marker: str | None = cur.fetchone()[0]
    return marker


def grade_columns(cur: Cursor) -> list[str]:
    """The columns of ``activity_grades`` in table order (the archive has them all)."""
    cur.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [PARENT],
    )
    return [r[0] for r in cur.fetchall()]


def exact_count(cur: Cursor, table: str) -> int:
    """``count(*)`` of the table itself (``ONLY``: not its children)."""
    execute(cur, sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table)))
    return int(cur.fetchone()[0])


def rows_in_parent(cur: Cursor) -> int:
    """Rows stored in the parent itself: always 0 unless something bypassed the trigger."""
    return exact_count(cur, PARENT)


def estimated_live_rows(using: str = "default") -> int:
    """Estimated rows of every live partition, from the catalog."""
    query = sql.SQL(
        "SELECT coalesce(sum({}), 0) FROM activity_grades_partition p"
        " JOIN pg_class c ON c.oid = to_regclass(quote_ident(p.table_name))"
        " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE p.status = %s"
    ).format(ROW_ESTIMATE)
    return int(fetch_value(using, query, [Status.LIVE.value]))


def route_trigger_state(cur: Cursor) -> str | None:
    """``pg_trigger.tgenabled`` of the routing trigger on the parent (None: missing)."""
    cur.execute(
        "SELECT tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
        [PARENT, ROUTE_TRIGGER],
    )
    row = cur.fetchone()
    return row[0] if row else None


def has_parent_check(cur: Cursor) -> bool:
    """Whether the parent has its ``CHECK (false) NO INHERIT``."""
    cur.execute(
        "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s "
        "AND contype = 'c' AND connoinherit",
        [PARENT, PARENT_CHECK],
    )
    return cur.fetchone() is not None


def constraint_exclusion(cur: Cursor) -> str:
    cur.execute("SELECT current_setting('constraint_exclusion')")
    value: str = cur.fetchone()[0]
    return value


_TREE_SQL = """
WITH RECURSIVE tree(relid, parent, depth) AS (
    SELECT i.inhrelid, i.inhparent, 1 FROM pg_inherits i WHERE i.inhparent = to_regclass(%s)
    UNION ALL
    SELECT i.inhrelid, i.inhparent, t.depth + 1 FROM pg_inherits i JOIN tree t
        ON i.inhparent = t.relid
)
SELECT t.relid, c.relname, obj_description(t.relid, 'pg_class'), t.depth
  FROM tree t JOIN pg_class c ON c.oid = t.relid
"""


def tree(cur: Cursor) -> list[tuple[int, str, str | None, int]]:
    """(oid, name, comment, depth) of every table that inherits from the parent."""
    cur.execute(_TREE_SQL, [PARENT])
    return cur.fetchall()


_INDEX_SQL = """
SELECT x.indrelid::regclass::text AS tbl, ic.relname, x.indisunique, x.indisprimary,
       am.amname, x.indexprs IS NOT NULL OR x.indpred IS NOT NULL AS complex,
       array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             ORDER BY k.n)::text[] AS cols
  FROM pg_index x
  JOIN pg_class ic ON ic.oid = x.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE x.indrelid = ANY(%s::oid[])
"""


def index_signatures(cur: Cursor, oids: list[int]) -> list[tuple[str, str, IndexSignature, bool]]:
    """(table, index name, signature, is expression/partial) of every index of ``oids``."""
    cur.execute(_INDEX_SQL, [oids])
    return [
        (tbl, name, (tuple(cols), bool(unique), bool(primary), am), bool(complex_))
        for tbl, name, unique, primary, am, complex_, cols in cur.fetchall()
    ]


def parent_oid(cur: Cursor) -> int:
    cur.execute("SELECT to_regclass(%s)::oid", [PARENT])
    oid: int = cur.fetchone()[0]
    return oid


_NAMES_SQL = {
    "constraints": "SELECT conrelid, conname FROM pg_constraint WHERE contype = 'c' "
    "AND conrelid = ANY(%s::oid[])",
    "triggers": "SELECT tgrelid, tgname FROM pg_trigger WHERE tgrelid = ANY(%s::oid[]) "
    "AND NOT tgisinternal AND tgenabled <> 'D'",
}


def names_by_table(cur: Cursor, kind: str, oids: list[int]) -> dict[int, set[str]]:
    """CHECK constraint (``kind="constraints"``) or enabled trigger names per table oid."""
    cur.execute(_NAMES_SQL[kind], [oids])
    have: dict[int, set[str]] = {}
    for oid, name in cur.fetchall():
        have.setdefault(oid, set()).add(name)
    return have


def lock_capacity(using: str = "default") -> int:
    """Slots of the server's shared lock table: max_locks_per_transaction x
    (max_connections + max_prepared_transactions)."""
    value = fetch_value(
        using,
        "SELECT current_setting('max_locks_per_transaction')::int * "
        "(current_setting('max_connections')::int "
        "+ current_setting('max_prepared_transactions')::int)",
    )
    return int(value)


def lms_table(name: str) -> sql.Identifier:
    """An LMS table named by a setting: ``"quiz"``, or ``"lms.quiz"`` in schema ``lms``.

    The first dot separates the schema; each part is quoted as it is (case kept).
    """
    return sql.Identifier(*name.split(".", 1))


def lms_table_in(cur: Cursor, name: str) -> sql.Identifier:
    """``lms_table``, with the schema the table is found in on ``search_path`` when the
    setting names none: SQL generated for the triggers must not depend on the session's
    search_path (a table not created yet stays unqualified)."""
    if "." in name:
        return lms_table(name)
    cur.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(%s)",
        [sql.Identifier(name).as_string()],
    )
    row = cur.fetchone()
    return sql.Identifier(row[0], name) if row else sql.Identifier(name)


def columns_of(using: str, table: str) -> dict[str, str] | None:
    """Column name -> SQL type of a table (a plain or schema-qualified name); None: no table."""
    found = fetch_rows(
        using,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        [lms_table(table).as_string()],
    )
    if not found:
        exists = fetch_value(
            using, "SELECT to_regclass(%s) IS NOT NULL", [lms_table(table).as_string()]
        )
        return {} if exists else None
    return dict(found)


# How a term's start or end column holds its day (``date_kind``).
DateKind = Literal["date", "timestamp", "timestamptz"]

_TIMESTAMP = re.compile(r"timestamp(\(\d+\))? with(out)? time zone")


def date_kind(sql_type: str) -> DateKind | None:
    """``date``, ``timestamp`` or ``timestamptz`` for a ``format_type`` name; None: neither."""
    if sql_type == "date":
        return "date"
    found = _TIMESTAMP.fullmatch(sql_type)
    if not found:
        return None
    return "timestamp" if found[2] else "timestamptz"


def foreign_key_target(using: str, table: str, column: str) -> tuple[str, str] | None:
    """(table, column) that ``table.column`` alone refers to by a foreign key; None: none."""
    found = fetch_rows(
        using,
        "SELECT r.relname, ra.attname FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "JOIN pg_class r ON r.oid = c.confrelid "
        "JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] "
        "WHERE c.contype = 'f' AND c.conrelid = to_regclass(%s) "
        "AND cardinality(c.conkey) = 1 AND a.attname = %s ORDER BY c.conname LIMIT 1",
        [lms_table(table).as_string(), column],
    )
    return (found[0][0], found[0][1]) if found else None


def analyze(cur: Cursor, table: str) -> None:
    execute(cur, sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


# The figures of one table ``c`` (pg_class, NULL when missing) with its statistics ``s``:
# the select list and joins shared by partition_stats and db.shard_stats (a shard's tables).
TABLE_FIGURES = sql.SQL("""c.oid IS NOT NULL AS present,
       {rows} AS rows,
       z.heap - z.toast AS table_bytes, z.idx AS index_bytes, z.toast AS toast_bytes,
       z.heap + z.idx AS total_bytes,
       coalesce(s.n_dead_tup, 0) AS dead_rows, coalesce(s.seq_scan, 0) AS seq_scan,
       coalesce(s.seq_tup_read, 0) AS seq_tup_read,
       coalesce(s.idx_scan, 0) AS idx_scan, coalesce(s.idx_tup_fetch, 0) AS idx_tup_fetch,
       coalesce(s.n_tup_ins, 0) AS inserted, coalesce(s.n_tup_upd, 0) AS updated,
       coalesce(s.n_tup_del, 0) AS deleted,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       coalesce(s.last_autovacuum > s.last_vacuum OR s.last_vacuum IS NULL, false)
           AND s.last_autovacuum IS NOT NULL AS last_vacuum_auto,
       coalesce(s.last_autoanalyze > s.last_analyze OR s.last_analyze IS NULL, false)
           AND s.last_autoanalyze IS NOT NULL AS last_analyze_auto
""").format(rows=ROW_ESTIMATE)
TABLE_FIGURES_JOINS = sql.SQL("""  LEFT JOIN pg_class c ON c.oid = r.oid
  LEFT JOIN pg_stat_user_tables s ON s.relid = r.oid
  -- Three size calls per table (each stats the table's files): heap incl. TOAST,
  -- indexes, TOAST; the total is heap + indexes, as pg_total_relation_size computes it.
  CROSS JOIN LATERAL (
      SELECT coalesce(pg_table_size(c.oid), 0) AS heap,
             coalesce(pg_indexes_size(c.oid), 0) AS idx,
             CASE WHEN c.reltoastrelid = 0 OR c.oid IS NULL THEN 0
                  ELSE coalesce(pg_total_relation_size(c.reltoastrelid), 0) END AS toast
  ) z
""")


# One row per registered partition: sizes, estimates and activity from the catalog and
# the statistics views, joined to the registry. Never a query per partition or count(*).
_STATS_SQL = sql.SQL("""
WITH reg AS (
    SELECT p.id, p.class_id, p.term_id, p.table_name, p.parent_table, p.status,
           p.starts_at, p.ends_at, p.academic_year, p.granularity, false AS month,
           p.starts_at AS term_starts_at, to_regclass(quote_ident(p.table_name)) AS oid
      FROM activity_grades_partition p
    UNION ALL
    -- Month tables (migration 0015), each with its term's year and first instant.
    SELECT m.id, m.class_id, m.term_id, m.table_name, m.parent_table, m.status,
           m.starts_at, m.ends_at, t.academic_year, 'month', true,
           t.starts_at, to_regclass(quote_ident(m.table_name))
      FROM activity_grades_month m
      LEFT JOIN activity_grades_partition t ON t.table_name = m.parent_table
)
SELECT r.id, r.class_id, r.term_id, r.table_name, r.parent_table, r.status,
       r.starts_at, r.ends_at, r.academic_year, r.granularity, r.month, r.term_starts_at,
       {figures}
  FROM reg r
{joins} ORDER BY r.class_id, r.term_starts_at NULLS FIRST, r.term_id, r.month, r.starts_at
""").format(figures=TABLE_FIGURES, joins=TABLE_FIGURES_JOINS)


def partition_stats(using: str = "default") -> list[dict[str, Any]]:
    """Catalog figures of every registered partition (month tables included), one dict
    per partition."""
    return fetch_dicts(using, _STATS_SQL)


def has_extension(using: str, name: str) -> bool:
    return bool(fetch_value(using, "SELECT 1 FROM pg_extension WHERE extname = %s", [name]))


def slow_statements(using: str, limit: int) -> list[tuple[str, int, float, float, int]]:
    """(query, calls, total ms, mean ms, rows) of the slowest statements on the app's tables.

    Needs pg_stat_statements loaded; run it in a savepoint, as it raises when it is not.
    """
    return fetch_rows(
        using,
        "SELECT query, calls, total_exec_time, mean_exec_time, rows FROM pg_stat_statements "
        "WHERE query ILIKE %s AND query NOT ILIKE %s ORDER BY mean_exec_time DESC LIMIT %s",
        ["%activity_grades%", "%pg_stat_statements%", limit],
    )


def tree_relations(using: str = "default") -> tuple[int, int]:
    """(tables, relations) of the tree under the parent: a query through the parent locks
    every one of those relations (each table and each of its indexes)."""
    row = fetch_rows(
        using,
        "WITH RECURSIVE tree(oid) AS (SELECT to_regclass('activity_grades')::oid "
        "UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid) "
        "SELECT count(*), count(*) + (SELECT count(*) FROM pg_index x "
        "WHERE x.indrelid IN (SELECT oid FROM tree)) FROM tree",
    )[0]
    return int(row[0]), int(row[1])
