"""A student's history at scale: student_history() over N archived grades in chunks.

Fills the compressed archive directly (no live leaves: building 10M live rows only to
archive them would take most of the run) with the app's own chunk copy
(``db.chunks.copy_row_group``) from generated rows: C classes x T ended terms, 25
activities per class, each class 200 students drawn from a pool of N / 100 students
(demo-like values). Then times ``student_history`` for 25 students (median) and shows the
plan of its chunk read (how many chunks, buffers). Scratch database on the DATABASE_URL
server, dropped at the end.

    python bench/history_bench.py --rows 1000000
    python bench/history_bench.py --rows 10000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import db as benchdb  # noqa: E402

ACTIVITIES = 25
STUDENTS_PER_CLASS = 200
TERMS = [
    ("t2019_fall", "2019-08-01", "2019-12-31", "2019-2020"),
    ("t2020_spring", "2020-01-15", "2020-05-31", "2019-2020"),
    ("t2020_fall", "2020-08-01", "2020-12-31", "2020-2021"),
    ("t2021_spring", "2021-01-15", "2021-05-31", "2020-2021"),
]

GROUP_ROWS = """
CREATE TEMP TABLE bench_group ON COMMIT DROP AS
SELECT 'g-' || %(k)s || '-' || a || '-' || s AS id, %(cls)s || '/a' || a AS activity_id,
       'student-' || abs(hashint8(%(k)s * 1000 + s)) %% %(pool)s AS student_id,
       40 + (a * s) %% 60 + 0.5 AS score, (a * s) %% 100 AS points, 'Good work.' AS feedback,
       'graded' AS status, ts AS submitted_at, ts + interval '2 days' AS graded_at,
       'teacher-1' AS graded_by_id, jsonb_build_object('answers', 1 + a %% 20) AS content,
       NULL::jsonb AS attachments, ts AS created_at, ts AS updated_at, false AS is_archived,
       false AS is_committed, NULL::text AS commitment_id,
       NULL::timestamptz AS commitment_deadline, NULL::boolean AS commitment_met,
       %(cls)s AS class_id, %(term)s AS term_id, now() AS archived_at
  FROM generate_series(1, %(activities)s) a, generate_series(1, %(students)s) s,
       LATERAL (SELECT %(start)s::timestamptz + (a * 86400 + s) * interval '1 second' AS ts) t
"""


def fill(rows: int) -> tuple[int, int]:
    from django.db import connection, transaction

    from activity_grades.db import catalog, chunks
    from activity_grades.operations.archive import ensure_archive_year

    per_group = ACTIVITIES * STUDENTS_PER_CLASS
    classes = max(1, rows // (per_group * len(TERMS)))
    pool = max(STUDENTS_PER_CLASS, rows // 100)
    with connection.cursor() as c:
        for term, start, end, year in TERMS:
            c.execute(
                "INSERT INTO terms (id, start_date, end_date, academic_year) "
                "VALUES (%s, %s, %s, %s)",
                [term, start, end, year],
            )
    targets = {year: ensure_archive_year(year) for *_, year in TERMS}
    k = 0
    started = time.perf_counter()
    for cls in range(classes):
        for term, start, _end, year in TERMS:
            k += 1
            with transaction.atomic(), connection.cursor() as c:
                c.execute(
                    GROUP_ROWS,
                    {
                        "k": k,
                        "cls": f"c{cls}",
                        "term": term,
                        "pool": pool,
                        "activities": ACTIVITIES,
                        "students": STUDENTS_PER_CLASS,
                        "start": start,
                    },
                )
                cols = [*catalog.grade_columns(c), "archived_at"]
                _, n = chunks.copy_row_group(
                    c, "bench_group", f"c{cls}", term, targets[year], cols, year, 1000
                )
                chunks.year_added(c, year, n, 0)
        if cls % 20 == 0:
            print(f"  {k * per_group:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE archived_activity_grades_chunk")
        c.execute("SELECT sum(row_count), count(*) FROM archived_activity_grades_chunk")
        total, n_chunks = c.fetchone()
    return int(total), int(n_chunks)


def measure(students: int) -> dict:
    from django.db import connection

    from activity_grades.service import student_history

    with connection.cursor() as c:
        c.execute(
            "SELECT DISTINCT student_id[1 + (chunk_id %% 50)::int] FROM "
            "archived_activity_grades_chunk WHERE chunk_id %% 7 = 0 LIMIT %s",
            [students],
        )
        names = [r[0] for r in c.fetchall()]
    times, grades = [], []
    for name in names:
        started = time.perf_counter()
        history = student_history(name)
        times.append((time.perf_counter() - started) * 1000)
        grades.append(len(history.archived))
    with connection.cursor() as c:
        c.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) SELECT chunk_id FROM "
            "archived_activity_grades_chunk WHERE student_id @> ARRAY[%s]",
            [names[0]],
        )
        plan = "\n".join(r[0] for r in c.fetchall())
    return {
        "students": len(names),
        "history_ms_median": statistics.median(times),
        "history_ms_max": max(times),
        "grades_median": statistics.median(grades),
        "plan": plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--students", type=int, default=25)
    parser.add_argument("--db", default=f"bench_history_{os.getpid()}")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    server = benchdb.server_url()
    scratch = benchdb.recreate(server, args.db)
    try:
        benchdb.setup_django(scratch)
        started = time.perf_counter()
        total, n_chunks = fill(args.rows)
        print(
            f"filled {total:,} archived grades in {n_chunks:,} chunks in "
            f"{time.perf_counter() - started:.0f} s"
        )
        m = measure(args.students)
        print(
            f"student_history over {total:,} archived grades: median {m['history_ms_median']:.1f}"
            f" ms (max {m['history_ms_max']:.1f} ms) for {m['students']} students with a median "
            f"of {m['grades_median']:.0f} archived grades each"
        )
        print("the chunk read of one student:\n" + m["plan"])
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            benchdb.drop(server, args.db)


if __name__ == "__main__":
    main()
