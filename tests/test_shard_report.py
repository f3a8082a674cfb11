"""Shards in the report, the admin dashboard and the metrics (issue 16).

A foreign partition's figures come from its shard (one query per shard), each partition
says where it is, totals per shard add up, and a shard that is down leaves its partitions
listed as "shard unreachable (<alias>)" while the rest renders. The test database is the
coordinator; shard1 and shard2 are two PostgreSQL servers of the test's own
(tests/shard_support.py); class 123 is on shard1, 456 on shard2, 789 local. Where no
server can be started, or the coordinator has no postgres_fdw, the tests skip and say why.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import time

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from activity_grades.core.shards import alias_of_server
from activity_grades.db import shard_partitions, shard_stats
from activity_grades.reporting import metrics, prometheus, stats

from .admin_support import staff
from .shard_support import SHARD_DATABASE, shard_servers  # noqa: F401 - a fixture
from .test_shard_partitions import (
    FALL,
    SPRING,
    insert,
    leaf,
    on_shard,
    premade,
    sharded,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.usefixtures("shard_servers")
shard_test = pytest.mark.django_db(transaction=True, databases=["default", "shard1", "shard2"])

URL = "/admin/activity_grades/partition/"
METRICS = "/activity-grades/metrics"
SHARD_TOTAL_KEYS = {"shard", "partitions", "rows", "total_bytes", "up", "error"}


def report(*args: str) -> str:
    out = io.StringIO()
    call_command("partition_report", *args, stdout=out)
    return out.getvalue()


def with_grades() -> None:
    """Partitions of the three classes for two terms, grades in each, ANALYZEd."""
    premade()
    n = 0
    for cls, count in (("123", 12), ("456", 5), ("789", 3)):
        for i in range(count):
            n += 1
            insert(f"g{n}", f"{cls}/a{i % 2}", f"s{i}", FALL if i % 3 else SPRING)
    for alias in ("shard1", "shard2", "default"):
        with connections[alias].cursor() as cur:
            cur.execute("ANALYZE")


def rows_shown(html: str) -> set[str]:
    """The tables of the dashboard's partition rows."""
    return set(re.findall(r'<tr data-table="([^"]+)"', html))


def shard_figures(alias: str, table: str) -> tuple[int, int]:
    """(count(*), pg_total_relation_size) of a table, as the shard itself says."""
    count = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table))
    rows = on_shard(alias, count.as_string(None))[0][0]
    size = on_shard(alias, "SELECT pg_total_relation_size(%s::regclass)", [table])[0][0]
    return int(rows), int(size)


# -- the statistics model ------------------------------------------------------------------


@shard_test
def test_a_foreign_partitions_figures_are_its_shards(sharded):  # noqa: F811
    with_grades()
    ov = stats.overview(exact=True)
    by_table = {p.table_name: p for p in ov.partitions}
    for cls, alias in (("123", "shard1"), ("456", "shard2")):
        for term in (None, "2023_fall", "2024_spring"):
            p = by_table[leaf(cls, term)]
            rows, total = shard_figures(alias, p.table_name)
            assert (p.shard, p.shard_error, p.present) == (alias, None, True)
            assert p.rows == rows and p.exact
            assert p.total_bytes == total and total > 0  # the coordinator would say 0
            assert p.table_bytes + p.index_bytes + p.toast_bytes == total
    assert by_table[leaf("123", "2023_fall")].rows + by_table[leaf("123", "2024_spring")].rows == 12
    local = by_table[leaf("789", "2023_fall")]
    assert local.shard == "local" and local.shard_error is None
    # Totals per place add up to the whole, each the sum of its partitions.
    totals = {t.shard: t for t in ov.by_shard()}
    assert list(totals) == ["local", "shard1", "shard2"]
    assert sum(t.rows for t in totals.values()) == ov.total_rows == 20
    assert sum(t.total_bytes for t in totals.values()) == ov.total_bytes
    for alias, t in totals.items():
        mine = [p for p in ov.partitions if p.shard == alias]
        assert (t.partitions, t.rows, t.total_bytes) == (
            len(mine),
            sum(p.rows for p in mine),
            sum(p.total_bytes for p in mine),
        )
        assert t.up and t.error is None
    assert (totals["shard1"].rows, totals["shard2"].rows, totals["local"].rows) == (12, 5, 3)
    # Estimates (after ANALYZE on the shard) come from the shard too: not the coordinator's.
    estimated = {p.table_name: p for p in stats.overview().partitions}
    fall = estimated[leaf("123", "2023_fall")]
    assert not fall.exact and fall.rows >= shard_figures("shard1", fall.table_name)[0] > 0


@shard_test
def test_one_query_lists_foreign_partitions_for_the_service_and_the_report(sharded):  # noqa: F811
    premade()
    with connection.cursor() as cur:
        live = shard_partitions.foreign_partitions(cur)
        targets = {p.table: shard_partitions.foreign_target(cur, p.table) for p in live}
    wanted = {leaf(c, t) for c in ("123", "456") for t in (None, "2023_fall", "2024_spring")}
    assert {p.table for p in live} == wanted
    for p in live:
        assert targets[p.table] == (p.server, p.schema_name, p.table_name)
        assert shard_partitions.foreign_partition("default", p.table) == p
    assert shard_partitions.foreign_partition("default", leaf("789", "2023_fall")) is None
    # The report's list: every status (an archived row whose table is still there too).
    fall = leaf("456", "2023_fall")
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE activity_grades_partition SET status = 'detached' WHERE table_name = %s",
            [fall],
        )
        try:
            assert fall not in {p.table for p in shard_partitions.foreign_partitions(cur)}
            assert shard_partitions.foreign_partition("default", fall) is None
            every = shard_stats.foreign_tables()
        finally:
            cur.execute(
                "UPDATE activity_grades_partition SET status = 'live' WHERE table_name = %s",
                [fall],
            )
    assert [(r.table, r.server, r.alias, r.schema_name, r.table_name) for r in every] == [
        (p.table, p.server, alias_of_server(p.server), p.schema_name, p.table_name) for p in live
    ]


# -- partition_report ----------------------------------------------------------------------


@shard_test
def test_the_report_shows_placement_and_per_shard_totals(sharded):  # noqa: F811
    with_grades()
    payload = json.loads(report("--format", "json", "--exact"))
    parts = {p["table_name"]: p for p in payload["partitions"]}
    assert all({"shard", "shard_error"} <= set(p) for p in payload["partitions"])
    fall = parts[leaf("456", "2023_fall")]
    assert (fall["shard"], fall["shard_error"]) == ("shard2", None)
    assert (fall["rows"], fall["total_bytes"]) == shard_figures("shard2", fall["table_name"])
    assert parts[leaf("789", "2023_fall")]["shard"] == "local"
    assert [set(t) for t in payload["shards"]] == [SHARD_TOTAL_KEYS] * 3
    assert [t["shard"] for t in payload["shards"]] == ["local", "shard1", "shard2"]
    assert sum(t["rows"] for t in payload["shards"]) == payload["total_rows"] == 20
    assert sum(t["total_bytes"] for t in payload["shards"]) == payload["total_bytes"]
    text = report()
    header = text.splitlines()[0].split()
    assert header[-1] == "shard"
    line = next(x for x in text.splitlines() if leaf("123", "2023_fall") in x)
    assert line.split()[-1] == "shard1"
    assert any(x.split()[:2] == ["shard2", "3"] and x.endswith("up") for x in text.splitlines())
    csv_text = report("--format", "csv")
    assert csv_text.splitlines()[0].endswith(",shard,shard_error")


# -- the metrics ---------------------------------------------------------------------------


@shard_test
def test_per_partition_series_say_where_each_partition_is(sharded, settings):  # noqa: F811
    with_grades()
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "METRICS_TOP_PARTITIONS": 100}
    data = metrics.collect()
    body, _ = prometheus.exposition(data)
    families = list(text_string_to_metric_families(body.decode()))
    where = {p["table_name"]: p["shard"] for p in data["partitions"]}
    assert set(where.values()) == {"local", "shard1", "shard2"} and len(where) == 9
    for name, _kind, _help, attr in prometheus.PER_PARTITION:
        found = [s for f in families for s in f.samples if s.name == name]
        assert {s.labels["table"]: s.labels["shard"] for s in found} == where, name
        # Grouped by server: the per-shard totals (every partition is in the top 100).
        if attr == "total_bytes":
            by_shard: dict[str, float] = {}
            for s in found:
                by_shard[s.labels["shard"]] = by_shard.get(s.labels["shard"], 0) + s.value
            assert by_shard == {t["shard"]: t["total_bytes"] for t in data["by_shard"]}


# -- a shard that is down ------------------------------------------------------------------


@shard_test
def test_a_shard_that_is_down_breaks_no_surface(sharded, client, caplog):  # noqa: F811
    with_grades()
    stats.overview()  # every shard answers
    sharded[1].stop()  # shard2: class 456
    connections["shard2"].close()
    down = f"{stats.SHARD_UNREACHABLE} (shard2)"
    caplog.set_level(logging.WARNING, logger="activity_grades")
    # The model: shard2's partitions listed, marked.
    ov = stats.overview(exact=True)
    by_table = {p.table_name: p for p in ov.partitions}
    gone = by_table[leaf("456", "2023_fall")]
    assert (gone.shard, gone.shard_error, gone.rows, gone.total_bytes) == ("shard2", down, 0, 0)
    kept = by_table[leaf("123", "2023_fall")]
    assert kept.shard_error is None
    assert (kept.rows, kept.total_bytes) == shard_figures("shard1", kept.table_name)
    totals = {t.shard: t for t in ov.by_shard()}
    assert not totals["shard2"].up and totals["shard2"].error
    assert totals["shard1"].up and totals["local"].rows == 3
    # The report, text and JSON.
    text = report()
    assert down in text and leaf("456", "2023_fall") in text
    assert any(x.startswith("shard2") and "shard unreachable" in x for x in text.splitlines())
    payload = json.loads(report("--format", "json", "--exact"))
    shard2 = next(t for t in payload["shards"] if t["shard"] == "shard2")
    assert shard2["up"] is False and shard2["error"]
    assert {p["shard_error"] for p in payload["partitions"] if p["shard"] == "shard2"} == {down}
    # The metrics: JSON and Prometheus.
    data = metrics.collect()
    assert {t["shard"]: t["up"] for t in data["by_shard"]} == {
        "local": True,
        "shard1": True,
        "shard2": False,
    }
    body, _ = prometheus.exposition(data)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("activity_grades_shard_up", (("shard", "shard1"),))] == 1
    assert samples[("activity_grades_shard_up", (("shard", "shard2"),))] == 0
    # Estimates: the same figures as the JSON format's, shard2's unknown (NaN).
    for t in data["by_shard"]:
        rows = samples[("activity_grades_shard_rows", (("shard", t["shard"]),))]
        size = samples[("activity_grades_shard_bytes", (("shard", t["shard"]),))]
        if t["up"]:
            assert (rows, size) == (t["rows"], t["total_bytes"]) and size > 0
        else:
            assert math.isnan(rows) and math.isnan(size)
    assert samples[("activity_grades_shard_partitions", (("shard", "shard2"),))] == 3
    assert samples[("activity_grades_metrics_up", ())] == 1
    client.force_login(staff("viewer", "view_partition"))
    assert client.get(METRICS + "?format=json").status_code == 200
    # The admin page.
    page = client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert down in html and leaf("123", "2023_fall") in html
    assert "shard unreachable (shard2)" in client.get(URL + "?class=456").content.decode()
    # Logged once for the outage, not at every overview; and once when it answers again.
    said = [r.getMessage() for r in caplog.records if "shard 'shard2'" in r.getMessage()]
    assert len(said) == 1 and "did not answer" in said[0]
    sharded[1].start()
    assert stats.overview().shards == {"shard1": None, "shard2": None}
    said = [r.getMessage() for r in caplog.records if "shard 'shard2'" in r.getMessage()]
    assert len(said) == 2 and "answers again" in said[1]


@shard_test
def test_a_shard_that_hangs_is_shown_as_timed_out(sharded, settings, caplog):  # noqa: F811
    with_grades()
    settings.ACTIVITY_GRADES = {**settings.ACTIVITY_GRADES, "SHARD_STATS_TIMEOUT": "300ms"}
    caplog.set_level(logging.WARNING, logger="activity_grades")
    fall = leaf("456", "2023_fall")
    # Another session on shard2 holds a lock its size functions wait for; it ends itself
    # (idle_in_transaction_session_timeout) should the statistics query wait forever.
    with psycopg.connect(sharded[1].url(SHARD_DATABASE)) as holder:
        holder.execute("SET idle_in_transaction_session_timeout = '30s'")
        holder.execute(
            sql.SQL("LOCK TABLE ONLY {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(fall))
        )
        started = time.monotonic()
        ov = stats.overview(exact=True)
        assert time.monotonic() - started < 10
        data = metrics.collect()
        text = report()
    by_table = {p.table_name: p for p in ov.partitions}
    late = "shard timed out (shard2)"
    assert (by_table[fall].shard_error, by_table[fall].rows, by_table[fall].total_bytes) == (
        late,
        0,
        0,
    )
    assert by_table[leaf("456", None)].shard_error == late  # the whole shard: one query
    kept = by_table[leaf("123", "2023_fall")]
    assert kept.shard_error is None and kept.rows > 0
    assert ov.shards == {"shard1": None, "shard2": "timed out (SHARD_STATS_TIMEOUT 300ms)"}
    assert {t["shard"]: t["up"] for t in data["by_shard"]}["shard2"] is False
    assert late in text and "timed out (SHARD_STATS_TIMEOUT 300ms)" in text
    said = [r.getMessage() for r in caplog.records if "shard 'shard2'" in r.getMessage()]
    assert len(said) == 1 and "did not answer (timed out" in said[0]
    # The lock gone, the same connection answers again: the timeout was its transaction's.
    assert stats.overview().shards == {"shard1": None, "shard2": None}
    with connections["shard2"].cursor() as cur:
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone()[0] != "300ms"


# -- the admin -----------------------------------------------------------------------------


@shard_test
def test_the_admin_shows_placement_and_filters_by_shard(sharded, client):  # noqa: F811
    with_grades()
    client.force_login(staff("viewer", "view_partition"))
    html = client.get(URL).content.decode()
    assert 'data-sort="shard">Placement' in html
    assert 'id="ag-shards"' in html and 'data-shard="shard1"' in html
    assert '<option value="shard2">shard2</option>' in html
    only = rows_shown(client.get(URL + "?shard=shard1").content.decode())
    assert only == {leaf("123", t) for t in (None, "2023_fall", "2024_spring")}
    local = rows_shown(client.get(URL + "?shard=local").content.decode())
    assert local == {leaf("789", t) for t in (None, "2023_fall", "2024_spring")}
    one = client.get(URL + "?class=123").content.decode()
    assert 'id="ag-class-placement"' in one
    assert 'on shard <b class="ag-mono">shard1</b>' in one
    assert "lives\n  on this database" in client.get(URL + "?class=789").content.decode()
