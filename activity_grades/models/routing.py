"""Route the default manager's queries to the partitions their filters pin.

A query on the inheritance parent plans and locks every partition (at a few thousand,
one such query fills the server's lock table). The default manager's QuerySets name the
parent through ``RoutedTable``: when Django compiles the query, it reads the WHERE
clause for values that pin rows to partitions, ANDed at the top level:

- ``id`` / ``pk`` (``=``, ``__in``): the key index says which (class, term) holds each;
- ``student_id`` (``=``, ``__in``): the key index's record of the student's partitions;
- ``activity_id`` (``=``, ``__in``): the activity's class, all its partitions;
- ``class_id`` (with ``term_id``), or ``term_id`` alone: the registry.

Several pins narrow each other. The FROM clause then reads those tables only: a class
pinned whole through its class table (with its term tables), any other table ``ONLY`` (a
class table's own rows are the grades outside every term), as one table or a ``UNION
ALL`` of them under the parent's alias, so filters, ordering, slicing, counts,
aggregates and ``values()`` work unchanged. A query that pins nothing is an
``UnroutableQuery`` error above ``ROUTING_PARTITION_LIMIT`` partitions (below it, it
reads the parent, as before) and is logged either way with its shape;
``across_all_partitions()`` reads the parent on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db.models.expressions import Col
from django.db.models.lookups import Exact, In
from django.db.models.sql.datastructures import BaseTable
from django.db.models.sql.where import AND, WhereNode

from ..core.constants import LOGGER_NAME
from ..core.exceptions import UnroutableQuery
from ..core.settings import app_settings
from ..db import catalog, leaves, registry

__all__ = ["LOCKS_PER_PARTITION", "RoutedTable", "partition_limit", "pinned", "route"]

log = logging.getLogger(LOGGER_NAME)

_PINNING = ("id", "activity_id", "student_id", "class_id", "term_id")

# Relation locks a query through the parent takes per partition: the table and its four
# indexes, and the planner's share (measured: 7,685 locks at 1,152 leaves).
LOCKS_PER_PARTITION = 7
# The default limit leaves room for this many whole-tree queries at once.
_CONCURRENT = 8


def partition_limit(using: str) -> int:
    """ROUTING_PARTITION_LIMIT, or the partitions whose locks fit in an eighth of the
    server's lock table (64 x 100 slots by default: 114)."""
    limit = app_settings.ROUTING_PARTITION_LIMIT
    if limit is not None:
        return limit
    return catalog.lock_capacity(using) // (LOCKS_PER_PARTITION * _CONCURRENT)


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


def pinned(where: WhereNode, alias: str) -> dict[str, set[str]]:
    """Column -> the values the WHERE clause ANDs it to, for the pinning columns."""
    found: dict[str, set[str]] = {}
    if where.negated or where.connector != AND:
        return found
    for child in where.children:
        parts: dict[str, set[str]] = {}
        if isinstance(child, WhereNode):
            parts = pinned(child, alias)
        elif isinstance(child, (Exact, In)) and isinstance(child.lhs, Col):
            col = child.lhs
            values = _values(child)
            if col.alias == alias and col.target.column in _PINNING and values is not None:
                parts = {col.target.column: values}
        for column, values in parts.items():
            found[column] = found[column] & values if column in found else values
    return found


def route(where: WhereNode, alias: str, using: str) -> list[tuple[str, bool, bool]] | None:
    """The tables a query must read, as (table, with its children, is a class table);
    None when its filters pin no partition.

    Registry pins first (class, term, activity: one query each); the key index (ids,
    students) narrows further only while they leave more than one table. A class whose
    every table is still in the set is read through its class table with its children
    (one scan of each, indexes usable), the others each ``ONLY``.
    """
    pins = pinned(where, alias)
    found: registry.Pinned | None = None
    whole: set[str] = set()  # classes read whole so far

    def narrow(tables: registry.Pinned, whole_classes: bool = False) -> None:
        nonlocal found, whole
        if found is None:
            found = tables
            whole = {c for c, _ in tables} if whole_classes else set()
            return
        kept = {k: v for k, v in found.items() if k in tables}
        whole = {c for c in whole if _same_class(found, kept, c)}
        found = kept

    terms = sorted(pins["term_id"]) if "term_id" in pins else None
    if "class_id" in pins or terms is not None:
        classes = sorted(pins["class_id"]) if "class_id" in pins else None
        narrow(registry.tables_of_classes(classes, terms, using), whole_classes=terms is None)
    if "activity_id" in pins:
        narrow(registry.tables_of_activities(sorted(pins["activity_id"]), using), True)
    for column in ("id", "student_id"):
        if column in pins and (found is None or len(found) > 1):
            narrow(registry.tables_in_key_index(column, sorted(pins[column]), using))
    if found is None:
        return None
    out = [
        (name, class_id in whole, term is None)
        for (class_id, term), name in found.items()
        if class_id not in whole or term is None
    ]
    return sorted(out)


def _same_class(before: registry.Pinned, after: registry.Pinned, class_id: str) -> bool:
    return {k for k in before if k[0] == class_id} == {k for k in after if k[0] == class_id}


def guard(shape: str, using: str) -> None:
    """An unroutable query: refused above the limit, logged either way."""
    partitions = registry.live_count(using)
    limit = partition_limit(using)
    if partitions > limit:
        log.warning("refused a query on every partition (%d): %s", partitions, shape)
        raise UnroutableQuery(
            f"ActivityGrade query filters on no column that names its partitions (id, "
            f"student_id, activity_id, class_id, term_id): it would plan and lock all "
            f"{partitions} partitions (ROUTING_PARTITION_LIMIT is {limit}). Add such a "
            "filter, use ActivityGrade.objects.for_class(...), or opt in with "
            f"ActivityGrade.objects.across_all_partitions(). Query: {shape}"
        )
    log.warning("a query reads every partition (%d): %s", partitions, shape)


class RoutedTable(BaseTable):
    """The parent in a FROM clause, compiled as the partitions the query's filters pin."""

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        alias = str(self.table_alias)
        tables = route(compiler.query.where, alias, connection.alias)
        if tables is None:
            # The query's own text would compile this FROM again: its filters say enough.
            guard(
                f"{compiler.query.model.__name__} WHERE {compiler.query.where!r}", connection.alias
            )
            return super().as_sql(compiler, connection)
        if len(tables) > 1 and compiler.query.select_for_update:
            raise UnroutableQuery(
                f"select_for_update() over {len(tables)} partitions: PostgreSQL cannot lock "
                "rows of a UNION; narrow the filter to one (class, term) or lock by id"
            )
        reads = [(name, whole) for name, whole, _ in tables]
        return leaves.routed_from(reads, self.table_name, alias), []
