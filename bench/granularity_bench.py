"""Term leaves against month leaves (issue 15): the same grades, both granularities.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m bench.granularity_bench [--classes 40] [--activities 20] [--students 60] \\
        [--years 2] [--repeat 7] [--samples 40] [--keep]

One scratch database (``bench_granularity``), one data set, every figure a ratio within
the run:

1. An LMS of twice ``--classes`` classes, ``--activities`` activities and ``--students``
   students each, and two terms a year for ``--years`` years (fall Aug 1 - Dec 20, spring
   Jan 15 - May 31, as tests/conftest.py's): every student has a grade on every activity in
   every term, spread evenly over the term, written through the parent (the routing
   trigger). Every class holds the same number of grades in each term.
2. The first ``--classes`` classes keep term leaves (the baseline); the terms of the other
   ``--classes`` are regranulated to month leaves (``create_partitions --regranulate
   TERM --to month --class ...``: the same rows, moved; its time is reported). So both
   granularities hold the same data size in the same tree, and are measured side by side:
   after VACUUM ANALYZE, ``--repeat`` runs of ``--samples`` pairs of calls, each pair the
   same (term, student, month) on a term-leaf class and on its month-leaf twin, the order
   within the pair alternating. The figure is the median over runs of each run's median
   call; the ratio is month / term.
3. Calls, through the app's API as an LMS makes them: a term's gradebook
   (``ActivityGradeService.gradebook``), one student's grades in a term
   (``student_grades_in_class``), one month of a term's gradebook
   (``for_class(c, t).filter(created_at__gte=, __lt=)``, what months are for) and its
   ``count()`` (the server's share alone: no model instances built), a student's grades
   everywhere (``student_record``), and 200 grades written through the
   parent in a rolled-back transaction (the routing trigger's cost per row).
4. The partition count both granularities give a 10-year LMS of 2,000 classes with these
   terms (months from ``activity_grades_month_bounds``, the trigger's own function): all
   years live, and the last two years live (the rest archived).

Prints a table (ratios month / term) and writes it to ``bench/results/granularity.md``
(git-ignored); drops the scratch database unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from bench import db

NAME = "bench_granularity"
RESULTS = Path(__file__).resolve().parent / "results"
TERMS_OF_YEAR = (((8, 1), (12, 20), "fall", 0), ((1, 15), (5, 31), "spring", 1))


def term_rows(first_year: int, years: int) -> list[tuple[str, dt.date, dt.date, str]]:
    """(id, first day, last day, academic year) of two terms a year."""
    out = []
    for y in range(first_year, first_year + years):
        for (m1, d1), (m2, d2), name, later in TERMS_OF_YEAR:
            year = y + later
            out.append(
                (
                    f"{year}_{name}",
                    dt.date(year, m1, d1),
                    dt.date(year, m2, d2),
                    f"{y}-{y + 1}",
                )
            )
    return out


def load(classes: int, activities: int, students: int, years: int) -> list[tuple]:
    from django.db import connection

    terms = term_rows(2020, years)
    with connection.cursor() as cur:
        cur.executemany(
            "INSERT INTO terms (id, start_date, end_date, academic_year) VALUES (%s, %s, %s, %s)",
            terms,
        )
        cur.execute(
            "INSERT INTO classes (id, name) SELECT 'c' || i, 'Class ' || i "
            "FROM generate_series(1, %s) i",
            [classes],
        )
        cur.execute(
            "INSERT INTO activities (id, class_id, title, max_points) "
            "SELECT 'c' || i || '/a' || a, 'c' || i, 'A' || a, 100 "
            "FROM generate_series(1, %s) i, generate_series(1, %s) a",
            [classes, activities],
        )
    for term_id, first, last, _ in terms:
        # One term at a time: every student of every class on every activity, created_at
        # spread evenly over the term's days.
        days = (last - first).days + 1
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at, score, feedback, content) "
                "SELECT %s || '-' || i || '-' || a || '-' || s, 'c' || i || '/a' || a, "
                "'c' || i || '-s' || s || '-' || %s, 'graded', now(), "
                "%s::timestamptz + ((a * 7919 + s * 104729) %% (%s * 86400)) "
                "* interval '1 second', "
                "(a * s) %% 100, 'feedback ' || a, jsonb_build_object('answer', a * s) "
                "FROM generate_series(1, %s) i, generate_series(1, %s) a, "
                "generate_series(1, %s) s",
                [term_id, term_id, first, days, classes, activities, students],
            )
    return terms


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")


def regranulate_all(terms: list[tuple], to: str, class_ids: list[str]) -> float:
    from activity_grades.db.registry import invalidate_cache
    from activity_grades.operations import regranulate

    started = time.perf_counter()
    for term_id, *_ in terms:
        regranulate.plan(term_id, to, class_ids=class_ids, batch_size=20_000).apply()
    invalidate_cache()
    return time.perf_counter() - started


Call = Callable[[tuple], object]


def calls() -> dict[str, Call]:
    from django.db import connection, transaction

    from activity_grades import ActivityGrade, ActivityGradeService

    svc = ActivityGradeService()

    def write(sample: tuple) -> None:
        class_id, term_id, _, month_start, month_end, n = sample
        try:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(
                    "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                    "submitted_at, created_at) SELECT 'w-' || %s || '-' || g, %s || '/a1', "
                    "'writer-' || %s || '-' || g, 'submitted', now(), "
                    "%s::timestamptz + g * interval '1 minute' FROM generate_series(1, 200) g",
                    [n, class_id, n, month_start],
                )
                raise _Rollback
        except _Rollback:
            pass

    return {
        "term gradebook": lambda s: svc.gradebook(s[0], s[1]),
        "student's term grades": lambda s: svc.student_grades_in_class(s[2], s[0], s[1]),
        "one month of a gradebook": lambda s: list(
            ActivityGrade.objects.for_class(s[0], s[1]).filter(
                created_at__gte=s[3], created_at__lt=s[4]
            )
        ),
        "one month's count (server side)": lambda s: (
            ActivityGrade.objects.for_class(s[0], s[1])
            .filter(created_at__gte=s[3], created_at__lt=s[4])
            .count()
        ),
        "student record": lambda s: svc.student_record(s[2]),
        "200 grades written (rolled back)": write,
    }


class _Rollback(Exception):
    pass


def samples(
    terms: list[tuple], classes: int, students: int, count: int, seed: int = 15
) -> list[tuple]:
    from django.utils import timezone

    rng = random.Random(seed)
    zone = timezone.get_default_timezone()
    out = []
    for n in range(count):
        term_id, first, last, _ = rng.choice(terms)
        class_id = f"c{rng.randint(1, classes)}"
        student = f"{class_id}-s{rng.randint(1, students)}-{term_id}"
        months = [
            dt.date(first.year + (first.month - 1 + k) // 12, (first.month - 1 + k) % 12 + 1, 1)
            for k in range((last.year - first.year) * 12 + last.month - first.month + 1)
        ]
        month = rng.choice(months[1:-1] or months)
        nxt = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
        start = dt.datetime.combine(month, dt.time(), zone)
        end = dt.datetime.combine(nxt, dt.time(), zone)
        out.append((class_id, term_id, student, start, end, n))
    return out


def partition_counts(classes: int, years: int) -> dict[str, int]:
    """Partitions of ``classes`` over ``years`` of these terms, term and month leaves."""
    from django.db import connection

    from activity_grades.core.settings import app_settings
    from activity_grades.db import months

    terms = term_rows(2030, years)
    zone = ZoneInfo(app_settings.time_zone)
    per_term = []
    with connection.cursor() as cur:
        for _, first, last, _ in terms:
            starts = dt.datetime.combine(first, dt.time(), zone)
            ends = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone)
            per_term.append(len(months.slices(cur, starts, ends)))
    live_terms = 4  # the last two years
    month_live = sum(per_term[-live_terms:])
    return {
        "terms in 10 years": len(terms),
        "month tables per term (mean x100)": round(100 * sum(per_term) / len(per_term)),
        "term leaves, all live": classes * (1 + len(terms)),
        "month leaves, all live": classes * (1 + len(terms) + sum(per_term)),
        "term leaves, last 2 years live": classes * (1 + live_terms),
        "month leaves, last 2 years live": classes * (1 + live_terms + month_live),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=40)
    parser.add_argument("--activities", type=int, default=20)
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    server = db.server_url()
    scratch = db.recreate(server, NAME)
    try:
        db.setup_django(scratch)
        _run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            db.drop(server, NAME)


def _run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    n = args.classes
    terms = load(2 * n, args.activities, args.students, args.years)
    rows = 2 * n * args.activities * args.students * len(terms)
    loaded = time.perf_counter() - started
    to_month = regranulate_all(terms, "month", [f"c{i}" for i in range(n + 1, 2 * n + 1)])
    vacuum()
    chosen = samples(terms, n, args.students, args.samples)
    twins = [
        (f"c{int(s[0][1:]) + n}", s[1], s[2].replace(s[0] + "-", f"c{int(s[0][1:]) + n}-"), *s[3:])
        for s in chosen
    ]
    figures: dict[str, tuple[float, float]] = {}
    for name, call in calls().items():
        figures[name] = measure_pairs(call, chosen, twins, args.repeat)
    counts = partition_counts(2000, 10)

    per_leaf = rows // (2 * n * len(terms))
    lines = [
        f"# Term leaves vs month leaves ({dt.date.today()})",
        "",
        f"`python -m bench.granularity_bench --classes {n} --activities {args.activities} "
        f"--students {args.students} --years {args.years} --repeat {args.repeat} "
        f"--samples {args.samples}`",
        "",
        f"{rows:,} grades: {2 * n} classes x {len(terms)} terms x {args.activities} "
        f"activities x {args.students} students, {per_leaf:,} grades per (class, term); "
        f"{n} classes by term ({n * len(terms)} term leaves), {n} by month "
        f"({len(terms)} terms regranulated, {rows // 2:,} rows moved in {to_month:.1f} s). "
        f"Loaded in {loaded:.0f} s. Median of {args.repeat} runs of {args.samples} calls "
        "per side (each run: its median call).",
        "",
        "| call | term leaves (ms) | month leaves (ms) | month / term |",
        "|---|---|---|---|",
    ]
    for name, (term, month) in figures.items():
        lines.append(f"| {name} | {term * 1000:.2f} | {month * 1000:.2f} | {month / term:.2f} |")
    lines += ["", "Partition count, 2,000 classes, 10 years, two terms a year:", ""]
    lines += [f"- {k}: {v:,}" for k, v in counts.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"granularity-{per_leaf}.md").write_text(text)


def measure_pairs(
    call: Call, chosen: list[tuple], twins: list[tuple], repeat: int
) -> tuple[float, float]:
    """(term, month): median over ``repeat`` runs of each run's median seconds per call,
    each sample timed on both sides, in alternating order."""
    for s, t in zip(chosen[:3], twins[:3], strict=True):
        call(s)  # warm: caches, plans
        call(t)
    term_runs, month_runs = [], []
    for _ in range(repeat):
        term_times, month_times = [], []
        for i, (s, t) in enumerate(zip(chosen, twins, strict=True)):
            order = ((s, term_times), (t, month_times))
            for sample, times in order if i % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                call(sample)
                times.append(time.perf_counter() - started)
        term_runs.append(statistics.median(term_times))
        month_runs.append(statistics.median(month_times))
    return statistics.median(term_runs), statistics.median(month_runs)


if __name__ == "__main__":
    main()
