"""DDL of the app's own tables: partitions, archive years, repairs, detaching.

Partitions are created by the SQL function ``activity_grades_ensure_partition`` (one DDL
path for the routing trigger's on-demand creation and for ``create_partitions``); this
module calls it and the naming functions, each in a short transaction with the
``LOCK_TIMEOUT`` setting, so creators never queue long behind grading traffic.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from ..core.constants import DETACHED_MARKER, PARTITION_TRIGGERS
from ..core.settings import app_settings
from ..core.signals import partition_created, send_on_commit
from .catalog import IndexSignature
from .connection import Cursor, atomic, cursor, execute, set_lock_timeout

__all__ = [
    "add_index",
    "detach",
    "detach_child",
    "drop_table",
    "ensure_archive_year",
    "ensure_partition",
    "lock_table",
    "partition_ddl",
    "partition_name",
]


def ensure_partition(
    class_id: str, term_id: str | None, using: str = "default"
) -> tuple[str, bool]:
    """Create one partition (and its class table) if missing; return (table, created).

    Its own short transaction with a lock timeout; concurrent callers are safe. A new
    partition sends ``partition_created`` once the caller's transaction commits.
    """
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        return ensure_partition_in(cur, class_id, term_id, using)


def ensure_partition_in(
    cur: Cursor, class_id: str, term_id: str | None, using: str
) -> tuple[str, bool]:
    """``ensure_partition`` inside the caller's transaction (on ``using``'s connection)."""
    cur.execute("SELECT * FROM activity_grades_ensure_partition(%s, %s)", [class_id, term_id])
    table, created = cur.fetchone()
    if created:
        send_on_commit(partition_created, using, class_id=class_id, term_id=term_id, table=table)
    return table, created


def partition_name(cur: Cursor, class_id: str, term_id: str | None) -> str:
    """The name a new partition of (class, term) would get."""
    cur.execute("SELECT activity_grades_partition_name(%s, %s)", [class_id, term_id])
    name: str = cur.fetchone()[0]
    return name


def partition_ddl(
    cur: Cursor,
    table: str,
    parent: str,
    class_id: str,
    term_id: str | None,
    starts_at: datetime | None,
    ends_at: datetime | None,
) -> list[str]:
    """The statements ``ensure_partition`` runs to create one partition (for dry runs)."""
    cur.execute(
        "SELECT activity_grades_partition_ddl(%s, %s, %s, %s, %s, %s)",
        [table, parent, class_id, term_id, starts_at, ends_at],
    )
    return [row[0] for row in cur.fetchall()]


def ensure_archive_year(cur: Cursor, year: str) -> str:
    """The archive table of one academic year, created if missing (race-safe)."""
    cur.execute("SELECT table_name FROM activity_grades_archive_year(%s)", [year])
    table: str = cur.fetchone()[0]
    return table


def lock_table(cur: Cursor, table: str, mode: str) -> None:
    """``LOCK TABLE ONLY`` in one of the modes the archive path uses."""
    if mode not in ("SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"):
        raise ValueError(f"unexpected lock mode {mode!r}")
    execute(cur, sql.SQL("LOCK TABLE ONLY {} IN " + mode + " MODE").format(sql.Identifier(table)))


def drop_table(cur: Cursor, table: str) -> None:
    """DROP one table; callers check its ownership marker first."""
    execute(cur, sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def detach(cur: Cursor, table: str, parent: str) -> None:
    """Take a leaf out of the tree, keep it as a read-only copy no longer the app's to drop."""
    leaf = sql.Identifier(table)
    execute(cur, sql.SQL("ALTER TABLE {} NO INHERIT {}").format(leaf, sql.Identifier(parent)))
    for trigger in PARTITION_TRIGGERS:
        execute(
            cur, sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), leaf)
        )
    execute(cur, sql.SQL("COMMENT ON TABLE {} IS {}").format(leaf, sql.Literal(DETACHED_MARKER)))


def detach_child(cur: Cursor, table: str) -> None:
    """A month table of a term table being detached: it stays the detached copy's child
    (read with it) but is no longer the app's to drop, and routes nothing."""
    leaf = sql.Identifier(table)
    for trigger in PARTITION_TRIGGERS:
        execute(
            cur, sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), leaf)
        )
    execute(cur, sql.SQL("COMMENT ON TABLE {} IS {}").format(leaf, sql.Literal(DETACHED_MARKER)))


def add_index(using: str, table: str, suffix: str, signature: IndexSignature) -> str:
    """Create a missing index of a partition under the app's index name; return the SQL."""
    cols, unique, primary, am = signature
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        cur.execute("SELECT activity_grades_index_name(%s, %s)", [table, suffix])
        name = cur.fetchone()[0]
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        if primary or (unique and suffix == "activity_student_key"):
            kind = sql.SQL("PRIMARY KEY" if primary else "UNIQUE")
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} ({})").format(
                sql.Identifier(table), sql.Identifier(name), kind, columns
            )
        else:
            stmt = sql.SQL("CREATE {}INDEX {} ON {} USING {} ({})").format(
                sql.SQL("UNIQUE " if unique else ""),
                sql.Identifier(name),
                sql.Identifier(table),
                sql.Identifier(am),
                columns,
            )
        text = stmt.as_string(cur.connection)
        cur.execute(text)
    return text
