"""Plan and create (class, term) partitions (``manage.py create_partitions``).

The DDL itself is the SQL function ``activity_grades_ensure_partition`` (db.ddl), so the
routing trigger's on-demand path and this module create partitions the same way. This
module decides *which* partitions a request needs, shows the plan and its SQL, and
applies it one partition per short transaction.

A term created while ``PARTITION_GRANULARITY`` is 'month' gets month tables under its
term table (``db.months``): the plan holds those of its months that have not ended yet;
a past month is created when a late grade for it arrives. A term that exists keeps its
granularity (``operations.regranulate`` changes it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from ..core.constants import LOGGER_NAME, PARENT, Granularity
from ..core.exceptions import PartitioningError
from ..core.settings import app_settings
from ..db import ddl, dispatch, lms, months, registry
from ..db.connection import Cursor, atomic, cursor, set_lock_timeout
from ..db.lms import Term
from . import shard_partitions
from . import terms as term_changes
from .base import Plan, Progress, Result, Stopwatch, each

__all__ = ["CreatePlan", "CreateResult", "PlannedPartition", "default_terms", "plan"]

logger = logging.getLogger(LOGGER_NAME)


@dataclass
class PlannedPartition:
    class_id: str
    term_id: str | None
    table_name: str
    exists: bool
    statements: list[str] = field(default_factory=list)
    # A month table: the first instant of its month (clipped to the term); None otherwise.
    month_starts_at: datetime | None = None

    @property
    def is_month(self) -> bool:
        return self.month_starts_at is not None


@dataclass
class CreateResult(Result):
    created: list[str]
    existing: int
    changed: list[str] = field(default_factory=list)  # leaves given their term's new bounds
    moved: int = 0  # rows re-filed after a term change
    relabelled: int = 0  # archived grades filed under their term's new academic year


@dataclass
class CreatePlan(Plan[PlannedPartition, CreateResult]):
    """Every partition a request covers; ``to_create`` are the missing ones.

    ``term_changes``: live leaves whose term's dates or academic year changed since they
    were made (``operations.terms``), brought in line by ``apply`` after creating.
    """

    term_changes: term_changes.TermsPlan | None = None

    @property
    def nothing_to_do(self) -> bool:
        return not self.to_create and not (self.term_changes and not self.term_changes.empty)

    @property
    def partitions(self) -> list[PlannedPartition]:
        return self.items

    @property
    def to_create(self) -> list[PlannedPartition]:
        return [p for p in self.items if not p.exists]

    @property
    def existing(self) -> list[PlannedPartition]:
        return [p for p in self.items if p.exists]

    def apply(self, progress: Progress | None = None) -> CreateResult:
        """Create every missing partition, one transaction each; progress gets (table, created)."""
        clock = Stopwatch()
        created: list[str] = []

        # Term tables the trigger creates on demand follow the setting from now on too.
        months.install_granularity(self.using)

        def create(planned: PlannedPartition) -> bool:
            if planned.month_starts_at is not None and planned.term_id is not None:
                table, was_created = _ensure_month(
                    planned.class_id, planned.term_id, planned.month_starts_at, self.using
                )
            else:
                table, was_created = shard_partitions.ensure_partition(
                    planned.class_id, planned.term_id, self.using
                )
            if was_created:
                created.append(table)
                logger.info("created partition %s", table)
            return was_created

        for _ in each(self.to_create, create, progress):
            pass
        changed = (
            self.term_changes.apply()
            if self.term_changes and not self.term_changes.empty
            else term_changes.TermsResult()
        )
        # Also picks up partitions writers created on demand since the last run.
        dispatch.install(self.using)
        existing = len(self.items) - len(created)
        return CreateResult(
            created,
            existing,
            changed.changed,
            changed.moved,
            changed.relabelled,
            seconds=clock.seconds,
        )


def _ensure_month(class_id: str, term_id: str, at: datetime, using: str) -> tuple[str, bool]:
    with atomic(using), cursor(using) as cur:
        set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
        return months.ensure_month(cur, class_id, term_id, at, using)


def default_terms(terms: Sequence[Term], upcoming: int, now: datetime | None = None) -> list[Term]:
    """The current term and the ``upcoming`` terms after it.

    Between terms there is no current one, so the next ``upcoming + 1`` are taken.
    """
    now = now or timezone.now()
    return [t for t in terms if t.ends_at > now][: upcoming + 1]


def _pick(requested: Iterable[str], known: Sequence[str], what: str, where: str) -> list[str]:
    wanted = list(dict.fromkeys(requested))
    missing = [r for r in wanted if r not in set(known)]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        raise PartitioningError(f"unknown {what}: {shown} ({where})")
    return wanted


def plan(
    class_ids: Iterable[str] | None = None,
    term_ids: Iterable[str] | None = None,
    *,
    all_terms: bool = False,
    upcoming: int | None = None,
    with_sql: bool = False,
    using: str = "default",
) -> CreatePlan:
    """Work out which class tables and (class, term) tables a request needs.

    Args:
        class_ids: classes to cover; default every class with activities.
        term_ids: terms to cover; default the current term and ``upcoming`` more.
        all_terms: cover every term of the LMS.
        upcoming: how many terms after the current one (default: UPCOMING_TERMS).
        with_sql: fill each planned partition's ``statements``.

    Raises:
        PartitioningError: a class or term the LMS does not have.
    """
    known_classes = lms.class_ids(using)
    terms = lms.terms(using)
    classes = (
        _pick(class_ids, known_classes, "classes", "no activity of the LMS belongs to it")
        if class_ids
        else known_classes
    )
    if term_ids:
        by_id = {t.term_id: t for t in terms}
        chosen = [
            by_id[t] for t in _pick(term_ids, list(by_id), "terms", "not in the LMS's terms table")
        ]
    elif all_terms:
        chosen = terms
    else:
        n = app_settings.UPCOMING_TERMS if upcoming is None else upcoming
        chosen = default_terms(terms, n)

    existing = shard_partitions.complete(registry.live_tables(using), using)
    granularity = months.term_granularities(using)
    live_months = {
        (m.class_id, m.term_id, m.starts_at): m.table_name for m in months.live_months(using)
    }
    new_terms = Granularity(app_settings.PARTITION_GRANULARITY)
    now = timezone.now()
    out: list[PlannedPartition] = []
    with cursor(using) as cur:
        slices: dict[str, list[months.Slice]] = {}
        for class_id in classes:
            class_table = existing.get((class_id, None))
            out.append(_planned(cur, class_id, None, class_table, PARENT, with_sql, using))
            parent = out[-1].table_name
            for term in chosen:
                table = existing.get((class_id, term.term_id))
                out.append(_planned(cur, class_id, term, table, parent, with_sql, using))
                kind = granularity.get((class_id, term.term_id), new_terms.value)
                if kind != Granularity.MONTH.value or shard_partitions.is_sharded(class_id, using):
                    continue  # a sharded class is by term (docs/sharding.md)
                if term.term_id not in slices:
                    slices[term.term_id] = months.slices(cur, term.starts_at, term.ends_at)
                term_table = out[-1].table_name
                for month in slices[term.term_id]:
                    if month.ends_at <= now:
                        continue  # a past month: created when a late grade arrives
                    done = live_months.get((class_id, term.term_id, month.starts_at))
                    out.append(
                        _planned_month(cur, class_id, term, month, term_table, done, with_sql)
                    )
    return CreatePlan(out, using=using, term_changes=term_changes.plan(class_ids, using))


def _planned_month(
    cur: Cursor,
    class_id: str,
    term: Term,
    month: months.Slice,
    term_table: str,
    existing: str | None,
    with_sql: bool,
) -> PlannedPartition:
    exists = existing is not None
    name = existing or months.month_name(cur, class_id, term.term_id, month.label)
    statements: list[str] = []
    if with_sql and not exists:
        statements = months.month_ddl(cur, name, term_table, class_id, term.term_id, month)
    return PlannedPartition(
        class_id, term.term_id, name, exists, statements, month_starts_at=month.starts_at
    )


def _planned(
    cur: Any,
    class_id: str,
    term: Term | None,
    table: str | None,
    parent: str,
    with_sql: bool,
    using: str = "default",
) -> PlannedPartition:
    term_id = term.term_id if term else None
    if table is not None:
        return PlannedPartition(class_id, term_id, table, exists=True)
    name = ddl.partition_name(cur, class_id, term_id)
    statements: list[str] = []
    if with_sql:
        starts, ends = (term.starts_at, term.ends_at) if term else (None, None)
        statements = shard_partitions.partition_ddl(
            cur, name, parent, class_id, term_id, starts, ends, using
        )
    return PlannedPartition(class_id, term_id, name, exists=False, statements=statements)
