"""partition_report formats and thresholds; the metrics endpoint and its access rules."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from activity_grades.reporting import metrics as monitoring
from activity_grades.reporting import stats

from .admin_support import make_grades, staff
from .helpers import leaf

pytestmark = pytest.mark.django_db
METRICS = "/activity-grades/metrics"


@pytest.fixture
def data(lms):
    make_grades()


def report(*args) -> str:
    out = io.StringIO()
    call_command("partition_report", *args, stdout=out)
    return out.getvalue()


# -- partition_report ------------------------------------------------------------


def test_report_formats(data):
    table = report()
    assert leaf("123", "2023_fall") in table and "rows in the parent itself: 0" in table
    payload = json.loads(report("--format", "json"))
    assert payload["rows_in_parent"] == 0 and len(payload["partitions"]) == 5
    rows = list(csv.DictReader(io.StringIO(report("--format", "csv"))))
    assert len(rows) == 5
    by_table = {r["table_name"]: r for r in rows}
    assert by_table[leaf("123", "2023_fall")]["rows"] == "30"
    assert by_table[leaf("123", None)]["term_id"] == ""
    exact = list(csv.DictReader(io.StringIO(report("--format", "csv", "--exact"))))
    assert {r["exact"] for r in exact} == {"True"}


def test_thresholds_exit_non_zero(data):
    assert leaf("123", "2023_fall") in report("--warn-rows", "30")  # not crossed
    with pytest.raises(CommandError, match=r"1 partition\(s\) over the threshold.*30 rows > 29"):
        report("--warn-rows", "29")
    biggest = max(p.total_bytes for p in stats.overview().partitions)
    report("--warn-bytes", str(biggest))
    with pytest.raises(CommandError, match="over the threshold"):
        report("--format", "json", "--warn-bytes", str(biggest - 1))


def test_threshold_exit_code_from_the_command_line(data):
    from django.core.management import execute_from_command_line

    with pytest.raises(SystemExit) as exc:
        execute_from_command_line(["manage.py", "partition_report", "--warn-rows", "0"])
    assert exc.value.code != 0


# -- endpoint ------------------------------------------------------------------


def test_anonymous_and_unprivileged_are_refused(client, data):
    assert client.get(METRICS).status_code == 401
    client.force_login(staff("plain"))
    assert client.get(METRICS).status_code == 403


@override_settings(ACTIVITY_GRADES={"METRICS_TOKEN": "s3cret"})
def test_bearer_token(client, data):
    assert client.get(METRICS, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get(METRICS, HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    table = leaf("123", "2023_fall")
    labels = (
        ("class", "123"),
        ("shard", "local"),
        ("status", "live"),
        ("table", table),
        ("term", "2023_fall"),
    )
    assert samples[("activity_grades_partition_rows_estimate", labels)] == 30
    assert samples[("activity_grades_rows_in_parent", ())] == 0
    assert samples[("activity_grades_rows_in_class_tables", ())] == 1
    assert samples[("activity_grades_rows_outside_leaves", ())] == 1
    assert samples[("activity_grades_partitions", (("status", "live"),))] == 5


def test_no_token_configured_means_login_only(client, data):
    assert client.get(METRICS, HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_staff_with_view_permission_gets_json(client, data):
    client.force_login(staff("mon", "view_partition"))
    payload = client.get(METRICS, {"format": "json"}).json()
    assert payload["rows_in_parent"] == 0
    assert payload["total_rows"] == 33
    assert {p["table_name"] for p in payload["partitions"]} >= {leaf("456", None)}
    assert payload["partitions_by_status"]["live"] == 5


@override_settings(ACTIVITY_GRADES={"MAINTENANCE_RUNS_TABLE": "admin_test_runs"})
def test_maintenance_age_missing_then_present(client, data):
    age = monitoring.maintenance_age()
    assert not age.table_present and math.isnan(age.seconds)
    client.force_login(staff("mon", "view_partition"))
    text = client.get(METRICS).content.decode()
    assert "\nactivity_grades_last_maintenance_age_seconds NaN\n" in text
    assert "\nactivity_grades_maintenance_table_present 0.0\n" in text
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE admin_test_runs (id serial, finished_at timestamptz)")
        cursor.execute("INSERT INTO admin_test_runs (finished_at) VALUES (now() - interval '1 h')")
    age = monitoring.maintenance_age()
    assert age.table_present and 3500 < age.seconds < 3700 + 600
    payload = client.get(METRICS, {"format": "json"}).json()
    assert payload["maintenance"]["table_present"] is True
    assert payload["maintenance"]["age_seconds"] > 3500


def test_slow_statements_report_why_when_unavailable(data):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        installed = cursor.fetchone() is not None
    qs = stats.slow_statements()
    if installed:
        assert qs.available or qs.reason
    else:
        assert not qs.available and "not installed" in qs.reason


def test_overview_sizes_add_up(data):
    ov = stats.overview()
    for p in ov.partitions:
        assert p.present
        assert p.total_bytes == p.table_bytes + p.index_bytes + p.toast_bytes
        assert p.index_bytes > 0
    assert abs(sum(p.share for p in ov.partitions) - 1) < 1e-9
    assert ov.largest.table_name == leaf("123", "2023_fall")
    terms = {t.term_id: t for t in ov.by_term()}
    assert terms["2023_fall"].partitions == 2 and terms[None].rows == 1


def test_slow_statements_with_the_extension_created(data):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'")
        if cursor.fetchone() is None:
            pytest.skip("pg_stat_statements is not shipped with this server")
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cursor.execute("SHOW shared_preload_libraries")
        preloaded = "pg_stat_statements" in cursor.fetchone()[0]
    qs = stats.slow_statements()
    if preloaded:
        assert qs.available
    else:
        # created but not loaded: reading the view fails; the page says why, and the
        # transaction is still usable afterwards (the failure was in a savepoint)
        assert not qs.available and "shared_preload_libraries" in qs.reason
    assert stats.overview().rows_in_parent == 0
