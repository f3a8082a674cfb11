"""``activity_grades_placement``: the shard of each class, recorded once (migration 0014).

A class's first placement is decided under a transaction-level advisory lock of that
class, so two processes asking at once wait for each other and read one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .connection import Cursor, fetch_rows

__all__ = [
    "Placement",
    "all_placements",
    "exists",
    "has_partitions",
    "lock_class",
    "read",
    "record",
    "recorded",
]


@dataclass(frozen=True)
class Placement:
    """One row of ``activity_grades_placement``."""

    class_id: str
    shard: str
    decided_by: str
    placed_at: datetime


_SELECT = "SELECT class_id, shard, decided_by, placed_at FROM activity_grades_placement"


def read(cur: Cursor, class_id: str) -> Placement | None:
    cur.execute(_SELECT + " WHERE class_id = %s", [class_id])
    row = cur.fetchone()
    return None if row is None else Placement(*row)


def recorded(using: str, class_id: str) -> Placement | None:
    """The recorded placement of a class, or None (one primary-key lookup, no lock)."""
    rows = fetch_rows(using, _SELECT + " WHERE class_id = %s", [class_id])
    return Placement(*rows[0]) if rows else None


def exists(using: str) -> bool:
    """Whether the placement table exists (migration 0014 applied)."""
    found = fetch_rows(using, "SELECT to_regclass('activity_grades_placement') IS NOT NULL")
    return bool(found[0][0])


def all_placements(using: str) -> list[Placement]:
    rows = fetch_rows(using, _SELECT + " ORDER BY class_id")
    return [Placement(*row) for row in rows]


def lock_class(cur: Cursor, class_id: str) -> None:
    """Wait for (then hold to the end of the transaction) the placement lock of a class."""
    # Two keys: the placement's own lock space, then the class.
    cur.execute(
        "SELECT pg_advisory_xact_lock(hashtext('activity_grades_placement'), hashtext(%s))",
        [class_id],
    )


def has_partitions(cur: Cursor, class_id: str) -> bool:
    """Whether the registry has any row of the class (live, detached or archived)."""
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM activity_grades_partition WHERE class_id = %s)",
        [class_id],
    )
    return bool(cur.fetchone()[0])


def record(
    cur: Cursor, class_id: str, shard: str, decided_by: str, *, replace: bool = True
) -> Placement:
    """Record a class's placement and return what is recorded.

    ``replace=False`` (a first decision) keeps a placement another session recorded
    meanwhile and returns that one; ``replace=True`` (``place``) overwrites it.
    """
    conflict = (
        "DO UPDATE SET shard = excluded.shard, decided_by = excluded.decided_by, placed_at = now()"
        if replace
        else "DO NOTHING"
    )
    cur.execute(
        "INSERT INTO activity_grades_placement (class_id, shard, decided_by) "
        "VALUES (%s, %s, %s) ON CONFLICT (class_id) "
        + conflict
        + " RETURNING class_id, shard, decided_by, placed_at",
        [class_id, shard, decided_by],
    )
    row = cur.fetchone()
    if row is None:
        found = read(cur, class_id)
        assert found is not None
        return found
    return Placement(*row)
