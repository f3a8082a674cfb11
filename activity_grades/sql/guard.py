"""A migration operation that refuses to unapply a migration whose reverse would lose grades.

A migration whose reverse drops tables that hold grades (``0001_initial``: the tree and
any detached copies of archived leaves; ``0003_archive``: the archive) ends its
``operations`` with ``RefuseDataLoss(...)``. Unapplying runs operations last to first, so
the guard runs before anything is dropped: it counts the rows the reverse would lose and
raises ``DataLossRefused`` (a ``CommandError``: ``migrate`` prints it without a
traceback) naming the rows and what to run instead. With no rows it does nothing.

The app's pre_migrate handler also runs every guard of a migration plan *before* the
plan starts (``check_plan``), so ``migrate activity_grades zero`` stops with nothing
unapplied rather than halfway down the chain.

``ACTIVITY_GRADES_ALLOW_DATA_LOSS=1`` in the environment lets the reverse drop the rows
anyway (it is read when the guard runs, not from settings: a one-off decision).

Like the rest of this package it imports no live code of the app (migrations must not).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import migrations, transaction
from psycopg import sql as psql

__all__ = [
    "ALLOW_DATA_LOSS",
    "DataLossRefused",
    "Loss",
    "RefuseDataLoss",
    "check_plan",
]

ALLOW_DATA_LOSS = "ACTIVITY_GRADES_ALLOW_DATA_LOSS"
"""Environment variable: ``1`` lets a reverse migration drop grades on purpose."""

STAGING_SCHEMA = "activity_grades_staging"  # as activity_grades.sql.STAGING_SCHEMA

_TREE = """
WITH RECURSIVE tree(oid) AS (
    SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = to_regclass(%s)
    UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
)
SELECT n.nspname, c.relname FROM tree t JOIN pg_class c ON c.oid = t.oid
  JOIN pg_namespace n ON n.oid = c.relnamespace
UNION ALL
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(%s)
"""

_MARKED = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname = current_schema()
   AND obj_description(c.oid, 'pg_class') = ANY(%s)
"""


_ONE = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(%s)
"""


_COUNT_ONLY = psql.SQL("SELECT count(*) FROM ONLY {}")
_COUNT = psql.SQL("SELECT count(*) FROM {}")
_SUM = psql.SQL("SELECT coalesce(sum({}), 0) FROM {}")


class DataLossRefused(CommandError):
    """Unapplying a migration would drop grades; nothing was changed."""


@dataclass(frozen=True)
class Loss:
    """Rows one table would lose."""

    table: str
    rows: int


def _use_app_schema(cursor: Any) -> None:
    """The schema the app's migrations create in first on search_path (as ``AppSQL``)."""
    # Django's settings, not the app's code (migrations import nothing live).
    schema = getattr(settings, "ACTIVITY_GRADES", {}).get("SCHEMA") or STAGING_SCHEMA
    cursor.execute(
        "SELECT set_config('search_path', quote_ident(s.nspname) || ', ' "
        "|| current_setting('search_path'), true) FROM (SELECT nspname FROM pg_namespace "
        "WHERE nspname IN (%s, %s) ORDER BY nspname = %s DESC LIMIT 1) s",
        [STAGING_SCHEMA, schema, STAGING_SCHEMA],
    )


class RefuseDataLoss(migrations.operations.base.Operation):
    """Forward: nothing. Backward: refuse while the tables the reverse drops hold rows.

    Args:
        reason: what the reverse drops, for the message ("the archive", ...).
        tables: tables whose rows (children and partitions included) would be lost.
        trees: inheritance parents: every table below them is counted ``ONLY``, one by
            one (never the parent, which would lock every child at once).
        markers: ``COMMENT ON TABLE`` markers of further tables the reverse drops
            (detached copies of archived leaves).
        sums: table -> the column that counts the grades of each of its rows (the
            compressed archive's ``row_count``: one row holds many grades).
        keep: what to run to keep the rows, one instruction a line.
    """

    reversible = True
    reduces_to_sql = False
    elidable = False

    def __init__(
        self,
        reason: str,
        tables: Sequence[str] = (),
        trees: Sequence[str] = (),
        markers: Sequence[str] = (),
        sums: dict[str, str] | None = None,
        keep: Sequence[str] = (),
    ) -> None:
        self.reason = reason
        self.tables = tuple(tables)
        self.trees = tuple(trees)
        self.markers = tuple(markers)
        self.sums = dict(sums or {})
        self.keep = tuple(keep)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {
            "tables": list(self.tables),
            "trees": list(self.trees),
            "markers": list(self.markers),
            "sums": dict(self.sums),
            "keep": list(self.keep),
        }
        return (self.__class__.__name__, [self.reason], kwargs)

    def describe(self) -> str:
        return f"Refuse to unapply while {self.reason} holds grades"

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        pass

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self.refuse(schema_editor.connection)

    # -- the check --------------------------------------------------------------

    def losses(self, connection: Any) -> list[Loss]:
        """Tables of this guard that hold rows, and how many."""
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            _use_app_schema(cursor)
            only: list[tuple[str, str]] = []  # below a tree: each table counted alone
            whole: list[tuple[str, str]] = []  # with its partitions (the archive)
            for tree in self.trees:
                cursor.execute(_TREE, [tree, tree])
                only += cursor.fetchall()
            for table in self.tables:
                cursor.execute(_ONE, [table])
                whole += cursor.fetchall()
            if self.markers:
                cursor.execute(_MARKED, [list(self.markers)])
                whole += cursor.fetchall()
            whole = [name for name in whole if name not in set(only)]
            out = []
            for names, prefix in ((only, _COUNT_ONLY), (whole, _COUNT)):
                for schema, table in dict.fromkeys(names):
                    query = prefix.format(psql.Identifier(schema, table))
                    cursor.execute(query.as_string(cursor.connection))
                    rows = cursor.fetchone()[0]
                    if rows:
                        out.append(Loss(table, rows))
            for table, column in self.sums.items():
                cursor.execute(_ONE, [table])
                for schema, name in cursor.fetchall():
                    query = _SUM.format(psql.Identifier(column), psql.Identifier(schema, name))
                    cursor.execute(query.as_string(cursor.connection))
                    rows = cursor.fetchone()[0]
                    if rows:
                        out.append(Loss(name, rows))
        return out

    def refuse(self, connection: Any) -> None:
        """Raise ``DataLossRefused`` while rows would be lost, unless allowed."""
        losses = self.losses(connection)
        if not losses or os.environ.get(ALLOW_DATA_LOSS) == "1":
            return
        raise DataLossRefused(self.message(losses))

    def message(self, losses: Iterable[Loss]) -> str:
        losses = list(losses)
        total = sum(loss.rows for loss in losses)
        shown = ", ".join(f"{loss.table} ({loss.rows})" for loss in losses[:5])
        more = f" and {len(losses) - 5} more table(s)" if len(losses) > 5 else ""
        steps = "".join(f"\n  - {step}" for step in self.keep)
        return (
            f"activity_grades: unapplying this migration drops {self.reason}, which holds "
            f"{total} grade row(s): {shown}{more}. Nothing was changed. To keep them:{steps}"
            f"\nTo drop them on purpose, run the same migrate command with "
            f"{ALLOW_DATA_LOSS}=1 in the environment."
        )


def check_plan(connection: Any, plan: Iterable[tuple[Any, bool]]) -> None:
    """Run the guard of every migration a plan unapplies, before the plan starts.

    ``plan`` is what ``pre_migrate`` receives: ``(migration, backwards)`` pairs. The
    losses of all guards are reported together.
    """
    if os.environ.get(ALLOW_DATA_LOSS) == "1":
        return
    messages = []
    for migration, backwards in plan:
        if not backwards:
            continue
        for operation in migration.operations:
            if isinstance(operation, RefuseDataLoss):
                losses = operation.losses(connection)
                if losses:
                    messages.append(f"{migration.app_label}.{migration.name}: ")
                    messages[-1] += operation.message(losses)
    if messages:
        raise DataLossRefused("\n".join(messages))
