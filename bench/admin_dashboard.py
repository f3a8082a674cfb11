"""Render time of the admin partition dashboard, metrics and health checks with N partitions.

Run against a scratch database (it creates N_CLASSES x (N_TERMS + 1) empty partitions):

    DATABASE_URL=postgresql://.../scratch_db python manage.py migrate
    DATABASE_URL=postgresql://.../scratch_db PYTHONPATH=. python bench/admin_dashboard.py 1000 5
"""

import datetime as dt
import os
import statistics
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gradeproject.settings")
django.setup()
from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402

from activity_grades.operations import create, repair  # noqa: E402
from activity_grades.reporting import stats  # noqa: E402
from gradeproject.lms.models import Activity, SchoolClass, Term  # noqa: E402

N_CLASSES = int(sys.argv[1])
N_TERMS = int(sys.argv[2])
if not Term.objects.exists():
    for i in range(N_TERMS):
        y = 2020 + i // 2
        s, e = (
            (dt.date(y, 1, 10), dt.date(y, 6, 30))
            if i % 2 == 0
            else (dt.date(y, 8, 1), dt.date(y, 12, 20))
        )
        Term.objects.create(id=f"t{i:02d}", start_date=s, end_date=e, academic_year=str(y))
    SchoolClass.objects.bulk_create(SchoolClass(id=f"c{i:05d}", name="x") for i in range(N_CLASSES))
    Activity.objects.bulk_create(
        Activity(id=f"c{i:05d}/a", school_class_id=f"c{i:05d}", title="x") for i in range(N_CLASSES)
    )
    t = time.monotonic()
    create.plan(all_terms=True).apply()
    print("created partitions in", round(time.monotonic() - t, 1), "s")
    User.objects.create_superuser("root", "r@x", "pw")
print("partitions:", stats.overview().partitions.__len__())
c = Client()
c.force_login(User.objects.get(username="root"))


def timeit(label, fn, n=5):
    fn()
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    print(
        f"{label}: median {statistics.median(xs) * 1000:.0f} ms of {n} runs "
        f"(min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"
    )


timeit("stats.overview()", stats.overview)
timeit(
    "GET partitions page",
    lambda: c.get("/admin/activity_grades/partition/").status_code == 200 or sys.exit("bad"),
)
timeit(
    "GET page sorted -total_bytes, class filter",
    lambda: c.get("/admin/activity_grades/partition/?o=-total_bytes&class=c00042"),
)
timeit("GET /activity-grades/metrics (prometheus)", lambda: c.get("/activity-grades/metrics"))
timeit("repair.plan()", repair.plan, n=3)
timeit(
    "GET grades changelist (no class: asks for one)",
    lambda: c.get("/admin/activity_grades/activitygrade/"),
    n=3,
)
timeit(
    "GET grades changelist ?class=c00042",
    lambda: c.get("/admin/activity_grades/activitygrade/?class=c00042"),
    n=3,
)

# Editing one grade: the change form, a save and a delete read and write the grade's own
# table (the key index finds it); through the parent each would plan every partition.
at = dt.datetime(2020, 3, 2, 12, tzinfo=dt.timezone.utc)


def edit_and_delete():
    from activity_grades.models import ActivityGrade

    g = ActivityGrade.objects.create(
        activity_id="c00042/a", student_id="bench", status="graded", submitted_at=at, created_at=at
    )
    url = f"/admin/activity_grades/activitygrade/{g.pk}/change/"
    form = {
        "activity_id": "c00042/a",
        "student_id": "bench",
        "score": "7",
        "status": "graded",
        "submitted_at_0": "2020-03-02",
        "submitted_at_1": "12:00:00",
        "created_at_0": "2020-03-02",
        "created_at_1": "12:00:00",
        "content": "null",
        "attachments": "null",
        "commitment_met": "unknown",
    }
    ok = (
        c.get(url).status_code == 200
        and c.post(url, form).status_code == 302
        and c.post(
            f"/admin/activity_grades/activitygrade/{g.pk}/delete/", {"post": "yes"}
        ).status_code
        == 302
    )
    ok or sys.exit("admin edit/delete failed")


timeit("admin: open, save and delete one grade", edit_and_delete, n=5)
