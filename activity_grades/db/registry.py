"""The partition registry ``activity_grades_partition`` and the key index ``activity_grades_key``.

The registry maps (class, term) to a table (``term_id`` NULL: the class table); names are
never rebuilt from ids. The key index records each grade's (class, term), so a grade by
id, or a student's grades, are found without planning a query on every partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from ..core.constants import LEGACY_CLASS, LEGACY_TABLE, Status
from .cache import CACHE_SECONDS, TtlCache, clear_all
from .connection import Cursor, fetch_column, fetch_rows, fetch_value

__all__ = [
    "CACHE_SECONDS",
    "LIVE_TABLE",
    "archived_count",
    "RegistryRow",
    "invalidate_cache",
    "live_count",
    "live_partitions",
    "live_tables",
    "lock_row",
    "missing_tables",
    "partition_table",
    "partition_tables",
    "tables_of_grades",
    "tables_of_students",
    "cached_grade_table",
    "forget_grade",
    "class_tables",
    "live_leaves",
    "set_status",
    "table_of_grade",
    "tables_of_student",
]

Pair = tuple[str, str | None]  # (class_id, term_id): term_id None is the class table itself
Pinned = dict[Pair, str]  # (class, term) -> its live table

# (class, term) -> live table name (db/cache.py says how long and when it is forgotten).
_names: TtlCache[tuple[str, str | None], str] = TtlCache()
# grade id -> (its live table, a class table?) as a key-index lookup last found it. A grade
# moves (a new created_at, archiving): a read trusts this only where it finds the grade.
_grades: TtlCache[str, tuple[str, bool]] = TtlCache(max_size=100_000)

# The live table of the (class_id, term_id) of a row aliased ``k``; the LMS's own table
# while a conversion drains it (its grades' keys carry LEGACY_CLASS). Two lookups so each
# uses one of the registry's partial unique indexes: a join on ``term_id IS NOT DISTINCT
# FROM`` cannot use an index and scanned the whole registry.
LIVE_TABLE = sql.SQL(
    "CASE WHEN k.class_id = {legacy_class} THEN {legacy_table}::text"
    " WHEN k.term_id IS NULL"
    " THEN (SELECT p.table_name FROM activity_grades_partition p"
    " WHERE p.class_id = k.class_id AND p.term_id IS NULL AND p.status = {live})"
    " ELSE (SELECT p.table_name FROM activity_grades_partition p"
    " WHERE p.class_id = k.class_id AND p.term_id = k.term_id AND p.status = {live}) END"
).format(
    live=sql.Literal(Status.LIVE.value),
    legacy_class=sql.Literal(LEGACY_CLASS),
    legacy_table=sql.Literal(LEGACY_TABLE),
)


@dataclass(frozen=True)
class RegistryRow:
    """One row of ``activity_grades_partition``."""

    id: int
    class_id: str
    term_id: str | None
    table_name: str
    parent_table: str
    academic_year: str | None
    status: str


def invalidate_cache() -> None:
    """Forget this process's cached lookups: (class, term) -> table names, activities'
    classes."""
    clear_all()


def partition_table(
    class_id: str, term_id: str | None = None, using: str = "default"
) -> str | None:
    """The live table of (class, term); ``term_id=None``: the class table. Cached."""
    return partition_tables([(class_id, term_id)], using).get((class_id, term_id))


def partition_tables(pairs: Iterable[Pair], using: str = "default") -> Pinned:
    """The live tables of those (class, term) pairs that have one, through this process's
    cache (db/cache.py); one query for the pairs not cached. A pair without a table is
    never cached: its partition may be created a moment later."""
    found, missing = _names.split(using, pairs)
    if missing:
        query = sql.SQL(
            "SELECT k.class_id, k.term_id, {} FROM unnest(%s::text[], %s::text[]) "
            "AS k(class_id, term_id)"
        ).format(LIVE_TABLE)
        params = [[c for c, _ in missing], [t for _, t in missing]]
        for pair, table in _pinned(using, query, params).items():
            found[pair] = table
            _names.put(using, pair, table)
    return found


def table_of_grade(grade_id: str, using: str = "default") -> str | None:
    """The live table that holds a grade, from the key index; None if it is not stored.

    Not cached: the registry is read in the same statement, so a partition archived and
    recreated under another name a moment ago is never missed.
    """
    query = sql.SQL("SELECT {} FROM activity_grades_key k WHERE k.id = %s").format(LIVE_TABLE)
    table: str | None = fetch_value(using, query, [grade_id])
    return table


def tables_of_student(student_id: str, using: str = "default") -> list[str]:
    """The live partitions that hold this student's grades (from the key index)."""
    return sorted(set(tables_of_students([student_id], using).values()))


def live_tables(using: str = "default") -> dict[tuple[str, str | None], str]:
    """(class, term) -> table of every live partition."""
    found = fetch_rows(
        using,
        "SELECT class_id, term_id, table_name FROM activity_grades_partition WHERE status = %s",
        [Status.LIVE.value],
    )
    return {(c, t): name for c, t, name in found}


def live_partitions(cur: Cursor) -> list[tuple[int, str, str | None]]:
    """(oid, table, term_id) of every live registered partition whose table exists."""
    cur.execute(
        "SELECT to_regclass(quote_ident(table_name))::oid, table_name, term_id "
        "FROM activity_grades_partition WHERE status = %s "
        "AND to_regclass(quote_ident(table_name)) IS NOT NULL ORDER BY id",
        [Status.LIVE.value],
    )
    return cur.fetchall()


def live_leaves(using: str, term_ids: list[str]) -> list[tuple[RegistryRow, int]]:
    """Live term partitions of ``term_ids`` with their total bytes (with their month
    tables), by term then class."""
    found = fetch_rows(
        using,
        "SELECT id, class_id, term_id, table_name, parent_table, academic_year, status, "
        "coalesce(pg_total_relation_size(to_regclass(quote_ident(table_name))), 0) + "
        "(SELECT coalesce(sum(pg_total_relation_size(to_regclass(quote_ident(m.table_name)))), 0)"
        " FROM activity_grades_month m WHERE m.parent_table = p.table_name AND m.status = %s) "
        "FROM activity_grades_partition p WHERE status = %s AND term_id = ANY(%s) "
        "ORDER BY term_id, class_id",
        [Status.LIVE.value, Status.LIVE.value, term_ids],
    )
    return [(RegistryRow(*r[:7]), int(r[7])) for r in found]


def lock_row(cur: Cursor, registry_id: int) -> RegistryRow | None:
    """The registry row, locked FOR UPDATE to the end of the transaction."""
    cur.execute(
        "SELECT id, class_id, term_id, table_name, parent_table, academic_year, status "
        "FROM activity_grades_partition WHERE id = %s FOR UPDATE",
        [registry_id],
    )
    row = cur.fetchone()
    return RegistryRow(*row) if row else None


def set_status(cur: Cursor, registry_id: int, status: Status) -> None:
    cur.execute(
        "UPDATE activity_grades_partition SET status = %s WHERE id = %s",
        [status.value, registry_id],
    )


def missing_tables(using: str = "default") -> list[str]:
    """Live registry rows whose table does not exist."""
    return fetch_column(
        using,
        "SELECT table_name FROM activity_grades_partition WHERE status = %s "
        "AND to_regclass(quote_ident(table_name)) IS NULL ORDER BY table_name",
        [Status.LIVE.value],
    )


def archived_count(term_id: str, using: str = "default") -> int:
    """How many partitions of the term are archived or detached (not live)."""
    query = "SELECT count(*) FROM activity_grades_partition WHERE term_id = %s AND status <> %s"
    return int(fetch_value(using, query, [term_id, Status.LIVE.value]))


def live_count(using: str = "default") -> int:
    """How many partitions are live."""
    query = "SELECT count(*) FROM activity_grades_partition WHERE status = %s"
    return int(fetch_value(using, query, [Status.LIVE.value]))


# -- routing the default manager (models/routing.py) ----------------------------------------


def _pinned(using: str, query: sql.Composable, params: list[Any]) -> Pinned:
    return {(c, t): name for c, t, name in fetch_rows(using, query, params) if name is not None}


def tables_of_students(students: list[str], using: str = "default") -> Pinned:
    """The live tables holding the grades of ``students``, from the key index, one query."""
    query = sql.SQL(
        "SELECT k.class_id, k.term_id, {} FROM (SELECT DISTINCT class_id, term_id "
        "FROM activity_grades_key WHERE student_id = ANY(%s)) k"
    ).format(LIVE_TABLE)
    return _pinned(using, query, [students])


def tables_of_grades(ids: list[str], using: str = "default") -> Pinned:
    """The live tables holding the grades ``ids``, from the key index, one query;
    each grade's table is remembered for ``cached_grade_table``."""
    query = sql.SQL(
        "SELECT k.id, k.class_id, k.term_id, {} FROM activity_grades_key k WHERE k.id = ANY(%s)"
    ).format(LIVE_TABLE)
    found: Pinned = {}
    for grade_id, class_id, term_id, table in fetch_rows(using, query, [ids]):
        if table is not None:
            found[(class_id, term_id)] = table
            _grades.put(using, grade_id, (table, term_id is None))
    return found


def cached_grade_table(grade_id: str, using: str = "default") -> tuple[str, bool] | None:
    """(table, a class table?) where a lookup last found this grade; may be stale."""
    return _grades.get(using, grade_id)


def forget_grade(grade_id: str, using: str = "default") -> None:
    _grades.forget(using, grade_id)


def tables_of_classes(
    classes: list[str] | None, terms: list[str] | None, using: str = "default"
) -> Pinned:
    """The live tables of ``classes`` (all when None), of ``terms`` only when given."""
    query = sql.SQL(
        "SELECT class_id, term_id, table_name FROM activity_grades_partition "
        "WHERE status = %s AND (%s::text[] IS NULL OR class_id = ANY(%s::text[])) "
        "AND (%s::text[] IS NULL OR term_id = ANY(%s::text[]))"
    )
    return _pinned(using, query, [Status.LIVE.value, classes, classes, terms, terms])


def class_tables(using: str = "default") -> Pinned:
    """Every live class table (the grades outside every term), one query."""
    query = sql.SQL(
        "SELECT class_id, term_id, table_name FROM activity_grades_partition "
        "WHERE status = %s AND term_id IS NULL"
    )
    return _pinned(using, query, [Status.LIVE.value])
