"""apply_retention: drops whole archived academic years past the policy, nothing else."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from psycopg import sql

from activity_grades.operations import retention
from gradeproject.lms.models import Term

from .archive_support import add_grades, ids, rows, scalar

OLD_TERMS = [
    ("2021_fall", dt.date(2021, 8, 1), dt.date(2021, 12, 31), "2021-2022"),
    ("2022_fall", dt.date(2022, 8, 1), dt.date(2022, 12, 31), "2022-2023"),
]


@pytest.fixture
def archived_years(lms):
    """Archived grades for 2021-2022, 2022-2023, 2023-2024; live ones in 2024_fall."""
    for term_id, start, end, year in OLD_TERMS:
        Term.objects.create(id=term_id, start_date=start, end_date=end, academic_year=year)
    add_grades("123/a0", "2021-09-01", 10, "y21-")
    add_grades("123/a1", "2022-09-01", 20, "y22-")
    add_grades("456/a0", "2023-09-01", 30, "y23-")
    add_grades("456/a1", "2024-09-01", 40, "y24-")
    call_command(
        "archive_grades", "--before-academic-year", "2024-2025", "--noinput", stdout=StringIO()
    )


def archive_years() -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT academic_year, count(*) FROM archived_activity_grades GROUP BY 1 ORDER BY 1"
        )
        return dict(cursor.fetchall())


def test_dry_run_changes_nothing(archived_years):
    before_archive, before_live = rows(table="archived_activity_grades"), rows()
    out = StringIO()
    call_command("apply_retention", "--years", "2", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "Would drop 2 archive tables older than 2023-2024: 30 rows" in text
    assert "(2021-2022): 10 rows" in text and "(2022-2023): 20 rows" in text
    assert rows(table="archived_activity_grades") == before_archive
    assert rows() == before_live


def test_drops_exactly_what_the_policy_says(archived_years):
    live = rows()
    kept = rows("academic_year = '2023-2024'", table="archived_activity_grades")
    tables = ids("SELECT table_name FROM activity_grades_archive_year")
    out = StringIO()
    with override_settings(ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, "RETENTION_YEARS": 2}):
        call_command("apply_retention", "--noinput", stdout=out)
    assert "Dropped 2 archive tables, 30 rows" in out.getvalue()
    assert archive_years() == {"2023-2024": 30}
    assert rows("academic_year = '2023-2024'", table="archived_activity_grades") == kept
    assert rows() == live  # live partitions untouched
    left = ids("SELECT table_name FROM activity_grades_archive_year")
    assert len(left) == 1 and left < tables
    for table in tables - left:
        assert scalar("SELECT to_regclass(quote_ident(%s))", [table]) is None
    out = StringIO()
    call_command("apply_retention", "--years", "2", "--noinput", stdout=out)
    assert "Nothing to do." in out.getvalue()


def test_one_year_keeps_only_the_current_year(archived_years):
    call_command("apply_retention", "--years", "1", "--noinput", stdout=StringIO())
    assert archive_years() == {}  # current year is 2024-2025: nothing of it is archived
    assert scalar("SELECT count(*) FROM activity_grades") == 40


def test_confirmation_no(archived_years, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    out = StringIO()
    call_command("apply_retention", "--years", "1", stdout=out)
    assert "Aborted" in out.getvalue()
    assert archive_years() == {"2021-2022": 10, "2022-2023": 20, "2023-2024": 30}


def test_errors(archived_years):
    with pytest.raises(CommandError, match="no retention policy"):
        call_command("apply_retention", "--noinput")
    with pytest.raises(CommandError, match="at least 1 academic year"):
        call_command("apply_retention", "--years", "0", "--noinput")


def test_refuses_unmarked_archive_table(archived_years):
    table = scalar(
        "SELECT table_name FROM activity_grades_archive_year WHERE academic_year = '2021-2022'"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("COMMENT ON TABLE {} IS 'someone else'").format(sql.Identifier(table))
        )
    with pytest.raises(CommandError, match="refusing to drop"):
        call_command("apply_retention", "--years", "2", "--noinput", stdout=StringIO())
    assert archive_years()["2021-2022"] == 10


def test_plan_api(archived_years):
    plan = retention.plan(3)
    assert (plan.current_year, plan.oldest_kept) == ("2024-2025", "2022-2023")
    assert [i.academic_year for i in plan.items] == ["2021-2022"]
