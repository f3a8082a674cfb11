"""Health of the partition tree: find what is wrong, repair what is safe to repair.

``plan()`` runs every check (``manage.py check_partitions``, the admin's health page, the
system checks with ``manage.py check --database default``) and returns the problems
found; ``RepairPlan.apply()`` runs the repairs of those that have one
(``check_partitions --fix``). Every check is a catalog query over the whole tree (a fixed
number of queries, whatever the number of partitions), except "parent holds no rows",
which reads ``ONLY`` the empty parent.

Ids (stable, documented in docs/admin.md):

- ``activity_grades.E001`` the routing trigger on the parent is missing or disabled
- ``activity_grades.E002`` the parent itself holds rows
- ``activity_grades.E003`` the parent's ``CHECK (false) NO INHERIT`` is missing
- ``activity_grades.E004`` a partition lacks a required index (PK id, activity_id,
  student_id, (activity_id, student_id): UNIQUE while ``UNIQUE_KEY`` is on, plain while it
  is off) — fixable
- ``activity_grades.E005`` an index of the parent is missing on a partition (drift) — fixable
  for plain column indexes
- ``activity_grades.E006`` a partition lacks its CHECK constraint(s)
- ``activity_grades.E007`` partitions for the current/upcoming terms are missing — fixable
- ``activity_grades.E008`` a table in the inheritance tree does not carry the ownership marker
- ``activity_grades.E009`` ``constraint_exclusion`` is ``off``
- ``activity_grades.E010`` a live registry row names a table that does not exist (dropped
  by hand); key-index rows that still name it block those (activity, student) pairs —
  fixable: the empty table is created again and those key rows removed
- ``activity_grades.E011`` a partition lacks one of the app's triggers, or has it disabled —
  fixable
- ``activity_grades.E012`` tables whose (activity, student) index disagrees with the
  ``UNIQUE_KEY`` setting (unique while it is None, or not unique while it is on) —
  ``manage.py apply_unique_key`` switches them
- ``activity_grades.E014`` a live partition no longer inherits from its parent (``ALTER TABLE
  ... NO INHERIT`` by hand): its rows are invisible through the parent — fixable
- ``activity_grades.E015`` a table carries the app's marker but no registry row names it
- ``activity_grades.E016`` key-index rows whose grade is not stored (``keys=True``, in
  batches) — fixable: removed, each checked again in the statement that removes it
- ``activity_grades.E017`` stored grades without their key-index row, or whose key row names
  another partition (``keys=True``) — fixable, except a grade whose (activity, student)
  another grade's key row holds (a duplicate to resolve by hand)
- ``activity_grades.E018`` a term's dates changed after its partitions were made: a leaf's
  CHECK no longer matches the term — ``manage.py create_partitions`` applies the new bounds;
  a term deleted from the LMS — fixable (its rows re-filed, its emptied leaves dropped)
- ``activity_grades.E020`` stored grades with a timestamp that cannot be read back
  (``keys=True``; stored before migrations 0011/0013 or while a trigger was off) — by hand
- ``activity_grades.E019`` a term's academic year changed (settings or the terms table) while
  the registry keeps the old label, for live partitions or archived grades — fixable

Month tables (issue 15): ``activity_grades.E021``-``E024``, in ``operations.month_checks``.

Shards (``ACTIVITY_GRADES['SHARDS']``, ``operations.shards``, docs/sharding.md):

- ``activity_grades.E030`` a shard does not answer (a direct connection to its alias fails)
- ``activity_grades.E031`` the coordinator lacks the postgres_fdw extension — fixable when
  the server has it to install
- ``activity_grades.E032`` a shard's foreign server is missing, or its host/port/dbname
  disagree with the alias's ``DATABASES`` entry — fixable (not a server of that name that
  ``setup_shards`` did not make)
- ``activity_grades.E033`` the coordinator's user has no user mapping on a shard's server,
  or its user/password disagree with the alias's entry — fixable
- ``activity_grades.E034`` a shard lacks its empty ``activity_grades`` parent — fixable
  (not one whose columns differ, or that the app did not make)
- ``activity_grades.E035`` a recorded placement disagrees with ``SHARD_PLACEMENT``
- ``activity_grades.E036`` a class is placed on a shard that ``SHARDS`` no longer lists
- ``activity_grades.E037`` a foreign partition's remote table is missing on its shard
- ``activity_grades.E038`` a local partition of a class placed on a shard (made on demand)
- ``activity_grades.E039`` an archived term's remote table is still on its shard (an archive
  interrupted between the coordinator's commit and the shard's drop) — fixable: dropped
  once its rows match the archive's (``operations.shard_archive``)
- ``activity_grades.E040`` a ``move_class`` is unfinished: still copying (resume or
  ``--abort`` it), or swapped with the source shard's tables not yet dropped — fixable:
  they are dropped (``operations.move_class``)

Ids E001-E024 and E030-E040 are stable; ``docs/admin.md`` lists them with what to run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.constants import LOGGER_NAME, PARENT, PARTITION_MARKER
from ..core.exceptions import SettingsError
from ..core.settings import app_settings
from ..db import catalog, ddl, drift, months, registry
from ..db import relabel as archive_labels
from ..db import shard_partitions as foreign
from ..db.catalog import IndexSignature
from ..db.connection import Cursor, atomic, cursor, set_lock_timeout
from ..db.drift import TermDrift
from ..db.relabel import ArchivedLabel
from . import (
    create,
    month_checks,
    move_class,
    shard_archive,
    shard_partitions,
    shards,
    terms,
    unique_key,
)
from .base import Plan, Progress, Result, Stopwatch, each
from .problems import Problem

__all__ = [
    "KEY_BATCH",
    "FixResult",
    "Problem",
    "RepairPlan",
    "check_key_index",
    "check_shards",
    "plan",
    "required_indexes",
]

KEY_BATCH = 10_000
"""Rows per statement of the key-index comparison (``check_partitions --keys``)."""

logger = logging.getLogger(LOGGER_NAME)

# suffix for activity_grades_index_name -> (columns, unique, primary)
REQUIRED_INDEXES: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "pkey": (("id",), True, True),
    "activity_idx": (("activity_id",), False, False),
    "student_idx": (("student_id",), False, False),
    "activity_student_key": (("activity_id", "student_id"), True, False),
}
# The uniqueness key's columns: UNIQUE while UNIQUE_KEY is on, a plain index while it is
# off. Which of the two a table has is E012's to report; E004 only a missing index.
_KEY_COLUMNS = ("activity_id", "student_id")


def required_indexes(unique_key_on: bool) -> dict[str, tuple[tuple[str, ...], bool, bool]]:
    """REQUIRED_INDEXES for one mode: without the key, a plain (activity, student) index."""
    if unique_key_on:
        return dict(REQUIRED_INDEXES)
    out = {k: v for k, v in REQUIRED_INDEXES.items() if v[0] != _KEY_COLUMNS}
    out["activity_student_idx"] = (_KEY_COLUMNS, False, False)
    return out


@dataclass
class FixResult(Result):
    fixed: list[str] = field(default_factory=list)  # what was done, one line each
    failed: list[str] = field(default_factory=list)


@dataclass
class RepairPlan(Plan[Problem, FixResult]):
    """The problems found (``items``); ``apply`` repairs the fixable ones."""

    @property
    def problems(self) -> list[Problem]:
        return self.items

    @property
    def fixable(self) -> list[Problem]:
        return [p for p in self.items if p.fixable]

    def apply(self, progress: Progress | None = None) -> FixResult:
        """Run the safe repairs; a repair that fails is reported and the next one runs."""
        clock = Stopwatch()
        result = FixResult()

        def repair(problem: Problem) -> bool:
            assert problem.fix is not None
            try:
                result.fixed.append(problem.fix())
            except Exception as exc:  # noqa: BLE001 - report and go on with the next repair
                result.failed.append(f"{problem.id} {problem.table or ''}: {exc}".strip())
                return False
            return True

        for _ in each(self.fixable, repair, progress):
            pass
        result.seconds = clock.seconds
        return result


# -- checks ------------------------------------------------------------------------


def check_routing_trigger(cur: Cursor, using: str = "default") -> list[Problem]:
    state = catalog.route_trigger_state(cur)
    if state is None:
        return [
            Problem(
                "activity_grades.E001",
                "the routing trigger activity_grades_route is missing on activity_grades",
                "re-run the migrations of activity_grades (manage.py migrate activity_grades)",
            )
        ]
    if state == "D":
        return [
            Problem(
                "activity_grades.E001",
                "the routing trigger activity_grades_route on activity_grades is disabled",
                "manage.py check_partitions --fix enables it (ALTER TABLE activity_grades "
                "ENABLE TRIGGER activity_grades_route); then check_partitions --keys finds "
                "rows written meanwhile",
                table=PARENT,
                fix=_trigger_enabler(using, PARENT, "activity_grades_route"),
            )
        ]
    return []


def check_parent_empty(cur: Cursor) -> list[Problem]:
    out = []
    n = catalog.rows_in_parent(cur)
    if n:
        out.append(
            Problem(
                "activity_grades.E002",
                f"the parent table activity_grades itself holds {n} row(s)",
                "move them with INSERT INTO activity_grades SELECT ... from a copy, then "
                "DELETE FROM ONLY activity_grades; check why the routing trigger let them in",
            )
        )
    if not catalog.has_parent_check(cur):
        out.append(
            Problem(
                "activity_grades.E003",
                "the parent lacks CHECK (false) NO INHERIT (activity_grades_parent_holds_no_rows)",
                "empty the parent, then ALTER TABLE activity_grades ADD CONSTRAINT "
                "activity_grades_parent_holds_no_rows CHECK (false) NO INHERIT",
            )
        )
    return out


def check_markers(cur: Cursor) -> list[Problem]:
    return [
        Problem(
            "activity_grades.E008",
            f"table {name} inherits from activity_grades but is not marked as a partition "
            f"(comment {comment!r})",
            "the app never touches unmarked tables: drop it or ALTER TABLE ... NO INHERIT "
            "by hand after checking its rows",
            table=name,
        )
        for _oid, name, comment, _depth in catalog.tree(cur)
        if comment != PARTITION_MARKER
    ]


def check_indexes(cur: Cursor, using: str = "default") -> list[Problem]:
    # A foreign partition has no index of its own: its remote table has them.
    remote = {p.table for p in foreign.foreign_partitions(cur)}
    parts = [
        p for p in registry.live_partitions(cur) + months.live_partitions(cur) if p[1] not in remote
    ]
    if not parts:
        return []
    found = catalog.index_signatures(cur, [catalog.parent_oid(cur)] + [p[0] for p in parts])
    by_table: dict[str, set[IndexSignature]] = {}
    parent_indexes = []
    for tbl, name, sig, complex_ in found:
        by_table.setdefault(tbl, set()).add(sig)
        if tbl == PARENT:
            parent_indexes.append((name, sig, complex_))
    required = {
        (cols, u, p, "btree"): suffix
        for suffix, (cols, u, p) in required_indexes(app_settings.unique_key_on).items()
    }

    def has(tbl: str, sig: IndexSignature) -> bool:
        cols, unique, primary, am = sig
        have = by_table.get(tbl, set())
        if primary:
            return sig in have
        if cols == _KEY_COLUMNS:  # unique or not: check_unique_key says which it should be
            return any(h[0] == cols and h[3] == am for h in have)
        # A UNIQUE or PRIMARY index covers a plain one on the same columns.
        return any(h[0] == cols and h[3] == am and (h[1] or not unique) for h in have)

    out: list[Problem] = []
    for _oid, table, _term in parts:
        for sig, suffix in required.items():
            if not has(table, sig):
                out.append(
                    Problem(
                        "activity_grades.E004",
                        f"partition {table} lacks the {suffix} index on ({', '.join(sig[0])})",
                        "manage.py check_partitions --fix creates it",
                        table=table,
                        fix=_index_fixer(using, table, suffix, sig),
                    )
                )
        for name, sig, complex_ in parent_indexes:
            if sig in required or sig[0] == _KEY_COLUMNS or has(table, sig):
                continue
            suffix = name[len(PARENT) + 1 :] if name.startswith(PARENT + "_") else name
            out.append(
                Problem(
                    "activity_grades.E005",
                    f"index {name} of activity_grades on ({', '.join(sig[0])}) is missing on "
                    f"partition {table}",
                    "manage.py check_partitions --fix creates it"
                    if not complex_
                    else "expression/partial index: create it on the partition by hand",
                    table=table,
                    fix=None if complex_ else _index_fixer(using, table, suffix, sig),
                )
            )
    return out


def _index_fixer(using: str, table: str, suffix: str, sig: IndexSignature) -> Callable[[], str]:
    def fix() -> str:
        text = ddl.add_index(using, table, suffix, sig)
        logger.info("check_partitions: %s", text)
        return text

    return fix


def check_constraints(cur: Cursor) -> list[Problem]:
    parts = registry.live_partitions(cur) + months.live_partitions(cur)
    if not parts:
        return []
    have = catalog.names_by_table(cur, "constraints", [p[0] for p in parts])
    out = []
    for oid, table, term in parts:
        needed = (
            {"activity_grades_class_check", "activity_grades_no_term_check"}
            if term is None
            else {"activity_grades_class_check", "activity_grades_term_check"}
        )
        for name in sorted(needed - have.get(oid, set())):
            out.append(
                Problem(
                    "activity_grades.E006",
                    f"partition {table} lacks CHECK constraint {name}",
                    "without it the planner cannot skip the partition and wrong rows can land "
                    "in it; re-add it from the registry's bounds "
                    "(see activity_grades_partition_ddl)",
                    table=table,
                )
            )
    return out


def check_triggers(cur: Cursor, using: str = "default") -> list[Problem]:
    parts = registry.live_partitions(cur) + months.live_partitions(cur)
    if not parts:
        return []
    oids = [p[0] for p in parts]
    have = catalog.names_by_table(cur, "triggers", oids)
    disabled = set(drift.disabled_triggers(cur, oids))
    out = []
    expected = drift.ddl_triggers(cur)
    remote = {p.table for p in foreign.foreign_partitions(cur)}
    for oid, table, _term in parts:
        for name in expected:
            if name in have.get(oid, set()):
                continue
            if table in remote and name == foreign.NO_TRUNCATE_TRIGGER:
                continue
            off = (table, name) in disabled
            out.append(
                Problem(
                    "activity_grades.E011",
                    f"partition {table} has trigger {name} disabled"
                    if off
                    else f"partition {table} lacks trigger {name}",
                    "the key index and row moves depend on it: manage.py check_partitions "
                    "--fix "
                    + ("enables it" if off else "creates it")
                    + (", then check_partitions --keys finds rows written meanwhile"),
                    table=table,
                    fix=_trigger_enabler(using, table, name)
                    if off
                    else _trigger_creator(using, table, name, table in remote),
                )
            )
    return out


def _trigger_enabler(using: str, table: str, trigger: str) -> Callable[[], str]:
    def fix() -> str:
        with atomic(using), cursor(using) as cur:
            set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
            drift.enable_trigger(cur, table, trigger)
        return f"enabled trigger {trigger} on {table}"

    return fix


def _trigger_creator(
    using: str, table: str, trigger: str, foreign_table: bool = False
) -> Callable[[], str]:
    def fix() -> str:
        with atomic(using), cursor(using) as cur:
            set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
            if foreign_table:  # a foreign partition: its row-level version
                statement = foreign.foreign_triggers(cur, table).get(trigger)
                if statement is None:
                    raise LookupError(f"a foreign partition has no trigger {trigger}")
                foreign.run(cur, [statement])
            elif not drift.create_trigger(cur, table, trigger):
                raise LookupError(f"the partition DDL has no trigger {trigger}")
        return f"created trigger {trigger} on {table}"

    return fix


def check_unique_key(cur: Cursor) -> list[Problem]:
    """E012: tables whose (activity, student) index disagrees with ``UNIQUE_KEY``.

    A partition with no such index at all is E004's (its fix creates the right one).
    """
    if app_settings.validate():
        return []  # E100 says what to fix first
    on = app_settings.unique_key_on
    wrong = [
        s for s in unique_key.disagreeing(cur, on) if s.kind != "partition" or s.unique or s.plain
    ]
    if not wrong:
        return []
    names = [s.table for s in wrong[:5]]
    more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
    if on:
        what = (
            "ACTIVITY_GRADES['UNIQUE_KEY'] is ('activity_id', 'student_id') but "
            f"{len(wrong)} table(s) do not enforce it"
        )
    else:
        what = (
            "ACTIVITY_GRADES['UNIQUE_KEY'] is None (several attempts) but "
            f"{len(wrong)} table(s) still refuse a second grade of an activity and student"
        )
    return [
        Problem(
            "activity_grades.E012",
            f"{what}: {', '.join(names)}{more}",
            "manage.py apply_unique_key switches them"
            + (" (it first checks the tree for duplicates)" if on else ""),
        )
    ]


def check_registry_tables(cur: Cursor, using: str = "default") -> list[Problem]:
    missing = drift.missing_live(cur)
    if not missing:
        return []
    keys = drift.key_rows_of(cur, [m[0] for m in missing])
    out = []
    for name, _class_id, _term_id in missing:
        blocked = keys.get(name, 0)
        out.append(
            Problem(
                "activity_grades.E010",
                f"the registry lists live partition {name} but the table does not exist"
                + (
                    f"; {blocked} key-index row(s) still name it, so those (activity, student) "
                    "pairs cannot be graded again"
                    if blocked
                    else ""
                ),
                "every grade routed there fails: manage.py check_partitions --fix creates the "
                "(empty) table again and removes its key-index rows (the dropped grades are "
                "gone; restore the table from a backup first to keep them)",
                table=name,
                fix=_partition_recreator(using, name),
            )
        )
    return out


def _partition_recreator(using: str, table: str) -> Callable[[], str]:
    def fix() -> str:
        with atomic(using), cursor(using) as cur:
            set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
            found = drift.forget_partition(cur, table)  # checks it is still missing
            if found is None:
                return f"{table}: exists again or is no longer live; nothing done"
            class_id, term_id = found
            removed = drift.delete_keys_of(cur, class_id, term_id)
            new, _ = ddl.ensure_partition_in(cur, class_id, term_id, using)
        registry.invalidate_cache()
        logger.warning(
            "check_partitions: recreated %s as %s; removed %s key-index rows", table, new, removed
        )
        return (
            f"created {new} again for class {class_id!r}, term {term_id!r}; removed {removed} "
            "key-index row(s) of grades the dropped table held"
        )

    return fix


def check_inheritance(cur: Cursor, using: str = "default") -> list[Problem]:
    month_tables = months.registered_names(cur)  # E022 is theirs
    out = [
        Problem(
            "activity_grades.E014",
            f"live partition {table} no longer inherits from {parent}: routing still writes "
            "into it, but its rows are invisible through activity_grades and for_class()",
            "manage.py check_partitions --fix puts it back (ALTER TABLE ... INHERIT)",
            table=table,
            fix=_reinheritor(using, table, parent),
        )
        for table, parent in drift.not_inheriting(cur)
    ]
    out += [
        Problem(
            "activity_grades.E015",
            f"table {table} carries the app's marker but no registry row names it"
            + (" (it is in the tree: its rows are read but never routed to)" if inherits else ""),
            "check its rows; then drop it by hand, or move its rows with INSERT INTO "
            "activity_grades SELECT ... (routing files them) and drop it",
            table=table,
        )
        for table, inherits in drift.marked_without_registry(cur)
        if table not in month_tables
    ]
    return out


def _reinheritor(using: str, table: str, parent: str) -> Callable[[], str]:
    def fix() -> str:
        with atomic(using), cursor(using) as cur:
            set_lock_timeout(cur, app_settings.LOCK_TIMEOUT)
            if catalog.marker_of(cur, table) != PARTITION_MARKER:
                raise LookupError(f"{table} does not carry the marker {PARTITION_MARKER!r}")
            drift.reinherit(cur, table, parent)
        return f"{table} inherits from {parent} again"

    return fix


def check_terms(cur: Cursor, using: str = "default") -> list[Problem]:
    found = drift.term_drift(cur)
    out = []
    for term_id in dict.fromkeys(d.term_id for d in found):
        of_term = [d for d in found if d.term_id == term_id]
        first = of_term[0]
        tables = ", ".join(d.table for d in of_term[:3]) + (
            f" and {len(of_term) - 3} more" if len(of_term) > 3 else ""
        )
        if first.term_starts_at is None:
            out.append(
                Problem(
                    "activity_grades.E018",
                    f"term {term_id!r} no longer exists in the LMS's terms table but "
                    f"{len(of_term)} live partition(s) hold it: {tables}",
                    "put the term back, or manage.py check_partitions --fix moves their rows "
                    "to where routing files them now (the class table, or a term covering "
                    "their dates), verified, and drops the emptied partitions",
                    fix=_term_retirer(using, of_term),
                )
            )
            continue
        if any(not d.check_valid for d in of_term) and not any(
            (d.starts_at, d.ends_at) != (d.term_starts_at, d.term_ends_at) for d in of_term
        ):
            out.append(
                Problem(
                    "activity_grades.E018",
                    f"applying the new dates of term {term_id!r} was interrupted: {tables} "
                    "still have an unvalidated CHECK (rows may wait to be re-filed)",
                    "manage.py create_partitions finishes it",
                )
            )
        elif any(d.bounds_changed for d in of_term):
            out.append(
                Problem(
                    "activity_grades.E018",
                    f"term {term_id!r} now runs [{first.term_starts_at:%Y-%m-%d %H:%M%z}, "
                    f"{first.term_ends_at:%Y-%m-%d %H:%M%z}) but its partitions were made for "
                    f"[{first.starts_at:%Y-%m-%d %H:%M%z}, {first.ends_at:%Y-%m-%d %H:%M%z}): "
                    f"{tables}; grades in the difference are refused or misfiled",
                    "manage.py create_partitions applies the new bounds (widens each CHECK and "
                    "moves rows that now belong elsewhere)",
                )
            )
        if any(d.academic_year != d.term_year for d in of_term) and first.term_year:
            out.append(
                Problem(
                    "activity_grades.E019",
                    f"term {term_id!r} is in academic year {first.term_year!r} now, but the "
                    f"registry files its partitions under {first.academic_year!r}: {tables}",
                    "manage.py check_partitions --fix relabels them (archiving and retention "
                    "then use the new year)",
                    fix=_year_setter(using, term_id, first.term_year),
                )
            )
    return out


def check_archived_years(cur: Cursor, using: str = "default") -> list[Problem]:
    """E019 for archived grades: filed under a year their term no longer has."""
    return [
        Problem(
            "activity_grades.E019",
            f"term {a.term_id!r} is in academic year {a.term_year!r} now, but its archived "
            f"grades ({a.partitions} partition(s)) are filed under {a.academic_year!r}",
            "manage.py check_partitions --fix (or create_partitions) files them under the "
            "new year, verified by checksum; retention then uses it",
            fix=_archive_relabeller(using, a),
        )
        for a in archive_labels.archived_label_drift(cur)
    ]


def _archive_relabeller(using: str, label: ArchivedLabel) -> Callable[[], str]:
    def fix() -> str:
        moved = terms.relabel_archived(label, using)
        return (
            f"{moved} archived grade(s) of term {label.term_id!r} filed under academic year "
            f"{label.term_year!r} (was {label.academic_year!r})"
        )

    return fix


def _term_retirer(using: str, leaves: list[TermDrift]) -> Callable[[], str]:
    def fix() -> str:
        moved = sum(terms.retire_leaf(leaf, using) for leaf in leaves)
        return (
            f"{moved} row(s) of deleted term {leaves[0].term_id!r} re-filed, "
            f"{len(leaves)} partition(s) dropped"
        )

    return fix


def _year_setter(using: str, term_id: str, year: str) -> Callable[[], str]:
    def fix() -> str:
        with atomic(using), cursor(using) as cur:
            n = drift.set_year(cur, term_id, year)
        return f"{n} partition(s) of term {term_id!r} relabelled academic year {year!r}"

    return fix


def check_key_index(
    using: str = "default", batch: int = KEY_BATCH, progress: Progress | None = None
) -> list[Problem]:
    """E016/E017: the key index against the stored rows, ``batch`` rows a statement.

    One pass over the key index in id order (each batch's grades probed by primary key
    in their own live table, never through the parent) and one pass over each live
    table in id order (its batch left-joined to the key index).
    """
    tables = registry.live_tables(using)
    orphans: list[tuple[str, str, str | None]] = []
    unkeyed: dict[str, list[str]] = {}
    unreadable: dict[str, list[str]] = {}
    with cursor(using) as cur:
        after = ""
        while True:
            found = drift.keys_without_rows(cur, tables, after, batch)
            if found.last_id is None:
                break
            orphans += found.found
            after = found.last_id
        for table in tables.values():
            after = ""
            while True:
                found = drift.rows_without_keys(cur, table, after, batch)
                if found.last_id is None:
                    break
                if found.found:
                    unkeyed.setdefault(table, []).extend(f[0] for f in found.found)
                if found.unreadable:
                    unreadable.setdefault(table, []).extend(found.unreadable)
                after = found.last_id
    out = []
    if orphans:
        shown = ", ".join(f"{i} ({c}/{t or '-'})" for i, c, t in orphans[:5])
        out.append(
            Problem(
                "activity_grades.E016",
                f"{len(orphans)} key-index row(s) name a grade that is not stored: {shown}"
                + (" ..." if len(orphans) > 5 else "")
                + "; their (activity, student) pairs cannot be graded again",
                "manage.py check_partitions --keys --fix removes them (each checked again as "
                "it is removed)",
                fix=_key_deleter(using, orphans, tables),
            )
        )
    if unkeyed:
        count = sum(len(ids) for ids in unkeyed.values())
        names = ", ".join(sorted(unkeyed)[:5])
        out.append(
            Problem(
                "activity_grades.E017",
                f"{count} stored grade(s) have no key-index row, or one naming another "
                f"partition (written while a key trigger was disabled?), in: {names}"
                + (" ..." if len(unkeyed) > 5 else ""),
                "manage.py check_partitions --keys --fix writes their key rows; a grade whose "
                "(activity, student) another grade holds stays reported: resolve it by hand",
                fix=_key_writer(using, unkeyed),
            )
        )
    if unreadable:
        count = sum(len(ids) for ids in unreadable.values())
        shown = ", ".join(f"{i} ({t})" for t, ids in unreadable.items() for i in ids)
        out.append(
            Problem(
                "activity_grades.E020",
                f"{count} stored grade(s) hold a timestamp that cannot be read back (infinite, "
                f"BC or after year 9999), which breaks every read of their class: "
                f"{shown[:300]}",
                "set a real date on each by hand: UPDATE <table> SET <column> = ... WHERE id = "
                "...; the write rule refuses such values since migration 0011",
            )
        )
    return out


def _key_deleter(
    using: str,
    orphans: list[tuple[str, str, str | None]],
    tables: dict[tuple[str, str | None], str],
) -> Callable[[], str]:
    def fix() -> str:
        groups: dict[tuple[str, str | None], list[str]] = {}
        for grade_id, class_id, term_id in orphans:
            groups.setdefault((class_id, term_id), []).append(grade_id)
        removed = 0
        for (class_id, term_id), ids in groups.items():
            for i in range(0, len(ids), KEY_BATCH):
                with atomic(using), cursor(using) as cur:
                    chunk = ids[i : i + KEY_BATCH]
                    table = tables.get((class_id, term_id))
                    removed += drift.delete_keys(cur, class_id, term_id, table, chunk)
        return f"removed {removed} key-index row(s) without a stored grade"

    return fix


def _key_writer(using: str, unkeyed: dict[str, list[str]]) -> Callable[[], str]:
    def fix() -> str:
        written = 0
        for table, ids in unkeyed.items():
            for i in range(0, len(ids), KEY_BATCH):
                with atomic(using), cursor(using) as cur:
                    written += drift.upsert_keys(cur, table, ids[i : i + KEY_BATCH])
        total = sum(len(ids) for ids in unkeyed.values())
        left = f"; {total - written} left (duplicates)" if written < total else ""
        return f"wrote {written} key-index row(s){left}"

    return fix


def check_constraint_exclusion(cur: Cursor) -> list[Problem]:
    if catalog.constraint_exclusion(cur) == "off":
        return [
            Problem(
                "activity_grades.E009",
                "constraint_exclusion is 'off': every query reads every partition",
                "set constraint_exclusion = partition (the default) in postgresql.conf or "
                "ALTER DATABASE ... SET constraint_exclusion = partition",
            )
        ]
    return []


def check_upcoming(using: str = "default") -> list[Problem]:
    missing = create.plan(using=using).to_create
    if not missing:
        return []
    names = ", ".join(f"{p.class_id}/{p.term_id or '-'}" for p in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""

    def fix() -> str:
        result = create.plan(using=using).apply()
        return f"created {len(result.created)} partition(s): " + ", ".join(result.created)

    return [
        Problem(
            "activity_grades.E007",
            f"{len(missing)} partition(s) for the current/upcoming terms are missing: "
            f"{names}{more}",
            "manage.py create_partitions (or check_partitions --fix) creates them",
            fix=fix,
        )
    ]


def check_shards(using: str = "default") -> list[Problem]:
    """E030-E036: the shards against the settings; ``--fix`` runs the safe setup steps."""
    try:
        setup = shards.plan(using)
    except SettingsError:
        return []  # E100 says what to fix first
    out = [Problem(b.code, b.problem, b.hint) for b in setup.blockers]
    for step in setup.steps:
        out.append(
            Problem(
                step.code,
                step.problem,
                "manage.py setup_shards puts it right",
                fix=_setup_runner(using, step),
            )
        )
    findings = shards.placement_findings(using) + shard_partitions.findings(using)
    return (
        out
        + [Problem(b.code, b.problem, b.hint) for b in findings]
        + shard_archive.findings(using)
        + move_class.findings(using)
    )


def _setup_runner(using: str, step: shards.SetupStep) -> Callable[[], str]:
    def fix() -> str:
        shards.SetupPlan([step], using=using).apply()
        return step.what

    return fix


def plan(using: str = "default", *, keys: bool = False, batch: int = KEY_BATCH) -> RepairPlan:
    """Run every check; a fixed number of catalog queries whatever the tree's size.

    ``keys``: also compare the key index with the stored rows (E016, E017), which reads
    every key row and every grade once, ``batch`` rows a statement (a nightly job).
    """
    with cursor(using) as cur:
        problems = (
            check_routing_trigger(cur, using)
            + check_parent_empty(cur)
            + check_markers(cur)
            + check_registry_tables(cur, using)
            + check_inheritance(cur, using)
            + check_indexes(cur, using)
            + check_constraints(cur)
            + check_triggers(cur, using)
            + check_unique_key(cur)
            + check_constraint_exclusion(cur)
            + check_terms(cur, using)
            + check_archived_years(cur, using)
            + month_checks.check_months(cur, using)
        )
    if keys:
        problems += check_key_index(using, batch)
    return RepairPlan(problems + check_upcoming(using) + check_shards(using), using=using)
