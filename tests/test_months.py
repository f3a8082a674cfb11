"""Monthly partitions (issue 15): PARTITION_GRANULARITY, month tables under a term's table,
routing and reads through them, create_partitions and --regranulate (online, verified,
racing writers, killed and rerun), against real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from io import StringIO

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import connection
from psycopg import sql

from activity_grades import ActivityGrade, ActivityGradeService
from activity_grades.core.constants import Granularity
from activity_grades.db import dispatch, months
from activity_grades.db.registry import invalidate_cache
from activity_grades.operations import regranulate, repair
from activity_grades.operations.faults import FAULT_ENV
from activity_grades.reporting import metrics
from gradeproject.lms.models import Term
from tests.admin_support import staff
from tests.archive_support import manage, scalar
from tests.conftest import TERMS, make_lms
from tests.helpers import connect

MONTH = "month"
FALL = "2023_fall"  # 2023-08-01 .. 2023-12-31: five months

INSERT_SPREAD = """
INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, created_at)
SELECT %(prefix)s || i, %(activity)s, %(student)s || (i %% %(students)s), 'graded', now(),
       %(at)s::timestamptz + (i * %(days)s / %(n)s) * interval '1 day' + i * interval '1 second'
  FROM generate_series(1, %(n)s) i
"""


def spread(
    activity: str, n: int, prefix: str, at: str = "2023-08-01", days: int = 150, student="stu"
) -> None:
    """n grades of one activity spread over ``days`` days from ``at``, one student each."""
    params = {"prefix": prefix, "activity": activity, "students": n, "at": at, "days": days}
    with connection.cursor() as cur:
        cur.execute(INSERT_SPREAD, {**params, "n": n, "student": student})


def rows(query: str, params=None) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(query, params or [])
        return cur.fetchall()


def ids(query: str, params=None) -> set:
    return {r[0] for r in rows(query, params)}


def run(*args, **kwargs) -> str:
    out = StringIO()
    call_command("create_partitions", *args, stdout=out, **kwargs)
    return out.getvalue()


def assert_months_consistent() -> int:
    """Every row is in the leaf its registry rows say: a month table of its term holding
    its created_at when the term is by month (or still in the term table itself, before a
    regranulate finished: ``allow_term`` not needed here), the term table otherwise; the
    key index matches the tree; nothing in the parent."""
    assert scalar("SELECT count(*) FROM ONLY activity_grades") == 0
    found = rows(
        """
        SELECT g.id, g.tableoid::regclass::text, p.table_name, p.granularity,
               (SELECT m.table_name FROM activity_grades_month m
                 WHERE m.class_id = g.class_id AND m.term_id = g.term_id AND m.status = 'live'
                   AND g.created_at >= m.starts_at AND g.created_at < m.ends_at)
          FROM activity_grades g
          JOIN activity_grades_partition p
            ON p.class_id = g.class_id AND p.term_id IS NOT DISTINCT FROM g.term_id
        """
    )
    for gid, table, term_table, granularity, month_table in found:
        want = month_table if granularity == MONTH and month_table else term_table
        assert table == want, (gid, table, want)
    assert scalar("SELECT count(DISTINCT id) FROM activity_grades") == len(found)
    assert (
        scalar(
            "SELECT count(*) FROM activity_grades g FULL JOIN activity_grades_key k ON k.id = g.id "
            "WHERE g.id IS NULL OR k.id IS NULL OR k.class_id IS DISTINCT FROM g.class_id "
            "OR k.term_id IS DISTINCT FROM g.term_id"
        )
        == 0
    ), "key index out of step"
    return len(found)


@pytest.fixture
def by_month(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "PARTITION_GRANULARITY": MONTH}
    months.install_granularity()
    yield
    settings.ACTIVITY_GRADES = {
        k: v for k, v in settings.ACTIVITY_GRADES.items() if k != "PARTITION_GRANULARITY"
    }
    months.install_granularity()
    invalidate_cache()


# ------------------------------------------------------------------------- the setting


def test_an_unknown_granularity_is_a_settings_error(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "PARTITION_GRANULARITY": "week"}
    found = [m for m in checks.run_checks() if m.id == "activity_grades.E100"]
    assert len(found) == 1
    assert "PARTITION_GRANULARITY" in found[0].msg and "'week'" in found[0].msg


@pytest.mark.django_db
def test_the_database_follows_the_setting(by_month):
    assert months.database_granularity() == MONTH


# ------------------------------------------------------------------- routing and reads


@pytest.mark.django_db
def test_grades_route_to_month_tables_created_on_demand(by_month):
    make_lms()
    spread("123/a0", 50, "g-")
    assert assert_months_consistent() == 50
    found = months.live_months(class_id="123", term_id=FALL)
    # 2023-08-01 .. 2023-12-31: August to December, each a child of the term table.
    assert [m.starts_at.astimezone(dt.timezone.utc).month for m in found] == [8, 9, 10, 11, 12]
    term_table = rows(
        "SELECT table_name, granularity FROM activity_grades_partition "
        "WHERE class_id = '123' AND term_id = %s",
        [FALL],
    )
    assert term_table[0][1] == MONTH
    assert {m.parent_table for m in found} == {term_table[0][0]}
    assert months.rows_in_table("default", term_table[0][0]) == 0
    # Each month table's CHECK: the term and its month, so the planner can skip it.
    check = scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND conname = 'activity_grades_month_check'",
        [found[1].table_name],
    )
    assert "created_at >=" in check and "2023-09-01" in check


@pytest.mark.django_db
def test_a_terms_reads_find_its_months(by_month):
    make_lms()
    spread("123/a0", 40, "g-")
    spread("123/a1", 40, "h-")
    svc = ActivityGradeService()
    book = svc.gradebook("123", FALL)
    assert len(book) == 80
    assert len(svc.student_grades_in_class("stu3", "123", FALL)) == 2
    assert sum(s.grades for s in svc.activity_stats("123", FALL)) == 80
    assert len(svc.student_record("stu3")) == 2
    assert svc.get("g-7").id == "g-7"
    assert ActivityGrade.objects.for_class("123", FALL).count() == 80
    assert ActivityGrade.objects.for_class("123").count() == 80
    assert ActivityGrade.objects.filter(class_id="123", term_id=FALL).count() == 80
    assert ActivityGrade.objects.filter(student_id="stu3").count() == 2
    assert ActivityGrade.objects.get(pk="h-9").activity_id == "123/a1"
    assert ActivityGrade.objects.filter(term_id=FALL, activity_id="123/a0").count() == 40


@pytest.mark.django_db
def test_updates_move_rows_between_months_and_terms(by_month):
    make_lms()
    spread("123/a0", 10, "g-")
    grade = ActivityGrade.objects.get(pk="g-1")
    grade.created_at = dt.datetime(2023, 11, 15, tzinfo=dt.timezone.utc)
    grade.save()
    grade.score = 9
    grade.save()
    grade = ActivityGrade.objects.get(pk="g-2")
    grade.created_at = dt.datetime(2024, 3, 3, tzinfo=dt.timezone.utc)  # 2024_spring
    grade.save()
    assert_months_consistent()
    assert ActivityGrade.objects.get(pk="g-1").score == 9
    where = scalar("SELECT tableoid::regclass::text FROM activity_grades WHERE id = 'g-1'")
    assert where == next(
        m.table_name
        for m in months.live_months(class_id="123", term_id=FALL)
        if m.starts_at.astimezone(dt.timezone.utc).month == 11
    )
    assert scalar("SELECT term_id FROM activity_grades WHERE id = 'g-2'") == "2024_spring"


@pytest.mark.django_db
def test_switching_the_setting_changes_only_new_terms(settings):
    make_lms()
    spread("123/a0", 10, "g-")  # 2023_fall by term
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "PARTITION_GRANULARITY": MONTH}
    months.install_granularity()
    spread("123/a0", 10, "f-", student="x")  # 2023_fall still by term
    spread("123/a1", 10, "s-", at="2024-01-20", days=100)  # 2024_spring: new, by month
    assert assert_months_consistent() == 30
    assert months.live_months(term_id=FALL) == []
    assert len(months.live_months(term_id="2024_spring")) == 4  # January to April
    assert ActivityGrade.objects.filter(class_id="123").count() == 30


# ---------------------------------------------------------------------- create_partitions


@pytest.mark.django_db
def test_create_partitions_premakes_the_months_and_dry_run_changes_nothing(by_month):
    make_lms(
        terms=[("now", dt.date.today() - dt.timedelta(40), dt.date.today() + dt.timedelta(80), "y")]
    )
    out = run("--dry-run", "-v", "2")
    assert "month from" in out and "CREATE TABLE" in out and "Dry run" in out
    assert scalar("SELECT count(*) FROM activity_grades_partition") == 0
    out = run()
    made = months.live_months(class_id="123", term_id="now")
    # The months not over yet: this one and the next two or three.
    assert 3 <= len(made) <= 4
    assert all(m.ends_at > dt.datetime.now(dt.timezone.utc) for m in made)
    assert run().startswith("Nothing to do.")


# ------------------------------------------------------------------------- regranulate


@pytest.mark.django_db
def test_regranulate_to_month_and_back(lms):
    spread("123/a0", 60, "g-")
    spread("456/a0", 30, "k-")
    before = ids("SELECT id FROM activity_grades")
    out = run("--regranulate", FALL, "--to", MONTH, "--dry-run")
    assert "2 tables" in out and "60 rows to move" in out and "Dry run" in out
    assert months.live_months() == []
    out = run("--regranulate", FALL, "--to", MONTH, "--batch-size", "7")
    assert "90 rows moved" in out and "10 month tables created" in out
    assert assert_months_consistent() == 90
    assert ids("SELECT id FROM activity_grades") == before
    assert run("--regranulate", FALL, "--to", MONTH).startswith("Nothing to do.")
    assert len(ActivityGradeService().gradebook("123", FALL)) == 60
    out = run("--regranulate", FALL, "--to", "term", "--batch-size", "11")
    assert "90 rows moved" in out and "10 dropped" in out
    assert months.live_months() == []
    assert scalar("SELECT count(*) FROM activity_grades_partition WHERE granularity = 'month'") == 0
    assert assert_months_consistent() == 90
    assert ids("SELECT id FROM activity_grades") == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--regranulate", FALL, "--to", "week"), "unknown granularity 'week'"),
        (("--regranulate", "nope", "--to", MONTH), "unknown term 'nope'"),
        (("--regranulate", "2024_fall", "--to", MONTH), "has no partitions"),
        (("--regranulate", FALL, "--term", FALL), "takes no --class"),
        (("--to", MONTH), "--to goes with --regranulate"),
        (("--regranulate", FALL, "--batch-size", "0"), "batch size must be 1 or more"),
    ],
)
def test_regranulate_user_errors(lms, args, says):
    spread("123/a0", 5, "g-")
    with pytest.raises(CommandError, match=says):
        run(*args)


@pytest.mark.django_db
def test_regranulate_of_an_archived_term_is_refused(lms):
    spread("123/a0", 5, "g-")
    call_command("archive_grades", "--term", FALL, "--noinput", "--force", stdout=StringIO())
    with pytest.raises(CommandError, match="is archived"):
        run("--regranulate", FALL, "--to", MONTH)


# ------------------------------------------------------------- racing writers, crashes


def _writer(stop: threading.Event, n: int, written: list, updated: list, errors: list):
    try:
        with connect() as conn:
            i = 0
            while not stop.is_set() or i < 20:
                i += 1
                grade = f"w{n}-{i}"
                conn.execute(
                    "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                    "submitted_at, created_at) VALUES (%s, '123/a1', %s, 'submitted', now(), "
                    "'2023-08-01'::timestamptz + %s * interval '1 day')",
                    [grade, grade, (i * 7) % 150],
                )
                written.append(grade)
                # An update of an old grade, through its term table as the app writes it.
                target = f"g-{(n * 37 + i) % 200 + 1}"
                cur = conn.execute(
                    "UPDATE activity_grades SET score = %s, feedback = %s "
                    "WHERE id = %s AND class_id = '123' AND term_id = '2023_fall'",
                    [i, f"by w{n}", target],
                )
                assert cur.rowcount == 1, (target, "update lost")
                updated.append((target, i, f"by w{n}"))
    except BaseException as exc:  # reported by the test
        errors.append(exc)


@pytest.mark.usefixtures("committed_lms")
def test_regranulate_racing_writers_loses_no_write(monkeypatch):
    spread("123/a0", 200, "g-")
    original = ids("SELECT id FROM activity_grades")
    monkeypatch.setenv(FAULT_ENV, "after_lock=0.05,between=0.05")
    stop = threading.Event()
    written: list[str] = []
    updated: list[tuple] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_writer, args=(stop, n, written, updated, errors)) for n in range(3)
    ]
    for t in threads:
        t.start()
    try:
        result = regranulate.plan(FALL, MONTH, batch_size=15).apply()
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    assert not errors, errors
    assert result.moved >= 200
    assert ids("SELECT id FROM activity_grades") == original | set(written)
    assert assert_months_consistent() == len(original) + len(written)
    # Each UPDATE found its row (the writers assert rowcount 1) and its value stayed.
    targets = {target for target, _, _ in updated}
    kept = rows("SELECT id, feedback FROM activity_grades WHERE id = ANY(%s)", [list(targets)])
    assert len(kept) == len(targets) and all(f.startswith("by w") for _, f in kept)
    assert months.rows_in_table("default", _term_table("123")) == 0


def _term_table(class_id: str) -> str:
    return scalar(
        "SELECT table_name FROM activity_grades_partition WHERE class_id = %s AND term_id = %s",
        [class_id, FALL],
    )


@pytest.mark.usefixtures("committed_lms")
def test_killed_regranulate_loses_nothing_and_rerun_finishes():
    spread("123/a0", 120, "g-")
    spread("456/a0", 40, "k-")
    original = ids("SELECT id FROM activity_grades")
    app = "regranulate_crash"
    child = manage(
        ["create_partitions", "--regranulate", FALL, "--to", MONTH, "--batch-size", "10"],
        app,
        {FAULT_ENV: "between=0.02,after_move=30"},
    )
    try:
        # Killed inside a batch's transaction, once some batches committed.
        deadline = dt.datetime.now() + dt.timedelta(seconds=90)
        while True:
            pid = scalar(
                "SELECT max(pid) FROM pg_stat_activity WHERE application_name = %s "
                "AND query LIKE 'SELECT pg_sleep%%' AND state = 'active'",
                [app],
            )
            if pid is not None or child.poll() is not None or dt.datetime.now() > deadline:
                break
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGKILL)
        scalar("SELECT pg_terminate_backend(%s)", [pid])
        child.wait(timeout=30)
        while scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]):
            pass
    finally:
        if child.poll() is None:
            child.kill()
    invalidate_cache()
    assert ids("SELECT id FROM activity_grades") == original
    left = months.rows_in_table("default", _term_table("123"))
    assert 0 < left <= 120  # the killed batch rolled back: its rows are still there
    out = run("--regranulate", FALL, "--to", MONTH, "--batch-size", "25")
    assert "Regranulated" in out
    assert months.rows_in_table("default", _term_table("123")) == 0
    assert months.rows_in_table("default", _term_table("456")) == 0
    assert ids("SELECT id FROM activity_grades") == original
    assert assert_months_consistent() == 160
    assert run("--regranulate", FALL, "--to", MONTH).startswith("Nothing to do.")


def test_terms_fixture_is_what_these_tests_assume():
    assert TERMS[0][0] == FALL


# ------------------------------------------------------------- check_partitions E021-E024


def problems() -> list:
    """What check_partitions finds, but E007 (these tests create only some class tables)."""
    return [p for p in repair.plan().problems if p.id != "activity_grades.E007"]


def problem_ids() -> list[str]:
    return sorted(p.id for p in problems())


@pytest.mark.django_db
def test_a_healthy_month_tree_has_no_problem(by_month):
    make_lms()
    spread("123/a0", 30, "g-")
    run("--class", "456", "--term", FALL)  # then nothing is missing (no E007)
    assert repair.plan().problems == []
    out = StringIO()
    call_command("check_partitions", stdout=out, stderr=StringIO())


@pytest.mark.django_db
def test_a_month_table_without_its_check_is_e021(by_month):
    make_lms()
    spread("123/a0", 30, "g-")
    month = months.live_months(class_id="123")[0]
    with connection.cursor() as cur:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT activity_grades_month_check")
            .format(sql.Identifier(month.table_name))
            .as_string(cur.connection)
        )
    (problem,) = problems()
    assert problem.id == "activity_grades.E021" and month.table_name in problem.message


@pytest.mark.django_db
def test_a_month_table_out_of_its_term_is_e022(by_month):
    make_lms()
    spread("123/a0", 30, "g-")
    month = months.live_months(class_id="123")[1]
    with connection.cursor() as cur:
        cur.execute(
            sql.SQL("ALTER TABLE {} NO INHERIT {}")
            .format(sql.Identifier(month.table_name), sql.Identifier(month.parent_table))
            .as_string(cur.connection)
        )
    found = problems()
    assert [p.id for p in found] == ["activity_grades.E022"]
    assert "no longer a child" in found[0].message


@pytest.mark.django_db
def test_an_interrupted_regranulate_is_e023_and_fixed(lms):
    spread("123/a0", 30, "g-")
    with connection.cursor() as cur:
        months.set_granularity(cur, "123", FALL, Granularity.MONTH)  # as a killed run leaves it
    invalidate_cache()
    (problem,) = problems()
    assert problem.id == "activity_grades.E023" and problem.fixable
    assert "--regranulate 2023_fall --to month" in problem.hint
    assert "rows moved" in problem.fix()
    assert problem_ids() == []
    assert assert_months_consistent() == 30


@pytest.mark.django_db
def test_a_setting_the_database_does_not_follow_is_e024(settings):
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "PARTITION_GRANULARITY": MONTH}
    (problem,) = [p for p in repair.plan().problems if p.id == "activity_grades.E024"]
    assert problem.fixable
    problem.fix()
    assert months.database_granularity() == MONTH
    assert problem_ids() == []


# ------------------------------------------------------------------ archive and restore


def archived_ids() -> set:
    return ids("SELECT id FROM archived_activity_grades")


@pytest.mark.django_db
@pytest.mark.parametrize("how", [("--term", FALL), ("--before-academic-year", "2024-2025")])
def test_archive_and_restore_a_term_by_month(by_month, how):
    make_lms()
    spread("123/a0", 60, "g-")
    spread("456/a0", 20, "k-", days=40)
    spread("123/a1", 10, "s-", at="2024-02-01", days=60)  # 2024_spring, kept live below
    before = ids("SELECT id FROM activity_grades WHERE term_id = %s", [FALL])
    out = StringIO()
    args = [*how, "--noinput"] + (["--force"] if how[0] == "--term" else [])
    call_command("archive_grades", *args, stdout=out)
    assert archived_ids() >= before
    assert ids("SELECT id FROM activity_grades WHERE term_id = %s", [FALL]) == set()
    assert months.live_months(term_id=FALL) == []
    statuses = ids("SELECT DISTINCT status FROM activity_grades_month WHERE term_id = %s", [FALL])
    assert statuses == {"archived"}
    assert scalar("SELECT count(*) FROM activity_grades_key WHERE term_id = %s", [FALL]) == 0
    call_command("restore_grades", "--term", FALL, "--noinput", stdout=StringIO())
    invalidate_cache()
    assert ids("SELECT id FROM activity_grades WHERE term_id = %s", [FALL]) == before
    # Back in their month tables, not in the term tables themselves.
    # (--before-academic-year also archived 2024_spring, which stays archived.)
    assert assert_months_consistent() == len(before) + (10 if how[0] == "--term" else 0)
    assert problems() == []
    assert len(ActivityGradeService().gradebook("123", FALL)) == 60


@pytest.mark.django_db
def test_archive_keep_detached_keeps_the_months_under_the_detached_term_table(by_month):
    make_lms()
    spread("123/a0", 30, "g-")
    term_table = _term_table("123")
    out = StringIO()
    call_command(
        "archive_grades", "--term", FALL, "--force", "--keep-detached", "--noinput", stdout=out
    )
    assert ids("SELECT id FROM activity_grades") == set()
    # The detached copy still reads every grade through its month tables.
    with connection.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT count(*) FROM {}")
            .format(sql.Identifier(term_table))
            .as_string(cur.connection)
        )
        assert cur.fetchone()[0] == 30
    assert ids("SELECT DISTINCT status FROM activity_grades_month") == {"detached"}
    assert problems() == []


# ----------------------------------------------------------- report, admin, metrics


@pytest.mark.django_db
def test_report_admin_and_metrics_show_months_under_their_term(by_month, client):
    make_lms()
    spread("123/a0", 50, "g-")
    out = StringIO()
    call_command("partition_report", stdout=out)
    text = out.getvalue()
    lines = text.splitlines()
    term_line = next(i for i, line in enumerate(lines) if "2023_fall (by month)" in line)
    # The term's five month tables follow its row, in order.
    assert [line.split()[2] for line in lines[term_line + 1 : term_line + 6]] == [
        "2023-08",
        "2023-09",
        "2023-10",
        "2023-11",
        "2023-12",
    ]
    assert "(5 month tables)" in text
    data = metrics.collect()
    assert data["month_tables"] == 5
    assert {p["kind"] for p in data["partitions"]} == {"class", "term", "month"}
    client.force_login(staff("root", superuser=True))
    page = client.get("/admin/activity_grades/partition/?kind=month").content.decode()
    assert page.count("a month table of this term") == 5
    page = client.get("/admin/activity_grades/partition/?class=123").content.decode()
    assert "(by month)" in page


@pytest.mark.django_db
def test_the_fast_path_covers_month_tables_not_their_term_tables(by_month):
    make_lms()
    spread("123/a0", 20, "g-")
    covered = set(dispatch.install())
    month_tables = {m.table_name for m in months.live_months()}
    assert month_tables <= covered
    assert _term_table("123") not in covered
    spread("123/a1", 20, "h-")  # through the dispatcher's static INSERTs
    assert assert_months_consistent() == 40


# ------------------------------------------------------- term dates changed, term deleted


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("end", "months_after"),
    [(dt.date(2024, 1, 7), 6), (dt.date(2023, 10, 10), 3)],
    ids=["extended", "shortened"],
)
def test_a_term_by_month_takes_new_dates(by_month, end, months_after):
    make_lms()
    spread("123/a0", 60, "g-")  # Aug 1 .. Dec 29
    Term.objects.filter(id=FALL).update(end_date=end)
    assert "activity_grades.E018" in {p.id for p in repair.plan().problems}
    out = run("--all-terms")
    assert "partitions given their term's new dates" in out
    assert len(months.live_months(class_id="123", term_id=FALL)) == months_after
    assert [m.ends_at.date() for m in months.live_months(class_id="123", term_id=FALL)][
        -1
    ] == end + dt.timedelta(days=1)
    # Grades of the extension are taken; a shortened term's late grades left it.
    late = dt.datetime(2024, 1, 5, 12, tzinfo=dt.timezone.utc)
    if end > dt.date(2024, 1, 1):
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at) VALUES ('late', '123/a1', 's1', 'graded', now(), %s)",
                [late],
            )
    assert assert_months_consistent() == 60 + (end > dt.date(2024, 1, 1))
    assert {p.id for p in repair.plan().problems} - {"activity_grades.E007"} == set()


@pytest.mark.django_db
def test_a_deleted_term_by_month_is_retired_with_its_months(by_month):
    make_lms()
    spread("123/a0", 40, "g-")
    month_tables = [m.table_name for m in months.live_months(class_id="123", term_id=FALL)]
    assert len(month_tables) == 5
    Term.objects.filter(id=FALL).delete()
    out = StringIO()
    call_command("check_partitions", "--fix", stdout=out, stderr=StringIO())
    assert "40 row(s) of deleted term '2023_fall' re-filed, 1 partition(s) dropped" in (
        out.getvalue()
    )
    assert scalar("SELECT count(*) FROM activity_grades WHERE term_id IS NULL") == 40
    assert months.live_months(class_id="123", term_id=FALL) == []
    for table in month_tables:
        assert scalar("SELECT to_regclass(%s) IS NULL", [table]) is True
    assert assert_months_consistent() == 40
