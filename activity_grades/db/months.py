"""Month tables (issue 15): children of a term's table, one per calendar month of the term.

A term's registry row (``activity_grades_partition``) carries its ``granularity``: 'term'
(the term table is the leaf) or 'month' (its grades live in month tables registered in
``activity_grades_month``, each a child of the term table with the term's CHECK and its
own month's). Reading the term table without ``ONLY`` reads its months, so every read that
names a term's table is unchanged. The DDL is the SQL function
``activity_grades_ensure_month`` (the routing trigger's on-demand path and
``create_partitions`` share it); this module calls it, reads the month registry, installs
the generated ``activity_grades_granularity()`` and moves rows between a term table and
its months (``create_partitions --regranulate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connections, transaction
from psycopg import sql

from ..core.constants import PARTITION_MARKER, Granularity, Status
from ..core.exceptions import PartitioningError
from ..core.settings import app_settings
from ..core.signals import partition_created, send_on_commit
from . import staging
from .catalog import marker_of
from .connection import Cursor, execute, fetch_rows, fetch_value

__all__ = [
    "GRANULARITY_FUNCTION",
    "MonthHealth",
    "MonthRow",
    "Slice",
    "database_granularity",
    "drop_month",
    "ensure_month",
    "health",
    "install_granularity",
    "installed",
    "set_status",
    "children_of",
    "live_months",
    "live_partitions",
    "month_ddl",
    "month_name",
    "move_batch",
    "registered_names",
    "rows_in_table",
    "set_granularity",
    "slices",
    "term_granularities",
    "unfinished",
]

GRANULARITY_FUNCTION = "activity_grades_granularity"

_MONTH_COLUMNS = (
    "id, class_id, term_id, table_name, parent_table, starts_at, ends_at, status "
    "FROM activity_grades_month"
)


@dataclass(frozen=True)
class MonthRow:
    """One row of ``activity_grades_month``."""

    id: int
    class_id: str
    term_id: str
    table_name: str
    parent_table: str
    starts_at: datetime
    ends_at: datetime
    status: str


@dataclass(frozen=True)
class Slice:
    """One month of a term: [starts_at, ends_at) clipped to the term; ``label`` 'YYYY_MM'."""

    starts_at: datetime
    ends_at: datetime
    label: str


def slices(cur: Cursor, starts_at: datetime, ends_at: datetime) -> list[Slice]:
    """The months of [starts_at, ends_at) in the terms' zone, the first and last clipped
    (``activity_grades_month_bounds``, the function the trigger uses)."""
    out: list[Slice] = []
    at = starts_at
    while at < ends_at:
        cur.execute("SELECT starts_at, ends_at, label FROM activity_grades_month_bounds(%s)", [at])
        month_start, month_end, label = cur.fetchone()
        out.append(Slice(max(month_start, starts_at), min(month_end, ends_at), label))
        at = month_end
    return out


def month_name(cur: Cursor, class_id: str, term_id: str, label: str) -> str:
    """The name a new month table would get (as ``activity_grades_ensure_month`` names it)."""
    cur.execute("SELECT activity_grades_partition_name(%s, %s)", [class_id, f"{term_id}_m{label}"])
    name: str = cur.fetchone()[0]
    return name


def month_ddl(
    cur: Cursor,
    table: str,
    term_table: str,
    class_id: str,
    term_id: str,
    month: Slice,
) -> list[str]:
    """The statements ``activity_grades_ensure_month`` runs to create one month table (for
    dry runs): its CREATE TABLE with the month's CHECK, then a term table's other DDL."""
    create = sql.SQL(
        "CREATE TABLE {} (CONSTRAINT activity_grades_month_check CHECK (created_at >= "
        "{}::timestamptz AND created_at < {}::timestamptz)) INHERITS ({})"
    ).format(
        sql.Identifier(table),
        sql.Literal(month.starts_at),
        sql.Literal(month.ends_at),
        sql.Identifier(term_table),
    )
    cur.execute(
        "SELECT activity_grades_partition_ddl(%s, %s, %s, %s, %s, %s)",
        [table, term_table, class_id, term_id, month.starts_at, month.ends_at],
    )
    rest = [row[0] for row in cur.fetchall()][1:]
    return [create.as_string(cur.connection), *rest]


def ensure_month(
    cur: Cursor, class_id: str, term_id: str, at: datetime, using: str
) -> tuple[str, bool]:
    """The month table of (class, term) holding ``at``, created if missing (and its term
    table); (table, created). In the caller's transaction."""
    cur.execute(
        "SELECT table_name, created FROM activity_grades_ensure_month(%s, %s, %s)",
        [class_id, term_id, at],
    )
    table, created = cur.fetchone()
    if created:
        send_on_commit(partition_created, using, class_id=class_id, term_id=term_id, table=table)
    return table, created


def _installed(using: str) -> bool:
    query = "SELECT to_regclass('activity_grades_month') IS NOT NULL"
    return bool(fetch_value(using, query))


def live_months(
    using: str = "default", class_id: str | None = None, term_id: str | None = None
) -> list[MonthRow]:
    """Live month tables (of one class and/or term), by class, term, start (none before
    migration 0015)."""
    if not _installed(using):
        return []
    rows = fetch_rows(
        using,
        "SELECT " + _MONTH_COLUMNS + " WHERE status = %s "
        "AND (%s::text IS NULL OR class_id = %s) AND (%s::text IS NULL OR term_id = %s) "
        "ORDER BY class_id, term_id, starts_at",
        [Status.LIVE.value, class_id, class_id, term_id, term_id],
    )
    return [MonthRow(*r) for r in rows]


def term_granularities(using: str = "default") -> dict[tuple[str, str], str]:
    """(class, term) -> granularity of every live term table (none before migration 0015:
    every term is by term)."""
    if not _installed(using):
        return {}
    rows = fetch_rows(
        using,
        "SELECT class_id, term_id, granularity FROM activity_grades_partition "
        "WHERE status = %s AND term_id IS NOT NULL",
        [Status.LIVE.value],
    )
    return {(c, t): g for c, t, g in rows}


def set_granularity(cur: Cursor, class_id: str, term_id: str, granularity: Granularity) -> None:
    """Where the routing trigger files (class, term)'s new grades from now on."""
    cur.execute(
        "UPDATE activity_grades_partition SET granularity = %s "
        "WHERE class_id = %s AND term_id = %s AND status = %s",
        [granularity.value, class_id, term_id, Status.LIVE.value],
    )


def database_granularity(using: str = "default") -> str | None:
    """What ``activity_grades_granularity()`` answers (None: migrated back before 0015)."""
    with connections[using].cursor() as cur:
        cur.execute("SELECT to_regprocedure(%s) IS NULL", [f"{GRANULARITY_FUNCTION}()"])
        if cur.fetchone()[0]:
            return None
        cur.execute("SELECT activity_grades_granularity()")
        value: str = cur.fetchone()[0]
        return value


def install_granularity(using: str = "default") -> bool:
    """Make ``activity_grades_granularity()`` answer PARTITION_GRANULARITY; True if it
    changed. Term tables the trigger creates on demand take their granularity from it."""
    app_settings.require_valid("PARTITION_GRANULARITY")
    wanted = app_settings.PARTITION_GRANULARITY
    if database_granularity(using) in (None, wanted):
        return False
    with transaction.atomic(using=using), connections[using].cursor() as cur:
        staging.use(cur, app_settings.SCHEMA)
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [GRANULARITY_FUNCTION])
        statement = sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS text LANGUAGE sql STABLE AS $fn$ "
            "SELECT {}::text $fn$"
        ).format(sql.Identifier(GRANULARITY_FUNCTION), sql.Literal(wanted))
        cur.execute(statement.as_string(cur.connection))
    return True


def children_of(cur: Cursor, term_table: str) -> list[MonthRow]:
    """The live month tables under a term table, in the caller's transaction."""
    cur.execute(
        "SELECT " + _MONTH_COLUMNS + " WHERE status = %s AND parent_table = %s ORDER BY starts_at",
        [Status.LIVE.value, term_table],
    )
    return [MonthRow(*r) for r in cur.fetchall()]


def set_status(cur: Cursor, month_id: int, status: Status) -> None:
    cur.execute(
        "UPDATE activity_grades_month SET status = %s WHERE id = %s", [status.value, month_id]
    )


def rows_in_table(using: str, table: str) -> int:
    """Rows stored in ``table`` itself (``ONLY``)."""
    query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table))
    return int(fetch_value(using, query))


_STAGE = "activity_grades_regranulate_batch"


def move_batch(cur: Cursor, source: str, targets: list[MonthRow] | str, limit: int) -> int:
    """Move up to ``limit`` rows of ``source`` (``ONLY``) to ``targets``; rows moved.

    ``targets``: the month tables of the source term table (each row to the month of its
    created_at), or one table (a term table, from one of its months). In the caller's
    transaction, which must hold ``source`` locked against writers: the rows are deleted
    into a temporary table (the key index forgets them), inserted into their targets (it
    records them again) and counted; a count that differs raises before anything commits.
    """
    execute(
        cur,
        sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
            sql.Identifier(_STAGE), sql.Identifier(source)
        ),
    )
    execute(
        cur,
        sql.SQL(
            "WITH d AS (DELETE FROM ONLY {src} WHERE id IN "
            "(SELECT id FROM ONLY {src} ORDER BY id LIMIT %s) RETURNING *) "
            "INSERT INTO {stage} SELECT * FROM d"
        ).format(src=sql.Identifier(source), stage=sql.Identifier(_STAGE)),
        [limit],
    )
    taken = cur.rowcount
    put = 0
    if isinstance(targets, str):
        execute(
            cur,
            sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                sql.Identifier(targets), sql.Identifier(_STAGE)
            ),
        )
        put = cur.rowcount
    else:
        for month in targets:
            execute(
                cur,
                sql.SQL(
                    "INSERT INTO {} SELECT * FROM {} WHERE created_at >= %s AND created_at < %s"
                ).format(sql.Identifier(month.table_name), sql.Identifier(_STAGE)),
                [month.starts_at, month.ends_at],
            )
            put += cur.rowcount
    if put != taken:
        raise PartitioningError(
            f"regranulating {source}: {taken} rows taken but {put} filed in its "
            f"{'months' if not isinstance(targets, str) else 'term table'}; nothing was moved "
            "(a month table is missing: run the command again)"
        )
    execute(cur, sql.SQL("DROP TABLE {}").format(sql.Identifier(_STAGE)))
    return taken


def drop_month(cur: Cursor, month: MonthRow) -> bool:
    """Drop an empty month table (its marker and emptiness checked under an exclusive
    lock) and forget it in the registry; False (nothing done) if it holds rows."""
    table = sql.Identifier(month.table_name)
    execute(cur, sql.SQL("LOCK TABLE ONLY {} IN ACCESS EXCLUSIVE MODE").format(table))
    marker = marker_of(cur, month.table_name)
    if marker != PARTITION_MARKER:
        raise PartitioningError(
            f"{month.table_name} does not carry the app's marker ({marker!r}): not dropped"
        )
    execute(cur, sql.SQL("SELECT EXISTS (SELECT 1 FROM ONLY {})").format(table))
    if cur.fetchone()[0]:
        return False  # a grade routed there before the term became 'term': drain again
    execute(cur, sql.SQL("DROP TABLE {}").format(table))
    cur.execute("DELETE FROM activity_grades_month WHERE id = %s", [month.id])
    return True


# -- health (operations.month_checks) ---------------------------------------------------


def installed(cur: Cursor) -> bool:
    """Whether migration 0015 is applied (the month registry exists)."""
    cur.execute("SELECT to_regclass('activity_grades_month') IS NOT NULL")
    return bool(cur.fetchone()[0])


def live_partitions(cur: Cursor) -> list[tuple[int, str, str | None]]:
    """(oid, table, term_id) of every live month table that exists (as
    ``registry.live_partitions``: the index, CHECK and trigger checks cover them)."""
    if not installed(cur):
        return []
    cur.execute(
        "SELECT to_regclass(quote_ident(table_name))::oid, table_name, term_id "
        "FROM activity_grades_month WHERE status = %s "
        "AND to_regclass(quote_ident(table_name)) IS NOT NULL ORDER BY id",
        [Status.LIVE.value],
    )
    return cur.fetchall()


def registered_names(cur: Cursor) -> set[str]:
    """Every table name the month registry holds, whatever its status."""
    if not installed(cur):
        return set()
    cur.execute("SELECT table_name FROM activity_grades_month")
    return {row[0] for row in cur.fetchall()}


@dataclass(frozen=True)
class MonthHealth:
    """What the catalog says about one live month table."""

    table: str
    term_table: str
    exists: bool
    inherits: bool  # a child of the term table the registry names
    has_check: bool  # its own activity_grades_month_check
    inside_term: bool  # [starts_at, ends_at) within the term's registered bounds


def health(cur: Cursor) -> list[MonthHealth]:
    """One row per live month table, one query."""
    if not installed(cur):
        return []
    cur.execute(
        "SELECT m.table_name, m.parent_table, to_regclass(quote_ident(m.table_name)) IS NOT NULL, "
        "EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = to_regclass(quote_ident("
        "m.table_name)) AND i.inhparent = to_regclass(quote_ident(m.parent_table))), "
        "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = to_regclass(quote_ident("
        "m.table_name)) AND c.conname = 'activity_grades_month_check' AND c.contype = 'c'), "
        "coalesce(m.starts_at >= p.starts_at AND m.ends_at <= p.ends_at, false) "
        "FROM activity_grades_month m LEFT JOIN activity_grades_partition p "
        "ON p.table_name = m.parent_table AND p.status = %s "
        "WHERE m.status = %s ORDER BY m.table_name",
        [Status.LIVE.value, Status.LIVE.value],
    )
    return [MonthHealth(*row) for row in cur.fetchall()]


def unfinished(cur: Cursor) -> list[tuple[str, str, str, str]]:
    """(class, term, term table, granularity) of terms whose rows are not all where their
    granularity puts them: a 'month' term with rows in its term table itself, a 'term'
    term with live month tables (an interrupted ``--regranulate``)."""
    if not installed(cur):
        return []
    cur.execute(
        "SELECT p.class_id, p.term_id, p.table_name, p.granularity "
        "FROM activity_grades_partition p WHERE p.status = %s AND p.term_id IS NOT NULL "
        "AND to_regclass(quote_ident(p.table_name)) IS NOT NULL "
        "AND (p.granularity = 'month' OR EXISTS (SELECT 1 FROM activity_grades_month m "
        "WHERE m.parent_table = p.table_name AND m.status = %s)) "
        "ORDER BY p.term_id, p.class_id",
        [Status.LIVE.value, Status.LIVE.value],
    )
    candidates = cur.fetchall()
    month_terms = [c for c in candidates if c[3] == Granularity.MONTH.value]
    out = [c for c in candidates if c[3] != Granularity.MONTH.value]
    for i in range(0, len(month_terms), 500):
        chunk = month_terms[i : i + 500]
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {} WHERE EXISTS (SELECT 1 FROM ONLY {})").format(
                sql.Literal(n), sql.Identifier(c[2])
            )
            for n, c in enumerate(chunk)
        )
        execute(cur, query)
        out += [chunk[row[0]] for row in cur.fetchall()]
    return out
