"""run_partition_maintenance: steps, settings toggles, one run at a time, run record."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from activity_grades.core.constants import MAINTENANCE_LOCK_KEY
from activity_grades.operations import maintenance

from .archive_support import add_current_term, add_grades, connect, ids, manage, scalar


def with_settings(**extra):
    return override_settings(ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, **extra})


def run() -> str:
    out = StringIO()
    call_command("run_partition_maintenance", stdout=out)
    return out.getvalue()


def test_creates_partitions_analyzes_and_records(lms):
    add_current_term()
    out = run()
    assert "Maintenance done: created 4 partitions" in out  # 2 class tables + 2 current-term
    tables = ids("SELECT table_name FROM activity_grades_partition WHERE status = 'live'")
    assert "activity_grades_class_123_term_current" in tables
    assert "analyzed 4" in out and "skipped: archive, retention" in out
    assert maintenance.last_success() is not None
    summary = json.loads(scalar("SELECT summary::text FROM activity_grades_maintenance_run"))
    assert set(summary["analyzed"]) == tables
    assert "created 0 partitions" in run()  # idempotent


def test_archive_and_retention_steps(lms):
    add_current_term(year="2099-2100")
    add_grades("123/a0", "2023-09-01", 10, "old-")
    add_grades("123/a1", "2024-09-01", 5, "old24-")
    with with_settings(MAINTENANCE_ARCHIVE=True):
        out = run()
    assert "archived 2 (15 rows)" in out
    assert scalar("SELECT count(*) FROM archived_activity_grades") == 15
    assert ids("SELECT academic_year FROM activity_grades_archive_year") == {
        "2023-2024",
        "2024-2025",
    }
    with with_settings(MAINTENANCE_RETENTION=True, RETENTION_YEARS=1):
        out = run()
    assert "retention dropped 2 archive tables (15 rows)" in out
    assert scalar("SELECT count(*) FROM archived_activity_grades") == 0


def test_steps_can_be_turned_off(lms):
    add_current_term()
    off = dict(
        MAINTENANCE_CREATE=False,
        MAINTENANCE_ARCHIVE=False,
        MAINTENANCE_RETENTION=False,
        MAINTENANCE_ANALYZE=False,
    )
    with with_settings(**off):
        out = run()
    assert "skipped: create, archive, retention, analyze" in out
    assert scalar("SELECT count(*) FROM activity_grades_partition") == 0


def test_retention_step_needs_a_policy(lms):
    with with_settings(MAINTENANCE_RETENTION=True, RETENTION_YEARS=None):
        assert "skipped: archive, retention" in run()


def test_failure_exits_non_zero_and_is_recorded(lms):
    with with_settings(MAINTENANCE_RETENTION=True, RETENTION_YEARS=0):
        with pytest.raises(CommandError, match="maintenance failed: RetentionError"):
            run()
    assert scalar("SELECT error FROM activity_grades_maintenance_run").startswith("RetentionError")
    assert maintenance.last_success() is None
    # The lock was released: the next run works.
    assert "Maintenance done" in run()


def test_second_concurrent_run_exits_zero(lms):
    with connect() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [MAINTENANCE_LOCK_KEY])
        first = run()
        assert "Another run_partition_maintenance is running" in first, first
        # A real second process, as cron would start it: exit code 0 and the message.
        child = manage(["run_partition_maintenance"], "archiver_maint_second")
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "Another run_partition_maintenance is running; nothing done." in out, (out, err)
        # Released here rather than by closing: a closed connection's backend may still
        # hold the lock for a moment after the client has gone.
        other.execute("SELECT pg_advisory_unlock(%s)", [MAINTENANCE_LOCK_KEY])
    assert "Maintenance done" in run()


def test_the_health_page_shows_the_last_run(lms, admin_client):
    health = "/admin/activity_grades/partition/health/"
    assert "No maintenance run recorded" in admin_client.get(health).content.decode()
    add_current_term()
    run()
    page = admin_client.get(health).content.decode()
    assert "Last success:" in page and "by command" in page and "created 4 partitions" in page
    with with_settings(MAINTENANCE_RETENTION=True, RETENTION_YEARS=0):
        with pytest.raises(CommandError):
            run()
    page = admin_client.get(health).content.decode()
    assert "Last run failed at" in page and "RetentionError" in page and "(command)" in page
    assert "Last success:" in page  # the earlier success is still shown
