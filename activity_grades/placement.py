"""Which server holds a class: the coordinator (``'local'``) or a shard (issue 16).

A class's placement is decided the first time it is asked for and recorded in
``activity_grades_placement``; afterwards it is read from there, whatever the settings
say, so adding a shard (or changing ``SHARD_NEW_CLASSES``) never moves a placed class.
The first decision, in order:

1. a class that already has partitions (registry rows of any status) stays ``'local'``:
   its grades are on the coordinator, and only ``move_class`` moves them;
2. ``SHARD_PLACEMENT[class_id]``, when set;
3. ``SHARD_NEW_CLASSES = 'hash'``: the shard of ``SHARDS`` the class hashes to
   (``core.shards.hashed_shard``); the default ``'local'`` keeps it on the coordinator.

Nothing is hashed by default: turning sharding on must not scatter classes onto servers
nobody chose. A project that wants new classes spread opts in with ``'hash'``.
"""

from __future__ import annotations

from .core.exceptions import PlacementError
from .core.ids import as_text
from .core.settings import app_settings
from .core.shards import LOCAL, hashed_shard
from .db import placement as recorded_placement
from .db.connection import Cursor, atomic, cursor
from .db.placement import Placement

__all__ = [
    "LOCAL",
    "Placement",
    "place",
    "placement_of",
    "placements",
    "shard_of",
    "would_place",
]


def _decide(cur: Cursor, class_id: str) -> tuple[str, str]:
    """(shard, decided_by) for a class placed for the first time."""
    if recorded_placement.has_partitions(cur, class_id):
        return LOCAL, "existing"
    configured = app_settings.configured_placement(class_id)
    if configured is not None:
        return configured, "setting"
    if app_settings.SHARD_NEW_CLASSES == "hash" and app_settings.shards:
        return hashed_shard(class_id, app_settings.shards), "hash"
    return LOCAL, "default"


def placement_of(class_id: object, using: str = "default") -> Placement:
    """The recorded placement of a class, deciding and recording it on first use."""
    cid = as_text(class_id, "class_id")
    found = recorded_placement.recorded(using, cid)
    if found is not None:
        return found
    app_settings.require_valid("SHARDS", "SHARD_PLACEMENT", "SHARD_NEW_CLASSES")
    with atomic(using), cursor(using) as cur:
        # Whoever holds the lock decides; the other reads that decision once it commits.
        recorded_placement.lock_class(cur, cid)
        found = recorded_placement.read(cur, cid)
        if found is None:
            shard, how = _decide(cur, cid)
            found = recorded_placement.record(cur, cid, shard, how, replace=False)
    return found


def shard_of(class_id: object, using: str = "default") -> str:
    """The shard alias that holds a class, or ``'local'`` (see the module's docstring)."""
    return placement_of(class_id, using).shard


def would_place(class_id: object, using: str = "default") -> str:
    """``shard_of`` without recording a first decision (for dry runs)."""
    cid = as_text(class_id, "class_id")
    found = recorded_placement.recorded(using, cid)
    if found is not None:
        return found.shard
    app_settings.require_valid("SHARDS", "SHARD_PLACEMENT", "SHARD_NEW_CLASSES")
    with cursor(using) as cur:
        return _decide(cur, cid)[0]


def place(class_id: object, shard: str, using: str = "default") -> Placement:
    """Place a class that has no partitions yet on ``shard`` (an alias of SHARDS or 'local').

    Raises:
        PlacementError: an unknown shard, or a class that already has partitions.
    """
    cid = as_text(class_id, "class_id")
    if shard != LOCAL and shard not in app_settings.shards:
        raise PlacementError(
            f"cannot place class {cid!r} on {shard!r}: not a shard of "
            f"ACTIVITY_GRADES['SHARDS'] {list(app_settings.shards)!r} nor {LOCAL!r}"
        )
    with atomic(using), cursor(using) as cur:
        recorded_placement.lock_class(cur, cid)
        if recorded_placement.has_partitions(cur, cid):
            now = recorded_placement.read(cur, cid)
            where = now.shard if now is not None else LOCAL
            if now is not None and where == shard:
                return now  # already there: nothing to do
            if where == shard:  # local partitions, never placed: record what is true
                return recorded_placement.record(cur, cid, LOCAL, "existing", replace=False)
            raise PlacementError(
                f"class {cid!r} already has partitions (on {where!r}): placing it elsewhere "
                f"means moving its grades: manage.py move_class {cid} --to {shard}"
            )
        return recorded_placement.record(cur, cid, shard, "place")


def placements(using: str = "default") -> list[Placement]:
    """Every recorded placement, by class id."""
    return recorded_placement.all_placements(using)
