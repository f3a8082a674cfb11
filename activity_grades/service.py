"""ActivityGradeService: reads and writes that go straight to the right partition.

The inheritance parent ``activity_grades`` is correct for every query but slow for
small ones: PostgreSQL plans and locks every child (~73 ms and ~7,700 locks for a
point query at 1,150 leaves). Everything here names the partition table instead:

* the (class, term) -> table map comes from the registry ``activity_grades_partition``
  (cached per process for ``registry.CACHE_SECONDS``; names are never rebuilt from ids);
* a grade's partition by id or by (activity, student) comes from the key index
  ``activity_grades_key``;
* writes go into the leaf, whose statement triggers keep the key index in step.

See docs/performance.md for which calls are fast and which touch every partition.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial, wraps
from typing import Any, TypeVar, cast

from django.db import IntegrityError, connections, transaction
from django.db.utils import ProgrammingError
from django.utils import timezone
from psycopg.types.json import Jsonb

from . import partitions, replicas
from .core import rules, shards
from .core.constants import LOGGER_NAME, PARENT
from .core.exceptions import (
    ActivityWithoutClass,
    GradeConflict,
    GradeError,
    NoUniqueKey,
    ReadOnlyError,
    UnknownActivity,
    UnknownColumn,
)
from .core.ids import as_text, new_grade_id
from .core.settings import app_settings
from .db import chunks, leaves, lms, moves, registry, shard_partitions
from .db.connection import shard_errors
from .models import ActivityGrade, ArchivedActivityGrade
from .models.columns import GradeColumns

__all__ = [
    "ActivityGradeService",
    "ActivityStats",
    "IngestResult",
    "StudentHistory",
    "student_history",
]

logger = logging.getLogger(LOGGER_NAME)

# The LMS's id types (Django primary keys): stored as text.
Id = str | int | uuid.UUID

# Tables per UNION ALL statement when reading one student's whole record.
UNION_CHUNK = 100
UPSERT_ATTEMPTS = 5
# Reads of one grade or one student's grades that found it moved between the key index
# lookup and the read try again this many times.
MOVED_RETRIES = 3

# Every concrete field has a column; the test only tells the type checker so.
COLUMNS: tuple[str, ...] = tuple(f.column for f in ActivityGrade._meta.concrete_fields if f.column)
_COLUMN_SET = frozenset(COLUMNS)
_ARCHIVED_COLUMNS: tuple[str, ...] = tuple(
    f.column for f in ArchivedActivityGrade._meta.concrete_fields if f.column
)
_JSON = {"content", "attachments"}
_ROUTING = {"id", "activity_id", "student_id", "class_id", "term_id"}
# Text columns that hold an LMS id: an int or UUID id (a Django pk) is stored as text.
_ID_COLUMNS = (*sorted(_ROUTING), "graded_by_id", "commitment_id")
_REQUIRED = frozenset({"activity_id", "student_id"})


@dataclass(frozen=True)
class IngestResult:
    """What ``record_many`` wrote."""

    rows: int
    per_table: dict[str, int]
    partitions_created: list[str]
    seconds: float


@dataclass(frozen=True)
class ActivityStats:
    """Per-activity aggregates within one class (and term)."""

    activity_id: str
    grades: int
    graded: int
    avg_score: float | None
    min_score: float | None
    max_score: float | None


_F = TypeVar("_F", bound=Callable[..., Any])


def _reporting(read: _F) -> _F:
    """A read that a read replica may serve (``replicas.reader``): run by a service on
    the replica when one is fit and this context wrote nothing lately."""

    @wraps(read)
    def on_reader(self: ActivityGradeService, *args: Any, **kwargs: Any) -> Any:
        alias = replicas.reader(self.using)
        return read(self if alias == self.using else type(self)(alias), *args, **kwargs)

    return cast(_F, on_reader)


def _writing(write: _F) -> _F:
    """A write: this context's reads go to the primary for a while (read-your-writes)."""

    @wraps(write)
    def noting(self: ActivityGradeService, *args: Any, **kwargs: Any) -> Any:
        replicas.note_write()
        return write(self, *args, **kwargs)

    return cast(_F, noting)


class ActivityGradeService:
    """Partition-aware reads and writes of activity grades.

    Args:
        using: the database alias.
    """

    def __init__(self, using: str = "default") -> None:
        self.using = using

    # -- routing -----------------------------------------------------------------

    @property
    def connection(self) -> Any:
        return connections[self.using]

    def class_of(self, activity_id: Id) -> str | None:
        """The class of an activity (None: no such activity, or it has no class)."""
        return lms.class_of(as_text(activity_id, "activity_id"), self.using)

    def term_at(self, at: datetime) -> str | None:
        """The term a grade created at ``at`` belongs to (None: between terms)."""
        return lms.term_at(at, self.using)

    def table_for(self, class_id: Id, term_id: Id | None, *, create: bool = False) -> str | None:
        """The partition table of (class, term); with ``create`` it is made if missing.

        Made where the class lives (``partitions.ensure_partition``): on the coordinator
        for a local class, on its shard (and its foreign table here) for a sharded one.
        The shard's part commits at once, even inside a caller's ``transaction.atomic()``;
        the coordinator's part commits or rolls back with the caller's transaction, and
        a remote table whose foreign table was rolled back is taken up by the next call.
        """
        class_text, term_text = as_text(class_id, "class_id"), _text_or_none(term_id, "term_id")
        table = registry.partition_table(class_text, term_text, self.using)
        if table is None and create:
            table, _ = partitions.ensure_partition(class_text, term_text, self.using)
        return table

    # -- writes ------------------------------------------------------------------

    def _complete(self, values: dict[str, Any], *, new: bool = False) -> dict[str, Any]:
        """Fill defaults the way the model does and adapt values for psycopg.

        ``new``: a row to insert, which must name its activity and student.
        """
        if "id" not in values:  # not setdefault: a new id costs ~10 us per row
            values["id"] = new_grade_id()
        if "created_at" not in values or "updated_at" not in values:
            now = timezone.now()
            values.setdefault("created_at", now)
            values.setdefault("updated_at", now)
        values.setdefault("is_archived", False)
        values.setdefault("is_committed", False)
        if not _COLUMN_SET.issuperset(values):
            unknown = sorted(set(values) - _COLUMN_SET)
            raise UnknownColumn(f"unknown ActivityGrade columns: {unknown}")
        for name in _ID_COLUMNS:  # the fast case, text ids, costs one lookup each
            value = values.get(name)
            if value.__class__ is not str and (value is not None or new and name in _REQUIRED):
                values[name] = as_text(value, name)
        for name in _JSON:
            value = values.get(name)
            if value is not None and not isinstance(value, Jsonb):
                values[name] = Jsonb(value)
        for name in rules.TIMESTAMP_COLUMNS:
            if name in values:
                rules.check_timestamp(name, values[name])
        # The term is chosen from the value as stored (timestamptz(3)), as in SQL.
        values["created_at"] = rules.stored(values["created_at"])
        return values

    @_writing
    def record(
        self,
        activity_id: Id,
        student_id: Id,
        *,
        class_id: Id | None = None,
        term_id: Id | None = None,
        **fields: Any,
    ) -> ActivityGrade:
        """Insert one grade straight into its leaf (created on demand) and return it.

        Ids may be str, int or UUID (stored as text). ``class_id``/``term_id`` are
        looked up (activity's class, term at ``created_at`` as stored); given ones must
        agree with them (the write rule: ``activity_grades.core.rules``).

        Raises:
            UnknownActivity: the activity does not exist.
            ActivityWithoutClass: it exists but has no class.
            ClassMismatch: ``class_id`` is not the activity's class.
            TermMismatch: ``term_id`` is not the term of ``created_at``.
            InvalidTimestamp: a timestamp that could not be read back (naive, infinite,
                outside year 1..9999 in UTC) or not a datetime.
            IntegrityError: (activity, student) or the id is taken anywhere in the tree.
        """
        activity = as_text(activity_id, "activity_id")
        student = as_text(student_id, "student_id")
        values = self._complete({"activity_id": activity, "student_id": student, **fields})
        given_class, given_term = _class_term(class_id, term_id)
        # The routing trigger's lookup: class and term in one round trip.
        located = lms.locate(activity, values["created_at"], self.using)
        if located is None:
            raise UnknownActivity(f"activity {activity!r} does not exist")
        actual_class, derived_term = located
        if actual_class is None:
            raise ActivityWithoutClass(f"activity {activity!r} has no class")
        rules.check_placement(activity, given_class, given_term, actual_class, derived_term)
        values["class_id"], values["term_id"] = actual_class, derived_term
        table = self.table_for(actual_class, derived_term, create=True)
        assert table is not None  # create=True
        row = leaves.insert(self.using, table, values, COLUMNS)
        return self._instance(row)

    @_writing
    def record_many(self, rows: Iterable[Mapping[str, Any]]) -> IngestResult:
        """Bulk ingest: group rows by partition, create missing ones, COPY into each leaf.

        Rows are mappings of column -> value (``activity_id``, ``student_id``,
        ``status``, ``submitted_at`` required). All rows or none. The leaves' statement
        triggers fill the key index (uniqueness holds). Class and term are derived as in
        ``record`` (a ``class_id`` or ``term_id`` given, None meaning "derive it", must
        agree), with the same errors, before anything is written. A missing partition is
        made where its class lives (``table_for``).

        A partition on a shard is written straight on the shard's alias: its rows COPYed
        into the remote table in one transaction per shard, their key-index rows written
        here in the coordinator's transaction (one statement per partition). The shards
        commit first, then the coordinator (as postgres_fdw does): a failure before the
        commits stores nothing anywhere; an interruption between them leaves grades on a
        shard without their key rows, which ``check_partitions --keys`` reports (E017)
        and ``--fix`` completes. Inside a caller's ``transaction.atomic()`` the call
        cannot commit the coordinator, so its rows go through the foreign tables instead
        (postgres_fdw ties the shard's writes to the caller's transaction).

        Raises:
            IntegrityError: an id or (activity, student) taken, in the batch or the tree.
            ShardError: a shard needed did not answer (its alias named); nothing stored.
        """
        started = time.monotonic()
        prepared = [self._complete(dict(r), new=True) for r in rows]
        groups = self._groups(prepared)
        created: list[str] = []
        per_table: dict[str, int] = {}
        direct = bool(app_settings.shards) and not self.connection.in_atomic_block
        # The shards' transactions are entered after the coordinator's: they commit first.
        with transaction.atomic(using=self.using), ExitStack() as on_shards:
            tables = {key: self._partition(*key, created) for key in groups}
            targets = self._shard_targets(self._not_moving(tables)) if direct else {}
            for alias in sorted({alias for alias, _, _ in targets.values()}):
                on_shards.enter_context(_ShardTransaction(alias))  # a shard down: now
            with self.connection.cursor() as cursor:
                for key, group in groups.items():
                    table = tables[key]
                    if table in targets:
                        self._copy_to_shard(targets[table], key, group)
                    else:
                        leaves.copy_rows(cursor, table, COLUMNS, _values(group))
                    per_table[table] = len(group)
        return IngestResult(len(prepared), per_table, created, time.monotonic() - started)

    def _groups(
        self, prepared: list[dict[str, Any]]
    ) -> dict[tuple[str, str | None], list[dict[str, Any]]]:
        """Rows by (class, term), each checked against its activity's class and term."""
        classes = lms.classes_of({r["activity_id"] for r in prepared}, self.using)
        terms = lms.TermIndex(lms.terms(self.using))
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
        for r in prepared:
            activity = r["activity_id"]
            if activity not in classes:
                raise UnknownActivity(f"activity {activity!r} does not exist")
            actual_class = classes[activity]
            if actual_class is None:
                raise ActivityWithoutClass(f"activity {activity!r} has no class")
            derived_term = terms.at(r["created_at"])
            rules.check_placement(
                activity, r.get("class_id"), r.get("term_id"), actual_class, derived_term
            )
            r["class_id"], r["term_id"] = actual_class, derived_term
            groups[(actual_class, derived_term)].append(r)
        return groups

    def _partition(self, class_id: str, term_id: str | None, created: list[str]) -> str:
        """The partition of (class, term), made where the class lives if missing."""
        table = registry.partition_table(class_id, term_id, self.using)
        if table is None:
            table, was_created = partitions.ensure_partition(class_id, term_id, self.using)
            if was_created:
                created.append(table)
        return table

    def _not_moving(self, tables: dict[tuple[str, str | None], str]) -> set[str]:
        """The partitions of classes no ``move_class`` is copying: a moving class's writes
        go through the coordinator, whose capture triggers note them for the copy."""
        classes = sorted({class_id for class_id, _ in tables})
        moving = moves.moving(self.using, classes) if classes else set()
        return {table for (class_id, _), table in tables.items() if class_id not in moving}

    def _shard_targets(self, tables: set[str]) -> dict[str, tuple[str, str, str]]:
        """table -> (shard alias, remote schema, remote table) of those that are foreign."""
        out = {}
        for table in tables:
            found = self._foreign(table)
            if found is not None:
                alias, part = found
                out[table] = (alias, part.schema_name, part.table_name)
        return out

    def _foreign(self, table: str) -> tuple[str, shard_partitions.ForeignPartition] | None:
        """(shard alias, where it points) of a partition that is a foreign table of one of
        ``SHARDS``; None for any other (one catalog look-up)."""
        if not app_settings.shards:
            return None
        found = shard_partitions.foreign_partition(self.using, table)
        alias = shards.alias_of_server(found.server) if found else None
        if found is None or alias is None or alias not in app_settings.shards:
            return None
        return alias, found

    def _copy_to_shard(
        self,
        target: tuple[str, str, str],
        key: tuple[str, str | None],
        group: list[dict[str, Any]],
    ) -> None:
        """One partition's rows into its remote table, and their key rows here.

        What the foreign partition's INSERT triggers would do: ``activity_grades_readable``
        (the timestamps as stored must read back: checked here, the shard's table has no
        trigger) and ``activity_grades_key_insert_row`` (one set-based statement).
        """
        alias, schema, remote_table = target
        for r in group:
            _check_readable(r)
        leaves.insert_keys(
            self.using,
            *key,
            [r["id"] for r in group],
            [r["activity_id"] for r in group],
            [r["student_id"] for r in group],
        )
        with shard_errors(alias), connections[alias].cursor() as cursor:
            leaves.copy_rows(cursor, remote_table, COLUMNS, _values(group), schema)

    @_writing
    def upsert(self, activity_id: Id, student_id: Id, **fields: Any) -> tuple[ActivityGrade, bool]:
        """Update the grade of (activity, student) in its partition, or insert it.

        Returns ``(grade, created)``. Safe under concurrency: the key index row is
        locked while updating, and an insert that loses a race (unique violation
        from the key index) is retried as an update.

        Raises:
            NoUniqueKey: ``UNIQUE_KEY`` is None, so (activity, student) names no one grade.
        """
        if not app_settings.unique_key_on:
            raise NoUniqueKey(
                "upsert finds a grade by (activity, student), but ACTIVITY_GRADES"
                "['UNIQUE_KEY'] is None: one activity and student may have several grades. "
                "Use record() to add an attempt, and change a grade by its id: "
                "get(id) then save(), or ActivityGrade.objects.for_class(...).filter(id=...)"
                ".update(...)"
            )
        if _ROUTING & set(fields) - {"class_id", "term_id"}:
            raise ReadOnlyError("upsert cannot change id, activity_id or student_id")
        activity_id = as_text(activity_id, "activity_id")
        student_id = as_text(student_id, "student_id")
        for _ in range(UPSERT_ATTEMPTS):
            with transaction.atomic(using=self.using):
                found = self._update_existing(activity_id, student_id, fields)
                if found is not None:
                    return found, False
                try:
                    with transaction.atomic(using=self.using):
                        return self.record(activity_id, student_id, **fields), True
                except GradeError:
                    raise  # no such activity, no class, a contradiction: a retry cannot help
                except IntegrityError as exc:
                    if not _lost_race(exc):
                        raise  # not the key taken meanwhile: say what it is
                    logger.debug("upsert of %s/%s lost a race; retrying", activity_id, student_id)
        raise GradeConflict(
            f"upsert of {activity_id!r}/{student_id!r} kept conflicting: another session "
            f"inserted and removed that grade {UPSERT_ATTEMPTS} times while this one tried"
        )

    def _update_existing(
        self, activity_id: str, student_id: str, fields: dict[str, Any]
    ) -> ActivityGrade | None:
        key = leaves.key_of(self.using, activity_id, student_id)
        if key is None:
            return None
        grade_id, class_id, term_id = key
        values = self._complete(dict(fields, updated_at=timezone.now()))
        for column in ("id", "created_at", "is_archived", "is_committed"):
            if column not in fields:
                values.pop(column)
        table = self.table_for(class_id, term_id)
        if table is None:
            raise GradeConflict(f"grade {grade_id} is in a partition that is not live")
        changes = {c: v for c, v in values.items() if c != "id"}
        updated = leaves.update(self.using, table, grade_id, changes, COLUMNS)
        if updated is None:  # moved to another partition by activity_grades_move()
            return self.get(grade_id)
        return self._instance(updated)

    # -- reads -------------------------------------------------------------------

    def _instance(self, row: Sequence[Any]) -> ActivityGrade:
        return ActivityGrade.from_db(self.using, list(COLUMNS), _decode(row))

    def _read(self, read: Callable[[], list[leaves.Row]]) -> list[ActivityGrade]:
        """Run a read; a table dropped since its name was cached is forgotten and read again."""
        for attempt in (1, 2):
            try:
                return [self._instance(r) for r in read()]
            except ProgrammingError:
                # A cached partition may have been dropped (archived): forget the
                # cache; outside a transaction the caller's read is retried once.
                registry.invalidate_cache()
                if attempt == 2 or self.connection.in_atomic_block:
                    raise
        return []

    def _select(
        self,
        table: str,
        where: dict[str, Any] | None = None,
        *,
        only: bool = False,
        order_by: Sequence[str] = (),
    ) -> list[ActivityGrade]:
        using, table, where = self._on_shard(table, where, only)
        return self._read(
            lambda: leaves.select(using, table, COLUMNS, where=where, only=only, order_by=order_by)
        )

    def _on_shard(
        self, table: str, where: dict[str, Any] | None, only: bool
    ) -> tuple[str, str, dict[str, Any] | None]:
        """Where to read one partition: a sharded class's straight from its shard's alias
        (no hop through the coordinator's foreign table), any other here.

        On a shard a class's tables are flat children of the shard's parent, so a class
        table read with its terms is the shard's parent filtered on the class.
        """
        located = self._foreign(table)
        if located is None:
            return self.using, table, where
        alias, found = located
        if found.term_id is None and not only:
            return alias, PARENT, {"class_id": found.class_id, **(where or {})}
        return alias, found.table_name, where

    @_reporting
    def gradebook(self, class_id: Id, term_id: Id) -> list[ActivityGrade]:
        """Every grade of one class in one term, from the leaf only."""
        table = self.table_for(class_id, term_id)
        if table is None:
            return []
        return self._select(table, order_by=("student_id", "activity_id"))

    @_reporting
    def student_grades_in_class(
        self, student_id: Id, class_id: Id, term_id: Id | None = None
    ) -> list[ActivityGrade]:
        """One student's grades in a class (one term, or all terms via the class table)."""
        table = self.table_for(class_id, term_id)
        if table is None:
            return []
        where = {"student_id": as_text(student_id, "student_id")}
        return self._select(table, where, order_by=("activity_id",))

    @_reporting
    def activity_grades(self, activity_id: Id) -> list[ActivityGrade]:
        """Every grade of one activity: reads its class table (all terms), not the parent."""
        activity = as_text(activity_id, "activity_id")
        class_id = self.class_of(activity)
        table = registry.partition_table(class_id, None, self.using) if class_id else None
        if table is None:
            return []
        return self._select(table, {"activity_id": activity}, order_by=("student_id",))

    @_reporting
    def activity_stats(self, class_id: Id, term_id: Id | None = None) -> list[ActivityStats]:
        """Count, graded count and score min/avg/max per activity of a class (and term)."""
        table = self.table_for(class_id, term_id)
        if table is None:
            return []
        using, table, where = self._on_shard(table, None, False)
        return [ActivityStats(*row) for row in leaves.activity_stats(using, table, where)]

    @_reporting
    def get(self, grade_id: Id) -> ActivityGrade | None:
        """One grade by id: the key index names its partition, only that table is read."""
        grade_id = as_text(grade_id, "grade_id")
        for _ in range(MOVED_RETRIES):
            located = registry.tables_of_grades([grade_id], self.using)
            if not located:
                return None
            # A class table ONLY; a term table with its month tables.
            ((_, term_id), table), *_ = located.items()
            found = self._select(table, {"id": grade_id}, only=term_id is None)
            if found:
                return found[0]
            # Moved between the two reads (a conversion, archiving): look it up again.
        return None

    @_reporting
    def student_record(self, student_id: Id) -> list[ActivityGrade]:
        """One student's grades in every class and term.

        The key index lists the partitions that hold the student's rows; only those
        are read (a class table ``ONLY``, a term table with its month tables, in UNION ALL
        batches of ``UNION_CHUNK`` tables), so the cost follows the student's partitions,
        not the size of the tree.
        """
        student_id = as_text(student_id, "student_id")
        tables = self._student_tables(student_id)
        for _ in range(MOVED_RETRIES):
            out: list[ActivityGrade] = []
            for i in range(0, len(tables), UNION_CHUNK):
                chunk = tables[i : i + UNION_CHUNK]
                out += self._read(
                    partial(leaves.select_student, self.using, chunk, COLUMNS, student_id)
                )
            # A grade moved meanwhile into a table not listed (a conversion): read again.
            again = self._student_tables(student_id)
            if set(again) <= set(tables):
                break
            tables = again
        out.sort(key=lambda g: (g.class_id, g.created_at, g.activity_id))
        return out

    def _student_tables(self, student_id: str) -> list[tuple[str, bool]]:
        """(table, read ``ONLY``) of each partition holding the student's grades."""
        found = registry.tables_of_students([student_id], self.using)
        return sorted({(table, term is None) for (_, term), table in found.items()})


def _values(group: list[dict[str, Any]]) -> Iterator[list[Any]]:
    return ([r.get(c) for c in COLUMNS] for r in group)


def _check_readable(row: dict[str, Any]) -> None:
    """The rule of a partition's ``activity_grades_readable`` trigger, for a row that goes
    straight to a shard: every timestamp, rounded as stored, can be read back.

    ``_complete`` already refused naive, infinite and out-of-range values; what is left is
    a value that the rounding to milliseconds carries past year 9999.
    """
    for column in rules.TIMESTAMP_COLUMNS:
        value = row.get(column)
        if value is not None:
            rules.stored(value, column)


class _ShardTransaction:
    """A transaction on a shard's alias: connected on entry, committed on exit; a
    connection error of either names the shard. Errors of the body pass as they are."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.atomic = transaction.atomic(using=alias)

    def __enter__(self) -> None:
        with shard_errors(self.alias):
            self.atomic.__enter__()

    def __exit__(self, *exc: Any) -> None:
        with shard_errors(self.alias):
            self.atomic.__exit__(*exc)


_UNIQUE_VIOLATION = "23505"


def _lost_race(exc: IntegrityError) -> bool:
    """Whether an insert failed because (activity, student) or the id was taken meanwhile."""
    return getattr(exc.__cause__, "sqlstate", None) == _UNIQUE_VIOLATION


def _text_or_none(value: Id | None, what: str) -> str | None:
    return None if value is None else as_text(value, what)


def _class_term(class_id: Id | None, term_id: Id | None) -> tuple[str | None, str | None]:
    return _text_or_none(class_id, "class_id"), _text_or_none(term_id, "term_id")


@dataclass
class StudentHistory:
    """One student's grades, live and archived."""

    live: list[ActivityGrade]
    archived: list[ArchivedActivityGrade]

    @property
    def all(self) -> list[GradeColumns]:
        return sorted([*self.live, *self.archived], key=lambda g: (g.created_at, g.id))


def student_history(student_id: Id, using: str = "default") -> StudentHistory:
    """Every grade of one student, live and archived.

    The live part reads only the partitions the key index names for this student,
    never the whole tree; the archive part reads only the compressed chunks that hold the
    student (a GIN index from student to chunks) and the row archive's (student_id)
    index, never the whole archive.
    """
    student = as_text(student_id, "student_id")
    live = ActivityGradeService(using).student_record(student)
    rows = chunks.grades_of_student(replicas.reader(using), student, list(_ARCHIVED_COLUMNS))
    archived = [
        ArchivedActivityGrade.from_db(using, list(_ARCHIVED_COLUMNS), _decode(r)) for r in rows
    ]
    archived.sort(key=lambda g: (g.created_at, g.id))
    return StudentHistory(live, archived)


_JSON_INDEXES = [i for i, c in enumerate(COLUMNS) if c in _JSON]


def _decode(row: Sequence[Any]) -> list[Any]:
    """Django loads jsonb as text (its JSONField decodes it); do the same for raw rows."""
    values = list(row)
    for i in _JSON_INDEXES:
        if isinstance(values[i], str):
            values[i] = json.loads(values[i])
    return values
