"""QuerySets that read one class table or one (class, term) leaf instead of the parent.

A query on the inheritance parent ``activity_grades`` plans and locks every child
table. ``ActivityGrade.objects.for_class(class_id, term)`` returns an ordinary
QuerySet whose FROM clause names the partition table (found in the registry,
never rebuilt from the ids) while keeping the alias ``activity_grades``, so
``filter()``, ``order_by()``, slicing, ``count()``, pagination and the admin
work unchanged and the SQL only touches that table::

    SELECT ... FROM "activity_grades_class_123_term_2024_fall" activity_grades
     WHERE activity_grades.student_id = 's1'

Writes: ``update()`` and ``delete()`` on such a QuerySet are sent to the partition
itself (``UPDATE "<partition>" SET ... WHERE ...``). With delete signal receivers,
``delete()`` reads the rows first and sends the signals around the partitions'
``DELETE``; only when another model has a ForeignKey to grades does it fall back to
Django's collector (whose ``DELETE`` goes through the parent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast
from uuid import UUID

from django.db import ProgrammingError, connections, models, transaction
from django.db.models import signals
from django.db.models.sql import DeleteQuery, Query, UpdateQuery
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE, MULTI, ROW_COUNT, SINGLE
from django.db.models.sql.datastructures import BaseTable

from ..core.ids import as_text
from ..db import registry
from ..db.connection import is_missing_table
from .routing import RoutedTable, guard, route

__all__ = ["ActivityGradeManager", "ActivityGradeQuerySet", "RoutedQuery"]

# The model of the QuerySet (ActivityGrade; generic so this module need not import it).
_M = TypeVar("_M", bound=models.Model, covariant=True)
# The query class a write is compiled as (UpdateQuery or DeleteQuery).
_Q = TypeVar("_Q", bound=Query)


class _RetryStaleCache:
    """A compiler mixin for reads that name tables from this process's cache.

    - A table dropped since its name was cached (archived by another process): the cache
      is forgotten and the read runs once more outside a transaction; inside one, the
      error is raised (the transaction is aborted), the next read looks it up again.
    - A read of one grade where the cache last saw it (``read_cached_grade``, set by
      ``RoutedTable``) that finds nothing there: the grade may have moved; its entry is
      forgotten and the read runs again through the key index. Allowed only for results
      whose emptiness shows here (not a streamed ``iterator()``).
    """

    may_trust_grade = False
    read_cached_grade: str | None = None

    def execute_sql(
        self,
        result_type: str = MULTI,
        chunked_fetch: bool = False,
        chunk_size: int = GET_ITERATOR_CHUNK_SIZE,
    ) -> Any:
        self.may_trust_grade = result_type in (MULTI, SINGLE) and not chunked_fetch
        self.read_cached_grade = None
        using: str = self.using  # type: ignore[attr-defined]
        run = super().execute_sql  # type: ignore[misc]
        try:
            result = run(result_type, chunked_fetch, chunk_size)
        except ProgrammingError as error:
            if not is_missing_table(error):
                raise
            registry.invalidate_cache()
            if connections[using].in_atomic_block:
                raise
            result = run(result_type, chunked_fetch, chunk_size)
        # Set by RoutedTable while the statement compiled (mypy keeps the None above).
        grade = cast("str | None", self.read_cached_grade)
        if grade is not None and self.may_trust_grade and _nothing(result, result_type):
            registry.forget_grade(grade, using)
            self.may_trust_grade = False
            result = run(result_type, chunked_fetch, chunk_size)
        return result


def _nothing(result: Any, result_type: str) -> bool:
    """Whether a read found no row: no rows, or a single row of NULLs and zeros (a count
    or an aggregate over nothing)."""
    if result_type == MULTI:
        return not result
    return result is None or all(v is None or v == 0 for v in result)


_retrying: dict[type, type] = {}


class RoutedQuery(Query):
    """The query of ActivityGrade's QuerySets: its compiler runs a read again when a
    cached name proved stale (``_RetryStaleCache``). Writes compile as other queries."""

    def get_compiler(self, *args: Any, **kwargs: Any) -> Any:
        compiler = super().get_compiler(*args, **kwargs)
        kind = type(compiler)
        if kind not in _retrying:
            _retrying[kind] = type(f"Routed{kind.__name__}", (_RetryStaleCache, kind), {})
        compiler.__class__ = _retrying[kind]
        return compiler


class ActivityGradeQuerySet(models.QuerySet[_M]):
    # Django's own (private) QuerySet state read below; the stubs do not declare it.
    _fields: tuple[str, ...] | None

    def __init__(
        self,
        model: type[_M] | None = None,
        query: Query | None = None,
        using: str | None = None,
        hints: dict[str, models.Model] | None = None,
    ) -> None:
        super().__init__(model, query if query is not None else RoutedQuery(model), using, hints)

    def for_table(self, table_name: str) -> ActivityGradeQuerySet[_M]:
        """Read from ``table_name`` (a partition from the registry) instead of the parent.

        The name is quoted as an identifier by Django; pass only names taken from
        ``activity_grades_partition.table_name``.
        """
        qs = self.all()  # QuerySet.all() is a plain _chain(): a copy to change
        alias = qs.query.get_initial_alias()
        query = qs.query
        old = query.alias_map[alias].table_name
        query.alias_map[alias] = BaseTable(table_name, alias)
        # table_map (table -> aliases) must follow, or relabelling (subqueries) fails.
        query.table_map = {k: list(v) for k, v in query.table_map.items() if k != old}
        query.table_map[table_name] = [alias]
        return qs

    def for_class(
        self, class_id: str | int | UUID, term: str | int | UUID | None = None
    ) -> ActivityGradeQuerySet[_M]:
        """Grades of one class (every term) or of one (class, term) partition.

        Without ``term`` the class table is read; through inheritance it includes
        all of the class's term tables. An unknown class or term gives an empty
        QuerySet (``.none()``), never a query on the parent. Ids may be str, int or UUID.
        """
        term_id = None if term is None else as_text(term, "term")
        table = registry.partition_table(as_text(class_id, "class_id"), term_id, using=self.db)
        if table is None:
            return self.none()
        return self.for_table(table)

    def _set_base(self, table: BaseTable) -> ActivityGradeQuerySet[_M]:
        qs = self.all()
        alias = qs.query.get_initial_alias()
        qs.query.alias_map[alias] = table
        return qs

    def routed(self) -> ActivityGradeQuerySet[_M]:
        """Read only the partitions the filters pin (the default manager's QuerySets)."""
        return self._set_base(RoutedTable(self.model._meta.db_table, self._base_alias()))

    def across_all_partitions(self) -> ActivityGradeQuerySet[_M]:
        """Read through the parent on purpose: plans and locks every partition."""
        return self._set_base(BaseTable(self.model._meta.db_table, self._base_alias()))

    def _base_alias(self) -> str:
        alias: str = self.query.get_initial_alias()
        return alias

    def _is_routed(self) -> bool:
        return isinstance(self.query.alias_map[self._base_alias()], RoutedTable)

    def _reads_partition(self) -> bool:
        return self.partition_table_name() != self.model._meta.db_table

    def _routed_writes(self) -> list[tuple[ActivityGradeQuerySet[_M], str]] | None:
        """(QuerySet, table) per partition a routed write reaches; None: unroutable."""
        found = route(self.query.where, self._base_alias(), self.db)
        if found is None:
            guard(self.query, self.db)
            return None
        guard(self.query, self.db, len(found.tables))
        # A class table read whole takes its term tables along; one read ONLY is written
        # with "term_id IS NULL": its own rows, the grades outside every term.
        return [
            (self.filter(term_id__isnull=True) if class_table and not whole else self, t)
            for t, whole, class_table in found.tables
        ]

    def _write_each(
        self,
        writes: list[tuple[ActivityGradeQuerySet[_M], str]],
        write: Callable[[ActivityGradeQuerySet[_M], str], int],
    ) -> int:
        with transaction.atomic(using=self.db, savepoint=False):
            return sum(write(qs, table) for qs, table in writes)

    def update(self, **kwargs: Any) -> int:
        # On a partition QuerySet: UPDATE "<partition>" ..., planned on that table only.
        if self._reads_partition() and not self.query.is_sliced:
            return self._write_table(
                self.partition_table_name(), UpdateQuery, lambda q: q.add_update_values(kwargs)
            )
        if self._is_routed() and not self.query.is_sliced:
            writes = self._routed_writes()
            if writes is not None:
                return self._write_each(
                    writes,
                    lambda qs, t: qs._write_table(
                        t, UpdateQuery, lambda q: q.add_update_values(kwargs)
                    ),
                )
        return super().update(**kwargs)

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        # DELETE FROM "<partition>" ... when Django would not need the rows first: no
        # cascades to follow and nobody listening for delete signals.
        model = self.model
        direct = not (
            model._meta.related_objects
            or signals.pre_delete.has_listeners(model)
            or signals.post_delete.has_listeners(model)
            or self._unsupported_delete()
        )
        if self._reads_partition() and direct:
            count = self._write_table(self.partition_table_name(), DeleteQuery)
            return count, {model._meta.label: count} if count else {}
        if self._is_routed() and direct:
            writes = self._routed_writes()
            if writes is not None:
                count = self._write_each(writes, lambda qs, t: qs._write_table(t, DeleteQuery))
                return count, {model._meta.label: count} if count else {}
        routed = self._is_routed() or self._reads_partition()
        if routed and not model._meta.related_objects and not self._unsupported_delete():
            return self._delete_sending_signals()
        return super().delete()

    def _unsupported_delete(self) -> bool:
        """What Django's own delete() refuses (it raises the error)."""
        return bool(self.query.is_sliced or self.query.distinct_fields or self._fields is not None)

    def _delete_sending_signals(self) -> tuple[int, dict[str, int]]:
        """What Django's Collector does for a model nothing points at, without its
        ``DELETE ... WHERE id IN (...)`` on the parent: the rows are read (routed), each
        gets ``pre_delete``, they are deleted from the partitions the key index names and
        each gets ``post_delete``, in one transaction."""
        model = self.model
        with transaction.atomic(using=self.db, savepoint=False):
            instances = list(self.order_by("pk"))
            if not instances:
                return 0, {}
            for instance in instances:
                signals.pre_delete.send(model, instance=instance, using=self.db, origin=self)
            rows = self.model._default_manager.db_manager(self.db).filter(
                pk__in=[instance.pk for instance in instances]
            )
            writes = cast("ActivityGradeQuerySet[_M]", rows)._routed_writes() or []
            count = self._write_each(writes, lambda qs, t: qs._write_table(t, DeleteQuery))
            for instance in instances:
                signals.post_delete.send(model, instance=instance, using=self.db, origin=self)
                instance.pk = None
        return count, {model._meta.label: count} if count else {}

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def _write_table(
        self, table_name: str, query_class: type[_Q], prepare: Callable[[_Q], None] | None = None
    ) -> int:
        """Run this QuerySet as an UPDATE or DELETE of ``table_name`` itself.

        ``table_name`` comes from the registry. The query's alias is renamed to the
        table, so the SQL is ``UPDATE "<leaf>" SET ... WHERE "<leaf>"."id" = ...`` (or
        ``DELETE FROM "<leaf>" WHERE ...``) and PostgreSQL plans that one table (and,
        for a class table, its term tables) instead of every child of the parent.
        """
        # chain(klass) returns a copy whose class is klass; the stubs say only Query.
        query = cast(_Q, self.query.chain(query_class))
        query.annotations = {}
        query.clear_ordering(force=True)
        old: str | None = query.get_initial_alias()
        query.change_aliases({old: table_name})
        query.alias_map[table_name] = BaseTable(table_name, table_name)
        query.table_map = {table_name: [table_name]}
        query.__dict__.pop("base_table", None)  # a cached_property of the old alias
        if prepare is not None:
            prepare(query)  # after the rename: F() in new values resolve to the table
        self._result_cache = None
        with transaction.mark_for_rollback_on_error(using=self.db):
            rows: int = query.get_compiler(self.db).execute_sql(ROW_COUNT)
            return rows

    def partition_table_name(self) -> str:
        """The table this QuerySet reads (the parent unless ``for_class`` was used)."""
        alias = self.query.get_initial_alias()
        return self.query.alias_map[alias].table_name


# A named base: the django-stubs plugin types from_queryset() only when it is assigned.
_ManagerBase = models.Manager.from_queryset(ActivityGradeQuerySet)


class ActivityGradeManager(_ManagerBase[_M]):
    """Default manager of ActivityGrade: its QuerySets read only the partitions their
    filters pin (``models/routing.py``); adds ``for_class``, ``for_table`` and
    ``across_all_partitions``."""

    def get_queryset(self) -> ActivityGradeQuerySet[_M]:
        qs = cast("ActivityGradeQuerySet[_M]", super().get_queryset())
        return qs.routed()
