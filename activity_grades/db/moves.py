"""The SQL of ``move_class`` (migration 0018): the move's record, its capture log and
triggers, and the row I/O that copies a class's tables from one server to another.

Tables are named by :class:`Where`: a Django alias (the coordinator or a shard) and the
table there, so the same statements copy local -> shard, shard -> shard and shard ->
local, each run on the server that holds the table (never through a foreign table).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import sql

from . import leaves
from .connection import Cursor, execute, fetch_rows

__all__ = [
    "CAPTURE_TRIGGER",
    "Move",
    "STAGING_MARKER",
    "Where",
    "all_moves",
    "copy_in",
    "count",
    "disable_capture",
    "drop",
    "inherit",
    "mark",
    "moving",
    "max_id",
    "rename",
    "delete_all",
    "delete_ids",
    "drop_capture",
    "forget",
    "forget_months",
    "live",
    "live_months",
    "try_lock_run",
    "unlock_run",
    "waiting",
    "forget_logged",
    "has_capture",
    "install_capture",
    "logged",
    "read",
    "read_batch",
    "read_ids",
    "record_progress",
    "set_phase",
    "staging_name",
    "start",
]

CAPTURE_TRIGGER = "activity_grades_move_capture"
STAGING_MARKER = "activity_grades:move-staging"
"""A local table ``move_class`` fills before it replaces a foreign partition."""


@dataclass(frozen=True)
class Move:
    """One row of ``activity_grades_move_state``."""

    class_id: str
    source: str
    target: str
    phase: str
    progress: dict[str, str | None] = field(default_factory=dict)
    started_at: datetime | None = None


@dataclass(frozen=True)
class Where:
    """A table on one server: ``alias`` (Django), ``schema`` (None: the search path)."""

    alias: str
    schema: str | None
    table: str

    @property
    def ident(self) -> sql.Identifier:
        if self.schema is None:
            return sql.Identifier(self.table)
        return sql.Identifier(self.schema, self.table)

    def __str__(self) -> str:
        name = self.table if self.schema is None else f"{self.schema}.{self.table}"
        return f"{name} on {self.alias}"


# -- the record ---------------------------------------------------------------------------

_SELECT = (
    "SELECT class_id, source, target, phase, progress, started_at FROM activity_grades_move_state"
)


def _move(row: Sequence[Any]) -> Move:
    progress = row[4] if isinstance(row[4], dict) else json.loads(row[4])
    return Move(row[0], row[1], row[2], row[3], progress, row[5])


def read(cur: Cursor, class_id: str, *, lock: bool = False) -> Move | None:
    cur.execute(_SELECT + " WHERE class_id = %s" + (" FOR UPDATE" if lock else ""), [class_id])
    row = cur.fetchone()
    return None if row is None else _move(row)


def all_moves(using: str) -> list[Move]:
    """Every unfinished move (none before migration 0018)."""
    if not fetch_rows(using, "SELECT to_regclass('activity_grades_move_state') IS NOT NULL")[0][0]:
        return []
    return [_move(r) for r in fetch_rows(using, _SELECT + " ORDER BY class_id")]


def moving(using: str, class_ids: list[str]) -> set[str]:
    """Those of ``class_ids`` with an unfinished move (one primary-key look-up each)."""
    rows = fetch_rows(
        using,
        "SELECT class_id FROM activity_grades_move_state WHERE class_id = ANY(%s)",
        [class_ids],
    )
    return {r[0] for r in rows}


def start(cur: Cursor, class_id: str, source: str, target: str) -> Move:
    cur.execute(
        "INSERT INTO activity_grades_move_state (class_id, source, target) VALUES (%s, %s, %s) "
        "RETURNING class_id, source, target, phase, progress, started_at",
        [class_id, source, target],
    )
    return _move(cur.fetchone())


def record_progress(cur: Cursor, class_id: str, table: str, last_id: str | None) -> None:
    """The last id of ``table`` copied (None: its target exists, nothing copied yet)."""
    cur.execute(
        "UPDATE activity_grades_move_state SET progress = jsonb_set(progress, ARRAY[%s], "
        "coalesce(to_jsonb(%s::text), 'null')), updated_at = now() WHERE class_id = %s",
        [table, last_id, class_id],
    )


def set_phase(cur: Cursor, class_id: str, phase: str) -> None:
    cur.execute(
        "UPDATE activity_grades_move_state SET phase = %s, updated_at = now() WHERE class_id = %s",
        [phase, class_id],
    )


def forget(cur: Cursor, class_id: str) -> None:
    """The move is over: its record and its log go."""
    cur.execute("DELETE FROM activity_grades_move_log WHERE class_id = %s", [class_id])
    cur.execute("DELETE FROM activity_grades_move_state WHERE class_id = %s", [class_id])


def live(cur: Cursor, class_id: str) -> list[tuple[int, str, str | None, str]]:
    """(registry id, table, term, parent) of the class's live partitions, class first."""
    cur.execute(
        "SELECT id, table_name, term_id, parent_table FROM activity_grades_partition "
        "WHERE class_id = %s AND status = 'live' ORDER BY term_id IS NOT NULL, id",
        [class_id],
    )
    return [(int(r[0]), r[1], r[2], r[3]) for r in cur.fetchall()]


def live_months(cur: Cursor, class_id: str) -> list[str]:
    """The class's live month tables that exist (migration 0015 applied)."""
    cur.execute(
        "SELECT table_name FROM activity_grades_month WHERE class_id = %s AND status = 'live' "
        "AND to_regclass(quote_ident(table_name)) IS NOT NULL ORDER BY id",
        [class_id],
    )
    return [r[0] for r in cur.fetchall()]


def forget_months(cur: Cursor, class_id: str) -> None:
    """The month registry rows of a class whose month tables the swap dropped."""
    cur.execute(
        "DELETE FROM activity_grades_month WHERE class_id = %s AND status = 'live'", [class_id]
    )


def try_lock_run(using: str, class_id: str) -> bool:
    """One ``move_class`` run per class at a time: a session lock (held across the run's
    many transactions), released by :func:`unlock_run` or the session's end."""
    return bool(
        fetch_rows(
            using,
            "SELECT pg_try_advisory_lock(hashtext('activity_grades_move_state'), hashtext(%s))",
            [class_id],
        )[0][0]
    )


def unlock_run(using: str, class_id: str) -> None:
    fetch_rows(
        using,
        "SELECT pg_advisory_unlock(hashtext('activity_grades_move_state'), hashtext(%s))",
        [class_id],
    )


# -- the capture log ----------------------------------------------------------------------


def has_capture(cur: Cursor, table: str) -> bool:
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(quote_ident(%s)) "
        "AND tgname = %s)",
        [table, CAPTURE_TRIGGER],
    )
    return bool(cur.fetchone()[0])


def install_capture(cur: Cursor, table: str, class_id: str) -> None:
    """The row trigger that notes every id written to ``table`` (a local or foreign
    table on the coordinator); ``CREATE TRIGGER`` waits for the table's writers."""
    if has_capture(cur, table):
        return
    execute(
        cur,
        sql.SQL(
            "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW "
            "EXECUTE FUNCTION activity_grades_move_capture({})"
        ).format(sql.Identifier(CAPTURE_TRIGGER), sql.Identifier(table), sql.Literal(class_id)),
    )


def drop_capture(cur: Cursor, table: str) -> None:
    cur.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [table])
    if cur.fetchone()[0]:
        execute(
            cur,
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                sql.Identifier(CAPTURE_TRIGGER), sql.Identifier(table)
            ),
        )


def logged(
    cur: Cursor, class_id: str, limit: int, upto_seq: int | None = None
) -> list[tuple[int, str]]:
    """The oldest ``limit`` entries (seq, id) of the class's log (not past ``upto_seq``)."""
    cur.execute(
        "SELECT seq, id FROM activity_grades_move_log WHERE class_id = %s "
        "AND (%s::bigint IS NULL OR seq <= %s) ORDER BY seq LIMIT %s",
        [class_id, upto_seq, upto_seq, limit],
    )
    return [(int(r[0]), str(r[1])) for r in cur.fetchall()]


def waiting(cur: Cursor, class_id: str) -> tuple[int, int | None]:
    """(entries, greatest seq) of the class's log."""
    cur.execute(
        "SELECT count(*), max(seq) FROM activity_grades_move_log WHERE class_id = %s", [class_id]
    )
    count, last = cur.fetchone()
    return int(count), None if last is None else int(last)


def forget_logged(cur: Cursor, seqs: list[int]) -> None:
    """Exactly the entries copied: a write noted meanwhile stays for the next round."""
    cur.execute("DELETE FROM activity_grades_move_log WHERE seq = ANY(%s)", [seqs])


# -- rows ---------------------------------------------------------------------------------


def _from(where: Where, only: bool) -> sql.Composed:
    return sql.SQL("FROM {}{}").format(sql.SQL("ONLY " if only else ""), where.ident)


def _cols(cols: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, cols))


def read_batch(
    cur: Cursor,
    where: Where,
    cols: Sequence[str],
    only: bool,
    after: str | None,
    limit: int,
    upto: str | None = None,
) -> list[tuple[Any, ...]]:
    """The next ``limit`` rows after id ``after`` (and not past ``upto``), in the table's
    own id order (its primary key's: each batch is an index range scan)."""
    conds = [(c, v) for c, v in (("id > %s", after), ("id <= %s", upto)) if v is not None]
    where_sql = sql.SQL("WHERE " + " AND ".join(c for c, _ in conds) + " " if conds else "")
    execute(
        cur,
        sql.SQL("SELECT {} {} {}ORDER BY id LIMIT %s").format(
            _cols(cols), _from(where, only), where_sql
        ),
        [*(v for _, v in conds), limit],
    )
    return list(cur.fetchall())


def max_id(cur: Cursor, where: Where, only: bool) -> str | None:
    execute(cur, sql.SQL("SELECT max(id) {}").format(_from(where, only)))
    found = cur.fetchone()[0]
    return None if found is None else str(found)


def read_ids(
    cur: Cursor, where: Where, cols: Sequence[str], only: bool, ids: list[str], class_id: str
) -> list[tuple[Any, ...]]:
    """The rows of ``ids`` still in the class (one moved to another class has left it)."""
    execute(
        cur,
        sql.SQL("SELECT {} {} WHERE class_id = %s AND id = ANY(%s)").format(
            _cols(cols), _from(where, only)
        ),
        [class_id, ids],
    )
    return list(cur.fetchall())


def delete_ids(cur: Cursor, where: Where, ids: list[str]) -> None:
    execute(cur, sql.SQL("DELETE FROM ONLY {} WHERE id = ANY(%s)").format(where.ident), [ids])


def delete_all(cur: Cursor, where: Where) -> None:
    """Empty a target table (it has no triggers: nothing else changes)."""
    execute(cur, sql.SQL("DELETE FROM ONLY {}").format(where.ident))


def copy_in(cur: Any, where: Where, cols: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY ``rows`` into a target table on a Django cursor of its server."""
    leaves.copy_rows(cur, where.table, cols, rows, where.schema)


def count(cur: Cursor, where: Where, only: bool) -> int:
    execute(cur, sql.SQL("SELECT count(*) {}").format(_from(where, only)))
    return int(cur.fetchone()[0])


def disable_capture(cur: Cursor, foreign_table: str) -> None:
    """``DISABLE TRIGGER`` takes ``SHARE ROW EXCLUSIVE``, which ``LOCK TABLE`` cannot on a
    foreign table: its writers wait, its readers do not."""
    execute(
        cur,
        sql.SQL("ALTER FOREIGN TABLE {} DISABLE TRIGGER {}").format(
            sql.Identifier(foreign_table), sql.Identifier(CAPTURE_TRIGGER)
        ),
    )


def rename(table: str, to: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(table), sql.Identifier(to))


def inherit(table: str, parent: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} INHERIT {}").format(
        sql.Identifier(table), sql.Identifier(parent)
    )


def mark(table: str, marker: str) -> sql.Composed:
    return sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(table), sql.Literal(marker))


def drop(where: Where) -> sql.Composed:
    """DROP a target table of an aborted move; callers check its marker first."""
    return sql.SQL("DROP TABLE {}").format(where.ident)


def staging_name(registry_id: int) -> str:
    """A local table's name while it is filled to replace a foreign partition."""
    return f"activity_grades_moving_{registry_id}"
