"""The default manager's routing: common LMS queries at 150 to 10,000 partitions.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m bench.manager_bench --partitions 150,1000,5000,10000 --rows 200000 \\
        [--repeat 7] [--seconds 30] [--whole-tree auto|yes|no] [--keep]

One scratch database, one data set, every figure a ratio within the run:

1. ``--rows`` grades over the smallest partition count (``classes x --terms`` leaves,
   bench/dataset.py), loaded into the app's tree and into ``bench_flat``, the
   unpartitioned table with the same columns and indexes (+ (class_id, term_id,
   student_id)). The tree then grows to each ``--partitions`` count with empty classes
   (``create.plan().apply()``, as bench/run.py does): the same rows at every count, so
   only the number of partitions changes.
2. At each count, six queries run through Django's ORM in this process. The tree side is
   ``ActivityGrade.objects`` (the default manager, which routes). The baseline is
   ``FlatGrade``, an unmanaged model with the same fields over ``bench_flat`` and a
   plain ``models.Manager``: the same QuerySet calls, so both sides pay the same ORM
   cost and the ratio is what routing and the partitions add. Repetitions alternate the
   two sides (fairer on a shared machine); each times ``--samples`` calls with different
   values; the median per call is reported. The tables holding rows are vacuumed before
   each count (the rolled-back updates leave dead rows on both sides).
3. For three samples of each query, the SQL the ORM sent is captured
   (``CaptureQueriesContext``: routing lookups included) and each statement is run again
   under ``EXPLAIN (ANALYZE, SUMMARY)`` for its planning time (not pg_stat_statements:
   the server need not load it, and EXPLAIN gives each statement's figure); the
   relation locks are those the call adds to ``pg_locks`` for its backend inside a
   transaction.
4. Goal, per query: the ratio <= 1.2 at every count, and flat: the ratio at the largest
   count within 1.2x of the ratio at the smallest (the counts are measured minutes
   apart; the baseline measured beside each cancels the machine's drift).
5. At the largest count, ``--sessions`` threads (each its own Django connection) mix the
   six queries for ``--seconds``: on the unpartitioned table, through the manager, and
   through the manager beside one session running a whole-tree query
   (``across_all_partitions()``) in a loop, with a probe opening a new connection twice a
   second. The whole-tree query can fill the server-wide lock table, which fails
   statements in every database on the server: with ``--whole-tree auto`` it runs only
   when no other database has a client connected.

Writes are ``update()`` inside a transaction that is rolled back. Prints the tables and
writes them to ``bench/results/manager.md`` (git-ignored); drops the scratch database
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from . import db

RESULTS = Path(__file__).resolve().parent / "results" / "manager.md"
SCRATCH = "scratch_manager_bench"
GOAL_RATIO = 1.2  # manager / unpartitioned, and that ratio at the largest / smallest count
SERVER_SAMPLES = 3  # samples whose SQL is captured and explained (EXPLAIN ANALYZE runs it)


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.manager_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--partitions", default="150,1000,5000,10000", help="leaf counts")
    p.add_argument("--rows", type=int, default=200_000, help="grades in the data set")
    p.add_argument("--terms", type=int, default=3, help="terms (leaves = classes x terms)")
    p.add_argument("--activities", type=int, default=10, help="activities per class")
    p.add_argument("--repeat", type=int, default=7, help="repetitions; the median is reported")
    p.add_argument("--samples", type=int, default=20, help="calls (values) per repetition")
    p.add_argument("--sessions", type=int, default=8, help="concurrent sessions")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each concurrent run")
    p.add_argument(
        "--whole-tree",
        choices=("auto", "yes", "no"),
        default="auto",
        help="the concurrent run with a whole-tree session (auto: only if no other "
        "database on the server has a client connected)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=900,
        help="seconds --whole-tree auto waits for other databases' clients to leave",
    )
    p.add_argument("--database-name", default=SCRATCH, help="scratch database name")
    p.add_argument("--keep", action="store_true", help="keep the scratch database")
    return p.parse_args(argv)


# -- the two sides -------------------------------------------------------------------


@functools.cache  # one model class: Django warns when a model is registered twice
def flat_model() -> Any:
    """FlatGrade: ActivityGrade's fields over bench_flat, with Django's plain manager.

    Defined after django.setup(); app_label "bench" is not an installed app, which
    Django allows for an unmanaged model that migrations never see.
    """
    from activity_grades.models.columns import GradeColumns

    class FlatGrade(GradeColumns):
        class Meta:
            managed = False
            db_table = "bench_flat"
            app_label = "bench"

    return FlatGrade


@dataclass
class Case:
    """One LMS query: ``call(model, value)`` returns the rows it read or changed."""

    name: str
    values: str  # key of Samples
    call: Callable[[Any, Any], int]
    writes: bool = False  # run inside a transaction that is rolled back


def _by_pk(model: Any, grade_id: str) -> int:
    model.objects.get(pk=grade_id)
    return 1


def _student_class_term(model: Any, v: tuple[str, str, str]) -> int:
    return len(model.objects.filter(student_id=v[0], class_id=v[1], term_id=v[2]))


def _student(model: Any, student: str) -> int:
    return len(model.objects.filter(student_id=student))


def _activity(model: Any, activity: str) -> int:
    return len(model.objects.filter(activity_id=activity))


def _class_count(model: Any, class_id: str) -> int:
    return int(model.objects.filter(class_id=class_id).count())


def _activity_update(model: Any, activity: str) -> int:
    from django.db.models import F

    return int(model.objects.filter(activity_id=activity).update(points=F("points") + 1))


CASES = [
    Case("get(pk=)", "ids", _by_pk),
    Case("filter(student, class, term)", "points", _student_class_term),
    Case("filter(student_id=)", "students", _student),
    Case("filter(activity_id=)", "activities", _activity),
    Case("filter(class_id=).count()", "classes", _class_count),
    Case("filter(activity_id=).update(points+1)", "activities", _activity_update, writes=True),
]


def run_case(case: Case, model: Any, value: Any) -> int:
    from django.db import transaction

    if not case.writes:
        return case.call(model, value)
    with transaction.atomic():
        rows = case.call(model, value)
        transaction.set_rollback(True)  # a benchmark write leaves the data as it was
        return rows


# -- data set --------------------------------------------------------------------------


@dataclass
class Samples:
    ids: list[str]
    points: list[tuple[str, str, str]]
    students: list[str]
    activities: list[str]
    classes: list[str]


def _distinct_students(terms: int, slots: int, pool: int) -> bool:
    students = {(t * 977 + s * 7) % pool for t in range(terms) for s in range(slots)}
    return len(students) == terms * slots


def unique_students(shape: Any) -> Any:
    """The shape with a student pool where no student gets two grades on one activity.

    dataset.make_source names the student of slot s in term t of a class
    (class * 131 + t * 977 + s * 7) % pool, and an activity spans its class's terms.
    Shape.build's pool can collide: 200,000 rows over 150 leaves give pool 1341 = 977 +
    7 * 52, so slot s + 52 of term 0 is slot s of term 1 (the unique index fails). A
    larger pool keeps the rows per leaf and only spreads the students thinner.
    """
    import dataclasses

    pool = shape.pool
    while not _distinct_students(shape.terms, shape.students_per_leaf, pool):
        pool += 1
    return dataclasses.replace(shape, pool=pool)


def build(args: argparse.Namespace, smallest: int) -> Any:
    """The rows in the tree (``smallest`` leaves) and in bench_flat; returns the shape."""
    from . import dataset

    shape = unique_students(dataset.Shape.build(args.rows, smallest, args.terms, args.activities))
    step(f"data set: {shape}")
    dataset.make_lms(shape)
    count = dataset.make_source(shape)
    step(f"{count} rows; loading bench_flat and the app's tree")
    dataset.load_flat()
    dataset.load_app(shape)
    dataset.analyze()
    return shape


def samples(n: int, seed: int = 11) -> Samples:
    """``n`` values of each kind, drawn from rows that exist (fixed seed)."""
    from .cases import _exec

    rows = _exec(
        "SELECT id, student_id, class_id, term_id, activity_id FROM bench_source "
        "ORDER BY md5(id) LIMIT %s",
        [n * 50],
    )
    rng = random.Random(seed)
    rng.shuffle(rows)

    def distinct(i: int) -> list[str]:
        return list(dict.fromkeys(r[i] for r in rows))[:n]

    return Samples(
        ids=[r[0] for r in rows[:n]],
        points=[(r[1], r[2], r[3]) for r in rows[:n]],
        students=distinct(1),
        activities=distinct(4),
        classes=distinct(2),
    )


# -- one query at one partition count ----------------------------------------------------


@dataclass
class Row:
    case: str
    leaves: int
    tables: int
    flat_ms: float = float("nan")
    manager_ms: float = float("nan")
    rows: str = ""
    statements: float = 0
    plan_ms: dict[str, float] = field(default_factory=dict)  # side -> planning, all stmts
    exec_ms: dict[str, float] = field(default_factory=dict)  # side -> execution, all stmts
    locks: dict[str, float] = field(default_factory=dict)  # side -> relation locks
    sql: list[str] = field(default_factory=list)  # the manager's statements, one sample
    error: str = ""

    @property
    def ratio(self) -> float:
        return self.manager_ms / self.flat_ms


def timed(case: Case, model: Any, values: list) -> float:
    """Milliseconds per call over ``values``."""
    started = time.perf_counter()
    for v in values:
        run_case(case, model, v)
    return (time.perf_counter() - started) * 1000 / len(values)


def medians(case: Case, sides: dict[str, Any], values: list, repeat: int) -> dict[str, float]:
    for model in sides.values():
        timed(case, model, values)  # warm: relcache, registry pages, Django's caches
    times: dict[str, list[float]] = {name: [] for name in sides}
    for rep in range(repeat):
        # Alternate which side goes first so drift on a shared machine hits both alike.
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for name in order:
            times[name].append(timed(case, sides[name], values))
    return {name: statistics.median(ts) for name, ts in times.items()}


def captured(case: Case, model: Any, value: Any) -> list[str]:
    """The statements one call sends (routing lookups included), as the server got them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        run_case(case, model, value)
    # Django logs transaction control too (BEGIN, savepoints): not the query's SQL.
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(control)]


def server_ms(statements: list[str]) -> tuple[float, float]:
    """(planning, execution) ms summed over ``statements``, each run again under EXPLAIN
    ANALYZE in one rolled-back transaction (so an UPDATE changes nothing)."""
    from django.db import connection, transaction

    plan_ms = exec_ms = 0.0
    with transaction.atomic(), connection.cursor() as cur:
        for text in statements:
            # No parameters: the captured text is final, a '%' in it is not a placeholder.
            cur.execute("EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) " + text)
            plan = cur.fetchone()[0]
            plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
            plan_ms += plan["Planning Time"]
            exec_ms += plan["Execution Time"]
        transaction.set_rollback(True)
    return plan_ms, exec_ms


def relation_locks(case: Case, model: Any, value: Any) -> int:
    """Relation locks one call holds at its end (taken inside one transaction)."""
    from django.db import connection, transaction

    count = "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(count)
        before = cur.fetchone()[0]
        case.call(model, value)  # no inner transaction: rolling it back would free its locks
        cur.execute(count)
        after = cur.fetchone()[0]
        transaction.set_rollback(True)
    return int(after - before)


def server_side(row: Row, case: Case, sides: dict[str, Any], values: list) -> None:
    """Planning time and locks per side (median over a few samples); the manager's SQL."""
    some = values[:SERVER_SAMPLES]
    for name, model in sides.items():
        stmts = [captured(case, model, v) for v in some]
        server = [server_ms(s) for s in stmts]
        row.plan_ms[name] = statistics.median(p for p, _ in server)
        row.exec_ms[name] = statistics.median(e for _, e in server)
        row.locks[name] = statistics.median(relation_locks(case, model, v) for v in some)
        if name == "manager":
            row.statements = statistics.median(len(s) for s in stmts)
            row.sql = stmts[0]


def measure(case: Case, sides: dict[str, Any], s: Samples, repeat: int, at: tuple) -> Row:
    from django.db import DatabaseError

    from activity_grades.core.exceptions import UnroutableQuery

    values = getattr(s, case.values)
    row = Row(case.name, *at)
    try:
        counts = {n: [run_case(case, m, v) for v in values[:5]] for n, m in sides.items()}
        same = counts["flat"] == counts["manager"]
        row.rows = f"{statistics.median(counts['flat']):g}" + ("" if same else " MISMATCH")
        if not same:
            row.error = f"rows differ: flat {counts['flat']} manager {counts['manager']}"
        t = medians(case, sides, values, repeat)
        row.flat_ms, row.manager_ms = t["flat"], t["manager"]
        server_side(row, case, sides, values)
    except (DatabaseError, UnroutableQuery) as exc:
        row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return row


def tree_size() -> tuple[int, int]:
    """(leaves, live tables: leaves + class tables)."""
    from .cases import _exec

    leaves, tables = _exec(
        "SELECT count(*) FILTER (WHERE term_id IS NOT NULL), count(*) "
        "FROM activity_grades_partition WHERE status = 'live'"
    )[0]
    return leaves, tables


def sweep(
    args: argparse.Namespace, shape: Any, s: Samples, counts: list[int], notes: list[str]
) -> list[Row]:
    from activity_grades.models import ActivityGrade

    from . import cases

    sides = {"flat": flat_model(), "manager": ActivityGrade}
    rows: list[Row] = []
    next_class, leaves = shape.classes, cases.leaf_count()
    for target in counts:
        started = time.perf_counter()
        leaves, next_class = cases.grow_to(shape, next_class, leaves, target)
        at = tree_size()
        leaves = at[0]
        grown = time.perf_counter() - started
        notes.append(f"{at[0]} leaves ({at[1]} tables): grown in {grown:.0f} s")
        step(notes[-1])
        vacuum_data(shape.classes)
        started = time.perf_counter()
        for case in CASES:
            row = measure(case, sides, s, args.repeat, at)
            rows.append(row)
            step(f"  {case.name}: {fmt_row(row)}")
        load = os.getloadavg()[0]
        notes[-1] += f", measured in {time.perf_counter() - started:.0f} s (load {load:.1f})"
    return rows


def vacuum_data(classes: int) -> None:
    """VACUUM the tables that hold rows, before each count's measurements.

    Each count's rolled-back updates leave dead rows and clear visibility-map bits (on
    bench_flat and on the leaves alike): without this, the later counts would read more
    heap pages (count's index-only scan first) and look slower for a reason that is not
    the partition count.
    """
    from django.db import connection
    from psycopg import sql

    from . import dataset
    from .cases import _exec

    ids = [dataset.class_id(i) for i in range(classes)]
    tables = [
        r[0]
        for r in _exec(
            "SELECT table_name FROM activity_grades_partition WHERE class_id = ANY(%s)", [ids]
        )
    ]
    with connection.cursor() as cur:
        for table in ["bench_flat", *tables]:
            cur.execute(
                sql.SQL("VACUUM {}").format(sql.Identifier(table)).as_string(cur.connection)
            )


# -- concurrency -----------------------------------------------------------------------------


@dataclass
class Stats:
    name: str
    ops: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    note: str = ""


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:120]


class Session(threading.Thread):
    """Runs ``work`` in a loop on its own Django connection (Django's are per thread)."""

    def __init__(self, name: str, work: Callable[[random.Random], None], seed: int) -> None:
        super().__init__(daemon=True)
        self.stats = Stats(name)
        self.work, self.seed = work, seed
        self.ready, self.go, self.stop = threading.Event(), threading.Event(), threading.Event()

    def run(self) -> None:
        from django.db import connection, connections

        rng = random.Random(self.seed)
        try:
            connection.ensure_connection()  # connect before the clock starts
        except Exception as exc:  # counted, not raised: the run goes on
            self.stats.errors[first_line(exc)] += 1
        self.ready.set()
        self.go.wait()
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                self.work(rng)
            except Exception as exc:  # every failure is a figure here
                self.stats.errors[first_line(exc)] += 1
                connection.close_if_unusable_or_obsolete()
                continue
            self.stats.ops += 1
            self.stats.latencies.append(time.perf_counter() - started)
        connections.close_all()


class Probe(threading.Thread):
    """Opens a new connection twice a second (can the LMS still connect?) and samples the
    server-wide lock count."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stats = Stats("new-connection probe")
        self.max_locks = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            started = time.perf_counter()
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    n = conn.execute("SELECT count(*) FROM pg_locks").fetchone()[0]
                    self.max_locks = max(self.max_locks, n)
            except psycopg.Error as exc:
                self.stats.errors[first_line(exc)] += 1
                continue
            self.stats.ops += 1
            self.stats.latencies.append(time.perf_counter() - started)


def mixed(model: Any, s: Samples) -> Callable[[random.Random], None]:
    def work(rng: random.Random) -> None:
        case = rng.choice(CASES)
        run_case(case, model, rng.choice(getattr(s, case.values)))

    return work


def whole_tree(rng: random.Random) -> None:
    """An unroutable query, opted in: a dashboard's count of ungraded submissions."""
    from activity_grades.models import ActivityGrade

    ActivityGrade.objects.across_all_partitions().filter(status="submitted").count()


def concurrent(
    label: str, sessions: list[Session], url: str, seconds: float
) -> tuple[str, list[Stats], int]:
    probe = Probe(url)
    for t in sessions:
        t.start()
    for t in sessions:
        t.ready.wait(60)
    probe.start()
    for t in sessions:
        t.go.set()
    time.sleep(seconds)
    for t in [*sessions, probe]:
        t.stop.set()
    for t in [*sessions, probe]:
        t.join(120)
        if t.is_alive():
            t.stats.note = "still running after the window (a statement did not return)"
    return label, [t.stats for t in sessions] + [probe.stats], probe.max_locks


def other_clients(scratch: str) -> list[str]:
    """Databases other than the scratch one with a client connected (whom a full lock
    table would hit too)."""
    from .cases import _exec

    rows = _exec(
        "SELECT datname, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND datname IS DISTINCT FROM %s AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1",
        [scratch],
    )
    return [f"{d} ({n})" for d, n in rows]


def whole_tree_blocked(args: argparse.Namespace) -> str:
    """Why the whole-tree run must not start ('' when it may). A full lock table fails
    statements in every database on the server: in auto mode, wait for the others to go."""
    if args.whole_tree == "no":
        return "skipped: --whole-tree no"
    deadline, seen = time.monotonic() + args.quiet_wait, None
    while args.whole_tree == "auto":
        others = other_clients(args.database_name)
        if not others:
            break
        if time.monotonic() > deadline:
            return "skipped: other databases have clients a full lock table would hit: " + (
                ", ".join(others)
            )
        if others != seen:
            step(f"waiting for other databases' clients to leave: {', '.join(others)}")
            seen = others
        time.sleep(5)
    return ""


def concurrency(args: argparse.Namespace, s: Samples, url: str) -> tuple[list, str]:
    """The runs at the current (largest) count; and why the whole-tree run was skipped."""
    from activity_grades.models import ActivityGrade

    def crowd(model: Any) -> list[Session]:
        return [Session(f"mixed {i + 1}", mixed(model, s), i) for i in range(args.sessions)]

    n, secs = args.sessions, args.seconds
    runs = []
    step(f"{n} sessions on the unpartitioned table, {secs:g} s")
    runs.append(
        concurrent(f"{n} sessions, unpartitioned (FlatGrade)", crowd(flat_model()), url, secs)
    )
    step(f"{n} sessions through the default manager, {secs:g} s")
    runs.append(concurrent(f"{n} sessions, manager", crowd(ActivityGrade), url, secs))
    skipped = whole_tree_blocked(args)
    if skipped:
        step(f"whole-tree run {skipped}")
        return runs, skipped
    step(f"{n} sessions through the manager + 1 whole-tree session, {secs:g} s")
    tree = Session("whole tree (across_all_partitions)", whole_tree, 99)
    label = f"{n} sessions, manager + 1 whole-tree session"
    runs.append(concurrent(label, [*crowd(ActivityGrade), tree], url, secs))
    return runs, skipped


# -- report ----------------------------------------------------------------------------------


def fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def fmt_row(r: Row) -> str:
    if r.error and r.manager_ms != r.manager_ms:
        return f"ERROR {r.error}"
    return (
        f"flat {fmt(r.flat_ms)} ms, manager {fmt(r.manager_ms)} ms ({fmt(r.ratio, 2)}x), "
        f"locks {r.locks.get('flat', float('nan')):g}/{r.locks.get('manager', float('nan')):g}"
        + (f" [{r.error}]" if r.error else "")
    )


def pair(sides: dict[str, float], digits: int = 3) -> str:
    """'unpartitioned / manager' of a per-side figure."""
    nan = float("nan")
    return f"{fmt(sides.get('flat', nan), digits)} / {fmt(sides.get('manager', nan), digits)}"


def query_table(rows: list[Row]) -> list[str]:
    lines = [
        "| query | leaves (tables) | rows | unpartitioned ms | manager ms | ratio | "
        "statements sent | planning ms | execution ms | relation locks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: ([c.name for c in CASES].index(r.case), r.leaves)):
        ratio = fmt(r.ratio, 2) + "x"
        if r.error:
            ratio += f" ({r.error})"
        lines.append(
            f"| `{r.case}` | {r.leaves} ({r.tables}) | {r.rows} | {fmt(r.flat_ms)} | "
            f"{fmt(r.manager_ms)} | {ratio} | {r.statements:g} | {pair(r.plan_ms)} | "
            f"{pair(r.exec_ms)} | {pair(r.locks, 0)} |"
        )
    return lines


def verdicts(rows: list[Row]) -> list[str]:
    """Goal per query: every ratio <= 1.2, and flat in the partition count: the ratio at
    the largest count within 1.2x of the ratio at the smallest. The ratio, not the raw
    time: each count is measured minutes apart on a shared machine, and the unpartitioned
    query measured beside it cancels that drift (the raw growth is shown too)."""
    lines = [
        "| query | max ratio | manager ms, largest / smallest count | ratio, largest / "
        "smallest count | locks at every count | goal |",
        "|---|---|---|---|---|---|",
    ]
    for case in CASES:
        rs = sorted((r for r in rows if r.case == case.name), key=lambda r: r.leaves)
        if not rs:
            continue
        worst = max((r.ratio for r in rs), default=float("nan"))
        raw = rs[-1].manager_ms / rs[0].manager_ms
        growth = rs[-1].ratio / rs[0].ratio
        locks = sorted({r.locks.get("manager", float("nan")) for r in rs})
        ok = worst <= GOAL_RATIO and growth <= GOAL_RATIO and not any(r.error for r in rs)
        verdict = "met" if ok else "**not met**"
        lines.append(
            f"| `{case.name}` | {fmt(worst, 2)}x | {fmt(raw, 2)}x | {fmt(growth, 2)}x | "
            f"{', '.join(f'{x:g}' for x in locks)} | {verdict} |"
        )
    return lines


def concurrency_table(runs: list, seconds: float) -> list[str]:
    lines = []
    for label, stats, max_locks in runs:
        total = sum(sum(st.errors.values()) for st in stats)
        lines += [
            "",
            f"**{label}**: {total} errors; most locks in pg_locks (server-wide, sampled "
            f"twice a second): {max_locks}",
            "",
            "| session | statements ok | ok/s | p50 ms | p99 ms | errors | error kinds |",
            "|---|---|---|---|---|---|---|",
        ]
        for st in stats:
            lat = sorted(st.latencies)
            p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
            kinds = "; ".join(f"{n} x {k}" for k, n in st.errors.most_common()) or "-"
            if st.note:
                kinds += f" ({st.note})"
            lines.append(
                f"| {st.name} | {st.ops} | {st.ops / seconds:.1f} | {fmt(p50, 2)} | "
                f"{fmt(p99, 2)} | {sum(st.errors.values())} | {kinds} |"
            )
    return lines


def shorten(text: str, limit: int = 1200) -> str:
    """The statement with its select list elided (the FROM clause is what routing wrote)."""
    text = re.sub(r'^SELECT "activity_grades"\."id", .*? FROM ', "SELECT ... FROM ", text)
    text = re.sub(r'^SELECT "bench_flat"\."id", .*? FROM ', "SELECT ... FROM ", text)
    return text if len(text) <= limit else text[:limit] + " ..."


def sql_section(rows: list[Row]) -> list[str]:
    """The statements the manager sent at the largest count (one sample per query)."""
    if not rows:
        return []
    largest = max(r.leaves for r in rows)
    lines = ["", f"## SQL the manager sent at {largest} leaves (one sample each)", ""]
    for r in rows:
        if r.leaves != largest:
            continue
        lines += [f"`{r.case}`:", "", "```sql"]
        lines += [shorten(t) for t in r.sql]
        lines += ["```", ""]
    return lines


def report(header: list[str], rows: list[Row], runs: list, skipped: str, secs: float) -> str:
    lines = [*header, "", "## Queries through the default manager", "", *query_table(rows)]
    lines += ["", f"Goal: within {GOAL_RATIO}x of unpartitioned and flat in the count.", ""]
    lines += verdicts(rows)
    if runs or skipped:
        lines += ["", "## Concurrent sessions at the largest count"]
        lines += concurrency_table(runs, secs)
        if skipped:
            lines += ["", f"Whole-tree run {skipped}."]
    lines += sql_section(rows)
    return "\n".join(lines) + "\n"


# -- main ------------------------------------------------------------------------------------


def server_facts() -> dict[str, Any]:
    from .cases import _exec

    names = (
        "server_version",
        "max_locks_per_transaction",
        "max_connections",
        "max_prepared_transactions",
        "shared_preload_libraries",
    )
    rows = _exec("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(names)])
    return dict(rows)


def code_version() -> str:
    """The commit measured, and whether the app's files differ from it (others edit them)."""
    root = Path(__file__).resolve().parent.parent

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "activity_grades")
    head = git("log", "-1", "--format=%h (%ci)")
    return f"{head}" + (", with uncommitted changes in activity_grades/" if changed else "")


def header_lines(
    args: argparse.Namespace, shape: Any, facts: dict[str, Any], version: str
) -> list[str]:
    locks = int(facts["max_locks_per_transaction"])
    capacity = locks * (int(facts["max_connections"]) + int(facts["max_prepared_transactions"]))
    default = "the server default" if locks == 64 else "**not** the default 64"
    stats = (
        "pg_stat_statements is loaded but not used: planning times are from EXPLAIN"
        if "pg_stat_statements" in facts["shared_preload_libraries"]
        else "pg_stat_statements is not loaded: planning times are from EXPLAIN"
    )
    return [
        "# Default manager routing: LMS queries vs the unpartitioned table",
        "",
        f"`{' '.join(sys.argv)}`",
        "",
        f"App code: commit {version}. "
        f"PostgreSQL {facts['server_version']}; max_locks_per_transaction = {locks} "
        f"({default}), lock table {capacity} slots. {shape.rows} rows in the first "
        f"{shape.leaves} leaves ({shape.classes} classes x {shape.terms} terms, "
        f"{shape.activities} activities/class); further leaves are empty classes. "
        f"Median of {args.repeat} repetitions of {args.samples} calls (ms per call, "
        "Django ORM in-process, client included). Unpartitioned: `FlatGrade`, an unmanaged "
        "model with the same fields over `bench_flat` (same indexes + (class_id, term_id, "
        "student_id)), plain manager. Ratio = manager / unpartitioned (<= 1.2 is the goal). "
        f"Planning ms and locks: median over {SERVER_SAMPLES} samples, all statements of the "
        f"call (routing lookups included); {stats} (ANALYZE SUMMARY, writes rolled back); "
        "locks = relation locks the call adds to pg_locks for its backend (fast-path included).",
    ]


def run(args: argparse.Namespace, scratch: str) -> str:
    counts = sorted(int(c) for c in args.partitions.split(",") if c.strip())
    started = time.perf_counter()
    version = code_version()  # now: the app is imported once, at the start
    shape = build(args, counts[0])
    notes = [f"data set built and loaded in {time.perf_counter() - started:.0f} s"]
    facts = server_facts()
    step(f"max_locks_per_transaction = {facts['max_locks_per_transaction']}")
    s = samples(args.samples)
    rows = sweep(args, shape, s, counts, notes)
    runs, skipped = [], ""
    if args.seconds > 0 and args.sessions > 0:
        runs, skipped = concurrency(args, s, scratch)
    header = header_lines(args, shape, facts, version) + ["", "Build: " + "; ".join(notes) + "."]
    return report(header, rows, runs, skipped, args.seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A background job ignores SIGINT; on SIGTERM unwind, so `finally` drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    server = db.server_url()
    scratch = db.recreate(server, args.database_name)
    try:
        db.setup_django(scratch)
        text = run(args, scratch)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            db.drop(server, args.database_name)
    text += f"\nWall time: {time.perf_counter() - started:.0f} s.\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    step(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
