"""Make the database follow ``ACTIVITY_GRADES['UNIQUE_KEY']`` (``manage.py apply_unique_key``).

``plan()`` lists the tables whose (activity, student) index disagrees with the setting:
the key table ``activity_grades_key`` (the one that decides for the whole tree), the
parent and every live partition. ``apply()`` switches them one short transaction per
table, with ``LOCK_TIMEOUT``, the key table first, so partitions created meanwhile (by
the routing trigger) already follow the new mode; then it switches any partition that
was created between the plan and the key table's switch.

Turning the key on needs the tree to hold no two grades of one (activity, student):
``plan()`` counts them in the key table, and ``apply()`` refuses (``UniqueKeyError``,
nothing changed) while there are any; it counts again under the key table's lock, so
none can slip in between. Turning it off never fails on data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..core.constants import LOGGER_NAME
from ..core.exceptions import UniqueKeyError
from ..core.settings import app_settings
from ..db import unique_key
from ..db.connection import Cursor, cursor, lock_timeout_errors
from ..db.unique_key import KeyState, TableKind
from .base import Plan, Progress, Result, Stopwatch, each, run_steps

__all__ = [
    "DUPLICATES_SHOWN",
    "KeyItem",
    "UniqueKeyPlan",
    "UniqueKeyResult",
    "disagreeing",
    "duplicates_message",
    "plan",
]

logger = logging.getLogger(LOGGER_NAME)

# Pairs with several grades listed when turning the key on is refused.
DUPLICATES_SHOWN = 10


@dataclass
class KeyItem:
    """One table whose (activity, student) index is to change."""

    table: str
    kind: TableKind
    change: str  # e.g. "UNIQUE (activity_id, student_id) -> plain index <name>"


@dataclass
class UniqueKeyResult(Result):
    on: bool = True
    switched: list[str] = field(default_factory=list)  # table names
    statements: list[str] = field(default_factory=list)


@dataclass
class UniqueKeyPlan(Plan[KeyItem, UniqueKeyResult]):
    """The tables to switch to mode ``on``; ``duplicates`` > 0 makes ``apply`` refuse."""

    on: bool = field(default=True, kw_only=True)
    duplicates: int = field(default=0, kw_only=True)
    first_duplicates: list[tuple[str, str, int]] = field(default_factory=list, kw_only=True)

    @property
    def refused(self) -> str | None:
        """Why ``apply`` would refuse (duplicates), or None."""
        if not self.duplicates:
            return None
        return duplicates_message(self.duplicates, self.first_duplicates)

    def apply(self, progress: Progress | None = None) -> UniqueKeyResult:
        """Switch every table of the plan, the key table first, one transaction each.

        Raises:
            UniqueKeyError: turning the key on while grades share an (activity, student);
                nothing was changed.
            LockTimeout: a table's lock was not granted; tables switched before it stay
                switched (rerun to finish).
        """
        if self.refused:
            raise UniqueKeyError(self.refused)
        clock = Stopwatch()
        result = UniqueKeyResult(on=self.on)

        def work(item: KeyItem) -> list[str]:
            done = self._switch_one(item)
            result.switched.append(item.table)
            result.statements += done
            return done

        for _ in each(self.items, work, progress):
            pass
        # Partitions created with the old mode after plan() and before the key table's switch.
        with cursor(self.using) as cur:
            late = [
                _item(s, self.on)
                for s in disagreeing(cur, self.on)
                if s.table not in result.switched
            ]
        for _ in each(late, work, progress):
            pass
        result.seconds = clock.seconds
        if result.switched:
            logger.info(
                "unique key %s: switched %s table(s)",
                "on" if self.on else "off",
                len(result.switched),
            )
        return result

    def _switch_one(self, item: KeyItem) -> list[str]:
        done: list[str] = []

        def lock(cur: Cursor) -> None:
            unique_key.lock(cur, item.table)

        def check(cur: Cursor) -> None:
            if self.on and item.kind == "key table":
                total, first = unique_key.duplicates(cur, DUPLICATES_SHOWN)
                if total:
                    raise UniqueKeyError(duplicates_message(total, first))

        def switch(cur: Cursor) -> None:
            for state in unique_key.states(cur, item.table):
                done.extend(unique_key.switch(cur, state, self.on))

        timeout = app_settings.LOCK_TIMEOUT
        with lock_timeout_errors(f"table {item.table}", timeout):
            run_steps(self.using, timeout, [lock, check, switch])
        return done


def duplicates_message(total: int, first: list[tuple[str, str, int]]) -> str:
    """Why the key cannot be turned on: how many pairs repeat, and the first of them."""
    shown = "; ".join(f"activity {a!r} student {s!r}: {n} grades" for a, s, n in first)
    more = f" (the first {len(first)})" if total > len(first) else ""
    return (
        f"cannot make (activity_id, student_id) unique: {total} (activity, student) pair(s) "
        f"have several grades{more}: {shown}. Keep one grade of each (or set "
        "ACTIVITY_GRADES['UNIQUE_KEY'] = None); nothing was changed"
    )


def disagreeing(cur: Cursor, on: bool) -> list[KeyState]:
    """The tables whose (activity, student) index is not what mode ``on`` wants."""
    return [s for s in unique_key.states(cur) if not s.agrees(on)]


def _item(state: KeyState, on: bool) -> KeyItem:
    cols = ", ".join(state.columns)
    if on:
        drop = f" (drop {', '.join(state.plain)})" if state.plain else ""
        change = f"plain index -> UNIQUE ({cols}) constraint {state.constraint}{drop}"
    else:
        drop = f" (drop {', '.join(state.unique)})" if state.unique else ""
        change = f"UNIQUE ({cols}) -> plain index {state.index}{drop}"
    return KeyItem(state.table, state.kind, change)


def plan(using: str = "default") -> UniqueKeyPlan:
    """What switching the database to the ``UNIQUE_KEY`` setting changes; changes nothing.

    Turning the key on counts the (activity, student) pairs with several grades (a
    scan of the key table); ``plan.refused`` then says why ``apply`` would refuse.
    """
    app_settings.require_valid("UNIQUE_KEY")
    on = app_settings.unique_key_on
    with cursor(using) as cur:
        states = disagreeing(cur, on)
        total, first = 0, list[tuple[str, str, int]]()
        if on and any(s.kind == "key table" for s in states):
            total, first = unique_key.duplicates(cur, DUPLICATES_SHOWN)
    return UniqueKeyPlan(
        [_item(s, on) for s in states],
        on=on,
        duplicates=total,
        first_duplicates=first,
        using=using,
    )
