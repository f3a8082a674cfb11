"""Fixtures' helpers shared by test_admin, test_health, test_monitoring, test_browser."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import Permission, User
from django.db import connection
from psycopg import sql

from activity_grades.models import ActivityGrade
from activity_grades.operations import create
from gradeproject.lms.models import Term


# A current and an upcoming term next to the fixed 2023/2024 ones of conftest.TERMS,
# so "upcoming partitions" has something to plan whatever today's date is.
def add_upcoming_terms() -> list[str]:
    today = dt.date.today()
    spans = [
        ("now_0", today - dt.timedelta(days=30), dt.date(today.year, 12, 31)),
        ("now_1", dt.date(today.year + 1, 1, 1), dt.date(today.year + 1, 12, 31)),
    ]
    for term_id, start, end in spans:
        Term.objects.create(id=term_id, start_date=start, end_date=end, academic_year="x")
    return [s[0] for s in spans]


def grade(activity_id: str, student_id: str, created_at: dt.datetime, **kw) -> ActivityGrade:
    return ActivityGrade.objects.create(
        activity_id=activity_id,
        student_id=student_id,
        status=kw.pop("status", "graded"),
        submitted_at=created_at,
        created_at=created_at,
        score=kw.pop("score", 1.0),
        **kw,
    )


FALL_2023 = dt.datetime(2023, 9, 1, 12, tzinfo=dt.timezone.utc)
SPRING_2024 = dt.datetime(2024, 2, 1, 12, tzinfo=dt.timezone.utc)
SUMMER_2024 = dt.datetime(2024, 7, 1, 12, tzinfo=dt.timezone.utc)  # between terms


def make_grades(n_123_fall: int = 30) -> None:
    """Grades in 123/2023_fall (the biggest), 123/2024_spring, 456/2023_fall, a class table."""
    for i in range(n_123_fall):
        grade("123/a0" if i % 2 else "123/a1", f"s{i}", FALL_2023, feedback="x" * 200)
    grade("123/a0", "t1", SPRING_2024)
    grade("456/a0", "u1", FALL_2023)
    grade("456/a1", "u2", SUMMER_2024)  # class table of 456: outside every term
    analyze_all()


def analyze_all() -> None:
    """ANALYZE every partition (sets pg_class.reltuples, which the estimates read)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM activity_grades_partition")
        for (table,) in cursor.fetchall():
            cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)).as_string())


def create_all_partitions() -> None:
    create.plan().apply()


def staff(username: str, *perms: str, superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(username, f"{username}@x.test", "pw")
    user = User.objects.create_user(username, f"{username}@x.test", "pw", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user
