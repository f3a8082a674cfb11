"""No ORM query can fill the server's lock table: a server of its own with few lock slots.

A PostgreSQL 15 server (Debian's binaries, started as an unprivileged user when the tests
run as root) with ``max_locks_per_transaction = 10`` and ``max_connections = 20``: 200
slots of shared lock table, while one query through the parent of this tree (over 800
partitions) locks about 4,000 relations. Eight sessions mix fast-path reads and writes
through the default manager beside one that keeps sending a query that pins no
partition: the default manager refuses that one, and nobody gets "out of shared memory".
The same query sent through the parent on purpose does fail that way (the control).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psycopg
import pytest

from bench import legacy

from .archive_support import ROOT
from .pg_servers import HAVE_SERVER_BINARIES, SKIP_REASON, own_server

CLASSES = 270  # x 3 terms + class tables: over 800 partitions

pytestmark = pytest.mark.skipif(not HAVE_SERVER_BINARIES, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def small_lock_server():
    with own_server("ag-locks-", max_connections="20", max_locks_per_transaction="10") as server:
        yield server.url()


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TEST_DATABASE_NAME", None)
    env["DATABASE_URL"] = url
    env["DJANGO_SETTINGS_MODULE"] = "gradeproject.settings"
    return env


def _manage(url: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=_env(url),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]


# One session of the mix: a loop of queries for a few seconds; prints its error count.
SESSION = textwrap.dedent(
    """
    import sys, time, django
    django.setup()
    from django.db import transaction
    from activity_grades import ActivityGrade, UnroutableQuery
    role, seconds = sys.argv[1], float(sys.argv[2])
    errors, refused, done, n = [], 0, 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        c = f"c{n % 270 + 1}"
        try:
            if role == "unroutable":
                try:
                    ActivityGrade.objects.filter(score__gt=1).count()
                except UnroutableQuery:
                    refused += 1
            elif role == "reader":
                list(ActivityGrade.objects.filter(student_id=f"s{n % 4000}")[:20])
                ActivityGrade.objects.filter(class_id=c, term_id="2023_fall").count()
                ActivityGrade.objects.filter(pk=f"g{n % 4000}").first()
            else:
                ActivityGrade.objects.create(
                    id=f"{role}-{n}", activity_id=f"{c}/a1", student_id=f"w-{role}-{n}",
                    status="graded", submitted_at="2023-10-02T10:00:00Z",
                    created_at="2023-10-02T10:00:00Z",
                )
                ActivityGrade.objects.filter(pk=f"{role}-{n}").update(points=1)
            done += 1
        except Exception as exc:
            errors.append(repr(exc)[:200])
    print(done, refused, len(errors), "|".join(sorted(set(errors))[:3]))
    """
)


@pytest.fixture(scope="module")
def tree_url(small_lock_server):
    """The tree of over 800 partitions, with grades, on the server with 200 lock slots."""
    url = small_lock_server.rsplit("/", 1)[0] + "/grades"
    with psycopg.connect(small_lock_server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE grades")
    _manage(url, "migrate", "-v0")
    with psycopg.connect(url, autocommit=True) as conn:
        legacy.seed(conn, CLASSES, 2)
    _manage(url, "create_partitions", "--all-terms")
    with psycopg.connect(url, autocommit=True) as conn:
        # A few rows per statement: one statement locks every partition it writes to,
        # to its end, and 200 slots hold only a handful of partitions' locks.
        for start in range(0, 4000, 8):
            conn.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at) SELECT 'g' || i, 'c' || (i %% 270 + 1) || '/a1', "
                "'s' || i, 'graded', now(), timestamp '2023-09-01' + (i %% 250) * interval "
                "'1 day' FROM generate_series(%s::int, %s::int) i",
                [start, start + 7],
            )
        partitions = conn.execute("SELECT count(*) FROM activity_grades_partition").fetchone()[0]
        capacity = conn.execute(
            "SELECT current_setting('max_locks_per_transaction')::int "
            "* current_setting('max_connections')::int"
        ).fetchone()[0]
    assert partitions > 800 and capacity == 200
    return url


def test_migration_0013_changes_every_partition_in_batches_the_lock_table_holds(tree_url):
    """0013 creates (and its reverse drops) a trigger on each of 800+ partitions: one
    transaction would need a lock per partition; batches of 100 fit in 200 slots."""
    count = (
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'activity_grades_readable' "
        "AND tgrelid IN (SELECT table_name::regclass FROM activity_grades_partition)"
    )
    with psycopg.connect(tree_url, autocommit=True) as conn:
        partitions = conn.execute("SELECT count(*) FROM activity_grades_partition").fetchone()[0]
        assert conn.execute(count).fetchone()[0] == partitions
    _manage(tree_url, "migrate", "activity_grades", "0012", "-v0")
    with psycopg.connect(tree_url, autocommit=True) as conn:
        assert conn.execute(count).fetchone()[0] == 0
    _manage(tree_url, "migrate", "-v0")
    with psycopg.connect(tree_url, autocommit=True) as conn:
        assert conn.execute(count).fetchone()[0] == partitions
        with pytest.raises(psycopg.errors.DatetimeFieldOverflow):
            conn.execute("UPDATE activity_grades_class_c1 SET graded_at = 'infinity'")


def test_no_orm_query_fills_the_lock_table(tree_url):
    url = tree_url
    roles = ["unroutable", "reader", "reader", "reader", "reader", "w1", "w2", "w3"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SESSION, role, "12"],
            cwd=ROOT,
            env=_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in roles
    ]
    results = []
    for role, proc in zip(roles, procs, strict=True):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        done, refused, errors, sample = (out.strip().split(" ", 3) + [""])[:4]
        results.append((role, int(done), int(refused), int(errors), sample))
    assert all(errors == 0 for _, _, _, errors, _ in results), results
    assert all(done > 0 for _, done, _, _, _ in results), results
    assert results[0][2] == results[0][1] > 0  # every unroutable query was refused
    # The control: the same query through the parent on purpose cannot even run here.
    control = textwrap.dedent(
        """
        import django
        django.setup()
        from activity_grades import ActivityGrade
        try:
            ActivityGrade.objects.across_all_partitions().filter(score__gt=1).count()
        except Exception as exc:
            print(repr(exc))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", control],
        cwd=ROOT,
        env=_env(url),
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "out of shared memory" in out
