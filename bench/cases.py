"""The comparisons. Each returns ``Result`` rows; every target runs on the same data.

Times are wall-clock seconds measured in this process (client included, the same
client path for every target), repeated ``repeat`` times; the median is reported.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.db import DatabaseError, connection, transaction
from psycopg import sql
from psycopg.types.json import Jsonb

from activity_grades.db.registry import partition_table
from activity_grades.operations import create
from activity_grades.service import ActivityGradeService

from . import dataset
from .dataset import COLUMNS, SEED_COLUMNS

FLAT = "bench_flat"
WHERE_POINT = "student_id = %s AND class_id = %s AND term_id = %s"
BY_ACTIVITY = " ORDER BY activity_id"  # as the service orders


@dataclass
class Result:
    case: str
    target: str
    seconds: float  # median per repetition (or per query for the query cases)
    unit: str = "s"
    extra: dict = field(default_factory=dict)
    baseline: str | None = FLAT  # ratio = baseline time / this time (>1: faster)


def median_time(fn: Callable[[int], None], repeat: int, setup=None, teardown=None) -> float:
    times = []
    for rep in range(repeat):
        if setup:
            setup(rep)
        started = time.perf_counter()
        fn(rep)
        times.append(time.perf_counter() - started)
        if teardown:
            teardown(rep)
    return statistics.median(times)


def _exec(statement, params=None):
    with connection.cursor() as cursor:
        if isinstance(statement, sql.Composable):
            statement = statement.as_string(cursor.connection)
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def _cleanup(rep_prefix: str) -> None:
    for table in (FLAT, "bench_native", "activity_grades", "bench_seed"):
        _exec(
            sql.SQL("DELETE FROM {} WHERE id LIKE %s").format(sql.Identifier(table)),
            [rep_prefix + "%"],
        )


# -- inserts -------------------------------------------------------------------------


def _new_rows(limit: int) -> list[tuple]:
    return _exec(
        sql.SQL("SELECT {} FROM bench_new ORDER BY id LIMIT %s").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        ),
        [limit],
    )


def _retag(rows: list[tuple], tag: str) -> list[list]:
    out = []
    for r in rows:
        r = list(r)
        r[0] = tag + r[0]
        r[2] = tag + r[2]
        r[10] = Jsonb(r[10]) if isinstance(r[10], dict) else r[10]
        out.append(r)
    return out


INSERT_TARGETS = {
    # target: (table, columns given by the caller)
    "unpartitioned": (FLAT, COLUMNS),
    "native": ("bench_native", COLUMNS),
    "app (parent trigger)": ("activity_grades", SEED_COLUMNS),
    "seed trigger": ("bench_seed", SEED_COLUMNS),
}


def interleaved(runs: dict[str, Callable[[int], None]], repeat: int, teardown) -> dict[str, float]:
    """Median seconds per target; repetitions alternate between targets (fairer on a
    shared machine than running one target's repetitions back to back)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(repeat):
        for name, fn in runs.items():
            started = time.perf_counter()
            fn(rep)
            times[name].append(time.perf_counter() - started)
            teardown(rep)
    return {name: statistics.median(ts) for name, ts in times.items()}


def single_row_inserts(count: int, repeat: int, targets=INSERT_TARGETS, label="") -> list[Result]:
    base = _new_rows(count)
    runs = {}
    for name, (table, cols) in targets.items():
        stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        )

        def run(rep, stmt=stmt, cols=cols):
            rows = [r[: len(cols)] for r in _retag(base, f"rs{rep}_")]
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.cursor.executemany(stmt, rows)

        runs[name] = run
    medians = interleaved(runs, repeat, lambda rep: _cleanup(f"rs{rep}_"))
    case = "single-row INSERT" + label
    return [Result(case, name, t, extra={"rows": count}) for name, t in medians.items()]


def set_based_inserts(count: int, repeat: int, targets=INSERT_TARGETS, label="") -> list[Result]:
    runs = {}
    for name, (table, cols) in targets.items():
        select = [
            sql.SQL("%s || {}").format(sql.Identifier(c))
            if c in ("id", "student_id")
            else sql.Identifier(c)
            for c in cols
        ]
        stmt = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM bench_new ORDER BY id LIMIT %s").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(select),
        )

        def run(rep, stmt=stmt):
            tag = f"rb{rep}_"
            with transaction.atomic():
                _exec(stmt, [tag, tag, count])

        runs[name] = run
    medians = interleaved(runs, repeat, lambda rep: _cleanup(f"rb{rep}_"))
    case = "INSERT ... SELECT" + label
    return [Result(case, name, t, extra={"rows": count}) for name, t in medians.items()]


def bulk_ingest(
    count: int, repeat: int, label="", service_name="app service.record_many", with_native=True
) -> list[Result]:
    base = _new_rows(count)
    svc = ActivityGradeService()
    given = COLUMNS[:-2]  # the service looks up class and term itself

    def as_dicts(rep):
        return [dict(zip(given, r[:-2], strict=True)) for r in _retag(base, f"ri{rep}_")]

    def copy_into(table):
        def run(rep):
            rows = _retag(base, f"ri{rep}_")
            stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            )
            with transaction.atomic(), connection.cursor() as cursor:
                with cursor.cursor.copy(stmt) as copy:
                    for r in rows:
                        copy.write_row(r)

        return run

    def service(rep):
        svc.record_many(as_dicts(rep))

    runs = {"unpartitioned (COPY)": copy_into(FLAT)}
    if with_native:
        runs["native (COPY)"] = copy_into("bench_native")
    runs[service_name] = service
    medians = interleaved(runs, repeat, lambda rep: _cleanup(f"ri{rep}_"))
    return [
        Result(
            "bulk ingest" + label, name, t, extra={"rows": count}, baseline="unpartitioned (COPY)"
        )
        for name, t in medians.items()
    ]


# -- reads ---------------------------------------------------------------------------


def sample_points(n: int, seed: int = 1) -> list[tuple[str, str, str]]:
    rows = _exec("SELECT student_id, class_id, term_id FROM bench_source TABLESAMPLE SYSTEM (5)")
    if len(rows) < n:
        rows = _exec("SELECT student_id, class_id, term_id FROM bench_source LIMIT 10000")
    random.Random(seed).shuffle(rows)
    return rows[:n]


def _relation_locks_of(call, *args) -> int:
    """Relation locks one call takes (held to the end of its transaction)."""
    count = "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
    with transaction.atomic():
        before = _exec(count)[0][0]
        call(*args)
        return _exec(count)[0][0] - before


def _locks_and_plan(query: sql.Composable, params) -> tuple[int, float, float]:
    """(relation locks taken, planning ms, execution ms) of one query."""
    locks = _relation_locks_of(_exec, query, params)
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(query).as_string(cursor.connection),
            params,
        )
        plan = cursor.fetchone()[0]
        plan = plan[0] if isinstance(plan, list) else __import__("json").loads(plan)[0]
    return locks, plan["Planning Time"], plan["Execution Time"]


def _fetch(svc: ActivityGradeService, query: sql.Composable, params: list) -> list:
    """Run a baseline query and build model instances the way the service does."""
    with connection.cursor() as cursor:
        cursor.execute(query.as_string(cursor.connection), params)
        return [svc._instance(r) for r in cursor.fetchall()]


def _select(table: str, where: str, order: str = "") -> sql.Composable:
    return sql.SQL("SELECT {} FROM {} WHERE {}{}").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.Identifier(table),
        sql.SQL(where),
        sql.SQL(order),
    )


def point_queries(points, repeat: int, leaves: int, with_native=True) -> list[Result]:
    svc = ActivityGradeService()
    for _student, c, t in points:
        partition_table(c, t)  # warm the table-name cache, as a running app has it
    targets: dict[str, tuple[Callable, Callable]] = {
        "unpartitioned": (
            lambda s, c, t: _fetch(svc, _select(FLAT, WHERE_POINT, BY_ACTIVITY), [s, c, t]),
            lambda s, c, t: (_select(FLAT, WHERE_POINT, BY_ACTIVITY), [s, c, t]),
        ),
        "app service": (
            lambda s, c, t: svc.student_grades_in_class(s, c, t),
            lambda s, c, t: (
                _select(partition_table(c, t), "student_id = %s", " ORDER BY activity_id"),
                [s],
            ),
        ),
        "app parent (plain ORM)": (
            lambda s, c, t: _fetch(
                svc, _select("activity_grades", WHERE_POINT, BY_ACTIVITY), [s, c, t]
            ),
            lambda s, c, t: (_select("activity_grades", WHERE_POINT, BY_ACTIVITY), [s, c, t]),
        ),
    }
    if with_native:
        targets["native"] = (
            lambda s, c, t: _fetch(
                svc, _select("bench_native", WHERE_POINT, BY_ACTIVITY), [s, c, t]
            ),
            lambda s, c, t: (_select("bench_native", WHERE_POINT, BY_ACTIVITY), [s, c, t]),
        )
    results = []
    # The parent at thousands of leaves is slow: fewer samples for it.
    for name, (call, query) in targets.items():
        pts = points if "parent" not in name or leaves <= 1000 else points[:20]
        try:
            results.append(_point_query(name, call, query, pts, repeat, leaves))
        except DatabaseError as exc:
            # The parent at thousands of leaves can exhaust the shared lock table
            # (max_locks_per_transaction): the query fails instead of being slow.
            message = str(exc).splitlines()[0]
            results.append(
                Result(
                    f"point query @{leaves} leaves",
                    name,
                    float("nan"),
                    "s/query",
                    {"partitions": leaves, "error": message},
                )
            )
    return results


def _point_query(name, call, query, pts, repeat, leaves) -> Result:
    def run(rep):
        for p in pts:
            call(*p)

    run(0)  # warm caches (relcache, plans) for every target alike
    t = median_time(run, repeat) / len(pts)
    stats = [_locks_and_plan(*query(*p)) for p in pts[:5]]
    extra = {
        "partitions": leaves,
        "locks": statistics.median(x[0] for x in stats),
        "planning_ms": statistics.median(x[1] for x in stats),
        "execution_ms": statistics.median(x[2] for x in stats),
    }
    return Result(f"point query @{leaves} leaves", name, t, "s/query", extra)


def student_records(students: list[str], repeat: int, leaves: int) -> list[Result]:
    """One student's grades in every class and term (read across partitions)."""
    svc = ActivityGradeService()
    by_student = " ORDER BY created_at, id"
    targets = {
        "unpartitioned": lambda s: _fetch(svc, _select(FLAT, "student_id = %s", by_student), [s]),
        "app service": svc.student_record,
        "app parent (plain ORM)": lambda s: _fetch(
            svc, _select("activity_grades", "student_id = %s", by_student), [s]
        ),
    }
    case = f"student record @{leaves} leaves"
    rows = statistics.median(len(svc.student_record(s)) for s in students)
    results = []
    for name, call in targets.items():
        pts = students if "parent" not in name or leaves <= 1000 else students[:5]

        def run(rep, call=call, pts=pts):
            for s in pts:
                call(s)

        extra = {"partitions": leaves, "rows": rows}
        try:
            run(0)  # warm caches for every target alike
            t = median_time(run, repeat) / len(pts)
            extra["locks"] = statistics.median(_relation_locks_of(call, s) for s in pts[:5])
        except DatabaseError as exc:
            t, extra["error"] = float("nan"), str(exc).splitlines()[0]
        results.append(Result(case, name, t, "s/query", extra))
    return results


def gradebooks(pairs, repeat: int) -> list[Result]:
    svc = ActivityGradeService()
    where = "class_id = %s AND term_id = %s"
    order = " ORDER BY student_id, activity_id"
    targets = {
        "unpartitioned": lambda c, t: _fetch(svc, _select(FLAT, where, order), [c, t]),
        "app service": lambda c, t: svc.gradebook(c, t),
        "native": lambda c, t: _fetch(svc, _select("bench_native", where, order), [c, t]),
        "app parent (plain ORM)": lambda c, t: _fetch(
            svc, _select("activity_grades", where, order), [c, t]
        ),
    }
    results = []
    for name, call in targets.items():

        def run(rep, call=call):
            for p in pairs:
                call(*p)

        run(0)
        t = median_time(run, repeat) / len(pairs)
        server = []
        for c, tm in pairs[:3]:
            q = (
                (_select(partition_table(c, tm), "true", order), [])
                if name == "app service"
                else (
                    _select(
                        {"unpartitioned": FLAT, "native": "bench_native"}.get(
                            name, "activity_grades"
                        ),
                        where,
                        order,
                    ),
                    [c, tm],
                )
            )
            server.append(_locks_and_plan(*q))
        extra = {
            "server_ms": statistics.median(x[1] + x[2] for x in server),
            "rows": len(call(*pairs[0])),
        }
        results.append(Result("gradebook (class, term)", name, t, "s/query", extra))
        server_s = extra["server_ms"] / 1000
        results.append(Result("gradebook, server side (plan + execute)", name, server_s, "s/query"))
    return results


# -- partition creation under load ---------------------------------------------------


class Inserter(threading.Thread):
    """Inserts single rows through the parent in a loop; records each insert's latency."""

    def __init__(self, url: str, activity: str, at) -> None:
        super().__init__(daemon=True)
        self.url, self.activity, self.at = url, activity, at
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            i = 0
            while not self.stop.is_set():
                i += 1
                started = time.perf_counter()
                try:
                    conn.execute(
                        "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                        "submitted_at, created_at) VALUES (%s, %s, %s, 'graded', %s, %s)",
                        [f"cc_{i}", self.activity, f"cc_{i}", self.at, self.at],
                    )
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.latencies.append(time.perf_counter() - started)


def create_partitions(url: str, shape, first_class: int, count: int) -> tuple[Result, int]:
    """Create ``count`` new (class, term) leaves with a concurrent inserter running."""
    n_classes = max(1, -(-count // shape.terms))
    classes = dataset.add_classes(first_class, n_classes, 1)
    terms = [dataset.term_id(i) for i in range(shape.terms)]
    plan = create.plan(classes, terms)
    inserter = Inserter(url, "c00000/a0", _term_start(0))
    inserter.start()
    time.sleep(0.5)
    quiet = list(inserter.latencies)
    started = time.perf_counter()
    created = plan.apply()
    seconds = time.perf_counter() - started
    inserter.stop.set()
    inserter.join(30)
    during = inserter.latencies[len(quiet) :]
    leaves = sum(1 for p in plan.to_create if p.term_id is not None)
    _exec("DELETE FROM activity_grades WHERE id LIKE 'cc\\_%%'")
    extra = {
        "leaves_created": leaves,
        "tables_created": len(created.created),
        "inserts_during": len(during),
        "insert_max_ms": max(during) * 1000 if during else None,
        "insert_median_ms": statistics.median(during) * 1000 if during else None,
        "insert_median_quiet_ms": statistics.median(quiet) * 1000 if quiet else None,
        "insert_errors": len(inserter.errors),
    }
    return Result(
        f"create_partitions ({leaves} leaves)", "app", seconds, "s", extra, None
    ), first_class + n_classes


def grow_to(shape, first_class: int, leaves_now: int, target: int) -> tuple[int, int]:
    """Add empty classes (with every term) until the tree has ``target`` leaves."""
    if target <= leaves_now:
        return leaves_now, first_class
    n_classes = -(-(target - leaves_now) // shape.terms)
    classes = dataset.add_classes(first_class, n_classes, 1)
    terms = [dataset.term_id(i) for i in range(shape.terms)]
    create.plan(classes, terms).apply()
    return leaves_now + n_classes * shape.terms, first_class + n_classes


def _term_start(i: int):
    import datetime as dt

    start = dataset.FIRST_TERM + dt.timedelta(days=i * dataset.TERM_STEP)
    return dt.datetime(start.year, start.month, start.day, 12, tzinfo=dt.timezone.utc)


def leaf_count() -> int:
    return _exec("SELECT count(*) FROM activity_grades_partition WHERE term_id IS NOT NULL")[0][0]


# -- where the trigger's time goes ----------------------------------------------------

KEY_ROW_TRIGGER = r"""
CREATE OR REPLACE FUNCTION bench_keys_insert_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO activity_grades_key (id, activity_id, student_id, class_id, term_id)
    VALUES (NEW.id, NEW.activity_id, NEW.student_id, NEW.class_id, NEW.term_id);
    RETURN NULL;
END $$;
"""


def _leaves() -> list[str]:
    return [r[0] for r in _exec("SELECT table_name FROM activity_grades_partition")]


def set_key_trigger(mode: str) -> None:
    """'statement' (migration 0001), 'row' (a variant) or 'off' (no key index: diagnosis)."""
    _exec(KEY_ROW_TRIGGER)
    for table in _leaves():
        t = sql.Identifier(table)
        _exec(sql.SQL("DROP TRIGGER IF EXISTS bench_keys_insert_row ON {}").format(t))
        _exec(sql.SQL("ALTER TABLE {} ENABLE TRIGGER activity_grades_keys_insert").format(t))
        if mode in ("row", "off"):
            _exec(sql.SQL("ALTER TABLE {} DISABLE TRIGGER activity_grades_keys_insert").format(t))
        if mode == "row":
            _exec(
                sql.SQL(
                    "CREATE TRIGGER bench_keys_insert_row AFTER INSERT ON {} FOR EACH ROW "
                    "EXECUTE FUNCTION bench_keys_insert_row()"
                ).format(t)
            )


def trigger_variants(single: int, batch: int, ingest: int, repeat: int) -> list[Result]:
    """Insert cases through the app tree with the key index kept per row, or switched off."""
    app = {"app (parent trigger)": INSERT_TARGETS["app (parent trigger)"]}
    out: list[Result] = []
    variants = (
        ("row", "variant: row-level key trigger"),
        ("off", "diagnosis: no key index"),
    )
    try:
        for mode, label in variants:
            set_key_trigger(mode)
            # Each variant gets its own unpartitioned baseline measured alongside it.
            targets = {
                "unpartitioned": INSERT_TARGETS["unpartitioned"],
                f"app ({label})": app["app (parent trigger)"],
            }
            out += single_row_inserts(single, repeat, targets, f" [{label}]")
            out += set_based_inserts(batch, repeat, targets, f" [{label}]")
            out += bulk_ingest(
                ingest, repeat, f" [{label}]", f"app service ({label})", with_native=False
            )
    finally:
        set_key_trigger("statement")
        _exec(
            "DELETE FROM activity_grades_key k WHERE k.id LIKE 'r%%' AND NOT EXISTS "
            "(SELECT 1 FROM activity_grades g WHERE g.id = k.id)"
        )
    return out


def archiving(rows: int, repeat: int) -> list[Result]:
    """Archive one term of ``rows`` grades vs INSERT ... SELECT + DELETE on one table.

    bench/archive_bench.py builds its own data set in its own scratch database, so it
    runs as a child process; its medians come back as JSON.
    """
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "archive.json"
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("archive_bench.py")),
                "--rows",
                str(rows),
                "--runs",
                str(repeat),
                "--json",
                str(out),
            ],
            check=True,
        )
        m = json.loads(out.read_text())
    case = "archive one term"
    extra = {"rows": int(m["rows"])}
    return [
        Result(
            case,
            "unpartitioned (INSERT ... SELECT + DELETE)",
            m["flat_s"],
            extra={**extra, "WAL MB": m["flat_wal"] / 1e6},
            baseline="unpartitioned (INSERT ... SELECT + DELETE)",
        ),
        Result(
            case,
            "app archive_grades",
            m["archive_s"],
            extra={
                **extra,
                "WAL MB": m["archive_wal"] / 1e6,
                "WAL vs unpartitioned": m["archive_wal"] / m["flat_wal"],
            },
            baseline="unpartitioned (INSERT ... SELECT + DELETE)",
        ),
    ]
