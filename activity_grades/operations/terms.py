"""Terms whose dates or academic year changed after their partitions were made (issue 12).

A semester extended by a week: the leaf's CHECK still ends on the old date, so every grade
of the extension was refused. ``plan`` lists the live leaves whose registry bounds or year
differ from the term now (``db.drift.term_drift``); ``apply`` brings them in line online,
in three steps of short transactions:

1. per leaf: its term CHECK replaced by the new bounds ``NOT VALID`` (new grades must fit
   at once; no scan under the lock) and its registry row updated (bounds, year);
2. per class: every live table of the class (``ONLY``) re-files the rows created in the
   window the change touched (old and new bounds) whose term is no longer the one of their
   created_at (latest start wins): setting it moves each through ``activity_grades_move``
   to its leaf or to the class table. Each moved grade is then looked up by id in the
   class's tables in the same transaction (other writers may grade the class meanwhile):
   one missing, or still in its old table, rolls the class back;
3. per leaf: the CHECK is validated (``VALIDATE CONSTRAINT``: writes go on meanwhile),
   which proves no row is left outside the new bounds.

A term by month (issue 15) is first folded back into its term table and made into the
months of its new bounds afterwards (``regranulate``, both ways online and verified); a
kill in between leaves it by term, which ``create_partitions --regranulate TERM --to
month`` finishes.

A term whose academic year changed after some of its partitions were archived also has
its archived grades and their registry rows filed under the new year (``relabel_archived``:
one transaction per term and old year, verified by count and checksum), so archiving and
retention reason with one label.

``create_partitions`` and the maintenance job apply this plan with the partitions they
create; ``check_partitions`` reports the drift (E018, E019) until then.

A leaf whose term was deleted from the LMS is only reported by those (E018): a terms
table emptied for a moment by a sync job must not move a whole tree. ``check_partitions
--fix`` retires it (``retire_leaf``): its rows move to where routing files them now (the
class table, or a term that covers their dates), verified by counts, and the emptied leaf
and its registry row go. Putting the term back later brings the rows back into a new leaf
(``create_partitions`` adopts them from the class table).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.constants import LOGGER_NAME, PARTITION_MARKER, Granularity
from ..core.exceptions import PartitioningError
from ..core.settings import app_settings
from ..db import catalog, ddl, drift, months, registry
from ..db import relabel as archive_labels
from ..db.connection import atomic, cursor, set_lock_timeout
from ..db.drift import TermDrift
from ..db.relabel import ArchivedLabel
from . import regranulate
from .base import Plan, Progress, Result, Stopwatch

__all__ = ["TermsPlan", "TermsResult", "plan", "relabel_archived", "retire_leaf"]

logger = logging.getLogger(LOGGER_NAME)

_EVER = (
    dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc),
    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc),
)


@dataclass
class TermsResult(Result):
    changed: list[str] = field(default_factory=list)  # leaves given new bounds or year
    moved: int = 0  # rows re-filed
    relabelled: int = 0  # archived grades filed under their term's new academic year


@dataclass
class TermsPlan(Plan[TermDrift, TermsResult]):
    """Live leaves whose term changed (``items``) and archived terms whose academic year
    changed (``archived``); ``apply`` brings them in line."""

    archived: list[ArchivedLabel] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.items and not self.archived

    def describe(self) -> list[str]:
        out = [
            f"archived grades of term {a.term_id!r}: academic year {a.academic_year!r} -> "
            f"{a.term_year!r}"
            for a in self.archived
        ]
        for d in self.items:
            what = []
            if d.bounds_changed:
                what.append(
                    f"bounds [{d.starts_at:%Y-%m-%d}, {d.ends_at:%Y-%m-%d}) -> "
                    f"[{d.term_starts_at:%Y-%m-%d}, {d.term_ends_at:%Y-%m-%d})"
                )
            if d.academic_year != d.term_year:
                what.append(f"academic year {d.academic_year!r} -> {d.term_year!r}")
            out.append(f"{d.table} (class {d.class_id!r}, term {d.term_id!r}): {'; '.join(what)}")
        return out

    def apply(self, progress: Progress | None = None) -> TermsResult:
        clock = Stopwatch()
        result = TermsResult()
        using = self.using
        # A term by month: its months go back into the term table first (regranulate,
        # online and verified), the new bounds are applied as for any term, then the
        # months of the new bounds are made and filled again.
        by_month = _by_month(self.items, using)
        for class_id, term_id in by_month:
            regranulate.plan(term_id, Granularity.TERM, class_ids=[class_id], using=using).apply()
        for d in self.items:
            assert d.term_starts_at is not None and d.term_ends_at is not None
            with atomic(using), cursor(using) as cur:
                set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
                if d.bounds_changed:
                    drift.replace_term_check(
                        cur, d.table, d.term_id, d.term_starts_at, d.term_ends_at
                    )
                drift.set_bounds(cur, d.table, d.term_starts_at, d.term_ends_at, d.term_year)
            result.changed.append(d.table)
        registry.invalidate_cache()
        for class_id, changes in _by_class(d for d in self.items if d.bounds_changed).items():
            result.moved += _refile_class(using, class_id, changes)
        for d in self.items:
            if d.bounds_changed:
                with atomic(using), cursor(using) as cur:
                    drift.validate_term_check(cur, d.table)
            if progress:
                progress(len(result.changed), len(self.items), d, True)
        registry.invalidate_cache()
        for class_id, term_id in by_month:
            regranulate.plan(term_id, Granularity.MONTH, class_ids=[class_id], using=using).apply()
        result.relabelled = sum(relabel_archived(a, using) for a in self.archived)
        result.seconds = clock.seconds
        return result


def relabel_archived(label: ArchivedLabel, using: str = "default") -> int:
    """File a term's archived grades under its new academic year; the grades moved.

    One transaction: checksums of the term's archived grades under both labels before,
    the move, and again after; any difference rolls it back.
    """
    old, new = label.academic_year, label.term_year
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.archive_lock_timeout)
        cols = catalog.grade_columns(cur)
        before_old = archive_labels.checksum_of_term(cur, cols, label.term_id, old)
        before_new = archive_labels.checksum_of_term(cur, cols, label.term_id, new)
        moved = archive_labels.relabel(cur, label.term_id, old, new)
        after_old = archive_labels.checksum_of_term(cur, cols, label.term_id, old)
        after_new = archive_labels.checksum_of_term(cur, cols, label.term_id, new)
        expected = (before_old[0] + before_new[0], before_old[1] + before_new[1])
        if after_old[0] or after_new != expected or moved != before_old[0]:
            raise PartitioningError(
                f"relabelling the archived grades of term {label.term_id!r} from {old!r} to "
                f"{new!r} did not verify ({before_old[0]} grades before, {after_new[0]} under "
                f"{new!r} after); rolled back, nothing changed"
            )
    if moved:
        logger.info(
            "filed %s archived grades of term %s under academic year %s (was %s)",
            moved,
            label.term_id,
            new,
            old,
        )
    return moved


def _by_month(drifts: list[TermDrift], using: str) -> list[tuple[str, str]]:
    """(class, term) of the changed leaves whose term is by month."""
    granularity = months.term_granularities(using) if drifts else {}
    return sorted(
        {
            (d.class_id, d.term_id)
            for d in drifts
            if d.bounds_changed and granularity.get((d.class_id, d.term_id)) == "month"
        }
    )


def _by_class(drifts: Iterable[TermDrift]) -> dict[str, list[TermDrift]]:
    out: dict[str, list[TermDrift]] = {}
    for d in drifts:
        out.setdefault(d.class_id, []).append(d)
    return out


def _refile_class(using: str, class_id: str, changes: list[TermDrift]) -> int:
    """Move the rows of one class that the changed terms now file elsewhere; verified."""
    starts = min(min(d.starts_at, d.term_starts_at or d.starts_at) for d in changes)
    ends = max(max(d.ends_at, d.term_ends_at or d.ends_at) for d in changes)
    if not all(d.check_valid for d in changes):
        # An earlier run stopped after step 1: the old bounds are no longer known, so
        # the whole class is re-filed (rare, and still one statement per table).
        starts, ends = _EVER

    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        tables = drift.tables_of_class(cur, class_id)
        moved = 0
        for table in tables:  # the class table first
            done = drift.refile(cur, table, tables[0], starts, ends)
            _verify(done, table, class_id)
            moved += done.found
    if moved:
        logger.info("re-filed %s rows of class %s after a term change", moved, class_id)
    return moved


def _verify(done: drift.Refiled, table: str, class_id: str) -> None:
    if not done.verified:
        raise PartitioningError(
            f"re-filing {done.found} rows of {table}: {done.landed} found in class "
            f"{class_id!r}'s other tables afterwards, {done.left} still in it; rolled back, "
            "nothing moved"
        )


def plan(class_ids: Iterable[str] | None = None, using: str = "default") -> TermsPlan:
    """Live leaves (of ``class_ids``, default all) whose term's dates or year changed.

    Leaves of a term that no longer exists are left out (``check_partitions`` reports
    them: E018).
    """
    wanted = set(class_ids) if class_ids else None
    with cursor(using) as cur:
        found = drift.term_drift(cur)
        archived = archive_labels.archived_label_drift(cur) if wanted is None else []
    items = [
        d
        for d in found
        if d.term_starts_at is not None and (wanted is None or d.class_id in wanted)
    ]
    return TermsPlan(items, using=using, archived=archived)


def retire_leaf(leaf: TermDrift, using: str = "default") -> int:
    """Move the rows of a leaf whose term no longer exists to where routing files them
    now, then drop the emptied leaf and its registry row; the rows moved.

    One transaction: writers of the leaf wait (SHARE ROW EXCLUSIVE), readers do not until
    the DROP; the class's row count is compared before and after and the leaf must be
    empty, or everything rolls back.
    """
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        if catalog.marker_of(cur, leaf.table) != PARTITION_MARKER:
            raise PartitioningError(f"{leaf.table} does not carry the marker {PARTITION_MARKER!r}")
        if drift.term_exists(cur, leaf.term_id):
            raise PartitioningError(f"term {leaf.term_id!r} exists again: {leaf.table} stays")
        ddl.lock_table(cur, leaf.table, "SHARE ROW EXCLUSIVE")
        class_table = drift.tables_of_class(cur, leaf.class_id)[0]
        moved = 0
        # A term by month: each month table is emptied the same way, then dropped.
        for month in months.children_of(cur, leaf.table) if months.installed(cur) else []:
            done = drift.refile(cur, month.table_name, class_table, *_EVER)
            _verify(done, month.table_name, leaf.class_id)
            moved += done.found
            if not months.drop_month(cur, month):
                raise PartitioningError(f"{month.table_name} still holds rows; rolled back")
        done = drift.refile(cur, leaf.table, class_table, *_EVER)
        _verify(done, leaf.table, leaf.class_id)
        moved += done.found
        left = drift.count_only(cur, [leaf.table])
        if left:  # rows the lock let in before it was granted, or outside _EVER
            raise PartitioningError(
                f"retiring {leaf.table}: {left} rows still in it; rolled back, nothing moved"
            )
        ddl.drop_table(cur, leaf.table)
        drift.forget_partition(cur, leaf.table)
    registry.invalidate_cache()
    logger.info(
        "moved %s rows of %s (term %s no longer exists) and dropped it",
        moved,
        leaf.table,
        leaf.term_id,
    )
    return moved
