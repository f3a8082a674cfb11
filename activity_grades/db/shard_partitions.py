"""The SQL of partitions that live on a shard (issue 16, second slice).

A class placed on a shard has its class table and term tables on the shard, each a
direct child of the shard's ``activity_grades`` parent (flat: postgres_fdw scans and
modifies a remote table without ``ONLY``, so a remote class table with remote children
would hand the coordinator its term rows twice). On the coordinator each is a
``postgres_fdw`` foreign table of the same name at the place a local partition would be:
the class table under ``activity_grades``, its term tables under the class table, with
the same CHECK constraints (the planner skips partitions by them), the ownership marker,
the row triggers the installed partition DDL makes, and a registry row.

The key index stays on the coordinator. Its statement triggers use transition tables,
which foreign tables do not allow, so a foreign partition's ``activity_grades_keys_insert``
and ``activity_grades_keys_delete`` triggers are row-level (``activity_grades_key_insert_row``,
``activity_grades_key_delete_row``, migration 0016); the other triggers are the ones
``activity_grades_partition_ddl`` makes, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from ..core.constants import PARENT, PARTITION_MARKER, Granularity, Status
from . import months
from .connection import Cursor, execute, fetch_rows

__all__ = [
    "Bounds",
    "ForeignPartition",
    "adopt_waiting_rows",
    "archived_sharded",
    "bounds",
    "drop_foreign_table",
    "drop_remote",
    "foreign_target",
    "lock_remote",
    "relive",
    "foreign_ddl",
    "foreign_partition",
    "foreign_partitions",
    "foreign_triggers",
    "index_ddl",
    "index_names",
    "local_partitions_placed_on_shards",
    "lock_partition",
    "registered",
    "register",
    "relkind",
    "remote_ddl",
    "remote_tables",
    "run",
    "staging_ddl",
    "unique_key_on",
]

# Statement-level triggers of local partitions -> the row-level function foreign ones use.
ROW_KEY_TRIGGERS = {
    "activity_grades_keys_insert": ("INSERT", "activity_grades_key_insert_row"),
    "activity_grades_keys_delete": ("DELETE", "activity_grades_key_delete_row"),
}
INDEX_SUFFIXES = (
    "pkey",
    "activity_idx",
    "student_idx",
    "activity_student_key",
    "activity_student_idx",
)


@dataclass(frozen=True)
class Bounds:
    starts_at: datetime | None
    ends_at: datetime | None
    academic_year: str | None


@dataclass(frozen=True)
class ForeignPartition:
    """A foreign table of the tree on the coordinator and where it points."""

    table: str
    class_id: str
    term_id: str | None
    server: str
    schema_name: str
    table_name: str


NO_TRUNCATE_TRIGGER = "activity_grades_no_truncate"
"""The one trigger of local partitions a foreign one lacks (TRUNCATE triggers are not
allowed on foreign tables; the option ``truncatable 'false'`` refuses TRUNCATE instead)."""


# -- the coordinator ---------------------------------------------------------------------


def lock_partition(cur: Cursor, class_id: str, term_id: str | None) -> None:
    """The advisory lock ``activity_grades_ensure_partition`` takes for (class, term)."""
    term = term_id if term_id is not None else "<class>"
    key = f"activity_grades:{len(class_id)}:{class_id}|{term}"
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def registered(cur: Cursor, class_id: str, term_id: str | None) -> tuple[str, str] | None:
    """(table, status) of the registry row of (class, term), or None."""
    cur.execute(
        "SELECT table_name, status FROM activity_grades_partition "
        "WHERE class_id = %s AND term_id IS NOT DISTINCT FROM %s",
        [class_id, term_id],
    )
    row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def relkind(cur: Cursor, table: str) -> str | None:
    """'r' (a table), 'f' (a foreign table), or None when nothing of that name exists."""
    cur.execute(
        "SELECT relkind::text FROM pg_class WHERE oid = to_regclass(quote_ident(%s))", [table]
    )
    row = cur.fetchone()
    return None if row is None else str(row[0])


def bounds(cur: Cursor, term_id: str | None) -> Bounds:
    if term_id is None:
        return Bounds(None, None, None)
    cur.execute(
        "SELECT starts_at, ends_at, academic_year FROM activity_grades_term_bounds(%s)", [term_id]
    )
    row = cur.fetchone()
    return Bounds(None, None, None) if row is None else Bounds(row[0], row[1], row[2])


def index_names(cur: Cursor, table: str) -> dict[str, str]:
    """suffix -> the app's index name for ``table`` (``activity_grades_index_name``)."""
    out = {}
    for suffix in INDEX_SUFFIXES:
        cur.execute("SELECT activity_grades_index_name(%s, %s)", [table, suffix])
        out[suffix] = str(cur.fetchone()[0])
    return out


def unique_key_on(cur: Cursor) -> bool:
    cur.execute("SELECT activity_grades_unique_key()")
    return bool(cur.fetchone()[0])


def _checks(class_id: str, term_id: str | None, b: Bounds, flat: bool) -> list[sql.Composable]:
    """The CHECK constraints of a partition; ``flat``: a term table not under its class table."""
    class_check = sql.SQL("CONSTRAINT activity_grades_class_check CHECK (class_id = {})").format(
        sql.Literal(class_id)
    )
    if term_id is None:
        return [
            class_check,
            sql.SQL("CONSTRAINT activity_grades_no_term_check CHECK (term_id IS NULL) NO INHERIT"),
        ]
    term_check = sql.SQL(
        "CONSTRAINT activity_grades_term_check CHECK (term_id = {} "
        "AND created_at >= {}::timestamptz AND created_at < {}::timestamptz)"
    ).format(sql.Literal(term_id), sql.Literal(b.starts_at), sql.Literal(b.ends_at))
    return [class_check, term_check] if flat else [term_check]


def foreign_ddl(
    cur: Cursor,
    table: str,
    parent: str,
    server: str,
    remote_schema: str,
    class_id: str,
    term_id: str | None,
    b: Bounds,
) -> list[sql.Composed]:
    """The statements that make ``table`` a foreign partition on the coordinator."""
    ident = sql.Identifier(table)
    out = [
        sql.SQL(
            "CREATE FOREIGN TABLE {} ({}) INHERITS ({}) SERVER {} "
            "OPTIONS (schema_name {}, table_name {}, truncatable 'false')"
        ).format(
            ident,
            sql.SQL(", ").join(_checks(class_id, term_id, b, flat=False)),
            sql.Identifier(parent),
            sql.Identifier(server),
            sql.Literal(remote_schema),
            sql.Literal(table),
        ),
        sql.SQL("COMMENT ON FOREIGN TABLE {} IS {}").format(ident, sql.Literal(PARTITION_MARKER)),
    ]
    return out + list(foreign_triggers(cur, table).values())


def foreign_triggers(cur: Cursor, table: str) -> dict[str, sql.Composed]:
    """trigger name -> the statement that creates it on the foreign partition ``table``.

    The row triggers the installed partition DDL makes (its text, so a new version of it
    reaches foreign partitions too; they depend on the table's name only), the two with
    transition tables made row-level, and no TRUNCATE trigger.
    """
    cur.execute(
        "SELECT s FROM activity_grades_partition_ddl(%s, %s, 'x', NULL, NULL, NULL) s "
        "WHERE s LIKE 'CREATE TRIGGER %%'",
        [table, PARENT],
    )
    out: dict[str, sql.Composed] = {}
    for (statement,) in cur.fetchall():
        name = statement.split()[2]
        if " TRUNCATE " in statement:
            continue  # not allowed on a foreign table: truncatable 'false' refuses TRUNCATE
        if name in ROW_KEY_TRIGGERS:
            event, function = ROW_KEY_TRIGGERS[name]
            out[name] = sql.SQL(
                "CREATE TRIGGER {} AFTER {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(
                sql.Identifier(name),
                sql.SQL(event),
                sql.Identifier(table),
                sql.Identifier(function),
            )
        else:
            out[name] = sql.Composed([sql.SQL(statement)])  # the function's own text
    return out


def register(
    cur: Cursor, class_id: str, term_id: str | None, table: str, parent: str, b: Bounds
) -> None:
    cur.execute(
        "INSERT INTO activity_grades_partition "
        "(class_id, term_id, table_name, parent_table, starts_at, ends_at, academic_year) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [class_id, term_id, table, parent, b.starts_at, b.ends_at, b.academic_year],
    )
    if term_id is not None and months.installed(cur):
        # A foreign term table is a leaf: month tables under it would be local tables.
        cur.execute(
            "UPDATE activity_grades_partition SET granularity = %s WHERE table_name = %s",
            [Granularity.TERM.value, table],
        )


def relive(cur: Cursor, class_id: str, term_id: str, table: str, parent: str, b: Bounds) -> None:
    """An archived term's registry row back to 'live' for its new foreign table (restore)."""
    cur.execute(
        "UPDATE activity_grades_partition SET table_name = %s, parent_table = %s, "
        "starts_at = %s, ends_at = %s, academic_year = %s, status = 'live' "
        "WHERE class_id = %s AND term_id = %s",
        [table, parent, b.starts_at, b.ends_at, b.academic_year, class_id, term_id],
    )


# Where a foreign table points, as (server, remote schema, remote table): columns over
# pg_class ``c`` and the joins that reach its pg_foreign_table ``f`` and server ``s``. An
# ftoptions entry is 'name=value' with the value as given (a schema name may hold '='),
# so the value is what follows the prefix; postgres_fdw's defaults when an option is unset:
# the connection's schema ('') and the foreign table's own name.
_TARGET = sql.SQL("""s.srvname,
       coalesce((SELECT substr(o, 13) FROM unnest(f.ftoptions) o
                  WHERE o LIKE 'schema_name=%%'), ''),
       coalesce((SELECT substr(o, 12) FROM unnest(f.ftoptions) o
                  WHERE o LIKE 'table_name=%%'), c.relname)
  FROM {from_} JOIN pg_foreign_table f ON f.ftrelid = c.oid
  JOIN pg_foreign_server s ON s.oid = f.ftserver""")


def foreign_target(cur: Cursor, table: str) -> tuple[str, str, str] | None:
    """(server, remote schema, remote table) of the foreign table ``table``; None when
    ``table`` is not a foreign table."""
    query = sql.SQL("SELECT {} WHERE c.oid = to_regclass(quote_ident(%s))").format(
        _TARGET.format(from_=sql.SQL("pg_class c"))
    )
    execute(cur, query, [table])
    row = cur.fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def drop_foreign_table(cur: Cursor, table: str) -> None:
    """DROP a foreign partition on the coordinator; callers check its marker first."""
    execute(cur, sql.SQL("DROP FOREIGN TABLE {}").format(sql.Identifier(table)))


def archived_sharded(cur: Cursor) -> list[tuple[str, str, str, str, str]]:
    """(table, class, term, academic year, shard) of archived term partitions of classes
    placed on a shard whose table no longer exists on the coordinator: their remote
    table should be gone from the shard too."""
    cur.execute(
        "SELECT p.table_name, p.class_id, p.term_id, p.academic_year, pl.shard "
        "FROM activity_grades_partition p "
        "JOIN activity_grades_placement pl ON pl.class_id = p.class_id "
        "WHERE p.status = 'archived' AND p.term_id IS NOT NULL AND pl.shard <> 'local' "
        "AND p.academic_year IS NOT NULL "
        "AND to_regclass(quote_ident(p.table_name)) IS NULL ORDER BY p.id"
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in cur.fetchall()]


def adopt_waiting_rows(cur: Cursor, class_table: str, term_id: str, b: Bounds) -> int:
    """Rows of a new term waiting in the class table move to it (``activity_grades_move``)."""
    execute(
        cur,
        sql.SQL(
            "UPDATE ONLY {} SET term_id = %s WHERE created_at >= %s AND created_at < %s "
            "AND activity_grades_term_at(created_at) = %s"
        ).format(sql.Identifier(class_table)),
        [term_id, b.starts_at, b.ends_at, term_id],
    )
    return int(cur.rowcount)


# The registries (kind orders partitions before month tables, each in registry order).
_PARTITIONS = sql.SQL(
    "SELECT 0 AS kind, id, table_name, class_id, term_id, status FROM activity_grades_partition"
)
_MONTHS = sql.SQL("SELECT 1, id, table_name, class_id, term_id, status FROM activity_grades_month")


def _foreign_query(
    statuses: Sequence[str] | None, month_tables: bool, table: str | None
) -> tuple[sql.Composed, list[Any]]:
    """The one query of registered partitions that are foreign tables, and its parameters."""
    sources = [_PARTITIONS, _MONTHS] if month_tables else [_PARTITIONS]
    registered = sql.SQL(" UNION ALL ").join(sources)
    where: list[sql.Composable] = [sql.SQL("true")]
    params: list[Any] = []
    if statuses is not None:
        where.append(sql.SQL("r.status = ANY(%s)"))
        params.append(list(statuses))
    if table is not None:
        where.append(sql.SQL("r.table_name = %s"))
        params.append(table)
    query = sql.SQL(
        "WITH r AS ({}) SELECT c.relname, r.class_id, r.term_id, {} WHERE {} ORDER BY r.kind, r.id"
    ).format(
        registered,
        _TARGET.format(
            from_=sql.SQL("r JOIN pg_class c ON c.oid = to_regclass(quote_ident(r.table_name))")
        ),
        sql.SQL(" AND ").join(where),
    )
    return query, params


def foreign_partitions(
    cur: Cursor,
    statuses: Sequence[str] | None = (Status.LIVE.value,),
    month_tables: bool = False,
) -> list[ForeignPartition]:
    """Every registered partition that is a foreign table, in registry order.

    Args:
        statuses: registry statuses to list (None: any, as the report lists every
            registered partition).
        month_tables: month tables too (migration 0015's registry: none is foreign today, a
            foreign term table being a leaf).
    """
    query, params = _foreign_query(statuses, month_tables, None)
    execute(cur, query, params)
    return [ForeignPartition(*row) for row in cur.fetchall()]


def foreign_partition(using: str, table: str) -> ForeignPartition | None:
    """The live partition ``table`` if it is a foreign table (one catalog lookup)."""
    query, params = _foreign_query((Status.LIVE.value,), False, table)
    rows = fetch_rows(using, query, params)
    return ForeignPartition(*rows[0]) if rows else None


# -- a shard -----------------------------------------------------------------------------


def remote_tables(cur: Cursor, schema: str) -> dict[str, str | None]:
    """Tables of ``schema`` on a shard that inherit its parent -> their comment."""
    cur.execute(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(format('%%I.%%I', %s::text, %s::text))",
        [schema, PARENT],
    )
    return {name: comment for name, comment in cur.fetchall()}


def lock_remote(cur: Cursor, schema: str, table: str, mode: str) -> None:
    """``LOCK TABLE ONLY`` a partition on its shard (the shard's alias)."""
    if mode not in ("SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"):
        raise ValueError(f"unexpected lock mode {mode!r}")
    execute(
        cur,
        sql.SQL("LOCK TABLE ONLY {} IN " + mode + " MODE").format(sql.Identifier(schema, table)),
    )


def drop_remote(cur: Cursor, schema: str, table: str) -> None:
    """DROP a partition on its shard; callers check its marker first."""
    execute(cur, sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, table)))


def remote_ddl(
    schema: str,
    table: str,
    class_id: str,
    term_id: str | None,
    b: Bounds,
    names: dict[str, str],
    unique: bool,
) -> list[sql.Composed]:
    """The statements that make ``table`` on a shard: a child of its parent, flat."""
    ident = sql.Identifier(schema, table)
    create = sql.SQL("CREATE TABLE {} ({}) INHERITS ({})").format(
        ident,
        sql.SQL(", ").join(_checks(class_id, term_id, b, flat=True)),
        sql.Identifier(schema, PARENT),
    )
    return [create, *index_ddl(ident, names, unique), _marker(ident, PARTITION_MARKER)]


def staging_ddl(
    staging: str,
    class_id: str,
    term_id: str | None,
    b: Bounds,
    names: dict[str, str],
    unique: bool,
    marker: str,
) -> list[sql.Composed]:
    """A table outside the tree on the coordinator with a partition's columns, CHECKs (the
    class CHECK too: ``INHERIT`` under the class table requires it) and indexes under the
    partition's index names, so renaming it and ``INHERIT`` make it that partition."""
    ident = sql.Identifier(staging)
    create = sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS, {})").format(
        ident, sql.Identifier(PARENT), sql.SQL(", ").join(_checks(class_id, term_id, b, flat=True))
    )
    return [create, *index_ddl(ident, names, unique), _marker(ident, marker)]


def index_ddl(ident: sql.Identifier, names: dict[str, str], unique: bool) -> list[sql.Composed]:
    """A partition's primary key and indexes under the app's names (``names``)."""
    out = [
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (id)").format(
            ident, sql.Identifier(names["pkey"])
        ),
        sql.SQL("CREATE INDEX {} ON {} (activity_id)").format(
            sql.Identifier(names["activity_idx"]), ident
        ),
        sql.SQL("CREATE INDEX {} ON {} (student_id)").format(
            sql.Identifier(names["student_idx"]), ident
        ),
    ]
    if unique:
        out.append(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE (activity_id, student_id)").format(
                ident, sql.Identifier(names["activity_student_key"])
            )
        )
    else:
        out.append(
            sql.SQL("CREATE INDEX {} ON {} (activity_id, student_id)").format(
                sql.Identifier(names["activity_student_idx"]), ident
            )
        )
    return out


def _marker(ident: sql.Identifier, marker: str) -> sql.Composed:
    return sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(marker))


def run(cur: Cursor, statements: list[sql.Composed]) -> None:
    for statement in statements:
        execute(cur, statement)


def local_partitions_placed_on_shards(cur: Cursor) -> list[tuple[str, str, str | None, str]]:
    """(table, class, term, shard) of live local partitions of classes placed on a shard."""
    cur.execute(
        "SELECT p.table_name, p.class_id, p.term_id, pl.shard FROM activity_grades_partition p "
        "JOIN activity_grades_placement pl ON pl.class_id = p.class_id "
        "JOIN pg_class c ON c.oid = to_regclass(quote_ident(p.table_name)) "
        "WHERE p.status = 'live' AND pl.shard <> 'local' AND c.relkind = 'r' ORDER BY p.id"
    )
    return [(r[0], r[1], r[2], r[3]) for r in cur.fetchall()]
