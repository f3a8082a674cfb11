"""SQL of the online conversion of an LMS's own ``activity_grades`` table (and back).

The orchestration (steps, checks, resuming) is ``operations/convert.py``; this module
only reads the catalog and runs statements. The LMS's table is always named with its
schema (``sql.Identifier(schema, name)``): while the app's objects wait in the staging
schema, an unqualified ``activity_grades`` is the app's staged parent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ..core.constants import (
    ARCHIVE_CHUNK_PARENT,
    ARCHIVE_ROWS_PARENT,
    KEY_TABLE,
    LEGACY_CLASS,
    LEGACY_MARKER,
    LEGACY_TABLE,
    PARENT,
    PARTITION_MARKER,
    ROUTE_LEGACY_TRIGGER,
    ROUTE_TRIGGER,
    STAGING_SCHEMA,
    Status,
)
from ..core.exceptions import ConversionError
from . import chunks
from .connection import Cursor, execute
from .registry import LIVE_TABLE

__all__ = [
    "Column",
    "Rel",
    "app_schema",
    "Index",
    "KEYS_FUNCTIONS",
    "backfill_keys",
    "blockers",
    "columns",
    "create_indexes",
    "drop_key_triggers",
    "duplicates",
    "hash_expression",
    "indexes",
    "install_key_triggers",
    "install_route_legacy",
    "lms_triggers",
    "move_rows",
    "moved_totals",
    "name_conflicts",
    "leads_an_index",
    "next_batch",
    "next_ids",
    "oid_of",
    "record_moved",
    "relations_in",
    "functions_in",
    "routing_groups",
    "set_schema",
    "state",
    "save_state",
]

# The generated trigger functions that keep the key index in step with the LMS's table
# while it is converted (they name the key table with its schema: the LMS's sessions
# have their own search_path), and the one that routes new grades into it on the way back.
KEYS_FUNCTIONS = ("activity_grades_legacy_keys", "activity_grades_legacy_keys_update")
ROUTE_LEGACY_FUNCTION = "activity_grades_route_legacy"

# Types whose values hash_record_extended hashes directly; any other column is hashed
# through its text form (json, xml, point... have no hash function).
_HASHABLE = frozenset(
    {
        "bigint",
        "boolean",
        "bytea",
        "character",
        "character varying",
        "date",
        "double precision",
        "integer",
        "interval",
        "jsonb",
        "numeric",
        "real",
        "smallint",
        "text",
        "time without time zone",
        "timestamp with time zone",
        "timestamp without time zone",
        "uuid",
    }
)


class Rel(sql.Identifier):
    """A table: ``Rel(schema, name)``, or ``Rel(name)`` as found on ``search_path``.

    The layers above name tables with it and never compose SQL themselves.
    """


@dataclass(frozen=True)
class Column:
    """A column of a table, as the catalog describes it."""

    name: str
    type: str  # format_type with the modifier: "character varying(20)"
    base: str  # without it: "character varying"
    not_null: bool
    default: str | None  # pg_get_expr of the default
    identity: bool
    generated: bool


@dataclass(frozen=True)
class Index:
    """An index of a table; ``constraint`` names the PRIMARY KEY/UNIQUE it backs."""

    name: str
    unique: bool
    primary: bool
    columns: tuple[str, ...]
    method: str  # what follows USING in pg_get_indexdef: "btree (activity_id)"
    constraint: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unique": self.unique,
            "primary": self.primary,
            "columns": list(self.columns),
            "method": self.method,
            "constraint": self.constraint,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Index:
        return cls(
            d["name"], d["unique"], d["primary"], tuple(d["columns"]), d["method"], d["constraint"]
        )


def oid_of(cur: Cursor, table: sql.Identifier) -> int | None:
    execute(cur, sql.SQL("SELECT to_regclass(%s)::oid::bigint"), [table.as_string()])
    oid: int | None = cur.fetchone()[0]
    return oid


def columns(cur: Cursor, oid: int) -> list[Column]:
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL), "
        "a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '', "
        "a.attgenerated <> '' FROM pg_attribute a LEFT JOIN pg_attrdef d "
        "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [oid],
    )
    return [Column(*row) for row in cur.fetchall()]


def indexes(cur: Cursor, oid: int) -> list[Index]:
    cur.execute(
        "SELECT i.relname, x.indisunique, x.indisprimary, "
        "array(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.n), "
        "regexp_replace(pg_get_indexdef(x.indexrelid), '^.*? USING ', ''), "
        "(SELECT c.conname FROM pg_constraint c WHERE c.conindid = x.indexrelid "
        "AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u')) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s "
        "ORDER BY x.indisprimary DESC, i.relname",
        [oid],
    )
    return [Index(n, u, p, tuple(c), m, con) for n, u, p, c, m, con in cur.fetchall()]


def blockers(cur: Cursor, oid: int) -> list[str]:
    """What keeps the table out of an inheritance tree, one sentence each."""
    found: list[str] = []
    cur.execute("SELECT relkind FROM pg_class WHERE oid = %s", [oid])
    if cur.fetchone()[0] != "r":
        found.append("it is not an ordinary table (a view, a foreign or a partitioned table)")
    cur.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE confrelid = %s AND contype = 'f' ORDER BY 1, 2",
        [oid],
    )
    for table, name in cur.fetchall():
        found.append(
            f"foreign key {name} of table {table} refers to it: rows that move to partitions "
            "would break it (inheritance has no foreign keys to a tree; drop it first)"
        )
    cur.execute(
        "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d "
        "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class "
        "WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %s AND v.oid <> %s ORDER BY 1",
        [oid, oid],
    )
    for (view,) in cur.fetchall():
        found.append(
            f"view {view} reads it: it would keep reading the old table only "
            "(drop it, convert, then create it again over activity_grades)"
        )
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = %s OR inhparent = %s)",
        [oid, oid],
    )
    if cur.fetchone()[0]:
        found.append("it already takes part in table inheritance")
    return found


def lms_triggers(cur: Cursor, oid: int) -> list[str]:
    """The LMS's own triggers on the table (they do not run for the partitions)."""
    cur.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal "
        "AND tgname NOT LIKE 'activity\\_grades\\_%%' ORDER BY 1",
        [oid],
    )
    return [r[0] for r in cur.fetchall()]


def duplicates(
    cur: Cursor, table: sql.Identifier, limit: int = 10
) -> tuple[int, list[tuple[Any, ...]]]:
    """(activity, student) pairs held by more than one row: how many, and the first ones."""
    execute(
        cur,
        sql.SQL(
            "SELECT activity_id::text, student_id::text, count(*) FROM ONLY {} "
            "GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 3 DESC, 1, 2"
        ).format(table),
    )
    rows = cur.fetchall()
    return len(rows), rows[:limit]


def routing_groups(cur: Cursor, table: sql.Identifier) -> list[tuple[Any, ...]]:
    """Rows of the table per (class, term) they route to, as the trigger would route them.

    ``found`` False: the activity does not exist; class None with found True: the
    activity has no class. ``partition`` is the live table of the pair, if any.
    """
    execute(
        cur,
        sql.SQL(
            "SELECT g.class_id, g.term_id, g.found, g.rows, {} FROM ("
            " SELECT l.class_id, l.term_id, coalesce(l.found, false) AS found, count(*) AS rows"
            " FROM ONLY {} r LEFT JOIN LATERAL (SELECT x.class_id, x.term_id, true AS found"
            " FROM activity_grades_locate(r.activity_id::text, r.created_at) x) l ON true"
            " GROUP BY 1, 2, 3) g, LATERAL (SELECT g.class_id, g.term_id) k"
            " ORDER BY 1, 2"
        ).format(LIVE_TABLE, table),
    )
    return cur.fetchall()


def state(cur: Cursor, direction: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT step, legacy_schema, cursor_id, details, started_at, finished_at "
        "FROM activity_grades_conversion WHERE direction = %s",
        [direction],
    )
    row = cur.fetchone()
    if row is None:
        return None
    keys = ("step", "legacy_schema", "cursor_id", "details", "started_at", "finished_at")
    found = dict(zip(keys, row, strict=True))
    # Django's connections load jsonb as text (JSONField decodes it itself).
    if isinstance(found["details"], str):
        found["details"] = json.loads(found["details"])
    return found


def save_state(
    cur: Cursor,
    direction: str,
    step: str,
    legacy_schema: str,
    cursor_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    cur.execute(
        "INSERT INTO activity_grades_conversion AS c "
        "(direction, step, legacy_schema, cursor_id, details) "
        "VALUES (%s, %s, %s, %s, coalesce(%s, '{}'::jsonb)) ON CONFLICT (direction) DO UPDATE "
        "SET step = EXCLUDED.step, legacy_schema = EXCLUDED.legacy_schema, "
        "cursor_id = EXCLUDED.cursor_id, details = coalesce(%s, c.details), updated_at = now(), "
        "finished_at = CASE WHEN EXCLUDED.step = 'done' THEN now() END",
        [
            direction,
            step,
            legacy_schema,
            cursor_id,
            Jsonb(details) if details is not None else None,
            Jsonb(details) if details is not None else None,
        ],
    )


def restart(cur: Cursor) -> None:
    """Forget the record of an earlier conversion (either direction) before a new one."""
    cur.execute("DELETE FROM activity_grades_conversion_moved")
    cur.execute("DELETE FROM activity_grades_conversion")


# -- the key index of the LMS's table ----------------------------------------------------


def install_key_triggers(cur: Cursor, table: sql.Identifier, app_schema: str) -> None:
    """Keep the key index in step with the table: its rows' keys carry LEGACY_CLASS.

    The functions live with the app's objects (``app_schema``) and name the key table
    with that schema, because the LMS's own sessions fire them. The delete looks the ids
    up with ``= ANY(ARRAY(...))``: a transition table has no statistics, and a join with
    it may scan the whole key index for each batch. ``CREATE OR REPLACE``:
    the swap runs this again once the objects have moved.
    """
    key = sql.Identifier(app_schema, KEY_TABLE)
    keys_fn = sql.Identifier(app_schema, KEYS_FUNCTIONS[0])
    update_fn = sql.Identifier(app_schema, KEYS_FUNCTIONS[1])
    execute(
        cur,
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
            "BEGIN\n"
            "    IF TG_OP = 'INSERT' THEN\n"
            "        INSERT INTO {key} (id, activity_id, student_id, class_id, term_id)\n"
            "        SELECT id, activity_id, student_id, {legacy}, NULL FROM new_rows;\n"
            "    ELSE\n"
            "        DELETE FROM {key} WHERE id = ANY (ARRAY(SELECT id FROM old_rows));\n"
            "    END IF;\n"
            "    RETURN NULL;\n"
            "END $f$"
        ).format(fn=keys_fn, key=key, legacy=sql.Literal(LEGACY_CLASS)),
    )
    execute(
        cur,
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
            "BEGIN\n"
            "    UPDATE {key} SET id = NEW.id, activity_id = NEW.activity_id,\n"
            "        student_id = NEW.student_id WHERE id = OLD.id;\n"
            "    RETURN NULL;\n"
            "END $f$"
        ).format(fn=update_fn, key=key),
    )
    for statement in (
        "CREATE OR REPLACE TRIGGER activity_grades_legacy_keys_insert AFTER INSERT ON {t} "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {keys}()",
        "CREATE OR REPLACE TRIGGER activity_grades_legacy_keys_delete AFTER DELETE ON {t} "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {keys}()",
        "CREATE OR REPLACE TRIGGER activity_grades_legacy_keys_update AFTER UPDATE ON {t} "
        "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id "
        "OR OLD.activity_id IS DISTINCT FROM NEW.activity_id "
        "OR OLD.student_id IS DISTINCT FROM NEW.student_id) EXECUTE FUNCTION {update}()",
        "CREATE OR REPLACE TRIGGER activity_grades_legacy_no_truncate BEFORE TRUNCATE ON {t} "
        "FOR EACH STATEMENT EXECUTE FUNCTION {no_truncate}()",
    ):
        execute(
            cur,
            sql.SQL(statement).format(
                t=table,
                keys=keys_fn,
                update=update_fn,
                no_truncate=sql.Identifier(app_schema, "activity_grades_no_truncate"),
            ),
        )


def drop_key_triggers(cur: Cursor, table: sql.Identifier | None, app_schema: str) -> None:
    """Drop what ``install_key_triggers`` made (``table`` None: the table is gone)."""
    if table is not None:
        for name in ("insert", "delete", "update"):
            execute(
                cur,
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                    sql.Identifier(f"activity_grades_legacy_keys_{name}"), table
                ),
            )
        execute(
            cur,
            sql.SQL("DROP TRIGGER IF EXISTS activity_grades_legacy_no_truncate ON {}").format(
                table
            ),
        )
    for fn in KEYS_FUNCTIONS:
        execute(cur, sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier(app_schema, fn)))


def install_route_legacy(cur: Cursor, app_schema: str, legacy: sql.Identifier) -> None:
    """On the way back: new grades through the parent go to the plain table, not a partition."""
    fn = sql.Identifier(app_schema, ROUTE_LEGACY_FUNCTION)
    execute(
        cur,
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
            "BEGIN\n"
            "    INSERT INTO {legacy} SELECT (NEW).*;\n"
            "    RETURN NULL;\n"
            "END $f$"
        ).format(fn=fn, legacy=legacy),
    )
    parent = sql.Identifier(app_schema, PARENT)
    execute(
        cur,
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(sql.Identifier(ROUTE_LEGACY_TRIGGER), parent, fn),
    )


def drop_route_legacy(cur: Cursor, parent: sql.Identifier, app_schema: str) -> None:
    execute(
        cur,
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
            sql.Identifier(ROUTE_LEGACY_TRIGGER), parent
        ),
    )
    execute(
        cur,
        sql.SQL("DROP FUNCTION IF EXISTS {}()").format(
            sql.Identifier(app_schema, ROUTE_LEGACY_FUNCTION)
        ),
    )


def backfill_keys(
    cur: Cursor, table: sql.Identifier, after: str | None, limit: int
) -> tuple[int, str | None]:
    """Key rows for the next ``limit`` rows by id after ``after``: (rows read, last id).

    ``FOR SHARE``: a row deleted or updated meanwhile waits for this batch, so its
    trigger then finds the key row to change; ``ON CONFLICT (id)``: a row the trigger
    already recorded. A second row of one (activity, student) raises UniqueViolation.
    """
    where = sql.SQL("WHERE id > %s") if after is not None else sql.SQL("")
    execute(
        cur,
        sql.SQL(
            "WITH b AS (SELECT id, activity_id, student_id FROM ONLY {t} {where} ORDER BY id "
            "LIMIT %s FOR SHARE), i AS (INSERT INTO {key} (id, activity_id, student_id, "
            "class_id, term_id) SELECT id, activity_id, student_id, %s, NULL FROM b "
            "ON CONFLICT (id) DO NOTHING) SELECT count(*), max(id)::text FROM b"
        ).format(t=table, where=where, key=sql.Identifier(KEY_TABLE)),
        [*([after] if after is not None else []), limit, LEGACY_CLASS],
    )
    count, last = cur.fetchone()
    return count, last


# -- moving rows ---------------------------------------------------------------------------


def hash_expression(cols: Iterable[Column], alias: str) -> sql.Composable:
    """A 64-bit hash of a row's ``cols``: hash_record_extended, text for unhashable types."""
    parts = [
        sql.Identifier(alias, c.name)
        if c.base in _HASHABLE
        else sql.SQL("{}::text").format(sql.Identifier(alias, c.name))
        for c in cols
    ]
    return sql.SQL("hash_record_extended(ROW({}), 0)").format(sql.SQL(", ").join(parts))


def next_ids(cur: Cursor, table: sql.Identifier, after: str | None, limit: int) -> list[str]:
    """The ids of the next ``limit`` rows after id ``after``, in id order."""
    where = sql.SQL("WHERE id > %s") if after is not None else sql.SQL("")
    execute(
        cur,
        sql.SQL("SELECT id::text FROM ONLY {} {} ORDER BY id LIMIT %s").format(table, where),
        [*([after] if after is not None else []), limit],
    )
    return [r[0] for r in cur.fetchall()]


def leads_an_index(cur: Cursor, oid: int, column: str) -> bool:
    """Whether an index of the table starts with ``column`` (and is not partial)."""
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid "
        "AND a.attnum = x.indkey[0] WHERE x.indrelid = %s AND a.attname = %s "
        "AND x.indpred IS NULL)",
        [oid, column],
    )
    found: bool = cur.fetchone()[0]
    return found


def next_batch(
    cur: Cursor, table: sql.Identifier, after: list[str] | None, limit: int, by_activity: bool
) -> tuple[list[str], list[str] | None]:
    """The next ``limit`` rows' ids after position ``after``, and the last one's position.

    ``by_activity``: in (activity_id, id) order, so a batch holds few activities and lands
    in few partitions (one INSERT and one check each); else in id order.
    """
    if not by_activity:
        ids = next_ids(cur, table, after[0] if after else None, limit)
        return ids, ([ids[-1]] if ids else None)
    where = sql.SQL("WHERE (activity_id::text, id::text) > (%s, %s)") if after else sql.SQL("")
    execute(
        cur,
        sql.SQL(
            "SELECT activity_id::text, id::text FROM ONLY {} {} "
            "ORDER BY activity_id::text, id::text LIMIT %s"
        ).format(table, where),
        [*(after or []), limit],
    )
    rows = cur.fetchall()
    return [r[1] for r in rows], (list(rows[-1]) if rows else None)


def move_rows(
    cur: Cursor,
    source: sql.Identifier,
    target: sql.Identifier | None,
    cols: list[Column],
    ids: list[str],
) -> dict[str, int]:
    """Delete the rows ``ids`` from ``source`` and insert them into ``target``.

    ``target`` None: into their partitions, routed as the trigger routes a row without a
    class (``activity_grades_locate``), one INSERT per partition instead of the trigger's
    one per row. Two statements through a temporary table, so each table's key-index
    triggers run in order: the source's delete removes the keys, then the target's
    insert records them again. Returns {id: row hash} of the rows removed, for the
    caller's check of where they landed.
    """
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
    moving = sql.Identifier("activity_grades_moving")
    routing = (
        sql.SQL(", NULL::text AS class_id, NULL::text AS term_id")
        if target is None
        else sql.SQL("")
    )
    execute(
        cur,
        sql.SQL(
            "CREATE TEMP TABLE {m} ON COMMIT DROP AS SELECT {cols}{routing} FROM ONLY {src} "
            "WITH NO DATA"
        ).format(m=moving, cols=names, routing=routing, src=source),
    )
    located = (
        sql.SQL(
            ", l.class_id, l.term_id FROM d LEFT JOIN LATERAL "
            "activity_grades_locate(d.activity_id::text, d.created_at) l ON true"
        )
        if target is None
        else sql.SQL(" FROM d")
    )
    execute(
        cur,
        sql.SQL(
            "WITH d AS (DELETE FROM ONLY {src} WHERE id::text = ANY(%s) RETURNING {cols}) "
            "INSERT INTO {m} SELECT d.*{located}"
        ).format(src=source, cols=names, m=moving, located=located),
        [ids],
    )
    execute(
        cur,
        sql.SQL("SELECT id::text, {} FROM {} m").format(hash_expression(cols, "m"), moving),
    )
    removed = dict(cur.fetchall())
    if target is not None:
        execute(
            cur,
            sql.SQL("INSERT INTO {t} ({cols}) SELECT {cols} FROM {m}").format(
                t=target, cols=names, m=moving
            ),
        )
    else:
        _insert_routed(cur, moving, names)
    execute(cur, sql.SQL("DROP TABLE {}").format(moving))
    return removed


def _insert_routed(cur: Cursor, moving: sql.Identifier, names: sql.Composable) -> None:
    """One statement inserts every (class, term) group into its partition (one CTE each).

    A batch in id order spreads over many groups: an index keeps each CTE from reading
    the whole batch.
    """
    execute(cur, sql.SQL("CREATE INDEX ON {} (class_id, term_id)").format(moving))
    execute(cur, sql.SQL("ANALYZE {}").format(moving))
    execute(
        cur,
        sql.SQL(
            "SELECT k.class_id, k.term_id, {} FROM (SELECT DISTINCT class_id, term_id FROM {}) k"
        ).format(LIVE_TABLE, moving),
    )
    inserts: list[sql.Composable] = []
    params: list[Any] = []
    for class_id, term_id, leaf in cur.fetchall():
        if class_id is None:
            # No activity, or no class: the trigger raises its own error for these.
            execute(
                cur,
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE class_id IS NULL").format(
                    sql.Identifier(PARENT), names, names, moving
                ),
            )
            continue
        if leaf is None:
            cur.execute(
                "SELECT * FROM activity_grades_ensure_partition(%s, %s)", [class_id, term_id]
            )
            leaf = cur.fetchone()[0]
        inserts.append(
            sql.SQL(
                "{} AS (INSERT INTO {} ({}, class_id, term_id) SELECT {}, class_id, term_id "
                "FROM {} WHERE class_id = %s AND term_id IS NOT DISTINCT FROM %s)"
            ).format(sql.Identifier(f"i{len(inserts)}"), sql.Identifier(leaf), names, names, moving)
        )
        params += [class_id, term_id]
    if inserts:
        execute(cur, sql.SQL("WITH {} SELECT 1").format(sql.SQL(", ").join(inserts)), params)


def landed(
    cur: Cursor, cols: list[Column], ids: list[str]
) -> dict[tuple[str, str | None], dict[str, int]]:
    """Where the rows ``ids`` are now, from the key index: (class, term) -> {id: hash}.

    Each group is read from its own table (``FROM ONLY``), never through the parent; the
    LMS's table is the group (LEGACY_CLASS, None).
    """
    execute(
        cur,
        sql.SQL(
            "SELECT k.class_id, k.term_id, {}, array_agg(k.id) "
            "FROM {} k WHERE k.id = ANY(%s) GROUP BY 1, 2"
        ).format(LIVE_TABLE, sql.Identifier(KEY_TABLE)),
        [ids],
    )
    groups = cur.fetchall()
    out: dict[tuple[str, str | None], dict[str, int]] = {}
    parts = []
    params: list[Any] = []
    for i, (_class_id, _term_id, table, group_ids) in enumerate(groups):
        if table is None:
            continue  # a key without a live table: the caller's check finds it missing
        parts.append(
            sql.SQL(
                "SELECT %s::int, l.id::text, {} FROM ONLY {} l WHERE l.id::text = ANY(%s)"
            ).format(hash_expression(cols, "l"), sql.Identifier(table))
        )
        params += [i, group_ids]
    for _class_id, _term_id, _table, _ids in groups:
        out[(_class_id, _term_id)] = {}
    if parts:
        execute(cur, sql.SQL(" UNION ALL ").join(parts), params)
        for i, grade_id, row_hash in cur.fetchall():
            class_id, term_id = groups[i][0], groups[i][1]
            out[(class_id, term_id)][grade_id] = row_hash
    return out


def record_moved(
    cur: Cursor, direction: str, groups: dict[tuple[str, str | None], tuple[int, int]]
) -> None:
    """Add a verified batch's rows and hash sums per (class, term) to the record."""
    for (class_id, term_id), (rows, checksum) in groups.items():
        cur.execute(
            "INSERT INTO activity_grades_conversion_moved AS m "
            "(direction, class_id, term_id, rows, checksum) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (direction, class_id, (term_id IS NULL), coalesce(term_id, '')) "
            "DO UPDATE SET rows = m.rows + EXCLUDED.rows, "
            "checksum = m.checksum + EXCLUDED.checksum",
            [direction, class_id, term_id, rows, checksum],
        )


def moved_totals(cur: Cursor, direction: str) -> list[tuple[str, str | None, int, Any]]:
    cur.execute(
        "SELECT class_id, term_id, rows, checksum FROM activity_grades_conversion_moved "
        "WHERE direction = %s ORDER BY 1, 2 NULLS FIRST",
        [direction],
    )
    return cur.fetchall()


def keys_outside(cur: Cursor, legacy: bool) -> int:
    """Key rows of the LMS's table (``legacy``) or of the partitions (not ``legacy``)."""
    cur.execute(
        "SELECT count(*) FROM activity_grades_key WHERE (class_id = %s) = %s",
        [LEGACY_CLASS, legacy],
    )
    count: int = cur.fetchone()[0]
    return count


# -- moving the app's objects between schemas ---------------------------------------------


def relations_in(cur: Cursor, schema: str, names: Iterable[str] | None = None) -> list[str]:
    """Tables and views of ``schema`` (only those in ``names`` when given); indexes and owned
    sequences move with their tables."""
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition "
        "AND (%s::text[] IS NULL OR c.relname = ANY(%s::text[])) ORDER BY 1",
        [schema, None if names is None else list(names), None if names is None else list(names)],
    )
    return [r[0] for r in cur.fetchall()]


def functions_in(cur: Cursor, schema: str, names: Iterable[str] | None = None) -> list[str]:
    """``regprocedure`` text (name and argument types) of the functions of ``schema``."""
    cur.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = %s "
        "AND (%s::text[] IS NULL OR p.proname = ANY(%s::text[])) ORDER BY 1",
        [schema, None if names is None else list(names), None if names is None else list(names)],
    )
    return [r[0] for r in cur.fetchall()]


def name_conflicts(cur: Cursor, from_schema: str, to_schema: str) -> list[tuple[str, str, int]]:
    """Relations of ``from_schema`` (tables, their indexes and sequences) whose name is
    taken in ``to_schema``: (name, kind there, oid of the table it belongs to there).
    The parent's own name is the LMS's table: the swap renames that one first."""
    cur.execute(
        "SELECT t.relname, t.relkind::text, coalesce(x.indrelid, d.refobjid, t.oid)::bigint "
        "FROM pg_class s JOIN pg_namespace sn ON sn.oid = s.relnamespace "
        "JOIN pg_class t ON t.relname = s.relname "
        "JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "LEFT JOIN pg_index x ON x.indexrelid = t.oid "
        "LEFT JOIN pg_depend d ON d.objid = t.oid AND d.classid = 'pg_class'::regclass "
        "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "AND t.relkind = 'S' "
        "WHERE sn.nspname = %s AND tn.nspname = %s AND t.relname <> %s ORDER BY 1",
        [from_schema, to_schema, PARENT],
    )
    return cur.fetchall()


def set_schema(
    cur: Cursor, tables: list[str], functions: list[str], from_schema: str, to: str
) -> None:
    """Move functions, then tables (with their indexes, sequences, triggers) to ``to``.

    Functions first: their signatures name the parent's row type, which must still
    resolve where it was.
    """
    for signature in functions:
        # regprocedure text is a quoted, schema-qualified signature from the catalog.
        execute(
            cur,
            sql.SQL("ALTER FUNCTION {} SET SCHEMA {}").format(
                sql.SQL(signature), sql.Identifier(to)
            ),
        )
    # The functions triggers call name their schema in their search_path (migration 0009).
    cur.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = %s AND EXISTS (SELECT 1 FROM "
        "unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%%')",
        [to],
    )
    for (signature,) in cur.fetchall():
        execute(
            cur,
            sql.SQL("ALTER FUNCTION {} SET search_path = {}, pg_temp").format(
                sql.SQL(signature), sql.Identifier(to)
            ),
        )
    for table in tables:
        execute(
            cur,
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(from_schema, table), sql.Identifier(to)
            ),
        )


def create_indexes(
    cur: Cursor, table: sql.Identifier, wanted: list[Index], prefix: str
) -> list[tuple[str, str]]:
    """Create ``wanted`` on ``table`` under temporary names ``<prefix><n>``.

    Returns (temporary name, final name) pairs; the caller renames once the final names
    are free. ``method`` comes from pg_get_indexdef (catalog text, not user input).
    """
    renames = []
    for n, index in enumerate(wanted):
        temp = f"{prefix}{n}"
        unique = sql.SQL("UNIQUE ") if index.unique else sql.SQL("")
        execute(
            cur,
            sql.SQL("CREATE {}INDEX {} ON {} USING {}").format(
                unique, sql.Identifier(temp), table, sql.SQL(index.method)
            ),
        )
        if index.constraint is not None:
            kind = sql.SQL("PRIMARY KEY") if index.primary else sql.SQL("UNIQUE")
            execute(
                cur,
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}").format(
                    table, sql.Identifier(temp), kind, sql.Identifier(temp)
                ),
            )
        renames.append((temp, index.constraint or index.name))
    return renames


# -- steps of the conversion (one transaction each, run by operations/convert.py) ----------

_LOCK_MODES = frozenset({"EXCLUSIVE", "ACCESS EXCLUSIVE", "SHARE"})


def lock(cur: Cursor, table: sql.Identifier, mode: str) -> None:
    if mode not in _LOCK_MODES:
        raise ValueError(f"lock mode {mode!r}")
    execute(cur, sql.SQL("LOCK TABLE ONLY {} IN {} MODE").format(table, sql.SQL(mode)))


def has_rows(cur: Cursor, table: sql.Identifier) -> bool:
    execute(cur, sql.SQL("SELECT EXISTS (SELECT 1 FROM ONLY {})").format(table))
    found: bool = cur.fetchone()[0]
    return found


def comment_of(cur: Cursor, oid: int) -> str | None:
    cur.execute("SELECT obj_description(%s, 'pg_class')", [oid])
    comment: str | None = cur.fetchone()[0]
    return comment


def lms_table_beside_staging(cur: Cursor) -> tuple[str, int, str | None] | None:
    """(schema, oid, comment) of the LMS's ``activity_grades``, skipping the staging schema."""
    cur.execute(
        "SELECT n.nspname, c.oid::bigint, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = %s "
        "AND n.nspname <> %s AND n.nspname = ANY(current_schemas(false)) "
        "ORDER BY array_position(current_schemas(false), n.nspname) LIMIT 1",
        [PARENT, STAGING_SCHEMA],
    )
    row = cur.fetchone()
    return (row[0], row[1], row[2]) if row else None


def swap_into_tree(cur: Cursor, schema: str, oid: int, app_schema: str) -> dict[str, Any]:
    """The swap to the tree, in the caller's transaction (the LMS's table locked).

    Renames the LMS's table ``activity_grades_legacy`` (its index names that the app's
    objects need get a ``_legacy`` suffix), moves every object of the staging schema to
    ``app_schema`` (beside it, unless ``ACTIVITY_GRADES['SCHEMA']`` names another), fits
    the empty parent and archive to its columns (``fit_parent``) and makes it a child of
    the parent. Returns what converting back needs: its indexes, comment and columns.
    """
    lms = sql.Identifier(schema, PARENT)
    legacy = sql.Identifier(schema, LEGACY_TABLE)
    legacy_cols = columns(cur, oid)
    details = {
        "indexes": [ix.as_dict() for ix in indexes(cur, oid)],
        "comment": comment_of(cur, oid),
        "columns": [c.name for c in legacy_cols],
        "defaults": {c.name: c.default for c in legacy_cols},
    }
    for name, kind, owner in name_conflicts(cur, STAGING_SCHEMA, app_schema):
        if owner != oid:
            raise ConversionError(f"{app_schema}.{name} exists and is not part of the LMS's table")
        what = {"i": "INDEX", "S": "SEQUENCE"}.get(kind, "TABLE")
        execute(
            cur,
            sql.SQL("ALTER {} {} RENAME TO {}").format(
                sql.SQL(what), sql.Identifier(schema, name), sql.Identifier(f"{name[:50]}_legacy")
            ),
        )
    execute(cur, sql.SQL("ALTER TABLE {} RENAME TO {}").format(lms, sql.Identifier(LEGACY_TABLE)))
    execute(cur, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(app_schema)))
    set_schema(
        cur,
        relations_in(cur, STAGING_SCHEMA),
        functions_in(cur, STAGING_SCHEMA),
        STAGING_SCHEMA,
        app_schema,
    )
    execute(cur, sql.SQL("DROP SCHEMA {}").format(sql.Identifier(STAGING_SCHEMA)))
    fit_parent(cur, app_schema, legacy, legacy_cols)
    execute(
        cur,
        sql.SQL("ALTER TABLE {} ADD COLUMN class_id text, ADD COLUMN term_id text").format(legacy),
    )
    # Some servers refuse INHERIT while the table has triggers with transition tables
    # (PostgreSQL 16 here); the caller creates them again (install_key_triggers), in
    # this transaction, under the lock: no write comes between.
    for name in ("insert", "delete"):
        execute(
            cur,
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(f"activity_grades_legacy_keys_{name}"), legacy
            ),
        )
    execute(
        cur, sql.SQL("ALTER TABLE {} INHERIT {}").format(legacy, sql.Identifier(app_schema, PARENT))
    )
    execute(cur, sql.SQL("COMMENT ON TABLE {} IS %s").format(legacy), [LEGACY_MARKER])
    return details


def fit_parent(cur: Cursor, schema: str, legacy: sql.Identifier, legacy_cols: list[Column]) -> None:
    """Give the (empty) parent and archive the LMS table's types, defaults and extra columns.

    The archive's row table gets the same column, its chunk table an array of it, and the
    view ``archived_activity_grades`` over both is created again. Types and default
    expressions are catalog text (format_type, pg_get_expr), not input.
    """
    parent = sql.Identifier(schema, PARENT)
    rows_archive = sql.Identifier(schema, ARCHIVE_ROWS_PARENT)
    chunk_archive = sql.Identifier(schema, ARCHIVE_CHUNK_PARENT)
    parent_oid = oid_of(cur, parent)
    assert parent_oid is not None
    mine = {c.name: c for c in columns(cur, parent_oid)}
    # The view depends on the archive's columns: drop it while they change.
    chunks.drop_view(cur, schema)
    for col in legacy_cols:
        name = sql.Identifier(col.name)
        have = mine.get(col.name)
        typed = [(parent, sql.SQL(col.type)), (rows_archive, sql.SQL(col.type))]
        typed.append((chunk_archive, sql.SQL(col.type + "[]")))
        if have is None:
            null = sql.SQL(" NOT NULL") if col.not_null else sql.SQL("")
            for table, type_ in typed:
                execute(
                    cur,
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}").format(
                        table, name, type_, null if table != chunk_archive else sql.SQL("")
                    ),
                )
        elif have.type != col.type:
            for table, type_ in typed:
                execute(
                    cur,
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(table, name, type_),
                )
        if col.default is not None:
            execute(
                cur,
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
                    parent, name, sql.SQL(col.default)
                ),
            )
    chunks.create_view(cur, schema, [c.name for c in columns(cur, parent_oid)])
    # A serial column's sequence belongs to the LMS's table: give it to the parent, or
    # dropping the old table at the end would take it (and the default) along.
    cur.execute(
        "SELECT s.oid::regclass::text, a.attname FROM pg_depend d "
        "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
        "WHERE d.classid = 'pg_class'::regclass AND d.refobjid = to_regclass(%s) "
        "AND d.deptype = 'a'",
        [legacy.as_string()],
    )
    for seq, column in cur.fetchall():
        execute(
            cur,
            sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(
                sql.SQL(seq), sql.Identifier(schema, PARENT, column)
            ),
        )


def app_schema(cur: Cursor) -> str:
    """The schema the app's tables are found in on ``search_path`` (the registry's)."""
    cur.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass('activity_grades_partition')"
    )
    row = cur.fetchone()
    if row is None:
        raise ConversionError("the app's tables are not on search_path")
    schema: str = row[0]
    return schema


def drop_from_tree(cur: Cursor, table: sql.Identifier, parent: sql.Identifier) -> None:
    """Detach and drop the emptied LMS table (the caller checked marker and emptiness)."""
    execute(cur, sql.SQL("ALTER TABLE {} NO INHERIT {}").format(table, parent))
    execute(cur, sql.SQL("DROP TABLE {}").format(table))


# -- back to one plain table ---------------------------------------------------------------


def live_groups(cur: Cursor) -> list[tuple[str, str | None, int, str | None]]:
    """(class, term, rows, live table) of every grade in the partitions, from the key index."""
    cur.execute(
        "SELECT k.class_id, k.term_id, count(*), p.table_name FROM activity_grades_key k "
        "LEFT JOIN activity_grades_partition p ON p.class_id = k.class_id "
        "AND p.term_id IS NOT DISTINCT FROM k.term_id AND p.status = %s "
        "WHERE k.class_id <> %s GROUP BY 1, 2, 4 ORDER BY 1, 2",
        [Status.LIVE.value, LEGACY_CLASS],
    )
    return cur.fetchall()


def not_live_counts(cur: Cursor) -> list[tuple[str, int]]:
    cur.execute(
        "SELECT status, count(*) FROM activity_grades_partition WHERE status <> %s GROUP BY 1",
        [Status.LIVE.value],
    )
    return cur.fetchall()


def partitions(cur: Cursor, live_only: bool) -> list[tuple[int, str, str, str | None]]:
    """(registry id, table, class, term), term tables before class tables."""
    cur.execute(
        "SELECT id, table_name, class_id, term_id FROM activity_grades_partition "
        "WHERE NOT %s OR status = %s ORDER BY term_id IS NULL, id",
        [live_only, Status.LIVE.value],
    )
    return cur.fetchall()


def forget_partition(cur: Cursor, registry_id: int) -> None:
    cur.execute("DELETE FROM activity_grades_partition WHERE id = %s", [registry_id])


def month_tables(cur: Cursor, live_only: bool) -> list[tuple[int, str, str, str | None]]:
    """(month registry id, table, class, term) of the month tables (migration 0015)."""
    cur.execute("SELECT to_regclass('activity_grades_month') IS NULL")
    if cur.fetchone()[0]:
        return []
    cur.execute(
        "SELECT id, table_name, class_id, term_id FROM activity_grades_month "
        "WHERE NOT %s OR status = %s ORDER BY id",
        [live_only, Status.LIVE.value],
    )
    return cur.fetchall()


def forget_month(cur: Cursor, month_id: int) -> None:
    cur.execute("DELETE FROM activity_grades_month WHERE id = %s", [month_id])


def add_plain_table(
    cur: Cursor, schema: str, app_schema: str, parent_oid: int, wanted: list[Index]
) -> list[tuple[str, str]]:
    """The way back: a plain copy of the parent's columns joins the tree and takes new grades.

    Its indexes are ``wanted`` under temporary names (the parent holds the usual ones);
    returns (temporary, final) name pairs for the swap.
    """
    parent = sql.Identifier(app_schema, PARENT)
    legacy = sql.Identifier(schema, LEGACY_TABLE)
    execute(
        cur,
        sql.SQL(
            "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION)"
        ).format(legacy, parent),
    )
    renames = create_indexes(cur, legacy, wanted or indexes(cur, parent_oid), "ag_legacy_ix")
    execute(cur, sql.SQL("COMMENT ON TABLE {} IS %s").format(legacy), [LEGACY_MARKER])
    execute(cur, sql.SQL("ALTER TABLE {} INHERIT {}").format(legacy, parent))
    install_key_triggers(cur, legacy, app_schema)
    install_route_legacy(cur, app_schema, legacy)
    execute(
        cur,
        sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(parent, sql.Identifier(ROUTE_TRIGGER)),
    )
    return renames


def swap_out_of_tree(
    cur: Cursor,
    schema: str,
    app_schema: str,
    tables: list[str],
    functions: list[str],
    details: dict[str, Any],
) -> bool:
    """The swap back, in the caller's transaction; False if a partition still has grades.

    Locks the parent, the plain table and the key index (no grade reaches a partition
    until the commit), detaches the plain table, puts the routing trigger back, moves the
    app's ``tables`` and ``functions`` to the staging schema (the key index emptied: it
    held the plain table's keys only), and gives the plain table its name, its original
    indexes' names and comment.
    """
    parent = sql.Identifier(app_schema, PARENT)
    legacy = sql.Identifier(schema, LEGACY_TABLE)
    lock(cur, parent, "ACCESS EXCLUSIVE")
    lock(cur, legacy, "ACCESS EXCLUSIVE")
    lock(cur, sql.Identifier(app_schema, KEY_TABLE), "SHARE")
    if keys_outside(cur, legacy=False):
        return False
    execute(cur, sql.SQL("ALTER TABLE {} NO INHERIT {}").format(legacy, parent))
    drop_route_legacy(cur, parent, app_schema)
    execute(
        cur,
        sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(parent, sql.Identifier(ROUTE_TRIGGER)),
    )
    drop_key_triggers(cur, legacy, app_schema)
    execute(cur, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(STAGING_SCHEMA)))
    set_schema(
        cur,
        relations_in(cur, app_schema, tables),
        functions_in(cur, app_schema, functions),
        app_schema,
        STAGING_SCHEMA,
    )
    execute(cur, sql.SQL("TRUNCATE {}").format(sql.Identifier(STAGING_SCHEMA, KEY_TABLE)))
    for column in details.get("drop_columns", []):
        execute(
            cur, sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(legacy, sql.Identifier(column))
        )
    # The column defaults the LMS's table had (the plain copy took the parent's).
    for column, default in details.get("defaults", {}).items():
        change = (
            sql.SQL("SET DEFAULT {}").format(sql.SQL(default))
            if default
            else sql.SQL("DROP DEFAULT")
        )
        execute(
            cur,
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} {}").format(
                legacy, sql.Identifier(column), change
            ),
        )
    execute(cur, sql.SQL("ALTER TABLE {} RENAME TO {}").format(legacy, sql.Identifier(PARENT)))
    for temp, final in details.get("renames", []):
        execute(
            cur,
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(schema, temp), sql.Identifier(final)
            ),
        )
    execute(
        cur,
        sql.SQL("COMMENT ON TABLE {} IS %s").format(sql.Identifier(schema, PARENT)),
        [details.get("comment")],
    )
    return True


def drop_empty_partition(cur: Cursor, name: str) -> str | None:
    """Drop an emptied partition after the checks; else why not (it is kept)."""
    table = sql.Identifier(name)
    if oid_of(cur, table) is None:
        return None
    lock(cur, table, "ACCESS EXCLUSIVE")
    execute(cur, sql.SQL("SELECT obj_description(to_regclass(%s), 'pg_class')"), [name])
    if cur.fetchone()[0] != PARTITION_MARKER:
        return f"{name} has no partition marker"
    if has_rows(cur, table):
        return f"partition {name} has rows (written after the swap; not in the plain table)"
    execute(cur, sql.SQL("DROP TABLE {}").format(table))
    return None
