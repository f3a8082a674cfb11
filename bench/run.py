"""One command for every comparison, on one data set, in a scratch database.

    python -m bench.run --rows 1000000 --leaves 150 --repeat 3

Creates the scratch database on the DATABASE_URL server (the embedded one when unset),
installs the app with ``migrate``, builds the data set into every design
(see bench/dataset.py), runs the cases side by side, writes ``results.md`` and
``results.png`` to ``--output`` (default bench/results/, git-ignored) and drops the
scratch database unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

from . import db

log = logging.getLogger("bench")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the data set")
    p.add_argument("--leaves", type=int, default=150, help="(class, term) leaves holding data")
    p.add_argument("--terms", type=int, default=3, help="terms (leaves = classes x terms)")
    p.add_argument("--activities", type=int, default=10, help="activities per class")
    p.add_argument("--repeat", type=int, default=3, help="repetitions; the median is reported")
    p.add_argument("--single-rows", type=int, default=5000, help="rows of the single-row case")
    p.add_argument(
        "--batch-rows",
        type=int,
        default=50000,
        help="rows of the INSERT ... SELECT and bulk-ingest cases",
    )
    p.add_argument(
        "--archive-rows", type=int, default=1_000_000, help="rows of the archived term (0: skip)"
    )
    p.add_argument("--points", type=int, default=200, help="point queries per repetition")
    p.add_argument("--students", type=int, default=50, help="student records per repetition")
    p.add_argument("--gradebooks", type=int, default=10, help="gradebooks per repetition")
    p.add_argument(
        "--create-count", type=int, default=1000, help="new leaves created while an inserter runs"
    )
    p.add_argument(
        "--partition-counts",
        default="100,1000,5000,10000",
        help="leaf counts for the point-query sweep (comma separated)",
    )
    p.add_argument("--no-variants", action="store_true", help="skip the trigger diagnosis runs")
    p.add_argument("--database-name", default="scratch_bench", help="scratch database name")
    p.add_argument("--keep", action="store_true", help="keep the scratch database")
    p.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    return p.parse_args(argv)


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    server = db.server_url()
    scratch = db.recreate(server, args.database_name)
    results: list = []
    failed = False
    try:
        db.setup_django(scratch)
        run(args, scratch, results)
    except Exception:
        log.exception("benchmark stopped early; writing what was measured")
        failed = True
        if not results:
            raise
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            db.drop(server, args.database_name)
    from .report import chart, markdown

    args.output.mkdir(parents=True, exist_ok=True)
    header = getattr(args, "header", "# activity_grades benchmark")
    if failed:
        header += "\n\n**The run stopped early (see the log); the table is incomplete.**"
    text = markdown(results, header)
    (args.output / "results.md").write_text(text)
    (args.output / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    chart(results, args.output / "results.png")
    print(text)
    step(f"wrote {args.output / 'results.md'} and results.png")
    return 1 if failed else 0


def run(args: argparse.Namespace, scratch_url: str, results: list) -> None:
    """Build the data set and run every case, appending to ``results``."""
    from django.db import connection

    from . import cases, dataset

    shape = dataset.Shape.build(args.rows, args.leaves, args.terms, args.activities)
    step(f"data set: {shape}")
    dataset.make_lms(shape)
    count = dataset.make_source(shape)
    dataset.make_new_rows(shape, max(args.single_rows, args.batch_rows))
    step(f"{count} rows generated; loading unpartitioned, app tree, native, seed")
    dataset.load_flat()
    dataset.load_app(shape)
    dataset.load_native(shape)
    dataset.load_seed(shape)
    dataset.analyze()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    header = (
        f"# activity_grades benchmark\n\n`{' '.join(sys.argv)}`\n\n"
        f"PostgreSQL {version}, Python {platform.python_version()}, {platform.machine()}; "
        f"{count} rows in {shape.leaves} leaves ({shape.classes} classes x {shape.terms} terms, "
        f"{shape.activities} activities/class); median of {args.repeat} runs. "
        "Speed = unpartitioned time / target time (>1: faster than unpartitioned)."
    )
    args.header = header
    r = args.repeat
    step("single-row INSERTs")
    results += cases.single_row_inserts(args.single_rows, r)
    step("INSERT ... SELECT")
    results += cases.set_based_inserts(args.batch_rows, r)
    step("bulk ingest")
    results += cases.bulk_ingest(args.batch_rows, r)
    step("gradebooks")
    pairs = cases.sample_points(args.gradebooks, seed=2)
    results += cases.gradebooks([(c, t) for _, c, t in pairs], r)
    if not args.no_variants:
        step("trigger variants (row-level key trigger, no key index)")
        results += cases.trigger_variants(args.single_rows, args.batch_rows, args.batch_rows, r)
    step(f"archiving one term of {args.archive_rows} rows (bench/archive_bench.py)")
    if args.archive_rows:
        results += cases.archiving(args.archive_rows, r)

    points = cases.sample_points(args.points)
    counts = sorted(int(c) for c in args.partition_counts.split(",") if c.strip())
    leaves = cases.leaf_count()
    next_class = shape.classes
    students = list(dict.fromkeys(s for s, _, _ in points))[: args.students]
    step(f"point queries and student records at {leaves} leaves")
    results += cases.point_queries(points, r, leaves)
    results += cases.student_records(students, r, leaves)
    measured = {leaves}
    created = False
    for target in counts:
        if not created and args.create_count:
            step(f"create_partitions: {args.create_count} new leaves with a concurrent inserter")
            res, next_class = cases.create_partitions(
                scratch_url, shape, next_class, args.create_count
            )
            results.append(res)
            leaves = cases.leaf_count()
            created = True
        leaves, next_class = cases.grow_to(shape, next_class, leaves, target)
        leaves = cases.leaf_count()
        if leaves in measured:
            continue
        measured.add(leaves)
        step(f"point queries and student records at {leaves} leaves")
        results += cases.point_queries(points, r, leaves, with_native=False)
        results += cases.student_records(students, r, leaves)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
