"""The maintenance task on a real broker: a Celery worker process, real Redis or RabbitMQ.

Skipped only when no broker answers (the reason says which and why); CI runs them.
The worker's sessions are found by their application_name; a test holds a lock on the
LMS's activities table to stop a run at a known point (after it took the maintenance
lock, before its first step), with no sleep.
"""

from __future__ import annotations

import json

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout

from activity_grades import tasks
from activity_grades.operations import maintenance

from .archive_support import add_current_term, connect, drop_archive, ids, scalar
from .celery_support import WORKER_APP, Worker, find_broker, wait_for

BROKER, BACKEND, NO_BROKER = find_broker()
pytestmark = pytest.mark.skipif(NO_BROKER is not None, reason=str(NO_BROKER))
TIMEOUT = 120  # seconds: a hang fails the test instead of blocking the suite


@pytest.fixture(scope="module")
def celery_app():
    from gradeproject.celery import app

    app.conf.update(
        broker_url=BROKER,
        result_backend=BACKEND,
        broker_connection_timeout=10,
        result_expires=600,  # the tests' results leave the broker after 10 minutes
    )
    yield app
    app.close()


@pytest.fixture
def worker(committed_lms, celery_app):
    drop_archive()  # and the runs table's rows: committed, other tests would see them
    add_current_term()
    started = Worker(BROKER, BACKEND)
    try:
        yield started
    finally:
        started.stop()
        started.forget_queue(celery_app)
        drop_archive()


def send(worker: Worker):
    return tasks.run_partition_maintenance.apply_async(queue=worker.queue)


def result(async_result, worker: Worker):
    try:
        return async_result.get(timeout=TIMEOUT)
    except CeleryTimeout as exc:
        raise AssertionError(f"no result within {TIMEOUT} s:\n{worker.output()}") from exc


def blocked_backend(lms_lock) -> int | None:
    """The worker's session waiting for the lock the test holds on the activities table.

    Asked from a new session each time: pg_stat_activity is a snapshot per transaction.
    """
    holder = lms_lock.info.backend_pid
    with connect() as probe:
        row = probe.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock' AND %s = ANY(pg_blocking_pids(pid))",
            [WORKER_APP, holder],
        ).fetchone()
    return row[0] if row else None


def hold_activities():
    """A separate session holding ACCESS EXCLUSIVE on the activities table (until rollback)."""
    conn = connect(autocommit=False)
    conn.execute("LOCK TABLE activities IN ACCESS EXCLUSIVE MODE")
    return conn


HEALTH = "/admin/activity_grades/partition/health/"


def test_task_runs_maintenance_in_a_worker(worker, admin_client):
    sent = send(worker)
    summary = result(sent, worker)
    assert summary["ran"] is True and summary["retries"] == 0
    assert len(summary["created"]) == 4  # 2 class tables + 2 current-term leaves
    assert summary["origin"] == f"celery task {sent.id}"
    live = ids("SELECT table_name FROM activity_grades_partition WHERE status = 'live'")
    assert live == set(summary["created"])
    recorded = json.loads(scalar("SELECT summary::text FROM activity_grades_maintenance_run"))
    assert (
        recorded["origin"] == f"celery task {sent.id}" and recorded["created"] == summary["created"]
    )
    assert maintenance.last_success() is not None
    # The worker logs the result (the client may have it a moment before the log line).
    logged = f"Task {tasks.TASK_NAME}[{sent.id}] succeeded"
    wait_for(lambda: logged in worker.output(), TIMEOUT, "the worker's log line", worker)
    page = admin_client.get(HEALTH).content.decode()
    assert f"by celery task {sent.id}" in page and "created 4 partitions" in page


def test_two_tasks_at_once_make_one_run(worker):
    lms_lock = hold_activities()
    try:
        first, second = send(worker), send(worker)
        # One of them holds the maintenance lock and waits for the activities table ...
        wait_for(lambda: blocked_backend(lms_lock), TIMEOUT, "a run to block", worker)
        # ... so the other finds the lock taken and does nothing.
        # (Read from the worker's log: polling ready() is unreliable on the rpc:// backend
        # used with RabbitMQ.)
        done = wait_for(
            lambda: [r for r in (first, second) if f"[{r.id}] succeeded" in worker.output()],
            TIMEOUT,
            "one result",
            worker,
        )
        assert len(done) == 1
        assert result(done[0], worker)["ran"] is False
    finally:
        lms_lock.rollback()
        lms_lock.close()
    other = second if done[0] is first else first
    summary = result(other, worker)
    assert summary["ran"] is True and len(summary["created"]) == 4
    assert scalar("SELECT count(*) FROM activity_grades_partition") == 4


def test_dropped_connection_is_retried(worker):
    lms_lock = hold_activities()
    try:
        sent = send(worker)
        pid = wait_for(lambda: blocked_backend(lms_lock), TIMEOUT, "the run to block", worker)
        lms_lock.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        lms_lock.rollback()
        lms_lock.close()
    summary = result(sent, worker)
    assert summary["ran"] is True and summary["retries"] == 1
    assert len(summary["created"]) == 4
    assert "lost its database connection" in worker.output()


def test_other_errors_are_not_retried_and_are_recorded(worker, admin_client):
    lms_lock = hold_activities()
    try:
        sent = send(worker)
        pid = wait_for(lambda: blocked_backend(lms_lock), TIMEOUT, "the run to block", worker)
        lms_lock.execute("SELECT pg_cancel_backend(%s)", [pid])  # QueryCanceled, not a lost link
    finally:
        lms_lock.rollback()
        lms_lock.close()
    with pytest.raises(Exception, match="canceling statement due to user request"):
        result(sent, worker)
    assert sent.state == "FAILURE"
    error = scalar("SELECT error FROM activity_grades_maintenance_run")
    assert error.startswith("OperationalError: canceling statement due to user request")
    assert error.endswith(f"(celery task {sent.id})")
    assert maintenance.last_success() is None
    assert "lost its database connection" not in worker.output()
    page = admin_client.get(HEALTH).content.decode()
    assert "Last run failed at" in page and f"(celery task {sent.id})" in page


def test_the_documented_beat_schedule_names_the_task():
    assert tasks.BEAT_SCHEDULE["activity-grades-maintenance"]["task"] == (
        tasks.run_partition_maintenance.name
    )
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULE == tasks.BEAT_SCHEDULE
