"""manage.py create_partitions and the partitioning API behind it."""

from __future__ import annotations

import datetime as dt
import json
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from activity_grades.db import ddl, lms
from gradeproject.lms.models import Activity, SchoolClass, Term
from tests.conftest import make_lms
from tests.helpers import INSERT, assert_tree_consistent, connect, where_is


def run(*args, **kwargs) -> str:
    out = StringIO()
    call_command("create_partitions", *args, stdout=out, **kwargs)
    return out.getvalue()


def tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM activity_grades_partition")
        return {r[0] for r in cursor.fetchall()}


def around_today():
    """Terms: last, current (contains today), next, the one after."""
    today = timezone.localdate()
    spans = [(-200, -101), (-100, 30), (40, 120), (130, 200)]
    terms = [
        (f"t{i}", today + dt.timedelta(a), today + dt.timedelta(b), "y")
        for i, (a, b) in enumerate(spans)
    ]
    make_lms(terms=terms)


@pytest.mark.django_db
def test_default_is_current_and_next_term_for_every_class():
    around_today()
    out = run()
    assert "Created 6 partitions" in out  # 2 class tables + 2 classes x (t1, t2)
    assert tables() == {
        "activity_grades_class_123",
        "activity_grades_class_456",
        "activity_grades_class_123_term_t1",
        "activity_grades_class_123_term_t2",
        "activity_grades_class_456_term_t1",
        "activity_grades_class_456_term_t2",
    }
    assert run().startswith("Nothing to do.")


@pytest.mark.django_db
def test_upcoming_setting_and_option(settings):
    around_today()
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "UPCOMING_TERMS": 2}
    run()
    assert "activity_grades_class_123_term_t3" in tables()
    run("--upcoming", "0", "--class", "123")
    assert "activity_grades_class_123_term_t0" not in tables()


@pytest.mark.django_db
def test_class_term_and_all_terms_options(lms):
    out = run("--class", "123", "--term", "2024_spring", "--term", "2023_fall")
    assert "Created 3 partitions" in out
    assert tables() == {
        "activity_grades_class_123",
        "activity_grades_class_123_term_2023_fall",
        "activity_grades_class_123_term_2024_spring",
    }
    out = run("--all-terms")
    assert "Created 5 partitions, 3 existing" in out
    assert run("--all-terms").startswith("Nothing to do.")


@pytest.mark.django_db
def test_dry_run_prints_the_plan_and_sql_and_changes_nothing(lms):
    out = run("--all-terms", "--dry-run", verbosity=2)
    assert "Would create 8 partitions" in out
    assert "+ activity_grades_class_456_term_2024_fall" in out
    assert "CREATE TABLE activity_grades_class_123_term_2023_fall" in out
    assert "CHECK (term_id = '2023_fall'" in out and "Dry run" in out
    assert tables() == set()
    assert "CREATE TABLE" not in run("--all-terms", "--dry-run")  # SQL only at -v 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--class", "nope"], "unknown classes: 'nope'"),
        (["--term", "1999_fall"], "unknown terms: '1999_fall'"),
        (["--term", "2023_fall", "--all-terms"], "exclude each other"),
        (["--upcoming", "-1"], "--upcoming must be 0 or more"),
    ],
)
def test_bad_input_is_a_command_error(lms, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert tables() == set()


@pytest.mark.django_db
def test_progress_and_summary_for_many_partitions():
    make_lms(class_ids=[f"c{i}" for i in range(60)], activities_per_class=1)
    out = run("--all-terms")
    assert "240/240 partitions" in out and "Created 240 partitions, 0 existing" in out


@pytest.mark.django_db
def test_rows_waiting_in_the_class_table_move_when_their_term_appears(lms):
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["early", "123/a0", "s1", "2025-03-01+00"])  # no term yet
        assert where_is(cursor, "early") == "activity_grades_class_123"
        Term.objects.create(
            id="2025_spring",
            start_date=dt.date(2025, 1, 10),
            end_date=dt.date(2025, 5, 31),
            academic_year="2024-2025",
        )
        run("--term", "2025_spring")
        assert where_is(cursor, "early") == "activity_grades_class_123_term_2025_spring"
        assert assert_tree_consistent(cursor) == 1


@pytest.mark.django_db
def test_activity_of_a_new_class_is_found():
    make_lms()
    SchoolClass.objects.create(id="789", name="new")
    Activity.objects.create(id="789/a0", school_class_id="789", title="x")
    assert "789" in lms.class_ids()


def test_creating_does_not_block_inserts_into_existing_partitions(committed_lms):
    ddl.ensure_partition("123", "2023_fall")
    with connect(autocommit=False) as creator, connect() as writer:
        # A creator holding its transaction open after creating a sibling leaf...
        creator.execute("SELECT activity_grades_ensure_partition('123', '2024_spring')")
        # ...must not block a grade for an existing partition of the same class.
        writer.execute("SET lock_timeout = '3s'")
        writer.execute(INSERT, ["w1", "123/a0", "s1", "2023-09-01+00"])
        locks = creator.execute(
            "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() "
            "AND relation = 'activity_grades_class_123'::regclass"
        ).fetchall()
        # Neither conflicts with the RowExclusiveLock an INSERT takes.
        assert {m for (m,) in locks} <= {"ShareUpdateExclusiveLock", "RowExclusiveLock"}
        creator.commit()
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1


def test_two_sessions_racing_for_the_same_new_partition(committed_lms):
    """Both inserts succeed and exactly one table is created."""
    with connect(autocommit=False) as first, connect(autocommit=False) as second:
        first.execute(INSERT, ["r1", "456/a0", "s1", "2024-02-01+00"])  # creates, holds the lock
        done = threading.Event()

        def late():
            second.execute(INSERT, ["r2", "456/a1", "s2", "2024-02-02+00"])  # waits for first
            second.commit()
            done.set()

        thread = threading.Thread(target=late)
        thread.start()
        assert not done.wait(0.5), "second insert should wait for the first creator"
        first.commit()
        thread.join(10)
        assert done.is_set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM activity_grades_partition WHERE class_id = '456'")
        assert cursor.fetchone()[0] == 2  # the class table and one leaf
        assert where_is(cursor, "r2") == "activity_grades_class_456_term_2024_spring"
        assert assert_tree_consistent(cursor) == 2


def test_race_where_the_first_creator_rolls_back(committed_lms):
    with connect(autocommit=False) as first, connect(autocommit=False) as second:
        first.execute(INSERT, ["r1", "456/a0", "s1", "2024-02-01+00"])
        thread = threading.Thread(
            target=lambda: (
                second.execute(INSERT, ["r2", "456/a1", "s2", "2024-02-02+00"]),
                second.commit(),
            )
        )
        thread.start()
        first.rollback()
        thread.join(10)
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 1
        assert where_is(cursor, "r2") == "activity_grades_class_456_term_2024_spring"


def test_concurrent_writers_while_create_partitions_runs(committed):
    """Hostile ids, back-dated and between-term rows, 4 writers, create_partitions at once."""
    from tests.test_naming import HOSTILE

    terms = [
        ("2023 Fall'", dt.date(2023, 8, 1), dt.date(2023, 12, 31), "2023"),
        ("spring;24", dt.date(2024, 1, 15), dt.date(2024, 5, 31), "2023"),
        ("Ω" * 100, dt.date(2024, 8, 1), dt.date(2024, 12, 20), "2024"),
    ]
    make_lms(class_ids=HOSTILE, activities_per_class=2, terms=terms)
    days = [
        dt.datetime(2023, 8, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=17 * i)
        for i in range(600)
    ]  # spans terms and the gaps between them
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            with connect() as conn:
                for i in range(150):
                    class_id = HOSTILE[(w + i) % len(HOSTILE)]
                    conn.execute(
                        INSERT,
                        [
                            f"w{w}-{i}",
                            f"{class_id}/a{i % 2}",
                            f"s{w}-{i}",
                            days[(i * 4 + w) % len(days)],
                        ],
                    )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    run("--all-terms")
    for t in threads:
        t.join(60)
    assert not errors, errors
    with connection.cursor() as cursor:
        assert assert_tree_consistent(cursor) == 600
    report = StringIO()
    call_command("partition_report", "--format", "json", "--exact", stdout=report)
    data = json.loads(report.getvalue())
    assert data["total_rows"] == 600 and data["rows_in_parent"] == 0
