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
- ``activity_grades.E010`` a live registry row names a table that does not exist
- ``activity_grades.E011`` a partition lacks one of the app's triggers
- ``activity_grades.E012`` tables whose (activity, student) index disagrees with the
  ``UNIQUE_KEY`` setting (unique while it is None, or not unique while it is on) —
  ``manage.py apply_unique_key`` switches them
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.constants import LOGGER_NAME, PARENT, PARTITION_MARKER, PARTITION_TRIGGERS
from ..core.settings import app_settings
from ..db import catalog, ddl, registry
from ..db.catalog import IndexSignature
from ..db.connection import Cursor, cursor
from . import create, unique_key
from .base import Plan, Progress, Result, Stopwatch, each

__all__ = ["FixResult", "Problem", "RepairPlan", "plan", "required_indexes"]

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
class Problem:
    """One thing wrong with the tree; ``fix`` repairs it when that is safe."""

    id: str
    message: str
    hint: str = ""
    table: str | None = None
    fix: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    @property
    def fixable(self) -> bool:
        return self.fix is not None


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


def check_routing_trigger(cur: Cursor) -> list[Problem]:
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
                "ALTER TABLE activity_grades ENABLE TRIGGER activity_grades_route",
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
    parts = registry.live_partitions(cur)
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
    parts = registry.live_partitions(cur)
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


def check_triggers(cur: Cursor) -> list[Problem]:
    parts = registry.live_partitions(cur)
    if not parts:
        return []
    have = catalog.names_by_table(cur, "triggers", [p[0] for p in parts])
    return [
        Problem(
            "activity_grades.E011",
            f"partition {table} lacks (or has disabled) trigger {name}",
            "the key index and row moves depend on it; recreate it as "
            "activity_grades_partition_ddl() shows",
            table=table,
        )
        for oid, table, _term in parts
        for name in PARTITION_TRIGGERS
        if name not in have.get(oid, set())
    ]


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


def check_registry_tables(using: str) -> list[Problem]:
    return [
        Problem(
            "activity_grades.E010",
            f"the registry lists live partition {name} but the table does not exist",
            "inserts routed there fail: restore the table or fix the registry row",
            table=name,
        )
        for name in registry.missing_tables(using)
    ]


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


def plan(using: str = "default") -> RepairPlan:
    """Run every check; a fixed number of catalog queries whatever the tree's size."""
    with cursor(using) as cur:
        problems = (
            check_routing_trigger(cur)
            + check_parent_empty(cur)
            + check_markers(cur)
            + check_registry_tables(using)
            + check_indexes(cur, using)
            + check_constraints(cur)
            + check_triggers(cur)
            + check_unique_key(cur)
            + check_constraint_exclusion(cur)
        )
    return RepairPlan(problems + check_upcoming(using), using=using)
