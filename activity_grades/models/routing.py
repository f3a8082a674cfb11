"""Route the default manager's queries to the partitions their filters pin.

A query on the inheritance parent plans and locks every partition (at a few thousand,
one such query fills the server's lock table). The default manager's QuerySets name the
parent through ``RoutedTable``: when Django compiles the query, it reads the WHERE
clause for values that pin rows to partitions, ANDed at the top level:

- ``class_id`` (with ``term_id``): the class table read with its term tables, or the
  (class, term) leaves; ``term_id`` alone: that term's leaves;
- ``activity_id`` (``=``, ``__in``): the activity's class, read whole;
- ``created_at`` ranges (``gt``/``gte``/``lt``/``lte``/``range``/``=``): the leaves of
  the terms the range overlaps, and the class tables unless terms cover the range;
- ``id`` / ``pk`` and ``student_id`` (``=``, ``__in``): the key index's record of where
  those grades are.

Several pins narrow each other. Reads name class tables and (class, term) leaves, and
find activities' classes, through this process's cache (``db/cache.py``), so they are one
statement; a table dropped since (archived by another process) is forgotten and the read
run again (``querysets.RoutedQuery``). A read of one grade by id reads the table where
a key-index lookup last found it, and looks it up again if the grade is not there (it
moved). Other reads by ids or students, writes and ``select_for_update()`` look the key
index and the registry up first, in their own transaction. The FROM clause reads one
table or a ``UNION ALL`` of them under the parent's alias, so filters, ordering,
slicing, counts, aggregates and ``values()`` work unchanged.

A query that pins nothing, or pins more partitions than ``ROUTING_PARTITION_LIMIT``, is
an ``UnroutableQuery`` error above that limit (below it, it reads the parent, as before)
and is logged either way with its shape; ``across_all_partitions()`` reads the parent
on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models.expressions import Col
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    LessThan,
    LessThanOrEqual,
    Range,
)
from django.db.models.sql.datastructures import BaseTable
from django.db.models.sql.where import AND, WhereNode
from django.utils import timezone

from ..core.constants import LOGGER_NAME
from ..core.exceptions import UnroutableQuery
from ..core.settings import app_settings
from ..db import catalog, leaves, lms, registry
from ..db.cache import TtlCache

__all__ = [
    "LOCKS_PER_PARTITION",
    "Route",
    "RoutedTable",
    "Source",
    "partition_limit",
    "pinned",
    "route",
    "span",
]

log = logging.getLogger(LOGGER_NAME)

_PINNING = ("id", "activity_id", "student_id", "class_id", "term_id")

# Relation locks a query through the parent takes per partition: the table and its four
# indexes, and the planner's share (measured: 7,685 locks at 1,152 leaves).
LOCKS_PER_PARTITION = 7
# The default limit leaves room for this many whole-tree queries at once.
_CONCURRENT = 8

# (table, read with its children, is a class table): one item of a routed FROM clause.
Source = tuple[str, bool, bool]


@dataclass(frozen=True)
class Route:
    """The tables a query reads; ``cached_grade``: the one grade id it pins, whose table
    came from the cache (the read is run again if it finds nothing there)."""

    tables: tuple[Source, ...]
    cached_grade: str | None = None


# The server's lock-table size: its settings change only with a restart.
_capacity: TtlCache[str, int] = TtlCache()


def partition_limit(using: str) -> int:
    """ROUTING_PARTITION_LIMIT, or the partitions whose locks fit in an eighth of the
    server's lock table (64 x 100 slots by default: 114)."""
    limit = app_settings.ROUTING_PARTITION_LIMIT
    if limit is not None:
        return limit
    capacity = _capacity.get(using, "slots")
    if capacity is None:
        capacity = catalog.lock_capacity(using)
        _capacity.put(using, "slots", capacity)
    return capacity // (LOCKS_PER_PARTITION * _CONCURRENT)


def _values(lookup: Exact | In) -> set[str] | None:
    rhs = lookup.rhs
    values: Iterable[Any]
    if isinstance(lookup, In):
        if not isinstance(rhs, (list, tuple, set, frozenset)):
            return None  # a subquery
        values = rhs
    else:
        values = [rhs]
    out = set()
    for value in values:
        if value is None or hasattr(value, "resolve_expression"):
            return None  # an expression (F(), a subquery): not known before the query runs
        out.add(str(value))
    return out


def _conjuncts(where: WhereNode) -> Iterable[Any]:
    """The lookups ANDed at the top of ``where`` (nested ANDs flattened); none under OR
    or NOT, whose rows no single value pins."""
    if where.negated or where.connector != AND:
        return
    for child in where.children:
        if isinstance(child, WhereNode):
            yield from _conjuncts(child)
        else:
            yield child


def _column(lookup: Any, alias: str) -> str | None:
    lhs = getattr(lookup, "lhs", None)
    if isinstance(lhs, Col) and lhs.alias == alias:
        return str(lhs.target.column)
    return None


def pinned(where: WhereNode, alias: str) -> dict[str, set[str]]:
    """Column -> the values the WHERE clause ANDs it to, for the pinning columns."""
    found: dict[str, set[str]] = {}
    for child in _conjuncts(where):
        column = _column(child, alias)
        if column not in _PINNING or not isinstance(child, (Exact, In)):
            continue
        values = _values(child)
        if values is not None:
            found[column] = found[column] & values if column in found else values
    return found


def _instant(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and timezone.is_aware(value) else None


def span(where: WhereNode, alias: str) -> tuple[datetime | None, datetime | None] | None:
    """The closed range ``created_at`` is ANDed into, (low, high) with None for no bound;
    None when nothing bounds it. Strict bounds are widened to closed ones: a term at the
    edge may be read for nothing, never missed. Naive datetimes and expressions are not
    used."""
    low: datetime | None = None
    high: datetime | None = None
    bounded = False
    for child in _conjuncts(where):
        if _column(child, alias) != "created_at":
            continue
        lows: list[datetime | None] = []
        highs: list[datetime | None] = []
        if isinstance(child, (GreaterThan, GreaterThanOrEqual)):
            lows = [_instant(child.rhs)]
        elif isinstance(child, (LessThan, LessThanOrEqual)):
            highs = [_instant(child.rhs)]
        elif isinstance(child, Exact):
            lows = highs = [_instant(child.rhs)]
        elif isinstance(child, Range) and isinstance(child.rhs, (list, tuple)):
            lows, highs = [_instant(child.rhs[0])], [_instant(child.rhs[1])]
        for value in lows:
            if value is not None:
                low, bounded = (value if low is None else max(low, value)), True
        for value in highs:
            if value is not None:
                high, bounded = (value if high is None else min(high, value)), True
    return (low, high) if bounded else None


def _span_tables(low: datetime | None, high: datetime | None, using: str) -> dict[str, Source]:
    """The leaves of the terms that overlap [low, high], and every class table unless
    those terms cover the whole range (a class table holds the grades outside every
    term, which may fall in the range)."""
    overlapping = sorted(
        (
            t
            for t in lms.terms(using)
            if (high is None or t.starts_at <= high) and (low is None or t.ends_at > low)
        ),
        key=lambda t: t.starts_at,
    )
    covered = low is not None and high is not None
    reached = low
    for term in overlapping:
        if reached is None or term.starts_at > reached:
            covered = False
            break
        reached = max(reached, term.ends_at)
    covered = covered and reached is not None and high is not None and reached > high
    out: dict[str, Source] = {}
    if overlapping:
        terms = [t.term_id for t in overlapping]
        for table in registry.tables_of_classes(None, terms, using).values():
            out[table] = (table, False, False)
    if not covered:
        for table in registry.class_tables(using).values():
            out[table] = (table, False, True)
    return out


def _of_classes(
    classes: set[str], terms: list[str] | None, using: str, reading: bool
) -> tuple[dict[str, Source], set[str]]:
    """Tables of ``classes`` and the classes read whole: each class table with its term
    tables, or the (class, term) leaves when ``terms`` are pinned. Class tables are never
    dropped: their names come from the cache. Leaves are archived: a write looks them up
    in its own transaction."""
    if terms is None:
        tables = registry.partition_tables([(c, None) for c in sorted(classes)], using)
        return {n: (n, True, True) for n in tables.values()}, {c for c, _ in tables}
    if reading:
        pairs = sorted((c, t) for c in classes for t in terms)
        found = registry.partition_tables(pairs, using)
    else:
        found = registry.tables_of_classes(sorted(classes), terms, using)
    return {n: (n, False, False) for n in found.values()}, set()


def _narrow(
    sources: dict[str, Source], whole: set[str], found: registry.Pinned
) -> dict[str, Source]:
    """The key index's tables (``found``) that ``sources`` read (``whole``: classes read
    with all their tables), each read ``ONLY``."""
    return {
        name: (name, False, term is None)
        for (class_id, term), name in found.items()
        if name in sources or class_id in whole
    }


def route(
    where: WhereNode, alias: str, using: str, *, reading: bool = False, trust_grade: bool = False
) -> Route | None:
    """Where a query must read; None when its filters pin no partition.

    ``reading``: a read outside ``select_for_update()``, which may name leaves from this
    process's cache. ``trust_grade``: a read whose empty result would be noticed and run
    again, which may read one pinned grade where the cache last saw it. Classes,
    activities, terms and ``created_at`` are resolved first; the key index narrows what
    they leave only when that is more than one table.
    """
    pins = pinned(where, alias)
    sources: dict[str, Source] | None = None
    whole: set[str] = set()
    classes = pins.get("class_id")
    if "activity_id" in pins:
        located = lms.classes_of_cached(pins["activity_id"], using)
        of_activities = {c for c in located.values() if c is not None}
        classes = of_activities if classes is None else classes & of_activities
    terms = sorted(pins["term_id"]) if "term_id" in pins else None
    if classes is not None:
        sources, whole = _of_classes(classes, terms, using, reading)
    elif terms is not None:
        found = registry.tables_of_classes(None, terms, using)
        sources = {name: (name, False, False) for name in found.values()}
    elif (bounds := span(where, alias)) is not None:
        sources = _span_tables(*bounds, using)
    keyed = next((c for c in ("id", "student_id") if c in pins), None)
    if keyed is not None:
        values = sorted(pins[keyed])
        if sources is None and trust_grade and keyed == "id" and len(values) == 1:
            hit = registry.cached_grade_table(values[0], using)
            if hit is not None:
                return Route(tables=((hit[0], False, hit[1]),), cached_grade=values[0])
        if sources is None or len(sources) > 1:
            if keyed == "id":
                found = registry.tables_of_grades(values, using)
            else:
                found = registry.tables_of_students(values, using)
            if sources is None:
                sources = {name: (name, False, t is None) for (_, t), name in found.items()}
            else:
                sources = _narrow(sources, whole, found)
    if sources is None:
        return None
    return Route(tables=tuple(sorted(sources.values())))


def _shape(query: Any) -> str:
    """How a query shows in the log and the error: its model and its WHERE clause."""
    return f"{query.model.__name__} WHERE {query.where!r}"


def guard(query: Any, using: str, pinned_count: int | None = None) -> None:
    """A query on every partition (``pinned_count`` None), or on more than the limit:
    refused above the limit, logged either way. The query's text is built only then."""
    if pinned_count is not None and pinned_count <= 1:
        return  # one table is what every routed query may read
    partitions = registry.live_count(using) if pinned_count is None else pinned_count
    limit = partition_limit(using)
    if pinned_count is not None and pinned_count <= limit:
        return
    if partitions > limit:
        reach = (
            "filters on no column that names its partitions (id, student_id, activity_id, "
            "class_id, term_id, created_at)"
            if pinned_count is None
            else "pins more partitions than the limit"
        )
        where = "every partition" if pinned_count is None else "pinned partitions"
        shape = _shape(query)
        log.warning("refused a query on %s (%d): %s", where, partitions, shape)
        raise UnroutableQuery(
            f"ActivityGrade query {reach}: it would plan and lock "
            f"{'all ' if pinned_count is None else ''}{partitions} partitions "
            f"(ROUTING_PARTITION_LIMIT is {limit}). Add such a filter, use "
            "ActivityGrade.objects.for_class(...), or opt in with "
            f"ActivityGrade.objects.across_all_partitions(). Query: {shape}"
        )
    log.warning("a query reads every partition (%d): %s", partitions, _shape(query))


class RoutedTable(BaseTable):
    """The parent in a FROM clause, compiled as the partitions the query's filters pin."""

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str | int, ...]]:
        alias = str(self.table_alias)
        query = compiler.query
        locking = bool(query.select_for_update)
        found = route(
            query.where,
            alias,
            connection.alias,
            reading=not locking,
            trust_grade=not locking and getattr(compiler, "may_trust_grade", False),
        )
        if found is None:
            guard(query, connection.alias)
            return super().as_sql(compiler, connection)
        # querysets.RoutedQuery's compiler runs the read again if this grade is not there.
        compiler.read_cached_grade = found.cached_grade
        guard(query, connection.alias, len(found.tables))
        if len(found.tables) > 1 and locking:
            raise UnroutableQuery(
                f"select_for_update() over {len(found.tables)} partitions: PostgreSQL "
                "cannot lock rows of a UNION; narrow the filter to one (class, term) or "
                "lock by id"
            )
        # A term table is read with its children: its month tables (issue 15), if any.
        reads = [(name, whole or not class_table) for name, whole, class_table in found.tables]
        return leaves.routed_from(reads, self.table_name, alias), ()
