"""Change the granularity of a term's partitions (``create_partitions --regranulate TERM``).

Online, verified, resumable. For each class's live table of the term:

1. its registry row takes the new granularity (one short transaction): from then on the
   routing trigger files the term's new grades the new way;
2. to 'month': every month table of the term is created (``db.months.ensure_month``);
3. rows move in batches of ``batch_size``, one transaction each: the source table is locked
   ``SHARE ROW EXCLUSIVE`` (readers go on; a writer of those rows waits for the batch and
   then finds them at their new place: no write is lost), the rows are deleted into a
   temporary table, inserted into their new tables and counted; a count that differs rolls
   the batch back. To 'month' the source is the term table itself (``ONLY``), to 'term'
   each month table;
4. to 'term': each emptied month table is dropped (marker and emptiness checked under an
   exclusive lock) and leaves the registry.

A sharded class's table of the term (a foreign table) is skipped: it stays by term.

Reads of the term table see every row throughout (a month table is its child). A kill at
any point leaves a state the next run continues from: the plan is always "what is left".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.constants import LOGGER_NAME, Granularity
from ..core.exceptions import PartitioningError
from ..core.settings import app_settings
from ..db import ddl, dispatch, lms, months, registry
from ..db import shard_partitions as remote
from ..db.connection import Cursor, cursor
from .base import Plan, Progress, Result, Stopwatch, each, run_steps

__all__ = ["BATCH_SIZE", "RegranulateItem", "RegranulatePlan", "RegranulateResult", "plan"]

logger = logging.getLogger(LOGGER_NAME)

BATCH_SIZE = 5000
_ATTEMPTS = 3  # drain-then-drop of a month table, when a late grade arrived between


@dataclass
class RegranulateItem:
    """One class's table of the term and what is left to do to it."""

    class_id: str
    term_id: str
    table_name: str
    granularity: str  # what its registry row says now
    rows: int  # rows to move: in the term table itself (to 'month'), in its months (to 'term')
    months_to_create: list[months.Slice] = field(default_factory=list)
    months_to_drop: list[months.MonthRow] = field(default_factory=list)


@dataclass
class RegranulateResult(Result):
    tables: int = 0
    moved: int = 0
    months_created: int = 0
    months_dropped: int = 0


@dataclass
class RegranulatePlan(Plan[RegranulateItem, RegranulateResult]):
    """What is left to bring one term's tables to ``to``."""

    term_id: str = ""
    to: Granularity = Granularity.MONTH
    batch_size: int = BATCH_SIZE

    @property
    def nothing_to_do(self) -> bool:
        return not self.items

    def apply(self, progress: Progress | None = None) -> RegranulateResult:
        clock = Stopwatch()
        result = RegranulateResult()
        for _ in each(self.items, lambda item: self._apply_one(item, result), progress):
            pass
        registry.invalidate_cache()
        dispatch.install(self.using)
        result.tables = len(self.items)
        result.seconds = clock.seconds
        return result

    def _apply_one(self, item: RegranulateItem, result: RegranulateResult) -> int:
        if item.granularity != self.to.value:

            def _set(cur: Cursor) -> None:
                months.set_granularity(cur, item.class_id, item.term_id, self.to)

            run_steps(self.using, app_settings.LOCK_TIMEOUT, [_set])
            registry.invalidate_cache()
        if self.to is Granularity.MONTH:
            for piece in item.months_to_create:
                if self._ensure(item, piece):
                    result.months_created += 1
            targets = months.live_months(self.using, item.class_id, item.term_id)
            moved = self._drain(item.table_name, targets)
            # A grade routed by a statement that read the old granularity just before it
            # changed lands after the last batch: one more pass (E023 reports any left).
            if months.rows_in_table(self.using, item.table_name):
                moved += self._drain(item.table_name, targets)
        else:
            moved = 0
            for month in months.live_months(self.using, item.class_id, item.term_id):
                for _ in range(_ATTEMPTS):
                    moved += self._drain(month.table_name, item.table_name)
                    if self._drop(month):
                        result.months_dropped += 1
                        break
        result.moved += moved
        logger.info("regranulated %s to %s: %d rows moved", item.table_name, self.to, moved)
        return moved

    def _ensure(self, item: RegranulateItem, month: months.Slice) -> bool:
        created = False

        def _create(cur: Cursor) -> None:
            nonlocal created
            _, created = months.ensure_month(
                cur, item.class_id, item.term_id, month.starts_at, self.using
            )

        run_steps(self.using, app_settings.LOCK_TIMEOUT, [_create])
        return created

    def _drop(self, month: months.MonthRow) -> bool:
        dropped = False

        def _drop(cur: Cursor) -> None:
            nonlocal dropped
            dropped = months.drop_month(cur, month)

        run_steps(self.using, app_settings.LOCK_TIMEOUT, [_drop])
        return dropped

    def _drain(self, source: str, targets: list[months.MonthRow] | str) -> int:
        """Move every row of ``source`` (``ONLY``) in verified batches; rows moved."""
        total = 0
        while True:
            moved = 0

            def _lock(cur: Cursor) -> None:
                ddl.lock_table(cur, source, "SHARE ROW EXCLUSIVE")

            def _move(cur: Cursor) -> bool:
                nonlocal moved
                moved = months.move_batch(cur, source, targets, self.batch_size)
                return True

            run_steps(self.using, app_settings.LOCK_TIMEOUT, [_lock, _move])
            total += moved
            if moved < self.batch_size:
                return total


def plan(
    term_id: str,
    to: Granularity | str | None = None,
    *,
    class_ids: Iterable[str] | None = None,
    batch_size: int = BATCH_SIZE,
    using: str = "default",
) -> RegranulatePlan:
    """What is left to bring the live tables of ``term_id`` to granularity ``to``.

    Args:
        term_id: a term of the LMS with live partitions.
        to: 'month' or 'term'; default PARTITION_GRANULARITY.
        class_ids: only these classes' tables of the term (default: every class).
        batch_size: rows moved per transaction.

    Raises:
        PartitioningError: an unknown granularity, a term the LMS does not have, or one
            whose partitions are all archived (restore it first) or never created.
    """
    app_settings.require_valid("PARTITION_GRANULARITY")
    wanted = to if to is not None else app_settings.PARTITION_GRANULARITY
    try:
        target = Granularity(wanted)
    except ValueError:
        choices = ", ".join(repr(g.value) for g in Granularity)
        raise PartitioningError(f"unknown granularity {wanted!r}: one of {choices}") from None
    if batch_size < 1:
        raise PartitioningError(f"batch size must be 1 or more, not {batch_size}")
    term = next((t for t in lms.terms(using) if t.term_id == term_id), None)
    if term is None:
        raise PartitioningError(f"unknown term {term_id!r} (not in the LMS's terms table)")
    tables = registry.tables_of_classes(
        None if class_ids is None else list(class_ids), [term_id], using
    )
    if not tables:
        archived = registry.archived_count(term_id, using)
        if archived:
            raise PartitioningError(
                f"term {term_id!r} is archived ({archived} partitions): restore it "
                "(manage.py restore_grades --term) before regranulating"
            )
        raise PartitioningError(
            f"term {term_id!r} has no partitions: create them (manage.py create_partitions "
            f"--term {term_id}), they take PARTITION_GRANULARITY"
        )
    granularity = months.term_granularities(using)
    items: list[RegranulateItem] = []
    with cursor(using) as cur:
        slices = months.slices(cur, term.starts_at, term.ends_at)
        # A sharded class's term table is a foreign table, a leaf: it stays by term.
        foreign = {t for t in tables.values() if remote.relkind(cur, t) == "f"}
    for (class_id, _), table in sorted(tables.items()):
        if table in foreign:
            continue
        now = granularity.get((class_id, term_id), Granularity.TERM.value)
        live = months.live_months(using, class_id, term_id)
        item = RegranulateItem(class_id, term_id, table, now, 0)
        if target is Granularity.MONTH:
            have = {m.starts_at for m in live}
            item.months_to_create = [s for s in slices if s.starts_at not in have]
            item.rows = months.rows_in_table(using, table)
        else:
            item.months_to_drop = live
            item.rows = sum(months.rows_in_table(using, m.table_name) for m in live)
        if now != target.value or item.rows or item.months_to_create or item.months_to_drop:
            items.append(item)
    return RegranulatePlan(items, using=using, term_id=term_id, to=target, batch_size=batch_size)
