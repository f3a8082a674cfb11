"""Drift made by hand is found and repaired (issue 12, items 6, 7, 8, 9 and the checks).

Each test makes one drift the way an operator would, shows ``check_partitions`` report it
under its stable id, and ``--fix`` repair it (or say why it cannot).
"""

from __future__ import annotations

import datetime as dt
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from psycopg import sql

from activity_grades import ActivityGradeService
from activity_grades.core.exceptions import PartitioningError
from activity_grades.db import archive as sql_archive
from activity_grades.db import drift
from activity_grades.db import lms as lms_db
from activity_grades.models import ActivityGrade
from activity_grades.operations import archive, repair, restore
from activity_grades.operations import terms as term_changes
from gradeproject.lms.models import Term
from tests.helpers import INSERT, assert_tree_consistent, connect, leaf

pytestmark = pytest.mark.django_db

FALL = dt.datetime(2023, 9, 15, tzinfo=dt.timezone.utc)


@pytest.fixture
def tree(lms):
    with connection.cursor() as cursor:
        for i in range(4):
            cursor.execute(INSERT, [f"f{i}", "123/a0", f"s{i}", FALL])
        cursor.execute(INSERT, ["other", "456/a0", "s1", FALL])


def ids(problems) -> list[str]:
    return sorted(p.id for p in problems if p.id != "activity_grades.E007")


def run(statement: str | sql.Composable, params=None):
    with connection.cursor() as cursor:
        text = statement if isinstance(statement, str) else statement.as_string()
        cursor.execute(text, params)
        return cursor.fetchall() if cursor.description else None


def check(*args: str) -> str:
    out = StringIO()
    try:
        call_command("check_partitions", *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue() + f"\nCommandError: {exc}"
    return out.getvalue()


def count(query: str) -> int:
    return run(query)[0][0]


# -- item 7: a leaf dropped by hand ------------------------------------------------------


def test_a_dropped_leaf_is_recreated_and_its_key_rows_go(tree):
    fall = leaf("123", "2023_fall")
    run(sql.SQL("DROP TABLE {}").format(sql.Identifier(fall)))
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E010"]
    assert "4 key-index row(s) still name it" in problems[0].message
    assert problems[0].fixable
    assert f"would fix: activity_grades.E010 the registry lists live partition {fall}" in check(
        "--fix", "--dry-run"
    )
    assert count("SELECT count(*) FROM activity_grades_key WHERE class_id = '123'") == 4
    out = check("--fix")
    assert "removed 4 key-index row(s)" in out and "Partition tree OK." in out
    # Those (activity, student) pairs can be graded again, into the recreated leaf.
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["again", "123/a0", "s0", FALL])
        assert assert_tree_consistent(cursor) == 2
    assert leaf("123", "2023_fall") == fall


# -- item 8: NO INHERIT by hand ---------------------------------------------------------


def test_a_leaf_taken_out_of_the_tree_is_found_and_put_back(tree):
    fall = leaf("123", "2023_fall")
    run(
        sql.SQL("ALTER TABLE {} NO INHERIT {}").format(
            sql.Identifier(fall), sql.Identifier(leaf("123", None))
        )
    )
    assert ActivityGrade.objects.for_class("123").count() == 0  # the rows vanished
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E014"]
    assert fall in problems[0].message and problems[0].fixable
    out = check("--fix")
    assert "inherits from" in out, out
    assert repair.plan().problems == []
    assert ActivityGrade.objects.for_class("123").count() == 4
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 5


def test_a_marked_table_without_a_registry_row_is_reported(tree):
    run(
        "CREATE TABLE activity_grades_stray (LIKE activity_grades); "
        "COMMENT ON TABLE activity_grades_stray IS 'activity_grades:partition'"
    )
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E015"]
    assert "activity_grades_stray" in problems[0].message and not problems[0].fixable


# -- disabled and missing triggers -------------------------------------------------------


def test_disabled_and_missing_partition_triggers_are_repaired(tree):
    fall = sql.Identifier(leaf("123", "2023_fall"))
    run(sql.SQL("ALTER TABLE {} DISABLE TRIGGER activity_grades_keys_insert").format(fall))
    run(sql.SQL("DROP TRIGGER activity_grades_move ON {}").format(fall))
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E011"] * 2
    messages = " ".join(p.message for p in problems)
    assert "has trigger activity_grades_keys_insert disabled" in messages
    assert "lacks trigger activity_grades_move" in messages
    out = check("--fix")
    assert "enabled trigger activity_grades_keys_insert" in out
    assert "created trigger activity_grades_move" in out
    assert repair.plan().problems == []


# -- item 9: the key index against the stored rows ----------------------------------------


def test_rows_written_while_the_key_trigger_was_off_are_found_in_batches_and_keyed(tree):
    fall = sql.Identifier(leaf("123", "2023_fall"))
    run(sql.SQL("ALTER TABLE {} DISABLE TRIGGER activity_grades_keys_insert").format(fall))
    with connection.cursor() as cursor:
        for i in range(5):
            cursor.execute(INSERT, [f"nokey{i}", "123/a1", f"s{i}", FALL])
    run(sql.SQL("ALTER TABLE {} ENABLE TRIGGER activity_grades_keys_insert").format(fall))
    # Without --keys nothing reads the grades: the cheap checks see a healthy tree.
    assert repair.plan().problems == []
    problems = repair.plan(keys=True, batch=2).problems
    assert ids(problems) == ["activity_grades.E017"]
    assert "5 stored grade(s) have no key-index row" in problems[0].message
    out = check("--keys", "--batch-size", "3", "--fix")
    assert "wrote 5 key-index row(s)" in out and "Partition tree OK." in out
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 10


def test_key_rows_without_their_grade_are_found_and_removed(tree):
    fall = sql.Identifier(leaf("123", "2023_fall"))
    run(sql.SQL("ALTER TABLE {} DISABLE TRIGGER activity_grades_keys_delete").format(fall))
    run(sql.SQL("DELETE FROM {} WHERE id IN ('f1', 'f2')").format(fall))
    run(sql.SQL("ALTER TABLE {} ENABLE TRIGGER activity_grades_keys_delete").format(fall))
    # A key row of a (class, term) that has no live table at all.
    run("INSERT INTO activity_grades_key VALUES ('ghost', '123/a1', 'sx', '123', '2024_fall')")
    problems = repair.plan(keys=True, batch=2).problems
    assert ids(problems) == ["activity_grades.E016"]
    assert problems[0].message.startswith("3 key-index row(s) name a grade that is not stored")
    svc = ActivityGradeService()
    with pytest.raises(IntegrityError, match="duplicate key"), transaction.atomic():
        svc.record("123/a0", "s1", status="x", submitted_at=FALL, created_at=FALL)
    assert "removed 3 key-index row(s)" in check("--keys", "--fix")
    svc.record("123/a0", "s1", status="x", submitted_at=FALL, created_at=FALL)
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 4


def test_a_grade_whose_pair_another_key_holds_stays_reported(tree):
    name = leaf("123", "2023_fall")
    fall = sql.Identifier(name)
    (unique,) = run(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'",
        [name],
    )[0]
    run(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(fall, sql.Identifier(unique)))
    run(sql.SQL("ALTER TABLE {} DISABLE TRIGGER activity_grades_keys_insert").format(fall))
    run(INSERT, ["dup", "123/a0", "s0", FALL])  # (123/a0, s0) is f0's
    run(sql.SQL("ALTER TABLE {} ENABLE TRIGGER activity_grades_keys_insert").format(fall))
    out = check("--keys", "--fix")
    assert "wrote 0 key-index row(s); 1 left (duplicates)" in out
    assert "activity_grades.E017 1 stored grade(s)" in out


# -- items 5 and 6 (reported): terms that changed -------------------------------------------


def test_a_changed_academic_year_is_found_and_relabelled(tree):
    Term.objects.filter(id="2023_fall").update(academic_year="AY23")
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E019"]
    assert "'AY23'" in problems[0].message and "'2023-2024'" in problems[0].message
    assert "relabelled academic year 'AY23'" in check("--fix")
    assert run(
        "SELECT DISTINCT academic_year FROM activity_grades_partition WHERE term_id = '2023_fall'"
    ) == [("AY23",)]


def test_a_term_extended_after_its_partitions_exist_is_reported(tree):
    Term.objects.filter(id="2023_fall").update(end_date=dt.date(2024, 1, 7))
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E018"]
    assert "term '2023_fall' now runs [2023-08-01 00:00+0000, 2024-01-08 00:00+0000)" in (
        problems[0].message
    )
    assert "create_partitions" in problems[0].hint


# -- item 5: a term extended (or moved) after its partitions exist ---------------------------


def test_create_partitions_applies_a_term_extension_online(tree):
    extension = dt.datetime(2024, 1, 3, 12, tzinfo=dt.timezone.utc)
    # Before the term changes, a grade of Jan 3 waits in the class table (between terms).
    run(INSERT, ["early", "123/a0", "s9", extension])
    Term.objects.filter(id="2023_fall").update(end_date=dt.date(2024, 1, 7))
    # Today's code: every insert in the extension failed the leaf's CHECK.
    plan_out = StringIO()
    call_command("create_partitions", "--all-terms", "--dry-run", stdout=plan_out)
    assert "Would apply changed terms to 2 partitions" in plan_out.getvalue()
    assert "[2023-08-01, 2024-01-01) -> [2023-08-01, 2024-01-08)" in plan_out.getvalue()
    out = StringIO()
    call_command("create_partitions", "--all-terms", stdout=out)
    assert "2 partitions given their term's new dates or year, 1 rows re-filed" in out.getvalue()
    run(INSERT, ["late", "123/a1", "s9", extension])
    rows = dict(run("SELECT id, term_id FROM activity_grades WHERE id IN ('early', 'late')"))
    assert rows == {"early": "2023_fall", "late": "2023_fall"}
    assert ids(repair.plan().problems) == []
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 7
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'activity_grades_term_check' "
            "AND NOT convalidated"
        )
        assert cursor.fetchone()[0] == 0
    out = StringIO()
    call_command("create_partitions", "--all-terms", stdout=out)
    assert out.getvalue().startswith("Nothing to do.")


def test_a_shortened_term_sends_its_rows_to_the_class_table_or_the_next_term(tree):
    # f0..f3 were created on 2023-09-15: the term now ends on 2023-09-10.
    Term.objects.filter(id="2023_fall").update(end_date=dt.date(2023, 9, 10))
    assert "activity_grades.E018" in ids(repair.plan().problems)
    call_command("create_partitions", "--all-terms", stdout=StringIO())
    assert dict(run("SELECT id, term_id FROM activity_grades")) == dict.fromkeys(
        ["f0", "f1", "f2", "f3", "other"]
    )
    assert ids(repair.plan().problems) == []
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 5


# -- item 6: academic-year labels after a settings change ------------------------------------


def test_create_partitions_relabels_years_after_a_settings_change(tree, settings):
    settings.ACTIVITY_GRADES = {
        **settings.ACTIVITY_GRADES,
        "TERM_YEAR_COLUMN": None,
        "TERM_YEAR_STARTS": "09-01",
    }
    lms_db.install()  # what migrate does after a settings change (rolled back with the test)
    assert "activity_grades.E019" in ids(repair.plan().problems)
    call_command("create_partitions", "--all-terms", stdout=StringIO())
    assert ids(repair.plan().problems) == []
    assert run(
        "SELECT DISTINCT academic_year FROM activity_grades_partition WHERE term_id = '2023_fall'"
    ) == [("2022-2023",)]


def test_an_interrupted_term_change_is_reported_and_finished(tree):
    Term.objects.filter(id="2023_fall").update(end_date=dt.date(2023, 9, 10))
    changes = term_changes.plan()
    # Step 1 only (as if the process died after it): new CHECK NOT VALID, registry updated.
    with connection.cursor() as cursor:
        for d in changes.items:
            drift.replace_term_check(cursor, d.table, d.term_id, d.term_starts_at, d.term_ends_at)
            drift.set_bounds(cursor, d.table, d.term_starts_at, d.term_ends_at, d.term_year)
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E018"]
    assert "was interrupted" in problems[0].message
    call_command("create_partitions", "--all-terms", stdout=StringIO())
    assert ids(repair.plan().problems) == []
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 5


# -- a term deleted from the LMS ---------------------------------------------------------


def test_a_deleted_term_is_reported_and_fix_refiles_its_rows_then_drops_its_leaves(tree):
    fall = leaf("123", "2023_fall")
    Term.objects.filter(id="2023_fall").delete()
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E018"]
    assert "no longer exists" in problems[0].message and problems[0].fixable
    # Reported only: create_partitions (and so the maintenance job) leaves it alone.
    call_command("create_partitions", "--all-terms", stdout=StringIO())
    assert ids(repair.plan().problems) == ["activity_grades.E018"]
    assert "would fix: activity_grades.E018 term '2023_fall'" in check("--fix", "--dry-run")
    assert count("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 5
    out = check("--fix")
    assert "5 row(s) of deleted term '2023_fall' re-filed, 2 partition(s) dropped" in out
    # Where routing files them now: the class tables (no other term covers Sept. 2023).
    assert run(
        "SELECT tableoid::regclass::text, count(*) FROM activity_grades GROUP BY 1 ORDER BY 1"
    ) == [(leaf("123", None), 4), (leaf("456", None), 1)]
    assert count("SELECT count(*) FROM activity_grades_partition WHERE term_id = '2023_fall'") == 0
    assert run("SELECT to_regclass(%s)", [fall]) == [(None,)]
    assert ids(repair.plan().problems) == []
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 5
    # The term comes back: create_partitions gives it a leaf and adopts its rows again.
    Term.objects.create(
        id="2023_fall",
        start_date=dt.date(2023, 8, 1),
        end_date=dt.date(2023, 12, 31),
        academic_year="2023-2024",
    )
    call_command("create_partitions", "--all-terms", stdout=StringIO())
    assert count("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 5
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 5


def test_the_rows_of_a_deleted_term_go_to_the_term_that_covers_their_dates_now(tree):
    Term.objects.filter(id="2023_fall").delete()
    Term.objects.create(
        id="2023_fall_b",
        start_date=dt.date(2023, 8, 1),
        end_date=dt.date(2023, 12, 31),
        academic_year="2023-2024",
    )
    check("--fix")
    assert dict(run("SELECT id, term_id FROM activity_grades")) == dict.fromkeys(
        ["f0", "f1", "f2", "f3", "other"], "2023_fall_b"
    )
    assert ActivityGradeService().gradebook("123", "2023_fall_b") is not None
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 5


def test_a_leaf_is_not_retired_when_its_term_is_back_or_it_is_not_the_apps(tree):
    Term.objects.filter(id="2023_fall").update(id="2023_fall_x")  # a rename: the old id is gone
    (gone,) = [d for d in drift.term_drift(connection.cursor()) if d.class_id == "123"]
    Term.objects.filter(id="2023_fall_x").update(id="2023_fall")
    with pytest.raises(PartitioningError, match="exists again"):
        term_changes.retire_leaf(gone)
    Term.objects.filter(id="2023_fall").delete()
    run(sql.SQL("COMMENT ON TABLE {} IS 'not ours'").format(sql.Identifier(gone.table)))
    with pytest.raises(PartitioningError, match="does not carry the marker"):
        term_changes.retire_leaf(gone)
    assert count("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["shortened", "deleted"])
def test_refiling_is_verified_by_id_while_others_grade_the_class(committed_lms, change):
    """Re-filing compares the moved grades by id, so writers of the class never make it
    fail (a comparison of row totals did whenever someone graded meanwhile)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
            "created_at) SELECT 'old' || i, '123/a' || (i %% 2), 's' || i, 'graded', now(), "
            "%s::timestamptz + i * interval '1 minute' FROM generate_series(1, 3000) i",
            [FALL],
        )
    if change == "shortened":
        Term.objects.filter(id="2023_fall").update(end_date=dt.date(2023, 9, 10))
    else:
        Term.objects.filter(id="2023_fall").delete()
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        n = 0
        try:
            with connect() as conn:
                while not stop.is_set():
                    conn.execute(INSERT, [f"w{w}-{n}", f"123/a{n % 2}", f"w{w}-{n}", FALL])
                    n += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        written.append(n)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    try:
        if change == "shortened":
            out = StringIO()
            call_command("create_partitions", "--all-terms", stdout=out)
            assert "3000 rows re-filed" in out.getvalue()
        else:
            assert "3000 row(s) of deleted term '2023_fall' re-filed" in check("--fix")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert sum(written) > 0
    assert ids(repair.plan().problems) == []
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 3000 + sum(written)
        cursor.execute("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'")
        assert cursor.fetchone()[0] == 0


# -- academic-year labels of archived grades -------------------------------------------------


def test_archived_grades_are_filed_under_their_terms_new_academic_year(tree):
    archive.plan(["2023_fall"]).apply()
    # An archive older than migration 0012 also holds a row of the term (row format).
    with connection.cursor() as cursor:
        rows_table = sql_archive.ensure_rows_year(cursor, "2023-2024")
    run(
        sql.SQL(
            "INSERT INTO {} (id, activity_id, student_id, status, submitted_at, created_at, "
            "updated_at, is_archived, is_committed, class_id, term_id, academic_year) VALUES "
            "('old', '123/a1', 's8', 'graded', %s, %s, %s, false, false, '123', '2023_fall', "
            "'2023-2024')"
        ).format(sql.Identifier(rows_table)),
        [FALL, FALL, FALL],
    )
    before = run("SELECT * FROM archived_activity_grades ORDER BY id")
    Term.objects.filter(id="2023_fall").update(academic_year="AY23")
    problems = repair.plan().problems
    assert ids(problems) == ["activity_grades.E019"]
    assert "archived grades (2 partition(s)) are filed under '2023-2024'" in problems[0].message
    out = check("--fix")
    assert "6 archived grade(s) of term '2023_fall' filed under academic year 'AY23'" in out
    after = run("SELECT * FROM archived_activity_grades ORDER BY id")
    assert [r[:-1] for r in after] == [r[:-1] for r in before]  # every column but the year
    assert {r[-1] for r in after} == {"AY23"}
    assert run(
        "SELECT DISTINCT academic_year FROM activity_grades_partition WHERE term_id = '2023_fall'"
    ) == [("AY23",)]
    assert run("SELECT academic_year, rows FROM activity_grades_archive_year ORDER BY 1") == [
        ("2023-2024", 0),
        ("AY23", 5),
    ]
    assert ids(repair.plan().problems) == []
    # Restoring finds them under the new label (both formats).
    restore.plan(["2023_fall"]).apply()
    assert count("SELECT count(*) FROM activity_grades WHERE term_id = '2023_fall'") == 6


def test_create_partitions_files_archived_grades_under_the_new_year_too(tree):
    archive.plan(["2023_fall"]).apply()
    Term.objects.filter(id="2023_fall").update(academic_year="AY23")
    dry = StringIO()
    call_command("create_partitions", "--all-terms", "--dry-run", stdout=dry)
    assert "archived grades of term '2023_fall': academic year '2023-2024' -> 'AY23'" in (
        dry.getvalue()
    )
    out = StringIO()
    call_command("create_partitions", "--all-terms", stdout=out)
    assert "5 archived grades filed under their term's new year" in out.getvalue()
    assert ids(repair.plan().problems) == []


# -- item 4: poison timestamps already stored -------------------------------------------------


def test_stored_timestamps_that_cannot_be_read_back_are_found(tree):
    fall = sql.Identifier(leaf("123", "2023_fall"))
    # A row stored before migrations 0011/0013 (their triggers off while it is written).
    run(sql.SQL("ALTER TABLE {} DISABLE TRIGGER activity_grades_readable").format(fall))
    run(sql.SQL("UPDATE {} SET graded_at = 'infinity' WHERE id = 'f2'").format(fall))
    run(sql.SQL("ALTER TABLE {} ENABLE TRIGGER activity_grades_readable").format(fall))
    assert repair.plan().problems == []  # the cheap checks do not read rows
    problems = repair.plan(keys=True).problems
    assert ids(problems) == ["activity_grades.E020"]
    assert "1 stored grade(s) hold a timestamp" in problems[0].message and "f2" in (
        problems[0].message
    )
    assert not problems[0].fixable
