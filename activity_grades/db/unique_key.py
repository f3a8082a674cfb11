"""The uniqueness key (activity_id, student_id) in the database: where it is, and switching it.

Three kinds of table carry it, each as a ``UNIQUE`` constraint while the key is on and as a
plain index of the same columns while it is off (``ACTIVITY_GRADES['UNIQUE_KEY'] = None``):

- the key table ``activity_grades_key``, on (student_id, activity_id): the one index that
  spans the tree, so the one that decides; ``activity_grades_unique_key()`` reads it, and
  new partitions follow it (``activity_grades_partition_ddl`` v2);
- the parent ``activity_grades``: it holds no rows, but its constraint is what
  ``INSERT ... ON CONFLICT (activity_id, student_id)`` and introspection see;
- every live partition, on (activity_id, student_id).

The plain index keeps lookups of a student's grades (key table) and of one (activity,
student) fast in both modes. ``states`` reads all of them in one catalog query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg import sql

from ..core.constants import KEY_TABLE, PARENT, REGISTRY_TABLE, Status
from .connection import Cursor, execute

__all__ = [
    "KEY_CONSTRAINT",
    "KEY_INDEX",
    "TableKind",
    "KeyState",
    "database_key_on",
    "duplicates",
    "lock",
    "states",
    "switch",
    "switch_statements",
]

# The key table's constraint (0001) and the plain index that replaces it when off.
KEY_CONSTRAINT = "activity_grades_unique_student_activity"
KEY_INDEX = "activity_grades_student_activity_idx"
# The parent's constraint (0001) and its plain twin.
PARENT_CONSTRAINT = "activity_grades_activity_student_key"
PARENT_INDEX = "activity_grades_activity_student_idx"
# Suffixes of activity_grades_index_name for a partition's constraint and plain index.
PARTITION_SUFFIXES = ("activity_student_key", "activity_student_idx")

TableKind = Literal["key table", "parent", "partition"]


@dataclass(frozen=True)
class KeyState:
    """How one table carries the key now, and the names it gets in either mode."""

    table: str
    kind: TableKind
    columns: tuple[str, ...]
    constraint: str  # name of the UNIQUE constraint while the key is on
    index: str  # name of the plain index while it is off
    unique: tuple[str, ...]  # unique indexes on ``columns`` (constraints or not)
    unique_constraints: tuple[str, ...]  # those of them that back a constraint
    plain: tuple[str, ...]  # plain indexes on ``columns``

    def agrees(self, on: bool) -> bool:
        """Whether the table already is what mode ``on`` wants."""
        return bool(self.unique) if on else not self.unique and bool(self.plain)


_KINDS: dict[int, TableKind] = {0: "key table", 1: "parent", 2: "partition"}

# Every table that carries the key, with its columns and its names in both modes; then
# the btree indexes (no expression, no predicate, not the primary key) on those columns.
_STATES_SQL = sql.SQL("""
WITH target(ord, table_name, cols, constraint_name, index_name) AS (
    SELECT 0, {key}::text, ARRAY['student_id', 'activity_id'], {key_con}::text, {key_idx}::text
    UNION ALL
    SELECT 1, {parent}, ARRAY['activity_id', 'student_id'], {parent_con}, {parent_idx}
    UNION ALL
    SELECT 2, p.table_name, ARRAY['activity_id', 'student_id'],
           activity_grades_index_name(p.table_name, {suffix_con}),
           activity_grades_index_name(p.table_name, {suffix_idx})
      FROM {registry} p WHERE p.status = {live}
), t AS (
    SELECT target.*, to_regclass(quote_ident(target.table_name)) AS oid FROM target
)
SELECT t.ord, t.table_name, t.cols, t.constraint_name, t.index_name,
       coalesce(array_agg(ic.relname ORDER BY ic.relname)
                FILTER (WHERE x.indisunique), '{{}}'),
       coalesce(array_agg(ic.relname ORDER BY ic.relname)
                FILTER (WHERE x.indisunique AND EXISTS (
                    SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid
                       AND k.conrelid = x.indrelid AND k.contype = 'u')), '{{}}'),
       coalesce(array_agg(ic.relname ORDER BY ic.relname)
                FILTER (WHERE NOT x.indisunique), '{{}}')
  FROM t
  LEFT JOIN pg_index x
         ON x.indrelid = t.oid AND NOT x.indisprimary
        AND x.indexprs IS NULL AND x.indpred IS NULL
        AND array(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n)
                    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                   ORDER BY k.n) = t.cols
  LEFT JOIN pg_class ic ON ic.oid = x.indexrelid
  LEFT JOIN pg_am am ON am.oid = ic.relam
 WHERE t.oid IS NOT NULL AND (x.indexrelid IS NULL OR am.amname = 'btree')
   AND ({table}::text IS NULL OR t.table_name = {table})
 GROUP BY t.ord, t.table_name, t.cols, t.constraint_name, t.index_name
 ORDER BY t.ord, t.table_name
""")


def states(cur: Cursor, table: str | None = None) -> list[KeyState]:
    """The key table, the parent and every live partition (or only ``table``), in that order."""
    query = _STATES_SQL.format(
        key=sql.Literal(KEY_TABLE),
        key_con=sql.Literal(KEY_CONSTRAINT),
        key_idx=sql.Literal(KEY_INDEX),
        parent=sql.Literal(PARENT),
        parent_con=sql.Literal(PARENT_CONSTRAINT),
        parent_idx=sql.Literal(PARENT_INDEX),
        suffix_con=sql.Literal(PARTITION_SUFFIXES[0]),
        suffix_idx=sql.Literal(PARTITION_SUFFIXES[1]),
        registry=sql.Identifier(REGISTRY_TABLE),
        live=sql.Literal(Status.LIVE.value),
        table=sql.Literal(table),
    )
    execute(cur, query)
    return [
        KeyState(name, _KINDS[kind], tuple(cols), con, idx, tuple(u), tuple(uc), tuple(p))
        for kind, name, cols, con, idx, u, uc, p in cur.fetchall()
    ]


def database_key_on(cur: Cursor) -> bool:
    """Whether this database keeps (activity, student) unique (the key table decides)."""
    cur.execute("SELECT activity_grades_unique_key()")
    on: bool = cur.fetchone()[0]
    return on


def duplicates(cur: Cursor, limit: int) -> tuple[int, list[tuple[str, str, int]]]:
    """(how many (activity, student) pairs have several grades, the first ``limit`` of them).

    Each listed as (activity, student, grades), most grades first. Reads the key table,
    one row per grade of the whole tree.
    """
    execute(
        cur,
        sql.SQL(
            "SELECT activity_id, student_id, n, count(*) OVER () FROM ("
            "SELECT activity_id, student_id, count(*) AS n FROM {} "
            "GROUP BY student_id, activity_id HAVING count(*) > 1) d "
            "ORDER BY n DESC, activity_id, student_id LIMIT %s"
        ).format(sql.Identifier(KEY_TABLE)),
        [limit],
    )
    rows = cur.fetchall()
    total = int(rows[0][3]) if rows else 0
    return total, [(a, s, int(n)) for a, s, n, _ in rows]


def lock(cur: Cursor, table: str) -> None:
    """SHARE ROW EXCLUSIVE on one table: its writers wait, its readers do not."""
    execute(
        cur,
        sql.SQL("LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE").format(sql.Identifier(table)),
    )


def switch_statements(state: KeyState, on: bool) -> list[sql.Composed]:
    """The DDL that makes one table carry the key as mode ``on`` wants (none: it does)."""
    table = sql.Identifier(state.table)
    columns = sql.SQL(", ").join(map(sql.Identifier, state.columns))
    out: list[sql.Composed] = []
    if on:
        if not state.unique:
            constraint = sql.Identifier(state.constraint)
            # Built first, then attached: the constraint is the index 0001 would have made.
            out.append(
                sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(constraint, table, columns)
            )
            out.append(
                sql.SQL("ALTER TABLE ONLY {} ADD CONSTRAINT {} UNIQUE USING INDEX {}").format(
                    table, constraint, constraint
                )
            )
        out += [sql.SQL("DROP INDEX {}").format(sql.Identifier(i)) for i in state.plain]
        return out
    if not state.plain:
        out.append(
            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(state.index), table, columns
            )
        )
    for name in state.unique:
        if name in state.unique_constraints:
            out.append(
                sql.SQL("ALTER TABLE ONLY {} DROP CONSTRAINT {}").format(
                    table, sql.Identifier(name)
                )
            )
        else:
            out.append(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return out


def switch(cur: Cursor, state: KeyState, on: bool) -> list[str]:
    """Run ``switch_statements`` in the caller's transaction; the statements run, as text."""
    done: list[str] = []
    for statement in switch_statements(state, on):
        text = statement.as_string(cur.connection)
        cur.execute(text)
        done.append(text)
    return done
