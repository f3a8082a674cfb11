"""Health checks: break the tree on purpose, see it reported, repair what is safe."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from psycopg import sql

from activity_grades.models import Partition
from activity_grades.operations import repair

from .admin_support import FALL_2023, add_upcoming_terms, grade, make_grades
from .helpers import leaf

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(lms):
    make_grades(n_123_fall=4)


def ids(problems) -> list[str]:
    return sorted(p.id for p in problems)


def execute(statement: str | sql.Composable, params=None) -> None:
    with connection.cursor() as cursor:
        text = statement if isinstance(statement, str) else statement.as_string()
        cursor.execute(text, params)


def command(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("check_partitions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_healthy_tree_has_no_problem(tree):
    assert repair.plan().problems == []
    assert "Partition tree OK" in command()


def test_dropped_index_on_a_leaf_is_reported_and_fixed(tree):
    table = leaf("123", "2023_fall")
    execute("SELECT activity_grades_index_name(%s, 'student_idx')", [table])
    execute(
        sql.SQL("DROP INDEX {}").format(sql.Identifier(f"{table}_student_idx")),
    )
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E004"]
    assert problems[0].table == table and "student_idx" in problems[0].message
    with pytest.raises(CommandError, match="1 problem"):
        command()
    out = command("--fix")
    assert f'CREATE INDEX "{table}_student_idx"' in out
    assert repair.plan().problems == []


def test_dropped_primary_key_and_unique_are_recreated_under_the_app_names(tree):
    table = leaf("456", None)
    for suffix in ("pkey", "activity_student_key"):
        execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(f"{table}_{suffix}")
            )
        )
    assert ids(repair.plan().problems) == ["activity_grades.E004"] * 2
    command("--fix")
    assert repair.plan().problems == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, contype FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "AND contype IN ('p', 'u') ORDER BY conname",
            [table],
        )
        assert cursor.fetchall() == [
            (f"{table}_activity_student_key", "u"),
            (f"{table}_pkey", "p"),
        ]


def test_index_added_to_the_parent_only_is_drift(tree):
    execute("CREATE INDEX activity_grades_status_idx ON ONLY activity_grades (status)")
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E005"] * Partition.objects.count()
    assert all("activity_grades_status_idx" in p.message for p in problems)
    result = repair.RepairPlan(problems).apply()
    assert len(result.fixed) == Partition.objects.count() and not result.failed
    assert repair.plan().problems == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
            [f"{leaf('123', '2023_fall')}_status_idx"],
        )
        assert "(status)" in cursor.fetchone()[0]


def test_disabled_routing_trigger(tree):
    execute("ALTER TABLE activity_grades DISABLE TRIGGER activity_grades_route")
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E001"]
    # Issue 12: enabling it changes no row (the parent's CHECK (false) refused every
    # insert meanwhile), so --fix does it.
    assert "disabled" in problems[0].message and problems[0].fixable
    assert "fixed: enabled trigger activity_grades_route" in command("--fix")
    assert repair.plan().problems == []


def test_rows_in_the_parent(tree):
    execute("ALTER TABLE activity_grades DISABLE TRIGGER activity_grades_route")
    execute("ALTER TABLE activity_grades DROP CONSTRAINT activity_grades_parent_holds_no_rows")
    execute(
        "INSERT INTO activity_grades (activity_id, student_id, status, submitted_at) "
        "VALUES ('123/a0', 'lost', 'x', now())"
    )
    assert ids(repair.plan().problems) == [
        "activity_grades.E001",
        "activity_grades.E002",
        "activity_grades.E003",
    ]
    assert "holds 1 row" in " ".join(p.message for p in repair.plan().problems)


def test_unmarked_child_table(tree):
    execute(
        sql.SQL("CREATE TABLE intruder () INHERITS ({})").format(
            sql.Identifier(leaf("123", "2023_fall"))
        )
    )
    problems = repair.plan().problems
    assert "activity_grades.E008" in ids(problems)
    assert any(p.table == "intruder" for p in problems)


def test_missing_checks_and_triggers(tree):
    table = leaf("123", "2023_fall")
    execute(
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT activity_grades_term_check").format(
            sql.Identifier(table)
        )
    )
    execute(
        sql.SQL("ALTER TABLE {} DISABLE TRIGGER activity_grades_move").format(sql.Identifier(table))
    )
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E006", "activity_grades.E011"]
    assert all(p.table == table for p in problems)


def test_registry_row_without_table(tree):
    Partition.objects.create(class_id="zz", table_name="no_such_table", parent_table="x")
    problems = repair.plan().problems
    assert "activity_grades.E010" in ids(problems)


def test_constraint_exclusion_off(tree):
    execute("SET LOCAL constraint_exclusion = off")
    assert ids(repair.plan().problems) == ["activity_grades.E009"]


def test_missing_upcoming_partitions_are_created_by_fix(tree):
    upcoming = add_upcoming_terms()
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E007"]
    assert "4 partition(s)" in problems[0].message
    out = command("--fix")
    assert "created 4 partition(s)" in out
    assert Partition.objects.filter(term_id__in=upcoming).count() == 4
    assert repair.plan().problems == []


def test_system_checks_only_with_a_database(tree):
    execute("ALTER TABLE activity_grades DISABLE TRIGGER activity_grades_route")
    # start-up / plain "manage.py check": no database access, nothing reported
    assert not [m for m in run_checks() if m.id.startswith("activity_grades.")]
    messages = run_checks(databases=["default"])
    found = [m for m in messages if m.id.startswith("activity_grades.")]
    assert [m.id for m in found] == ["activity_grades.E001"]
    assert found[0].is_serious()
    from django.core.management.base import SystemCheckError

    with pytest.raises(SystemCheckError, match="activity_grades.E001"):
        call_command("check", "--database", "default")


def test_routing_still_works_after_fix(tree):
    execute(
        sql.SQL("DROP INDEX {}").format(sql.Identifier(f"{leaf('123', '2023_fall')}_activity_idx"))
    )
    command("--fix")
    grade("123/a0", "after-fix", FALL_2023)
    assert repair.plan().problems == []
