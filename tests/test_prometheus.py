"""The prometheus_client collector: the JSON's values, bounded series, any registry."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from activity_grades import apps as app_module
from activity_grades.operations import create
from activity_grades.reporting import prometheus
from activity_grades.reporting.metrics import collect
from gradeproject.lms.models import Activity, SchoolClass

from .admin_support import analyze_all, make_grades, staff
from .archive_support import add_current_term

METRICS = "/activity-grades/metrics"


def with_settings(**extra):
    return override_settings(ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, **extra})


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(found: dict, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in found.items() if k[0] == name}


def scrape(client, **headers) -> tuple[dict, dict, str]:
    """The endpoint's JSON and text, read one after the other with nothing changing between."""
    client.force_login(staff("prom", "view_partition"))
    payload = client.get(METRICS, {"format": "json"}).json()
    response = client.get(METRICS, **headers)
    assert response.status_code == 200
    return payload, samples(response.content.decode()), response["Content-Type"]


@pytest.mark.django_db
def test_text_holds_the_jsons_values(client, lms):
    make_grades()
    add_current_term()
    call_command("run_partition_maintenance", stdout=StringIO())
    analyze_all()
    with with_settings(METRICS_TOP_PARTITIONS=2):
        data, found, content_type = scrape(client)
    assert content_type.startswith("text/plain; version=0.0.4")

    scalars = {
        "activity_grades_total_bytes": data["total_bytes"],
        "activity_grades_total_rows_estimate": data["total_rows"],
        "activity_grades_rows_in_parent": data["rows_in_parent"],
        "activity_grades_rows_in_class_tables": data["rows_in_class_tables"],
        "activity_grades_rows_outside_leaves": data["rows_outside_leaves"],
        "activity_grades_whole_tree_query_locks": data["locks"]["whole_tree_query_locks"],
        "activity_grades_lock_capacity": data["locks"]["lock_capacity"],
        "activity_grades_whole_tree_queries_to_fill": data["locks"]["whole_tree_queries_to_fill"],
        "activity_grades_maintenance_last_success_timestamp_seconds": data["maintenance"][
            "last_success_timestamp"
        ],
        "activity_grades_maintenance_last_duration_seconds": data["maintenance"][
            "last_duration_seconds"
        ],
        "activity_grades_maintenance_table_present": 1,
        "activity_grades_maintenance_failed_last": 0,
        "activity_grades_metrics_up": 1,
    }
    assert {name: found[(name, ())] for name in scalars} == scalars
    assert data["maintenance"]["last_duration_seconds"] > 0
    assert data["total_rows"] == 33 and data["rows_in_class_tables"] == 1

    by_status = series(found, "activity_grades_partitions", "status")
    assert by_status == data["partitions_by_status"]
    by_class = series(found, "activity_grades_class_bytes", "class")
    assert by_class == {c["class_id"]: c["total_bytes"] for c in data["by_class"]}
    rows_by_term = series(found, "activity_grades_term_rows_estimate", "term")
    assert rows_by_term == {t["term_id"] or "": t["rows"] for t in data["by_term"]}

    # Per-partition series: exactly the two largest partitions, with the JSON's values.
    # (Ties in size go to the table name that sorts last.)
    by_size = sorted(data["partitions"], key=lambda p: (p["total_bytes"], p["table_name"]))
    largest = by_size[-2:]
    assert len(data["partitions"]) == 7
    for name, _kind, _help, attr in prometheus.PER_PARTITION:
        got = series(found, name, "table")
        assert got == {p["table_name"]: p[attr] for p in largest}, name
        # Without shards every partition is on this database.
        assert set(series(found, name, "shard")) == {"local"}, name


@pytest.mark.django_db
def test_openmetrics_when_asked(client, lms):
    make_grades()
    data, found, content_type = scrape(client, HTTP_ACCEPT="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert found[("activity_grades_total_bytes", ())] == data["total_bytes"]


def expected_samples(top_partitions: int, classes: int, terms: int, statuses: int) -> int:
    per_partition = len(prometheus.PER_PARTITION) * top_partitions
    return per_partition + statuses + 3 * classes + 3 * terms + len(prometheus.SCALARS) + 1


@pytest.fixture
def big_tree(committed_lms):
    """2,000 partitions: 500 classes x (class table + the three terms of conftest.TERMS)."""
    SchoolClass.objects.bulk_create(SchoolClass(id=f"c{i:04d}", name="x") for i in range(498))
    Activity.objects.bulk_create(
        Activity(id=f"c{i:04d}/a", school_class_id=f"c{i:04d}", title="x") for i in range(498)
    )
    result = create.plan(all_terms=True).apply()
    assert len(result.created) == 2_000


def test_series_stay_bounded_at_two_thousand_partitions(big_tree):
    data = collect()
    text = prometheus.exposition(data)[0].decode()
    found = samples(text)
    assert len(data["partitions"]) == 2_000  # the JSON has them all
    # 20 largest partitions, 100 largest classes + "_other", 3 terms + class tables.
    assert len(found) == expected_samples(20, 101, 4, 3)
    tables = set(series(found, "activity_grades_partition_bytes", "table"))
    biggest = sorted(p["total_bytes"] for p in data["partitions"])[-20:]
    assert sorted(series(found, "activity_grades_partition_bytes", "table").values()) == biggest
    assert len(tables) == 20
    # The classes outside the top 100 are summed, so the per-class series add up.
    by_class = series(found, "activity_grades_class_partitions", "class")
    assert by_class[prometheus.OTHER_CLASSES] == 2_000 - 4 * 100
    assert (
        sum(series(found, "activity_grades_class_bytes", "class").values()) == data["total_bytes"]
    )
    with with_settings(METRICS_TOP_PARTITIONS=0, METRICS_TOP_CLASSES=None):
        found = samples(prometheus.exposition(collect())[0].decode())
    assert len(found) == expected_samples(0, 500, 4, 3)


@pytest.mark.django_db
def test_in_any_registry_and_the_default_one_on_request(lms):
    make_grades()
    own = CollectorRegistry()
    prometheus.register(own)
    found = samples(generate_latest(own).decode())
    assert found[("activity_grades_rows_in_parent", ())] == 0

    assert "activity_grades_total_bytes" not in generate_latest(REGISTRY).decode()
    with with_settings(PROMETHEUS_REGISTER=True):
        apps.get_app_config("activity_grades").ready()
        apps.get_app_config("activity_grades").ready()  # once per process
    try:
        assert len(app_module._registered) == 1
        found = samples(generate_latest(REGISTRY).decode())
        assert found[("activity_grades_total_rows_estimate", ())] == 33
    finally:
        REGISTRY.unregister(app_module._registered.pop())


@pytest.mark.django_db
def test_a_database_error_leaves_the_projects_metrics_answering(lms, caplog):
    own = CollectorRegistry()
    prometheus.register(own)
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute("ALTER TABLE activity_grades_partition RENAME TO gone_for_a_moment")
    with caplog.at_level("WARNING", "activity_grades"):
        found = samples(generate_latest(own).decode())
    assert found == {("activity_grades_metrics_up", ()): 0}
    assert "could not read the database" in caplog.text
