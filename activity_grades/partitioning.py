"""Plan and create (class, term) partitions.

The DDL itself lives in SQL (migration 0001: ``activity_grades_ensure_partition``)
so that the routing trigger's on-demand path and this module create partitions
the same way. This module decides *which* partitions to create, shows the plan
and its SQL, and applies it one partition per short transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from . import conf, dispatch

logger = logging.getLogger("activity_grades")

# A creator that cannot get its lock quickly gives up instead of queueing for long.
LOCK_TIMEOUT = "5s"


class PartitioningError(ValueError):
    """A request that names classes or terms the LMS does not have."""


@dataclass(frozen=True)
class Term:
    term_id: str
    starts_at: datetime
    ends_at: datetime  # exclusive
    academic_year: str | None


@dataclass
class PlannedPartition:
    class_id: str
    term_id: str | None
    table_name: str
    exists: bool
    statements: list[str] = field(default_factory=list)


@dataclass
class PartitionPlan:
    partitions: list[PlannedPartition]

    @property
    def to_create(self) -> list[PlannedPartition]:
        return [p for p in self.partitions if not p.exists]

    @property
    def existing(self) -> list[PlannedPartition]:
        return [p for p in self.partitions if p.exists]


@dataclass
class CreateResult:
    created: list[str]
    existing: int
    seconds: float


def list_terms(using: str = "default") -> list[Term]:
    """Every term of the LMS, ordered by start."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT * FROM activity_grades_terms()")
        return [Term(*row) for row in cursor.fetchall()]


def list_class_ids(using: str = "default") -> list[str]:
    """Every class that has at least one activity."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT * FROM activity_grades_class_ids()")
        return [row[0] for row in cursor.fetchall()]


def default_terms(terms: Sequence[Term], upcoming: int, now: datetime | None = None) -> list[Term]:
    """The current term and the ``upcoming`` terms after it.

    Between terms there is no current one, so the next ``upcoming + 1`` are taken.
    """
    now = now or timezone.now()
    return [t for t in terms if t.ends_at > now][: upcoming + 1]


def _pick(requested: Iterable[str], known: Sequence[str], what: str, where: str) -> list[str]:
    requested = list(dict.fromkeys(requested))
    missing = [r for r in requested if r not in set(known)]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        raise PartitioningError(f"unknown {what}: {shown} ({where})")
    return requested


def plan(
    class_ids: Iterable[str] | None = None,
    term_ids: Iterable[str] | None = None,
    *,
    all_terms: bool = False,
    upcoming: int | None = None,
    with_sql: bool = False,
    using: str = "default",
) -> PartitionPlan:
    """Work out which class tables and (class, term) tables a request needs.

    Args:
        class_ids: classes to cover; default every class with activities.
        term_ids: terms to cover; default the current term and ``upcoming`` more.
        all_terms: cover every term of the LMS.
        upcoming: how many terms after the current one (default: the setting).
        with_sql: fill each planned partition's ``statements``.
    """
    known_classes = list_class_ids(using)
    terms = list_terms(using)
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
        n = conf.get("UPCOMING_TERMS") if upcoming is None else upcoming
        chosen = default_terms(terms, n)

    existing = _registry(using)
    out: list[PlannedPartition] = []
    with connections[using].cursor() as cursor:
        for class_id in classes:
            class_table = existing.get((class_id, None))
            out.append(_planned(cursor, class_id, None, class_table, "activity_grades", with_sql))
            parent = out[-1].table_name
            for term in chosen:
                table = existing.get((class_id, term.term_id))
                out.append(_planned(cursor, class_id, term, table, parent, with_sql))
    return PartitionPlan(out)


def _registry(using: str) -> dict[tuple[str, str | None], str]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT class_id, term_id, table_name FROM activity_grades_partition "
            "WHERE status = 'live'"
        )
        return {(c, t): name for c, t, name in cursor.fetchall()}


def _planned(cursor, class_id, term: Term | None, table, parent, with_sql) -> PlannedPartition:
    term_id = term.term_id if term else None
    if table is not None:
        return PlannedPartition(class_id, term_id, table, exists=True)
    cursor.execute("SELECT activity_grades_partition_name(%s, %s)", [class_id, term_id])
    name = cursor.fetchone()[0]
    statements: list[str] = []
    if with_sql:
        cursor.execute(
            "SELECT activity_grades_partition_ddl(%s, %s, %s, %s, %s, %s)",
            [
                name,
                parent,
                class_id,
                term_id,
                term.starts_at if term else None,
                term.ends_at if term else None,
            ],
        )
        statements = [row[0] for row in cursor.fetchall()]
    return PlannedPartition(class_id, term_id, name, exists=False, statements=statements)


def ensure_partition(
    class_id: str, term_id: str | None, using: str = "default"
) -> tuple[str, bool]:
    """Create one partition (and its class table) if missing; return (table, created).

    Runs in its own short transaction with a lock timeout, so a create never queues
    for long behind another session's lock; concurrent callers are safe.
    """
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
        cursor.execute(
            "SELECT * FROM activity_grades_ensure_partition(%s, %s)", [class_id, term_id]
        )
        table, created = cursor.fetchone()
    return table, created


def apply(
    partition_plan: PartitionPlan,
    progress: Callable[[int, int, PlannedPartition], None] | None = None,
    using: str = "default",
) -> CreateResult:
    """Create every missing partition of a plan, one transaction each."""
    started = time.monotonic()
    todo = partition_plan.to_create
    created: list[str] = []
    for i, planned in enumerate(todo, 1):
        table, was_created = ensure_partition(planned.class_id, planned.term_id, using)
        if was_created:
            created.append(table)
            logger.info("created partition %s", table)
        if progress:
            progress(i, len(todo), planned)
    # Also picks up partitions writers created on demand since the last run.
    dispatch.install(using)
    existing = len(partition_plan.partitions) - len(created)
    return CreateResult(created, existing, time.monotonic() - started)
