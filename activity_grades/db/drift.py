"""Drift between the registry, the tables, the key index and the LMS's terms (issue 12).

Hand-made changes the app did not make: a leaf dropped or taken out of the tree, a table
that carries the app's marker but no registry row, triggers disabled, key-index rows
without their grade (or grades without their key row), terms whose dates or academic year
changed after their partitions were made. The checks live in ``operations.repair``; this
module holds their SQL and the SQL of the safe repairs.

Every query reads the catalog or the registry at once, except the key-index comparison,
which walks the key index and each live table in id order, ``batch`` rows a statement
(``KeyBatch``), so it runs in bounded memory and short statements at any size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from psycopg import sql

from ..core.constants import (
    DETACHED_MARKER,
    KEY_TABLE,
    LEGACY_CLASS,
    PARENT,
    PARTITION_MARKER,
    Status,
)
from .connection import Cursor, execute

TERM_CHECK = "activity_grades_term_check"

__all__ = [
    "TERM_CHECK",
    "count_only",
    "Refiled",
    "refile",
    "replace_term_check",
    "set_bounds",
    "tables_of_class",
    "validate_term_check",
    "KeyBatch",
    "TermDrift",
    "create_trigger",
    "delete_keys",
    "delete_keys_of",
    "ddl_triggers",
    "disabled_triggers",
    "enable_trigger",
    "forget_partition",
    "key_rows_of",
    "keys_without_rows",
    "marked_without_registry",
    "missing_live",
    "not_inheriting",
    "reinherit",
    "rows_without_keys",
    "set_year",
    "term_drift",
    "upsert_keys",
]


def not_inheriting(cur: Cursor) -> list[tuple[str, str]]:
    """(table, parent) of live registry rows whose table exists but no longer inherits
    from the parent the registry names (``ALTER TABLE ... NO INHERIT`` by hand)."""
    cur.execute(
        "SELECT p.table_name, p.parent_table FROM activity_grades_partition p "
        "WHERE p.status = %s AND to_regclass(quote_ident(p.table_name)) IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM pg_inherits i "
        "WHERE i.inhrelid = to_regclass(quote_ident(p.table_name)) "
        "AND i.inhparent = to_regclass(quote_ident(p.parent_table))) ORDER BY p.table_name",
        [Status.LIVE.value],
    )
    return cur.fetchall()


def reinherit(cur: Cursor, table: str, parent: str) -> None:
    """Put a leaf back under its parent (its rows become visible through it again).

    PostgreSQL 16 and later refuse ``INHERIT`` while the table has triggers with
    transition tables (the key index's statement triggers), although such triggers may be
    created on a child: they are dropped, the table inherits, and they are created again
    from their own definitions, in the caller's transaction.
    """
    cur.execute(
        "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "WHERE t.tgrelid = to_regclass(quote_ident(%s)) AND NOT t.tgisinternal "
        "AND (t.tgoldtable IS NOT NULL OR t.tgnewtable IS NOT NULL) ORDER BY t.tgname",
        [table],
    )
    transition = cur.fetchall()
    name = sql.Identifier(table)
    for trigger, _definition in transition:
        execute(cur, sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(trigger), name))
    execute(cur, sql.SQL("ALTER TABLE {} INHERIT {}").format(name, sql.Identifier(parent)))
    for _trigger, definition in transition:
        # pg_get_triggerdef's text, from the catalog: the trigger exactly as it was.
        execute(cur, sql.SQL(definition))


def marked_without_registry(cur: Cursor) -> list[tuple[str, bool]]:
    """(table, in the tree) of tables marked as the app's partitions (or detached copies)
    beside the parent that no registry row names."""
    cur.execute(
        "SELECT c.relname, EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) "
        "FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = "
        "(SELECT relnamespace FROM pg_class WHERE oid = to_regclass(%s)) "
        "AND obj_description(c.oid, 'pg_class') = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM activity_grades_partition p "
        "WHERE p.table_name = c.relname) ORDER BY c.relname",
        [PARENT, [PARTITION_MARKER, DETACHED_MARKER]],
    )
    return [(name, bool(inherits)) for name, inherits in cur.fetchall()]


def key_rows_of(cur: Cursor, tables: list[str]) -> dict[str, int]:
    """Key-index rows that name the (class, term) of each registered table in ``tables``."""
    cur.execute(
        "SELECT p.table_name, count(k.id) FROM activity_grades_partition p "
        "JOIN activity_grades_key k ON k.class_id = p.class_id "
        "AND k.term_id IS NOT DISTINCT FROM p.term_id "
        "WHERE p.table_name = ANY(%s) GROUP BY p.table_name",
        [tables],
    )
    return dict(cur.fetchall())


def delete_keys_of(cur: Cursor, class_id: str, term_id: str | None) -> int:
    """Delete the key-index rows of one (class, term); the number deleted."""
    cur.execute(
        "DELETE FROM activity_grades_key WHERE class_id = %s AND term_id IS NOT DISTINCT FROM %s",
        [class_id, term_id],
    )
    return int(cur.rowcount)


def forget_partition(cur: Cursor, table: str) -> tuple[str, str | None] | None:
    """Delete the live registry row of ``table`` if the table is missing; its (class, term).

    The row is locked first and the table checked again in the same transaction, so a
    table restored meanwhile is never forgotten.
    """
    cur.execute(
        "SELECT id, class_id, term_id FROM activity_grades_partition "
        "WHERE table_name = %s AND status = %s FOR UPDATE",
        [table, Status.LIVE.value],
    )
    row = cur.fetchone()
    if row is None:
        return None
    cur.execute("SELECT to_regclass(quote_ident(%s)) IS NULL", [table])
    if not cur.fetchone()[0]:
        return None
    cur.execute("DELETE FROM activity_grades_partition WHERE id = %s", [row[0]])
    return row[1], row[2]


def disabled_triggers(cur: Cursor, oids: list[int]) -> list[tuple[str, str]]:
    """(table, trigger) of the app's triggers that exist but are disabled."""
    cur.execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
        "WHERE tgrelid = ANY(%s::oid[]) AND NOT tgisinternal AND tgenabled = 'D' "
        "AND tgname LIKE 'activity\\_grades\\_%%' ORDER BY 1, 2",
        [oids],
    )
    return cur.fetchall()


def enable_trigger(cur: Cursor, table: str, trigger: str) -> None:
    execute(
        cur,
        sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(
            sql.Identifier(table), sql.Identifier(trigger)
        ),
    )


def ddl_triggers(cur: Cursor) -> list[str]:
    """Names of the triggers the installed partition DDL gives each partition.

    Read from ``activity_grades_partition_ddl`` rather than a constant: between a code
    upgrade and its ``migrate`` the partitions lack the trigger the new migration adds, and
    the checks ``migrate`` runs first must not call that an error.
    """
    cur.execute(
        "SELECT split_part(s, ' ', 3) FROM activity_grades_partition_ddl(%s, %s, 'x', NULL, "
        "NULL, NULL) s WHERE s LIKE 'CREATE TRIGGER %%'",
        ["x", PARENT],
    )
    return [row[0] for row in cur.fetchall()]


def create_trigger(cur: Cursor, table: str, trigger: str) -> bool:
    """Create ``trigger`` on ``table`` as the partition DDL does; False: it has none such."""
    cur.execute(
        "SELECT s FROM activity_grades_partition_ddl(%s, %s, 'x', NULL, NULL, NULL) s "
        "WHERE s LIKE %s",
        [table, PARENT, f"CREATE TRIGGER {trigger} %"],
    )
    row = cur.fetchone()
    if row is None:
        return False
    cur.execute(row[0])
    return True


# -- the key index against the stored rows ------------------------------------------------


@dataclass
class KeyBatch:
    """One batch of a key-index comparison: how far it got and what it found."""

    last_id: str | None  # None: nothing left
    scanned: int
    found: list[tuple[str, str, str | None]]  # (id, class_id, term_id)
    unreadable: list[str] = field(default_factory=list)  # ids with a poison timestamp


def keys_without_rows(
    cur: Cursor, tables: dict[tuple[str, str | None], str], after: str, batch: int
) -> KeyBatch:
    """Key-index rows after id ``after`` (``batch`` of them, in id order) whose grade is
    not in the live table of their (class, term), or whose (class, term) has none.

    ``tables``: (class, term) -> live table (the registry). Each table of the batch is
    probed ``ONLY``, by primary key, never through the parent.
    """
    cur.execute(
        "SELECT id, class_id, term_id FROM activity_grades_key WHERE id > %s "
        "AND class_id <> %s ORDER BY id LIMIT %s",
        [after, LEGACY_CLASS, batch],
    )
    keys = cur.fetchall()
    if not keys:
        return KeyBatch(None, 0, [])
    by_table: dict[str | None, list[str]] = defaultdict(list)
    place = {}
    for grade_id, class_id, term_id in keys:
        by_table[tables.get((class_id, term_id))].append(grade_id)
        place[grade_id] = (class_id, term_id)
    missing = set(by_table.pop(None, []))
    for table, ids in by_table.items():
        assert table is not None
        cur.execute(
            sql.SQL(
                "SELECT i FROM unnest(%s::text[]) i "
                "WHERE NOT EXISTS (SELECT 1 FROM ONLY {} g WHERE g.id = i)"
            )
            .format(sql.Identifier(table))
            .as_string(cur.connection),
            [ids],
        )
        missing.update(row[0] for row in cur.fetchall())
    found = [(i, *place[i]) for i in sorted(missing)]
    return KeyBatch(keys[-1][0], len(keys), found)


def rows_without_keys(cur: Cursor, table: str, after: str, batch: int) -> KeyBatch:
    """Rows of ``table`` (``ONLY``) after id ``after`` whose key-index row is missing or
    names another (class, term), ``batch`` rows a statement."""
    cur.execute(
        sql.SQL(
            "WITH b AS (SELECT id, class_id, term_id, least(submitted_at, graded_at, "
            "created_at, updated_at, commitment_deadline) AS lo, greatest(submitted_at, "
            "graded_at, created_at, updated_at, commitment_deadline) AS hi "
            "FROM ONLY {} WHERE id > %s ORDER BY id LIMIT %s) "
            "SELECT max(b.id), count(*), coalesce(array_agg(ARRAY[b.id, b.class_id, b.term_id]) "
            "FILTER (WHERE k.id IS NULL OR k.class_id IS DISTINCT FROM b.class_id "
            "OR k.term_id IS DISTINCT FROM b.term_id), '{{}}'), "
            "coalesce(array_agg(b.id) FILTER (WHERE b.lo < '0001-01-01 00:00:00+00' "
            "OR b.hi >= '10000-01-01 00:00:00+00'), '{{}}') "
            "FROM b LEFT JOIN activity_grades_key k ON k.id = b.id"
        )
        .format(sql.Identifier(table))
        .as_string(cur.connection),
        [after, batch],
    )
    last, scanned, found, unreadable = cur.fetchone()
    return KeyBatch(last, int(scanned), [(f[0], f[1], f[2]) for f in found], list(unreadable))


def delete_keys(
    cur: Cursor, class_id: str, term_id: str | None, table: str | None, ids: list[str]
) -> int:
    """Delete key rows of ``ids`` that still name (class, term) and whose grade is still
    not in ``table`` (None: that pair has no live table), checked in the same statement,
    so a grade moved or restored meanwhile keeps its key row. The number deleted."""
    absent = (
        sql.SQL("AND NOT EXISTS (SELECT 1 FROM ONLY {} g WHERE g.id = k.id)").format(
            sql.Identifier(table)
        )
        if table is not None
        else sql.SQL("")
    )
    cur.execute(
        sql.SQL(
            "DELETE FROM activity_grades_key k WHERE k.id = ANY(%s) AND k.class_id = %s "
            "AND k.term_id IS NOT DISTINCT FROM %s {}"
        )
        .format(absent)
        .as_string(cur.connection),
        [ids, class_id, term_id],
    )
    return int(cur.rowcount)


def missing_live(cur: Cursor) -> list[tuple[str, str, str | None]]:
    """(table, class, term) of live registry rows whose table does not exist, class tables
    first (a leaf is recreated under its class table)."""
    cur.execute(
        "SELECT table_name, class_id, term_id FROM activity_grades_partition WHERE status = %s "
        "AND to_regclass(quote_ident(table_name)) IS NULL "
        "ORDER BY term_id IS NOT NULL, table_name",
        [Status.LIVE.value],
    )
    return cur.fetchall()


def upsert_keys(cur: Cursor, table: str, ids: list[str]) -> int:
    """Write the key rows of ``ids`` from the rows ``table`` holds; rows whose (activity,
    student) another grade's key holds are left out. The number written."""
    cur.execute(
        sql.SQL(
            "INSERT INTO {key} AS k (id, activity_id, student_id, class_id, term_id) "
            "SELECT g.id, g.activity_id, g.student_id, g.class_id, g.term_id FROM ONLY {t} g "
            "WHERE g.id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM {key} o "
            "WHERE o.student_id = g.student_id AND o.activity_id = g.activity_id "
            "AND o.id <> g.id AND (SELECT activity_grades_unique_key())) "
            "ON CONFLICT (id) DO UPDATE SET activity_id = EXCLUDED.activity_id, "
            "student_id = EXCLUDED.student_id, class_id = EXCLUDED.class_id, "
            "term_id = EXCLUDED.term_id"
        )
        .format(key=sql.Identifier(KEY_TABLE), t=sql.Identifier(table))
        .as_string(cur.connection),
        [ids],
    )
    return int(cur.rowcount)


# -- terms that changed after their partitions were made -----------------------------------


@dataclass(frozen=True)
class TermDrift:
    """A live leaf whose registry bounds or academic year differ from its term now."""

    table: str
    class_id: str
    term_id: str
    starts_at: datetime
    ends_at: datetime
    academic_year: str | None
    term_starts_at: datetime | None  # None: the term no longer exists
    term_ends_at: datetime | None
    term_year: str | None
    check_valid: bool = True  # False: a change was applied but not yet validated

    @property
    def bounds_changed(self) -> bool:
        moved = (self.starts_at, self.ends_at) != (self.term_starts_at, self.term_ends_at)
        return moved or not self.check_valid


def term_drift(cur: Cursor) -> list[TermDrift]:
    """Live term leaves whose bounds or year disagree with ``activity_grades_term_bounds``."""
    # A CHECK left NOT VALID is a change interrupted between its steps: applied again.
    cur.execute(
        "SELECT * FROM (SELECT p.table_name, p.class_id, p.term_id, p.starts_at, p.ends_at, "
        "p.academic_year, b.starts_at AS term_starts, b.ends_at AS term_ends, "
        "b.academic_year AS term_year, NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conrelid = to_regclass(quote_ident(p.table_name)) AND c.conname = %s "
        "AND NOT c.convalidated) AS check_valid FROM activity_grades_partition p "
        "CROSS JOIN LATERAL activity_grades_term_bounds(p.term_id) b "
        "WHERE p.status = %s AND p.term_id IS NOT NULL) d "
        "WHERE (starts_at, ends_at, academic_year) IS DISTINCT FROM "
        "(term_starts, term_ends, term_year) OR NOT check_valid ORDER BY term_id, class_id",
        [TERM_CHECK, Status.LIVE.value],
    )
    return [TermDrift(*row) for row in cur.fetchall()]


def term_exists(cur: Cursor, term_id: str) -> bool:
    """Whether the LMS's terms table has ``term_id`` (now, in this transaction)."""
    cur.execute("SELECT starts_at IS NOT NULL FROM activity_grades_term_bounds(%s)", [term_id])
    row = cur.fetchone()
    return bool(row and row[0])


def set_year(cur: Cursor, term_id: str, year: str) -> int:
    """Give the live leaves of a term the academic year its term has now."""
    cur.execute(
        "UPDATE activity_grades_partition SET academic_year = %s "
        "WHERE term_id = %s AND status = %s AND academic_year IS DISTINCT FROM %s",
        [year, term_id, Status.LIVE.value, year],
    )
    return int(cur.rowcount)


# -- applying a term's new bounds (create_partitions) ---------------------------------------


def replace_term_check(
    cur: Cursor, table: str, term_id: str, starts_at: datetime, ends_at: datetime
) -> None:
    """Give a leaf the CHECK of its term's new bounds, ``NOT VALID`` (no scan under the
    lock): new rows must satisfy it at once; rows outside it are moved, then it is
    validated (``validate_term_check``)."""
    execute(
        cur,
        sql.SQL(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {c}, ADD CONSTRAINT {c} CHECK "
            "(term_id = {term} AND created_at >= {s}::timestamptz "
            "AND created_at < {e}::timestamptz) NOT VALID"
        ).format(
            t=sql.Identifier(table),
            c=sql.Identifier(TERM_CHECK),
            term=sql.Literal(term_id),
            s=sql.Literal(starts_at.isoformat()),
            e=sql.Literal(ends_at.isoformat()),
        ),
    )


def set_bounds(
    cur: Cursor, table: str, starts_at: datetime, ends_at: datetime, year: str | None
) -> None:
    cur.execute(
        "UPDATE activity_grades_partition SET starts_at = %s, ends_at = %s, academic_year = %s "
        "WHERE table_name = %s",
        [starts_at, ends_at, year, table],
    )


def validate_term_check(cur: Cursor, table: str) -> None:
    """Validate the leaf's term CHECK (reads the leaf under SHARE UPDATE EXCLUSIVE only:
    writes go on); fails, naming the table, if a row is still outside its term."""
    execute(
        cur,
        sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
            sql.Identifier(table), sql.Identifier(TERM_CHECK)
        ),
    )


def tables_of_class(cur: Cursor, class_id: str) -> list[str]:
    """The live tables of one class: its class table first, then its leaves."""
    cur.execute(
        "SELECT table_name FROM activity_grades_partition WHERE class_id = %s AND status = %s "
        "ORDER BY term_id IS NOT NULL, table_name",
        [class_id, Status.LIVE.value],
    )
    return [row[0] for row in cur.fetchall()]


@dataclass(frozen=True)
class Refiled:
    """What ``refile`` did: rows whose term changed, and where they are now."""

    found: int  # rows of the table whose term is no longer the one of their created_at
    landed: int  # of those, found in another table of the class after the move
    left: int  # of those, still in the table

    @property
    def verified(self) -> bool:
        return self.landed == self.found and not self.left


_REFILED = sql.Identifier("activity_grades_refiled")


def refile(
    cur: Cursor, table: str, class_table: str, starts_at: datetime, ends_at: datetime
) -> Refiled:
    """Move the rows of ``table`` (``ONLY``) created in [starts_at, ends_at) whose term is no
    longer the one of their created_at: setting it moves each one (``activity_grades_move``)
    to its leaf or to ``class_table``.

    Their ids are kept in a temporary table, so where they landed is counted by id in the
    class's tables: a comparison of totals would fail whenever someone else graded the
    class meanwhile.
    """
    table_id = sql.Identifier(table)
    execute(
        cur, sql.SQL("CREATE TEMP TABLE {} (id text PRIMARY KEY) ON COMMIT DROP").format(_REFILED)
    )
    execute(
        cur,
        sql.SQL(
            "INSERT INTO {r} SELECT id FROM ONLY {t} WHERE created_at >= %s AND created_at < %s "
            "AND term_id IS DISTINCT FROM activity_grades_term_at(created_at)"
        ).format(r=_REFILED, t=table_id),
        [starts_at, ends_at],
    )
    found = int(cur.rowcount)
    if found:
        execute(
            cur,
            sql.SQL(
                "UPDATE ONLY {t} SET term_id = activity_grades_term_at(created_at) "
                "WHERE id IN (SELECT id FROM {r})"
            ).format(t=table_id, r=_REFILED),
        )
    execute(
        cur,
        sql.SQL(
            "SELECT count(*) FILTER (WHERE g.tableoid <> quote_ident(%s)::regclass), "
            "count(*) FILTER (WHERE g.tableoid = quote_ident(%s)::regclass) "
            "FROM {c} g JOIN {r} USING (id)"
        ).format(c=sql.Identifier(class_table), r=_REFILED),
        [table, table],
    )
    landed, left = cur.fetchone()
    execute(cur, sql.SQL("DROP TABLE {}").format(_REFILED))
    return Refiled(found, int(landed), int(left))


def count_only(cur: Cursor, tables: list[str]) -> int:
    """Rows stored in ``tables`` themselves (``ONLY`` each)."""
    total = 0
    for table in tables:
        cur.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}")
            .format(sql.Identifier(table))
            .as_string(cur.connection)
        )
        total += int(cur.fetchone()[0])
    return total
