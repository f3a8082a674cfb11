"""How long ``check_partitions --keys`` takes: the key index against the stored rows.

    DATABASE_URL=postgresql://... python -m bench.key_check_bench --rows 1000000

Builds the benchmark's data set (``bench.dataset``: the app's tree only) in a scratch
database, then runs ``repair.check_key_index`` ``--repeat`` times on the consistent tree
and once more after breaking ``--drift`` key rows and ``--drift`` grades' keys by hand
(both must be found). Prints seconds per run and rows read per second; the scratch
database is dropped afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from . import db


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.key_check_bench", description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--leaves", type=int, default=150)
    p.add_argument("--terms", type=int, default=3)
    p.add_argument("--activities", type=int, default=10)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--drift", type=int, default=100)
    p.add_argument("--database-name", default="wt12_keycheck")
    p.add_argument("--keep", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    server = db.server_url()
    scratch = db.recreate(server, args.database_name)
    try:
        db.setup_django(scratch)
        run(args)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            db.drop(server, args.database_name)
    return 0


def run(args: argparse.Namespace) -> None:
    from django.db import connection

    from activity_grades.operations import repair

    from . import dataset

    shape = dataset.Shape.build(args.rows, args.leaves, args.terms, args.activities)
    print(f"data set: {shape}", flush=True)
    started = time.monotonic()
    dataset.make_lms(shape)
    dataset.make_source(shape)
    dataset.load_app(shape)
    dataset._run("DROP TABLE bench_source, bench_new")
    dataset.analyze()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM activity_grades_key")
        keys = cursor.fetchone()[0]
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(f"loaded {keys} grades in {time.monotonic() - started:.0f} s", flush=True)
    times = []
    for i in range(args.repeat):
        clock = time.monotonic()
        problems = repair.check_key_index(batch=args.batch)
        times.append(time.monotonic() - clock)
        assert problems == [], problems
        print(f"run {i + 1}: {times[-1]:.1f} s", flush=True)
    # Drift by hand: key rows without grades, grades without key rows.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activity_grades_key (id, activity_id, student_id, class_id, term_id) "
            "SELECT 'ghost' || i, 'x', 'ghost' || i, 'c00000', 't000' "
            "FROM generate_series(1, %s) i",
            [args.drift],
        )
        cursor.execute(
            "DELETE FROM activity_grades_key WHERE id IN "
            "(SELECT id FROM activity_grades_key WHERE id LIKE 'g0%%' ORDER BY id DESC LIMIT %s)",
            [args.drift],
        )
    clock = time.monotonic()
    problems = repair.check_key_index(batch=args.batch)
    drift_s = time.monotonic() - clock
    assert sorted(p.id for p in problems) == ["activity_grades.E016", "activity_grades.E017"]
    assert all(f"{args.drift} " in p.message for p in problems), [p.message for p in problems]
    median = statistics.median(times)
    print(
        f"PostgreSQL {version}; {keys} grades, {shape.leaves} leaves, batch {args.batch}: "
        f"median {median:.1f} s of {args.repeat} runs ({keys / median:,.0f} grades/s, each "
        f"read twice: key index and table); with {args.drift} + {args.drift} drifted rows "
        f"found in {drift_s:.1f} s",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
