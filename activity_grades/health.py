"""Health of the partition tree: what is wrong, and what can be repaired safely.

Used by ``manage.py check_partitions``, by the Django system checks (``checks.py``,
only with ``manage.py check --database default``) and by the admin page. Every check
is a catalog query over the whole tree (a fixed number of queries, whatever the
number of partitions), except "parent holds no rows", which reads ``ONLY`` the
empty parent.

Ids (stable, documented in docs/admin.md):

- ``activity_grades.E001`` the routing trigger on the parent is missing or disabled
- ``activity_grades.E002`` the parent itself holds rows
- ``activity_grades.E003`` the parent's ``CHECK (false) NO INHERIT`` is missing
- ``activity_grades.E004`` a partition lacks a required index (PK id, activity_id,
  student_id, UNIQUE(activity_id, student_id)) — fixable
- ``activity_grades.E005`` an index of the parent is missing on a partition (drift) — fixable
  for plain column indexes
- ``activity_grades.E006`` a partition lacks its CHECK constraint(s)
- ``activity_grades.E007`` partitions for the current/upcoming terms are missing — fixable
- ``activity_grades.E008`` a table in the inheritance tree does not carry the ownership marker
- ``activity_grades.E009`` ``constraint_exclusion`` is ``off``
- ``activity_grades.E010`` a live registry row names a table that does not exist
- ``activity_grades.E011`` a partition lacks one of the app's triggers
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connections, transaction
from psycopg import sql

from . import partitioning

logger = logging.getLogger("activity_grades")

MARKER = "activity_grades:partition"
PARENT = "activity_grades"

# suffix for activity_grades_index_name -> (columns, unique, primary)
REQUIRED_INDEXES: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "pkey": (("id",), True, True),
    "activity_idx": (("activity_id",), False, False),
    "student_idx": (("student_id",), False, False),
    "activity_student_key": (("activity_id", "student_id"), True, False),
}
PARTITION_TRIGGERS = (
    "activity_grades_keys_insert",
    "activity_grades_keys_delete",
    "activity_grades_keys_update",
    "activity_grades_move",
    "activity_grades_no_truncate",
)


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
class FixResult:
    fixed: list[str]  # what was done, one line each
    failed: list[str]


def _fetch(cursor, query: str, params=None) -> list[tuple]:
    cursor.execute(query, params or [])
    return cursor.fetchall()


def check_routing_trigger(cursor) -> list[Problem]:
    rows = _fetch(
        cursor,
        "SELECT tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
        [PARENT, "activity_grades_route"],
    )
    if not rows:
        return [
            Problem(
                "activity_grades.E001",
                "the routing trigger activity_grades_route is missing on activity_grades",
                "re-run the migrations of activity_grades (manage.py migrate activity_grades)",
            )
        ]
    if rows[0][0] == "D":
        return [
            Problem(
                "activity_grades.E001",
                "the routing trigger activity_grades_route on activity_grades is disabled",
                "ALTER TABLE activity_grades ENABLE TRIGGER activity_grades_route",
            )
        ]
    return []


def check_parent_empty(cursor) -> list[Problem]:
    out = []
    n = _fetch(cursor, "SELECT count(*) FROM ONLY activity_grades")[0][0]
    if n:
        out.append(
            Problem(
                "activity_grades.E002",
                f"the parent table activity_grades itself holds {n} row(s)",
                "move them with INSERT INTO activity_grades SELECT ... from a copy, then "
                "DELETE FROM ONLY activity_grades; check why the routing trigger let them in",
            )
        )
    has_check = _fetch(
        cursor,
        "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s "
        "AND contype = 'c' AND connoinherit",
        [PARENT, "activity_grades_parent_holds_no_rows"],
    )
    if not has_check:
        out.append(
            Problem(
                "activity_grades.E003",
                "the parent lacks CHECK (false) NO INHERIT (activity_grades_parent_holds_no_rows)",
                "empty the parent, then ALTER TABLE activity_grades ADD CONSTRAINT "
                "activity_grades_parent_holds_no_rows CHECK (false) NO INHERIT",
            )
        )
    return out


_TREE_SQL = """
WITH RECURSIVE tree(relid, parent, depth) AS (
    SELECT i.inhrelid, i.inhparent, 1 FROM pg_inherits i WHERE i.inhparent = to_regclass(%s)
    UNION ALL
    SELECT i.inhrelid, i.inhparent, t.depth + 1 FROM pg_inherits i JOIN tree t
        ON i.inhparent = t.relid
)
SELECT t.relid, c.relname, obj_description(t.relid, 'pg_class'), t.depth
  FROM tree t JOIN pg_class c ON c.oid = t.relid
"""


def _tree(cursor) -> list[tuple[int, str, str | None, int]]:
    return _fetch(cursor, _TREE_SQL, [PARENT])


def check_markers(cursor) -> list[Problem]:
    return [
        Problem(
            "activity_grades.E008",
            f"table {name} inherits from activity_grades but is not marked as a partition "
            f"(comment {comment!r})",
            "the app never touches unmarked tables: drop it or ALTER TABLE ... NO INHERIT "
            "by hand after checking its rows",
            table=name,
        )
        for _oid, name, comment, _depth in _tree(cursor)
        if comment != MARKER
    ]


# Every index of the parent and of every marked partition, as column signatures.
_INDEX_SQL = """
SELECT x.indrelid::regclass::text AS tbl, ic.relname, x.indisunique, x.indisprimary,
       am.amname, x.indexprs IS NOT NULL OR x.indpred IS NOT NULL AS complex,
       array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             ORDER BY k.n)::text[] AS cols
  FROM pg_index x
  JOIN pg_class ic ON ic.oid = x.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE x.indrelid = ANY(%s::oid[])
"""


def _live_partitions(cursor) -> list[tuple[int, str, str | None]]:
    """(oid, table, term_id) of every live registered partition that exists."""
    return _fetch(
        cursor,
        "SELECT to_regclass(quote_ident(table_name))::oid, table_name, term_id "
        "FROM activity_grades_partition WHERE status = 'live' "
        "AND to_regclass(quote_ident(table_name)) IS NOT NULL ORDER BY id",
    )


def check_indexes(cursor, using: str = "default") -> list[Problem]:
    parts = _live_partitions(cursor)
    if not parts:
        return []
    parent_oid = _fetch(cursor, "SELECT to_regclass(%s)::oid", [PARENT])[0][0]
    rows = _fetch(cursor, _INDEX_SQL, [[parent_oid] + [p[0] for p in parts]])
    by_table: dict[str, set[tuple]] = {}
    parent_indexes = []
    for tbl, name, unique, primary, am, complex_, cols in rows:
        sig = (tuple(cols), bool(unique), bool(primary) or False, am)
        by_table.setdefault(tbl, set()).add(sig)
        if tbl == PARENT:
            parent_indexes.append((name, sig, complex_))
    required = {(cols, u, p, "btree"): suffix for suffix, (cols, u, p) in REQUIRED_INDEXES.items()}

    def has(tbl: str, sig: tuple) -> bool:
        cols, unique, primary, am = sig
        have = by_table.get(tbl, set())
        if primary:
            return sig in have
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
            if sig in required or has(table, sig):
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


def _index_fixer(using: str, table: str, suffix: str, sig: tuple) -> Callable[[], str]:
    cols, unique, primary, am = sig

    def fix() -> str:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("SELECT activity_grades_index_name(%s, %s)", [table, suffix])
            name = cursor.fetchone()[0]
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            if primary or (unique and suffix == "activity_student_key"):
                kind = sql.SQL("PRIMARY KEY" if primary else "UNIQUE")
                stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} ({})").format(
                    sql.Identifier(table), sql.Identifier(name), kind, columns
                )
            else:
                stmt = sql.SQL("CREATE {}INDEX {} ON {} USING {} ({})").format(
                    sql.SQL("UNIQUE " if unique else ""),
                    sql.Identifier(name),
                    sql.Identifier(table),
                    sql.Identifier(am),
                    columns,
                )
            text = stmt.as_string(cursor.connection)
            cursor.execute(text)
        logger.info("check_partitions: %s", text)
        return text

    return fix


def _names_by_table(cursor, query: str, parts) -> dict[int, set[str]]:
    """Catalog object names per partition oid; ``query`` takes the oids as %s."""
    have: dict[int, set[str]] = {}
    for oid, name in _fetch(cursor, query, [[p[0] for p in parts]]):
        have.setdefault(oid, set()).add(name)
    return have


def check_constraints(cursor) -> list[Problem]:
    parts = _live_partitions(cursor)
    if not parts:
        return []
    have = _names_by_table(
        cursor,
        "SELECT conrelid, conname FROM pg_constraint WHERE contype = 'c' "
        "AND conrelid = ANY(%s::oid[])",
        parts,
    )
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


def check_triggers(cursor) -> list[Problem]:
    parts = _live_partitions(cursor)
    if not parts:
        return []
    have = _names_by_table(
        cursor,
        "SELECT tgrelid, tgname FROM pg_trigger WHERE tgrelid = ANY(%s::oid[]) "
        "AND NOT tgisinternal AND tgenabled <> 'D'",
        parts,
    )
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


def check_registry_tables(cursor) -> list[Problem]:
    rows = _fetch(
        cursor,
        "SELECT table_name FROM activity_grades_partition WHERE status = 'live' "
        "AND to_regclass(quote_ident(table_name)) IS NULL ORDER BY table_name",
    )
    return [
        Problem(
            "activity_grades.E010",
            f"the registry lists live partition {name} but the table does not exist",
            "inserts routed there fail: restore the table or fix the registry row",
            table=name,
        )
        for (name,) in rows
    ]


def check_constraint_exclusion(cursor) -> list[Problem]:
    value = _fetch(cursor, "SELECT current_setting('constraint_exclusion')")[0][0]
    if value == "off":
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
    the_plan = partitioning.plan(using=using)
    missing = the_plan.to_create
    if not missing:
        return []
    names = ", ".join(f"{p.class_id}/{p.term_id or '-'}" for p in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""

    def fix() -> str:
        result = partitioning.apply(partitioning.plan(using=using), using=using)
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


def run(using: str = "default") -> list[Problem]:
    """Every check; a fixed number of catalog queries whatever the tree's size."""
    with connections[using].cursor() as cursor:
        problems = (
            check_routing_trigger(cursor)
            + check_parent_empty(cursor)
            + check_markers(cursor)
            + check_registry_tables(cursor)
            + check_indexes(cursor, using)
            + check_constraints(cursor)
            + check_triggers(cursor)
            + check_constraint_exclusion(cursor)
        )
    return problems + check_upcoming(using)


def fix(problems: list[Problem]) -> FixResult:
    """Run the safe repairs of ``problems``; the rest are left for a person."""
    done, failed = [], []
    for problem in problems:
        if problem.fix is None:
            continue
        try:
            done.append(problem.fix())
        except Exception as exc:  # noqa: BLE001 - report and go on with the next repair
            failed.append(f"{problem.id} {problem.table or ''}: {exc}".strip())
    return FixResult(done, failed)
