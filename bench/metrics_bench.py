"""The metrics endpoint at 10,000 partitions: scrape size and time, JSON beside it.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m bench.metrics_bench --classes 1000 --terms 9 [--repeat 5] [--keep]

Builds ``classes x (terms + 1)`` partitions (a class table and one leaf per term, so
10,000 with the defaults) in a scratch database with ``create.plan().apply()``, puts a few
rows in 1 leaf of 50 so sizes differ and ANALYZEs, records one maintenance run, then
times, median of ``--repeat`` after one warm-up:

* ``metrics.collect()``: the catalog snapshot every format is built from;
* the Prometheus text of ``PartitionCollector`` (collect + encode), its bytes and samples,
  at the default ``METRICS_TOP_PARTITIONS`` / ``METRICS_TOP_CLASSES`` (20 / 100);
* the HTTP endpoint through Django's test client (bearer token): text and ``?format=json``;
* for comparison, the sample count of the former hand-written format (one series per
  partition and metric: 10 per partition, plus the totals).

Prints a table and writes it to ``bench/results/metrics.md`` (git-ignored); drops the
scratch database unless ``--keep``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import db

RESULTS = Path(__file__).resolve().parent / "results" / "metrics.md"
TOKEN = "bench-token"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics_bench", description=__doc__)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--terms", type=int, default=9)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--database-name", default="scratch_metrics_bench")
    p.add_argument("--keep", action="store_true", help="keep the scratch database")
    return p.parse_args(argv)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls after one warm-up, and the last result."""
    out = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def build(classes: int, terms: int) -> float:
    import datetime as dt

    from django.db import connection
    from psycopg import sql

    from activity_grades.operations import create, maintenance
    from gradeproject.lms.models import Activity, SchoolClass, Term

    for i in range(terms):
        start = dt.date(2020 + i // 2, 1 if i % 2 == 0 else 8, 10)
        end = start + dt.timedelta(days=140)
        Term.objects.create(id=f"t{i:02d}", start_date=start, end_date=end, academic_year="y")
    SchoolClass.objects.bulk_create(SchoolClass(id=f"c{i:05d}", name="x") for i in range(classes))
    Activity.objects.bulk_create(
        Activity(id=f"c{i:05d}/a", school_class_id=f"c{i:05d}", title="x") for i in range(classes)
    )
    started = time.monotonic()
    create.plan(all_terms=True).apply()
    seconds = time.monotonic() - started
    with connection.cursor() as cur:
        cur.execute(
            "SELECT table_name, starts_at FROM activity_grades_partition "
            "WHERE term_id IS NOT NULL AND id % 50 = 0"
        )
        for n, (table, starts_at) in enumerate(cur.fetchall()):
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (id, activity_id, student_id, status, submitted_at, "
                    "created_at, class_id, term_id) SELECT {} || i, a, 's' || i, 'graded', "
                    "%s, %s, c, t FROM generate_series(1, %s) i, "
                    "(SELECT class_id c, term_id t, class_id || '/a' a FROM "
                    "activity_grades_partition WHERE table_name = %s) p"
                ).format(sql.Identifier(table), sql.Literal(f"{table}-")),
                [starts_at, starts_at, 10 + n % 200, table],
            )
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    maintenance.run()
    return seconds


def measure(repeat: int) -> list[tuple[str, str]]:
    from django.test import Client, override_settings
    from prometheus_client.parser import text_string_to_metric_families

    from activity_grades.reporting import metrics, prometheus

    collect_s, data = timed(metrics.collect, repeat)
    n = len(data["partitions"])
    text_s, body = timed(lambda: prometheus.exposition(metrics.collect())[0], repeat)
    families = list(text_string_to_metric_families(body.decode()))
    samples = sum(len(f.samples) for f in families)
    old_samples = 10 * n + len(data["partitions_by_status"]) + 9
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    from django.conf import settings

    with override_settings(ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, "METRICS_TOKEN": TOKEN}):
        http_s, response = timed(lambda: client.get("/activity-grades/metrics", **auth), repeat)
        assert response.status_code == 200
        json_s, js = timed(
            lambda: client.get("/activity-grades/metrics", {"format": "json"}, **auth), repeat
        )
    return [
        ("partitions", f"{n:,}"),
        ("`metrics.collect()` (catalog snapshot)", f"{collect_s * 1000:.0f} ms"),
        ("Prometheus text (collect + encode)", f"{text_s * 1000:.0f} ms"),
        ("Prometheus text: samples", f"{samples:,}"),
        ("Prometheus text: bytes", f"{len(body):,}"),
        ("GET /metrics (test client, token)", f"{http_s * 1000:.0f} ms"),
        ("GET /metrics?format=json", f"{json_s * 1000:.0f} ms, {len(js.content):,} bytes"),
        ("former hand-written format: samples", f"{old_samples:,}"),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    server = db.server_url()
    url = db.recreate(server, args.database_name)
    try:
        db.setup_django(url)
        print(f"building {args.classes} x {args.terms + 1} partitions ...", flush=True)
        created_s = build(args.classes, args.terms)
        print(f"created in {created_s:.0f} s; measuring (median of {args.repeat}) ...", flush=True)
        rows = measure(args.repeat)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            db.drop(server, args.database_name)
    lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
