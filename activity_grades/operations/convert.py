"""Convert the LMS's own ``activity_grades`` table into the tree online, and back.

``plan(direction)`` reads only; ``plan.apply(progress)`` runs the steps in order, each
in short transactions, and records the step reached (``activity_grades_conversion``), so
a rerun after a crash or a kill continues where it stopped.

To the tree (``partitioned``), from the state ``migrate`` leaves beside an LMS table
(the app's objects in the staging schema):

1. ``prepare``: triggers on the LMS's table keep the key index in step with it (its
   rows' keys carry ``LEGACY_CLASS``).
2. ``backfill``: key rows for the rows already there, in batches by id. From here on,
   ids and (activity, student) are unique across the LMS's table and the partitions.
3. ``swap``: one short transaction renames the LMS's table ``activity_grades_legacy``,
   moves the app's objects beside it, gives the parent its column types and extra
   columns, and makes it a child of the parent: every row stays visible through
   ``activity_grades``, new grades go to partitions.
4. ``move``: batches of rows by id leave the old table for their partitions, each batch
   verified row by row (hash of every column) in its transaction; concurrent writers of
   a batch's rows wait for it (EXCLUSIVE lock on the old table), then see them moved.
5. ``finish``: the old table, empty, is dropped after the checks.

Back to one table (``plain``) is the same in the other direction: a plain table joins the
tree and takes new grades, rows move to it partition by partition, then one short
transaction detaches it, names it ``activity_grades`` with its original indexes and
moves the app's objects back to the staging schema; empty partitions are dropped last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import DatabaseError, OperationalError
from psycopg import errors

from ..core.constants import (
    ARCHIVE_CHUNK_PARENT,
    ARCHIVE_PARENT,
    ARCHIVE_ROWS_PARENT,
    ARCHIVE_ROWS_YEARS_TABLE,
    ARCHIVE_YEARS_TABLE,
    CONVERSION_MOVED_TABLE,
    CONVERSION_TABLE,
    KEY_TABLE,
    LEGACY_CLASS,
    LEGACY_MARKER,
    LEGACY_TABLE,
    MONTH_REGISTRY_TABLE,
    MOVE_LOG_TABLE,
    MOVE_STATE_TABLE,
    PARENT,
    PLACEMENT_TABLE,
    REGISTRY_TABLE,
    STAGING_SCHEMA,
)
from ..core.exceptions import ConversionError, LockTimeout
from ..core.settings import app_settings
from ..db import catalog, ddl, dispatch, staging, unique_key
from ..db import convert as db
from ..db.connection import Cursor, atomic, cursor, set_lock_timeout
from ..db.registry import invalidate_cache
from ..sql import sql_files
from . import faults
from .base import Plan, Progress, Result, Stopwatch

__all__ = [
    "DIRECTIONS",
    "ConversionPlan",
    "ConversionResult",
    "Group",
    "check_lms_table",
    "plan",
]

DIRECTIONS = ("partitioned", "plain")

# The SQL types a column of the LMS's table may have, by the kind of the model's field:
# the parent takes the LMS's exact type (its partitions follow), so rows move unchanged.
_KINDS: dict[str, frozenset[str]] = {
    "TextField": frozenset({"text", "character varying"}),
    "DateTimeField": frozenset({"timestamp with time zone", "timestamp without time zone"}),
    "FloatField": frozenset({"double precision"}),
    "IntegerField": frozenset({"integer"}),
    "JSONField": frozenset({"jsonb"}),
    "BooleanField": frozenset({"boolean"}),
}
_ROUTING_COLUMNS = ("class_id", "term_id")
# Retries of a step whose lock was not granted within LOCK_TIMEOUT (then LockTimeout).
_RETRIES = 30


@dataclass(frozen=True)
class Group:
    """Rows that route to one (class, term); ``partition`` None: it will be created."""

    class_id: str | None
    term_id: str | None
    rows: int
    partition: str | None
    found: bool = True


@dataclass
class ConversionResult(Result):
    direction: str
    moved: int = 0
    batches: int = 0
    passes: int = 0
    lock_retries: int = 0
    step: str = "done"


@dataclass
class ConversionPlan(Plan[Group, ConversionResult]):
    """What a conversion would do; ``problems`` make ``apply`` refuse to start."""

    direction: str = "partitioned"
    step: str = "prepare"
    table: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 5000
    lock_timeout: str = "2s"

    @property
    def done(self) -> bool:
        return self.step == "done"

    def apply(self, progress: Progress | None = None) -> ConversionResult:
        if self.problems:
            raise ConversionError(
                "cannot convert "
                + self.table
                + ": "
                + "; ".join(self.problems)
                + " (nothing was changed)"
            )
        run = _Run(self, progress)
        clock = Stopwatch()
        steps = _FORWARD if self.direction == "partitioned" else _BACKWARD
        names = list(steps)
        for name in names[names.index(self.step) :] if self.step in steps else []:
            steps[name](run)
            faults.pause(f"convert_after_{name}")
        invalidate_cache()
        run.result.seconds = clock.seconds
        return run.result


# -- checking the LMS's table --------------------------------------------------------------


def _model_columns() -> list[tuple[str, str, bool]]:
    """(column, field kind, NOT NULL) of the model's concrete fields.

    Through the app registry: ``migrate``'s pre_migrate handler (apps.py) calls
    ``check_lms_table``, and apps.py cannot import models.
    """
    model = apps.get_model("activity_grades", "ActivityGrade")
    return [(str(f.column), f.get_internal_type(), not f.null) for f in model._meta.concrete_fields]


def check_lms_table(cur: Cursor, oid: int) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the LMS's table as a future child of the parent.

    Problems name the column or object and what differs; ``migrate`` stops on them
    before it creates anything, ``convert_grades_table`` refuses to start.
    """
    problems = db.blockers(cur, oid)
    warnings: list[str] = []
    have = {c.name: c for c in db.columns(cur, oid)}
    for name, kind, not_null in _model_columns():
        col = have.get(name)
        if name in _ROUTING_COLUMNS:
            if col is not None:
                problems.append(
                    f"column {name} exists: the app fills it when it routes a grade "
                    "(rename the LMS's column first)"
                )
            continue
        if col is None:
            problems.append(f"column {name} is missing")
            continue
        allowed = _KINDS.get(kind, frozenset())
        if col.base not in allowed:
            problems.append(
                f"column {name} is {col.type}; the app needs {' or '.join(sorted(allowed))}"
            )
        if not_null and not col.not_null:
            problems.append(
                f"column {name} allows NULL; the app needs NOT NULL (online: ALTER TABLE "
                f"... ADD CONSTRAINT ... CHECK ({name} IS NOT NULL) NOT VALID, VALIDATE "
                f"CONSTRAINT, then ALTER COLUMN {name} SET NOT NULL)"
            )
        if col.identity or col.generated:
            problems.append(f"column {name} is an identity or generated column")
        if col.base == "timestamp without time zone":
            warnings.append(
                f"column {name} is timestamp without time zone: routing reads it in the "
                "session's TimeZone (Django: UTC when USE_TZ)"
            )
    model = {name for name, _, _ in _model_columns()}
    for col in have.values():
        if col.name not in model and (col.identity or col.generated):
            problems.append(
                f"extra column {col.name} is an identity or generated column, which a "
                "parent cannot give its partitions"
            )
    if not any(
        ix.unique and ix.columns == ("id",) and " WHERE " not in ix.method
        for ix in db.indexes(cur, oid)
    ):
        problems.append("column id has no unique index (the conversion moves rows in id order)")
    triggers = db.lms_triggers(cur, oid)
    if triggers:
        warnings.append(
            f"the table's own triggers ({', '.join(triggers)}) stay on the old table and do "
            "not run for rows in partitions"
        )
    return problems, warnings


# -- planning ------------------------------------------------------------------------------


def plan(
    direction: str,
    batch_size: int = 5000,
    using: str = "default",
    lock_timeout: str | None = None,
) -> ConversionPlan:
    """Read the database and say what a conversion to ``direction`` would do."""
    if direction not in DIRECTIONS:
        raise ConversionError(f"--to must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if batch_size < 1:
        raise ConversionError(f"the batch size must be at least 1, not {batch_size}")
    timeout = lock_timeout or app_settings.LOCK_TIMEOUT
    result = ConversionPlan(
        [], using=using, direction=direction, batch_size=batch_size, lock_timeout=timeout
    )
    with atomic(using), cursor(using) as cur:
        staged = staging.exists(cur)
        table = staging.parent_table(cur)
        staging.use(cur)
        state = _state(cur, direction)
        if direction == "partitioned":
            _plan_forward(cur, result, staged, table, state)
        else:
            _plan_backward(cur, result, staged, table, state)
    return result


def _state(cur: Cursor, direction: str) -> dict[str, Any] | None:
    if db.oid_of(cur, db.Rel(CONVERSION_TABLE)) is None:
        raise ConversionError(
            "the app's migrations are not all applied (run manage.py migrate first)"
        )
    return db.state(cur, direction)


def _groups(cur: Cursor, table: db.Rel) -> list[Group]:
    return [
        Group(class_id, term_id, rows, partition, found)
        for class_id, term_id, found, rows, partition in db.routing_groups(cur, table)
    ]


def _plan_forward(
    cur: Cursor,
    result: ConversionPlan,
    staged: bool,
    table: staging.ParentTable | None,
    state: dict[str, Any] | None,
) -> None:
    step = state["step"] if state else None
    if staged:
        if table is None or table.is_app_parent:
            raise ConversionError(
                f"the app's objects wait in schema {STAGING_SCHEMA} but there is no LMS "
                f"table {PARENT} to convert"
            )
        lms = table.identifier
        result.table = lms.as_string()
        result.step = step if step in ("backfill", "swap") else "prepare"
        problems, warnings = check_lms_table(cur, table.oid)
        result.problems += problems
        result.warnings += warnings
        target = app_settings.SCHEMA or table.schema
        for name, _kind, owner in db.name_conflicts(cur, STAGING_SCHEMA, target):
            if owner != table.oid:
                result.problems.append(
                    f"{target}.{name} exists and is not part of the LMS's table: the "
                    "app's object of that name cannot move there"
                )
        here = {f.split(".", 1)[-1] for f in db.functions_in(cur, target)}
        for signature in db.functions_in(cur, STAGING_SCHEMA):
            if signature.split(".", 1)[-1] in here:
                result.problems.append(
                    f"function {target}.{signature.split('.', 1)[-1]} exists: the app's "
                    "function of that name cannot move there"
                )
        if not result.problems:
            _plan_rows(cur, result, lms)
        return
    if table is None or not table.is_app_parent:
        raise ConversionError("the app is not migrated in this database (run manage.py migrate)")
    # The old table stays in its own schema (the app's may be ACTIVITY_GRADES['SCHEMA']).
    legacy = db.Rel(state["legacy_schema"] if state else table.schema, LEGACY_TABLE)
    if step in ("move", "finish") and db.oid_of(cur, legacy) is not None:
        result.table = legacy.as_string()
        result.step = step
        result.items = _groups(cur, legacy)
        return
    result.table = table.identifier.as_string()
    result.step = "done"


def _plan_rows(cur: Cursor, result: ConversionPlan, lms: db.Rel) -> None:
    groups = _groups(cur, lms)
    unknown = sum(g.rows for g in groups if not g.found)
    no_class = sum(g.rows for g in groups if g.found and g.class_id is None)
    if unknown:
        result.problems.append(
            f"{unknown} rows grade activities that do not exist (they cannot be routed)"
        )
    if no_class:
        result.problems.append(f"{no_class} rows grade activities that have no class")
    if unique_key.database_key_on(cur):
        count, sample = db.duplicates(cur, lms)
        if count:
            shown = ", ".join(f"({a!r}, {s!r}) x{n}" for a, s, n in sample)
            result.problems.append(
                f"{count} (activity_id, student_id) pairs are held by more than one row, "
                f"which the uniqueness key forbids: {shown}"
                + (" ..." if count > len(sample) else "")
                + " (fix them, or set ACTIVITY_GRADES['UNIQUE_KEY'] = None and run "
                "manage.py apply_unique_key)"
            )
    result.items = [g for g in groups if g.found and g.class_id is not None]


def _plan_backward(
    cur: Cursor,
    result: ConversionPlan,
    staged: bool,
    table: staging.ParentTable | None,
    state: dict[str, Any] | None,
) -> None:
    step = state["step"] if state else None
    if staged:
        result.table = f"{STAGING_SCHEMA}.{PARENT}"
        result.step = "cleanup" if step == "cleanup" else "done"
        if result.step == "cleanup":
            result.items = [
                Group(c, t, 0, name) for _, name, c, t in db.partitions(cur, live_only=False)
            ]
        return
    if table is None or not table.is_app_parent:
        raise ConversionError("the app is not migrated in this database (run manage.py migrate)")
    result.table = table.identifier.as_string()
    forward = db.state(cur, "partitioned")
    # Where the plain table is (or goes): where the LMS's table was, else beside the parent.
    where = (state or forward or {}).get("legacy_schema") or table.schema
    legacy = db.Rel(where, LEGACY_TABLE)
    has_legacy = db.oid_of(cur, legacy) is not None
    if has_legacy and step not in ("move", "finish"):
        result.problems.append(
            f"{legacy.as_string()} exists: a conversion to partitioned is in progress "
            "(finish it with --to partitioned first)"
        )
        return
    if forward and forward["step"] not in ("done",) and not has_legacy:
        result.problems.append("a conversion to partitioned has not finished")
    result.step = step if step in ("move", "finish") else "prepare"
    for status, count in db.not_live_counts(cur):
        result.problems.append(
            f"{count} partitions are {status}: restore them first (manage.py restore_grades), "
            "or let retention drop them; a plain table holds live grades only"
        )
    result.items = [Group(c, t, n, p) for c, t, n, p in db.live_groups(cur)]


# -- applying ------------------------------------------------------------------------------


class _Run:
    """One ``apply``: the plan, the progress callback, and what was done so far."""

    def __init__(self, plan: ConversionPlan, progress: Progress | None) -> None:
        self.plan = plan
        self.progress = progress
        self.result = ConversionResult(direction=plan.direction)
        self.total = plan.rows
        self.clock = Stopwatch()

    def transaction(self, work: Callable[[Cursor], Any]) -> Any:
        """Run ``work`` in one transaction with the lock timeout, again after a timeout."""
        delay = 0.05
        for attempt in range(_RETRIES):
            try:
                with atomic(self.plan.using), cursor(self.plan.using) as cur:
                    staging.use(cur)
                    set_lock_timeout(cur, self.plan.lock_timeout)
                    return work(cur)
            except OperationalError as exc:
                code = getattr(exc.__cause__, "sqlstate", None)
                if code not in ("55P03", "40P01") or attempt == _RETRIES - 1:
                    if code == "55P03":
                        raise LockTimeout(
                            f"convert_grades_table: no lock within {self.plan.lock_timeout} in "
                            f"{_RETRIES} tries; what was done is kept, rerun to continue"
                        ) from exc
                    raise
                self.result.lock_retries += 1
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def report(self, step: str, rows: int) -> None:
        self.result.moved += rows if step in ("move",) else 0
        if self.progress:
            self.progress(self.result.moved, self.total, step, rows)


def _legacy_schema(cur: Cursor, direction: str) -> str:
    state = db.state(cur, direction)
    if state is None:
        raise ConversionError("the conversion's state is missing; rerun from the start")
    schema: str = state["legacy_schema"]
    return schema


# -- to partitioned -------------------------------------------------------------------------


def _prepare_forward(run: _Run) -> None:
    def work(cur: Cursor) -> None:
        table = _lms_table(cur)
        problems, _ = check_lms_table(cur, table.oid)
        if problems:
            raise ConversionError("; ".join(problems))
        db.restart(cur)
        db.install_key_triggers(cur, table.identifier, STAGING_SCHEMA)
        db.save_state(cur, "partitioned", "backfill", table.schema)

    run.transaction(work)


def _lms_table(cur: Cursor) -> staging.ParentTable:
    # search_path has the staging schema first: look the LMS's table up without it.
    found = db.lms_table_beside_staging(cur)
    if found is None:
        raise ConversionError(f"there is no LMS table {PARENT} to convert")
    return staging.ParentTable(*found)


def _backfill(run: _Run) -> None:
    while True:

        def work(cur: Cursor) -> int:
            state = db.state(cur, "partitioned")
            assert state is not None
            table = db.Rel(state["legacy_schema"], PARENT)
            try:
                count, last = db.backfill_keys(cur, table, state["cursor_id"], run.plan.batch_size)
            except DatabaseError as exc:
                if isinstance(exc.__cause__, errors.UniqueViolation):
                    detail = exc.__cause__.diag.message_detail
                    raise ConversionError(
                        f"two rows of one (activity_id, student_id): {detail}"
                    ) from exc
                raise
            step = "backfill" if count else "swap"
            db.save_state(cur, "partitioned", step, state["legacy_schema"], last if count else None)
            return count

        count = run.transaction(work)
        run.report("backfill", count)
        if not count:
            return
        faults.pause("convert_backfill_batch")


def _swap_forward(run: _Run) -> None:
    def work(cur: Cursor) -> None:
        schema = _legacy_schema(cur, "partitioned")
        lms = db.Rel(schema, PARENT)
        db.lock(cur, lms, "ACCESS EXCLUSIVE")
        oid = db.oid_of(cur, lms)
        if oid is None:
            raise ConversionError(f"{lms.as_string()} is gone; nothing was changed")
        problems, _ = check_lms_table(cur, oid)
        if problems:
            raise ConversionError("; ".join(problems))
        app = app_settings.SCHEMA or schema
        details = db.swap_into_tree(cur, schema, oid, app)
        db.install_key_triggers(cur, db.Rel(schema, LEGACY_TABLE), app)
        db.save_state(cur, "partitioned", "move", schema, None, details)

    run.transaction(work)


def _move_columns(cur: Cursor, table: db.Rel) -> list[db.Column]:
    oid = db.oid_of(cur, table)
    assert oid is not None
    return [c for c in db.columns(cur, oid) if c.name not in _ROUTING_COLUMNS]


def _verify(
    removed: dict[str, int],
    where: dict[tuple[str, str | None], dict[str, int]],
    expect_legacy: bool,
) -> dict[tuple[str, str | None], tuple[int, int]]:
    """Every removed row is in exactly one place, with the same hash; totals per group."""
    totals: dict[tuple[str, str | None], tuple[int, int]] = {}
    seen = 0
    for group, rows in where.items():
        if (group[0] == LEGACY_CLASS) != expect_legacy:
            raise ConversionError(f"{len(rows)} moved rows are still recorded in {group}")
        for grade_id, row_hash in rows.items():
            if removed.get(grade_id) != row_hash:
                raise ConversionError(
                    f"row {grade_id!r} differs after the move into {group}: rolled back"
                )
        seen += len(rows)
        totals[group] = (len(rows), sum(rows.values()))
    if seen != len(removed):
        missing = sorted(set(removed) - {g for rows in where.values() for g in rows})[:5]
        raise ConversionError(
            f"{len(removed) - seen} moved rows were not found where the key index says "
            f"(first: {missing}): rolled back"
        )
    return totals


def _move_forward(run: _Run) -> None:
    # Partitions first, each in its own short transaction (as create_partitions does),
    # so no batch holds the old table's lock while it creates one.
    missing = [g for g in run.plan.items if g.partition is None and g.class_id is not None]
    for group in missing:
        assert group.class_id is not None
        ddl.ensure_partition(group.class_id, group.term_id, run.plan.using)
    run.report("partitions", len(missing))

    def start(cur: Cursor) -> tuple[list[str] | None, bool]:
        state = db.state(cur, "partitioned")
        assert state is not None
        oid = db.oid_of(cur, db.Rel(state["legacy_schema"], LEGACY_TABLE))
        assert oid is not None
        position = json.loads(state["cursor_id"]) if state["cursor_id"] else None
        return position, db.leads_an_index(cur, oid, "activity_id")

    after, by_activity = run.transaction(start)  # a rerun continues where a kill stopped
    passes = 0
    while True:
        passes += 1
        while True:

            def work(cur: Cursor, after: list[str] | None = after) -> tuple[int, list[str] | None]:
                schema = _legacy_schema(cur, "partitioned")
                legacy = db.Rel(schema, LEGACY_TABLE)
                # Writers of these rows wait, then see them in their partitions (a
                # READ COMMITTED statement takes its snapshot after its locks).
                db.lock(cur, legacy, "EXCLUSIVE")
                ids, last = db.next_batch(cur, legacy, after, run.plan.batch_size, by_activity)
                if not ids:
                    return 0, None
                cols = _move_columns(cur, legacy)
                removed = db.move_rows(cur, legacy, None, cols, ids)
                totals = _verify(removed, db.landed(cur, cols, ids), expect_legacy=False)
                db.record_moved(cur, "partitioned", totals)
                db.save_state(cur, "partitioned", "move", schema, json.dumps(last))
                faults.pause("convert_before_commit", cur)
                return len(removed), last

            count, after = run.transaction(work)
            if not count:
                break
            run.result.batches += 1
            run.report("move", count)
            faults.pause("convert_move_batch")
        run.result.passes = passes

        def remaining(cur: Cursor) -> bool:
            schema = _legacy_schema(cur, "partitioned")
            left = db.has_rows(cur, db.Rel(schema, LEGACY_TABLE))
            if not left:
                db.save_state(cur, "partitioned", "finish", schema)
            return left

        # A row whose activity or id changed to one behind the pass: the next pass.
        if not run.transaction(remaining):
            return
        if passes >= 10:
            raise ConversionError("rows keep arriving in the old table; rerun to continue")


def _finish_forward(run: _Run) -> None:
    def work(cur: Cursor) -> None:
        schema = _legacy_schema(cur, "partitioned")
        legacy = db.Rel(schema, LEGACY_TABLE)
        if db.oid_of(cur, legacy) is not None:
            db.lock(cur, legacy, "ACCESS EXCLUSIVE")
            if catalog.marker_of(cur, LEGACY_TABLE) != LEGACY_MARKER:
                raise ConversionError(f"{legacy.as_string()} lost its marker: not dropped")
            if db.has_rows(cur, legacy):
                raise ConversionError(f"{legacy.as_string()} has rows again: rerun to move them")
            stale = db.keys_outside(cur, legacy=True)
            if stale:
                raise ConversionError(
                    f"{stale} key rows still point at the old table although it is empty: "
                    "not dropped (manage.py check_partitions)"
                )
            db.drop_from_tree(cur, legacy, db.Rel(db.app_schema(cur), PARENT))
        db.drop_key_triggers(cur, None, db.app_schema(cur))
        db.save_state(cur, "partitioned", "done", schema)

    run.transaction(work)
    dispatch.install(run.plan.using)


_FORWARD: dict[str, Callable[[_Run], None]] = {
    "prepare": _prepare_forward,
    "backfill": _backfill,
    "swap": _swap_forward,
    "move": _move_forward,
    "finish": _finish_forward,
}


# -- back to one plain table ---------------------------------------------------------------


def _prepare_backward(run: _Run) -> None:
    def work(cur: Cursor) -> None:
        table = staging.parent_table(cur)
        if table is None or not table.is_app_parent:
            raise ConversionError("the app's parent table is not in place")
        forward = db.state(cur, "partitioned")
        original = (forward or {}).get("details") or {}
        wanted = [db.Index.from_dict(d) for d in original.get("indexes", [])]
        db.restart(cur)
        # The plain table goes where the LMS's table was (else beside the parent).
        schema = (forward or {}).get("legacy_schema") or table.schema
        renames = db.add_plain_table(cur, schema, table.schema, table.oid, wanted)
        details = {
            "renames": renames,
            "comment": original.get("comment"),
            # A database born partitioned has no original: keep the routing columns.
            "drop_columns": [
                c for c in _ROUTING_COLUMNS if original and c not in original.get("columns", [])
            ],
            "defaults": original.get("defaults", {}),
        }
        db.save_state(cur, "plain", "move", schema, None, details)

    run.transaction(work)


def _move_backward(run: _Run) -> None:
    for passes in range(1, 11):
        run.result.passes = passes
        leaves = run.transaction(
            lambda cur: db.month_tables(cur, live_only=True) + db.partitions(cur, live_only=True)
        )
        for _registry_id, leaf, class_id, term_id in leaves:
            after: str | None = None
            while True:

                def work(
                    cur: Cursor,
                    leaf: str = leaf,
                    after: str | None = after,
                    group: tuple[str, str | None] = (class_id, term_id),
                ) -> tuple[int, str | None]:
                    schema = _legacy_schema(cur, "plain")
                    source = db.Rel(leaf)
                    oid = db.oid_of(cur, source)
                    if oid is None:
                        return 0, None
                    db.lock(cur, source, "EXCLUSIVE")
                    ids = db.next_ids(cur, source, after, run.plan.batch_size)
                    if not ids:
                        return 0, None
                    cols = db.columns(cur, oid)
                    legacy = db.Rel(schema, LEGACY_TABLE)
                    removed = db.move_rows(cur, source, legacy, cols, ids)
                    _verify(removed, db.landed(cur, cols, ids), expect_legacy=True)
                    totals = {group: (len(removed), sum(removed.values()))}
                    db.record_moved(cur, "plain", totals)
                    faults.pause("convert_before_commit", cur)
                    return len(removed), ids[-1]

                count, after = run.transaction(work)
                if not count:
                    break
                run.result.batches += 1
                run.report("move", count)
                faults.pause("convert_move_batch")

        def left(cur: Cursor) -> int:
            count = db.keys_outside(cur, legacy=False)
            if not count:
                db.save_state(cur, "plain", "finish", _legacy_schema(cur, "plain"))
            return count

        if not run.transaction(left):
            return
    raise ConversionError(
        "grades keep arriving in partitions (the app's service API writes there "
        "directly): stop it, then rerun to continue"
    )


def _app_tables() -> list[str]:
    return [
        PARENT,
        KEY_TABLE,
        REGISTRY_TABLE,
        ARCHIVE_PARENT,  # a view (migration 0012): ALTER TABLE ... SET SCHEMA moves it too
        ARCHIVE_CHUNK_PARENT,
        ARCHIVE_ROWS_PARENT,
        ARCHIVE_YEARS_TABLE,
        ARCHIVE_ROWS_YEARS_TABLE,
        app_settings.MAINTENANCE_RUNS_TABLE,
        CONVERSION_TABLE,
        CONVERSION_MOVED_TABLE,
        PLACEMENT_TABLE,  # migration 0014
        MONTH_REGISTRY_TABLE,
        MOVE_STATE_TABLE,  # migration 0018
        MOVE_LOG_TABLE,
    ]


def _app_functions() -> list[str]:
    return sorted({p.split("/")[1] for p in sql_files() if p.startswith("functions/")})


def _swap_backward(run: _Run) -> None:
    def work(cur: Cursor) -> bool:
        state = db.state(cur, "plain")
        assert state is not None
        schema = state["legacy_schema"]
        app = db.app_schema(cur)
        if not db.swap_out_of_tree(
            cur, schema, app, _app_tables(), _app_functions(), state["details"]
        ):
            return False
        staging.use(cur)  # the state table moved with the rest
        db.save_state(cur, "plain", "cleanup", schema)
        return True

    while not run.transaction(work):
        _move_backward(run)


def _cleanup_backward(run: _Run) -> None:
    """Drop the (empty) partitions, month then term tables first, each checked, one per
    transaction."""
    for month_id, name, _class_id, _term_id in run.transaction(
        lambda cur: db.month_tables(cur, live_only=False)
    ):

        def drop_month(cur: Cursor, month_id: int = month_id, name: str = name) -> None:
            refused = db.drop_empty_partition(cur, name)
            if refused:
                raise ConversionError(f"{refused}: not dropped")
            db.forget_month(cur, month_id)

        run.transaction(drop_month)
    for registry_id, name, _class_id, _term_id in run.transaction(
        lambda cur: db.partitions(cur, live_only=False)
    ):

        def work(cur: Cursor, registry_id: int = registry_id, name: str = name) -> None:
            refused = db.drop_empty_partition(cur, name)
            if refused:
                raise ConversionError(f"{refused}: not dropped")
            db.forget_partition(cur, registry_id)

        run.transaction(work)
    run.transaction(lambda cur: db.save_state(cur, "plain", "done", _legacy_schema(cur, "plain")))


_BACKWARD: dict[str, Callable[[_Run], None]] = {
    "prepare": _prepare_backward,
    "move": _move_backward,
    "finish": _swap_backward,
    "cleanup": _cleanup_backward,
}
