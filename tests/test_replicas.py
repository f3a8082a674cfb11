"""Reporting reads on a real streaming standby; writes, locks and fresh reads on the primary.

A primary and a hot standby cloned from it (``pg_basebackup -R``), both servers of the
test's own (tests/pg_servers.py). The demo project runs against them in subprocesses
(``DATABASE_URL`` the primary, ``DATABASE_REPLICA_URL`` the standby): the router sends
the app's reads to the standby and its writes to the primary; a context that wrote
reads the primary (read-your-writes, across requests through the middleware's cookie);
a standby whose replay is paused past ``REPLICA_MAX_LAG``, then one that is stopped,
sends reads back to the primary, logged once; ``check_partitions`` says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psycopg
import pytest
from django.test import override_settings

from activity_grades.core.settings import app_settings
from activity_grades.models import ActivityGrade
from activity_grades.routers import ReplicaRouter
from bench import legacy

from .archive_support import ROOT
from .pg_servers import HAVE_SERVER_BINARIES, SKIP_REASON, own_server, standby_of

pytestmark = pytest.mark.skipif(not HAVE_SERVER_BINARIES, reason=SKIP_REASON)

CLASSES = 4


def _env(primary: str, replica: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TEST_DATABASE_NAME", None)
    env.update(
        DATABASE_URL=primary,
        DATABASE_REPLICA_URL=replica,
        DJANGO_SETTINGS_MODULE="gradeproject.settings",
        ACTIVITY_GRADES_REPLICA_MAX_LAG="1",
        ACTIVITY_GRADES_REPLICA_CHECK_SECONDS="0",
    )
    return env


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


# Shared by both phases: Django set up, helpers to wait for the standby.
PRELUDE = """
import contextvars, datetime, io, logging, time, django
django.setup()
from django.core.management import call_command
from django.db import connections
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from activity_grades import ActivityGrade, ActivityGradeService, replicas
from activity_grades.middleware import COOKIE, ReadYourWritesMiddleware

log = io.StringIO()
handler = logging.StreamHandler(log)
logging.getLogger("activity_grades").addHandler(handler)
logging.getLogger("activity_grades").setLevel(logging.INFO)

def fresh(fn):
    # A new request's context: no write of its own yet.
    return contextvars.Context().run(fn)

def caught_up():
    for _ in range(300):
        state = replicas.health("replica", fresh=True)
        if state.ok and state.lag_bytes == 0:
            return state
        time.sleep(0.1)
    raise SystemExit(f"the standby never caught up: {state}")

def standby(sql):
    with connections["replica"].cursor() as cur:
        cur.execute(sql)
"""

UP = (
    PRELUDE
    + """
svc = ActivityGradeService()
at = datetime.datetime(2023, 10, 2, 10, tzinfo=datetime.timezone.utc)
grade = svc.record("c1/a1", "s1", status="graded", submitted_at=at, created_at=at)
# This context wrote: it reads the primary (its own grade is there whatever the lag).
assert replicas.reader() == ActivityGrade.objects.filter(class_id="c1").db == "default"
caught_up()

def routed_reads():
    qs = ActivityGrade.objects.filter(class_id="c1")
    assert qs.db == "replica", qs.db
    on_primary = sorted(ActivityGrade.objects.using("default").filter(class_id="c1")
                        .values_list("id", flat=True))
    assert sorted(qs.values_list("id", flat=True)) == on_primary == [grade.id]
    with CaptureQueriesContext(connections["replica"]) as there, \\
            CaptureQueriesContext(connections["default"]) as here:
        book = svc.gradebook("c1", "2023_fall")
        record = svc.student_record("s1")
    assert [g.id for g in book] == [g.id for g in record] == [grade.id]
    assert there.captured_queries and not here.captured_queries, here.captured_queries
    # Writes go to the primary and open the window (an instance read on the replica too).
    g = ActivityGrade.objects.get(pk=grade.id)
    assert g._state.db == "replica"
    with CaptureQueriesContext(connections["default"]) as here:
        g.points = 5
        g.save()
    assert here.captured_queries, "save() sent nothing to the primary"
    assert replicas.reader() == "default", replicas.primary_until()
fresh(routed_reads)
# Locks too: Django asks the router for a database to write (which opens the window).
def locking():
    assert ActivityGrade.objects.select_for_update().filter(pk=grade.id).db == "default"
    assert replicas.reader() == "default"
fresh(locking)

# Read-your-writes across requests: the response of a request that wrote carries a
# cookie; the next request that brings it reads the primary, one without it the replica.
def writes(request):
    svc.record("c2/a1", "s2", status="graded", submitted_at=at, created_at=at)
    return HttpResponse(replicas.reader())
def reads(request):
    return HttpResponse(replicas.reader())
rf = RequestFactory()
wrote = fresh(lambda: ReadYourWritesMiddleware(writes)(rf.post("/")))
assert wrote.content == b"default" and COOKIE in wrote.cookies
caught_up()
after = rf.get("/")
after.COOKIES[COOKIE] = wrote.cookies[COOKIE].value
assert fresh(lambda: ReadYourWritesMiddleware(reads)(after)).content == b"default"
assert fresh(lambda: ReadYourWritesMiddleware(reads)(rf.get("/"))).content == b"replica"
bad = rf.get("/")
bad.COOKIES[COOKIE] = "nan"
assert fresh(lambda: ReadYourWritesMiddleware(reads)(bad)).content == b"replica"

# Lag: replay paused, the primary moves on; past REPLICA_MAX_LAG (1 s) reads go to the
# primary, which has the new grade; logged once however many reads.
def on_standby(sql):
    with connections["replica"].cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]
standby("SELECT pg_wal_replay_pause()")
while on_standby("SELECT pg_get_wal_replay_pause_state()") != "paused":
    time.sleep(0.05)
late = svc.record("c3/a1", "s3", status="graded", submitted_at=at, created_at=at)
while not on_standby("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"):
    time.sleep(0.05)  # received, not replayed
time.sleep(1.5)
def lagging():
    # A lag past the limit counts once seen on asks a second apart (replicas.CONFIRM_SECONDS).
    assert replicas.health("replica").ok
    time.sleep(1.1)
    for _ in range(5):
        assert replicas.reader() == "default"
    assert [g.id for g in ActivityGrade.objects.filter(class_id="c3")] == [late.id]
    state = replicas.health("replica", fresh=True)
    assert not state.ok and state.lag_seconds > 1 and state.lag_bytes > 0, state
fresh(lagging)
out = io.StringIO()
call_command("check_partitions", stdout=out)
assert "lags" in out.getvalue() and "REPLICA_MAX_LAG" in out.getvalue(), out.getvalue()
# The metrics say so too (JSON and Prometheus).
from activity_grades.reporting import metrics, prometheus
data = metrics.collect()
(shown,) = data["replicas"]
assert shown["alias"] == "replica" and shown["fit"] is False and shown["lag_seconds"] > 1, shown
text, _ = prometheus.exposition(data)
assert b'activity_grades_replica_fit{replica="replica"} 0.0' in text, text
assert b'activity_grades_replica_lag_seconds{replica="replica"}' in text
standby("SELECT pg_wal_replay_resume()")
caught_up()
assert fresh(replicas.reader) == "replica"
assert log.getvalue().count("lags") == 1, log.getvalue()
assert "reads go to it" in log.getvalue()
print("UP OK")
"""
)

DOWN = (
    PRELUDE
    + """
def down():
    for _ in range(5):
        assert replicas.reader() == "default"
    assert ActivityGrade.objects.filter(class_id="c1").count() == 1
    assert ActivityGradeService().gradebook("c1", "2023_fall")
fresh(down)
assert log.getvalue().count("unreachable") == 1, log.getvalue()
out = io.StringIO()
call_command("check_partitions", stdout=out)
assert "unreachable" in out.getvalue(), out.getvalue()
print("DOWN OK")
"""
)


def test_reports_read_a_streaming_standby_writes_and_fresh_reads_the_primary():
    with own_server("ag-primary-") as primary:
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE grades")
        env = _env(primary.url("grades"), primary.url("grades"))  # no standby yet
        env.pop("DATABASE_REPLICA_URL")
        _run(env, "manage.py", "migrate", "-v0")
        with psycopg.connect(primary.url("grades"), autocommit=True) as conn:
            legacy.seed(conn, CLASSES, 2)
        _run(env, "manage.py", "create_partitions", "--all-terms")
        with standby_of(primary) as replica:
            env = _env(primary.url("grades"), replica.url("grades"))
            assert "UP OK" in _run(env, "-c", textwrap.dedent(UP))
            replica.stop()
            assert "DOWN OK" in _run(env, "-c", textwrap.dedent(DOWN))


def test_replica_settings_are_checked():
    with override_settings(ACTIVITY_GRADES={"READ_REPLICAS": ["nope"]}):
        assert any(k == "READ_REPLICAS" for k, _ in app_settings.validate())
    with override_settings(ACTIVITY_GRADES={"READ_REPLICAS": ["default"]}):
        assert ("READ_REPLICAS", "must not name the primary 'default'") in app_settings.validate()
    with override_settings(ACTIVITY_GRADES={"REPLICA_MAX_LAG": -1}):
        assert any(k == "REPLICA_MAX_LAG" for k, _ in app_settings.validate())
    with override_settings(ACTIVITY_GRADES={}):
        assert app_settings.READ_REPLICAS == [] and app_settings.validate() == []


def test_without_replicas_the_router_has_no_opinion():
    router = ReplicaRouter()
    with override_settings(ACTIVITY_GRADES={}):
        assert router.db_for_read(ActivityGrade) is None
        assert router.db_for_write(ActivityGrade) is None
        assert router.allow_migrate("default", "activity_grades") is None
