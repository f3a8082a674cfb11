"""Online conversion benchmark: ``convert_grades_table --to partitioned`` under LMS load.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m bench.convert_bench --rows 1000000 [--batch-size 5000] [--keep]

One run, one server, so the figures that count are ratios within the run:

1. Scratch database A: ``manage.py migrate lms``, the LMS's own ``activity_grades`` table
   with ``--rows`` grades over ``--classes`` x ``--activities`` (``bench/legacy.py``),
   VACUUM ANALYZE. Database B is a file copy of A (``CREATE DATABASE ... TEMPLATE``),
   so both hold the same rows.
2. Offline baseline, in B, with nothing else running: the LMS's table moves aside (schema
   ``lms_old``), ``manage.py migrate`` installs the app as on a fresh database, the
   parent gets the LMS's extra column ``lms_source``; then, timed: ``manage.py
   create_partitions --all-terms`` and one ``INSERT INTO activity_grades SELECT ... FROM
   lms_old.activity_grades`` through the routing trigger (one transaction). That is the
   hand-written conversion during downtime, without the downtime's renames. Unlike the
   conversion, the parent keeps the app's ``timestamptz`` columns (the LMS's
   ``timestamp(3)`` values are cast in UTC): same width, same rows, same indexes; and
   ``--all-terms`` creates every class x term table, the conversion only those its rows
   route to.
3. In A, ``manage.py migrate`` stages the app beside the LMS's table. The LMS load (one
   thread each: insert, update ``points + 1``, point read by id, count of a student's
   grades; own autocommit connections, ``--pause-ms`` between statements) runs alone
   for ``--warmup`` seconds (phase ``before``: latencies and the load's own WAL), then
   ``manage.py convert_grades_table --to partitioned --noinput --batch-size N`` runs as
   a child process, timed end to end (Python start-up included; phase ``during``), then
   the load runs ``--after`` more seconds on the tree (phase ``after``). psycopg
   prepares a statement after 5 runs; a prepared ``SELECT *`` fails once the table gains
   ``class_id`` and ``term_id`` at the swap: the error is counted and that thread opens
   a new session, as a pool would.
4. Checks: every update landed (points = base + increments), every insert is there once,
   no statement failed or saw a wrong row count, ``manage.py check_partitions``.

WAL is ``pg_current_wal_lsn()`` before and after, so it is server wide: the conversion's
figure includes the load's own WAL and anything else the server ran meanwhile. The
second figure subtracts the warm-up's rate times the conversion's time: crude, since the
load's statements through the parent cost far more after the swap (every child is
planned), so it writes less then. The tables are printed and
written to ``bench/results/convert.md``; the scratch databases are dropped unless
``--keep``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from . import db, legacy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "convert.md"
LMS_COLUMNS = (
    "id, activity_id, student_id, score, points, feedback, status, submitted_at, graded_at, "
    "graded_by_id, content, attachments, created_at, updated_at, is_archived, is_committed, "
    "commitment_id, commitment_deadline, commitment_met, lms_source"
)
OPS = ("insert", "update", "point read", "student count")
PHASES = ("before", "during", "after")
# Writers' created_at stays strictly inside a term (legacy.TERMS): no class-table rows.
TERM_SPANS = [
    (datetime.fromisoformat(start) + timedelta(days=1), datetime.fromisoformat(end))
    for _, start, end, _ in legacy.TERMS
]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.convert_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="grades in the LMS's table")
    p.add_argument("--batch-size", type=int, default=5000, help="rows per conversion batch")
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--activities", type=int, default=20, help="per class")
    p.add_argument("--warmup", type=float, default=20.0, help="seconds of load alone first")
    p.add_argument("--after", type=float, default=15.0, help="seconds of load after it")
    p.add_argument("--pause-ms", type=float, default=10.0, help="each load thread's pause")
    p.add_argument("--db", default=f"bench_convert_{os.getpid()}", help="scratch database")
    p.add_argument("--keep", action="store_true", help="keep the scratch databases")
    return p.parse_args(argv)


# -- databases and commands -----------------------------------------------------------------


def manage(url: str, *args: str, echo: bool = False) -> tuple[float, str]:
    """Run ``manage.py`` against ``url`` to the end: (seconds, output); fails loudly."""
    env = {**os.environ, "DATABASE_URL": url}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # echoed as it comes, with its time: the conversion's progress
        stamped = f"{time.perf_counter() - started:7.1f} s | {line}"
        lines.append(stamped if echo else line)
        if echo:
            print(stamped, end="", flush=True)
    proc.wait()
    seconds = time.perf_counter() - started
    output = "".join(lines)
    if proc.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} exited {proc.returncode}:\n{output}")
    return seconds, output


def connect(url: str, name: str = "convert_bench") -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, application_name=name)


def build_lms(url: str, args: argparse.Namespace) -> None:
    """The LMS's schema, its own grades table and data, analyzed."""
    manage(url, "migrate", "lms", "-v0")
    with connect(url) as conn:
        legacy.create_table(conn)
        legacy.seed(conn, args.classes, args.activities)
        legacy.add_grades(conn, args.rows, args.classes, args.activities)
        conn.execute("VACUUM ANALYZE")


def copy_database(server: str, source: str, target: str) -> str:
    """A file copy of ``source`` (FILE_COPY: a checkpoint, not the whole database in WAL)."""
    db.drop(server, target)
    with connect(server) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(target), sql.Identifier(source)
            )
        )
    return db.with_database(server, target)


@dataclass
class Wal:
    """WAL written between two marks (server wide), and its full-page images."""

    bytes: int = 0
    fpi: int = 0


def wal_mark(conn: psycopg.Connection) -> tuple[str, int]:
    # pg_stat_wal lags by up to a second (backends flush their counters): FPIs are approximate.
    lsn, fpi = conn.execute(
        "SELECT pg_current_wal_lsn()::text, wal_fpi FROM pg_stat_wal"
    ).fetchone()
    return lsn, int(fpi)


def wal_since(conn: psycopg.Connection, mark: tuple[str, int]) -> Wal:
    written, fpi = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s), wal_fpi FROM pg_stat_wal", [mark[0]]
    ).fetchone()
    return Wal(int(written), int(fpi) - mark[1])


def code_version() -> str:
    """The commit measured; "-dirty": the tree held uncommitted work when the run started."""
    return subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def server_info(conn: psycopg.Connection) -> str:
    version, buffers, wal = conn.execute(
        "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
        "current_setting('max_wal_size')"
    ).fetchone()
    return f"PostgreSQL {version}, shared_buffers {buffers}, max_wal_size {wal}"


# -- the offline baseline -------------------------------------------------------------------


@dataclass
class Offline:
    create_s: float
    insert_s: float
    wal: Wal

    @property
    def seconds(self) -> float:
        return self.create_s + self.insert_s


def offline_baseline(url: str) -> Offline:
    with connect(url) as conn:
        # Out of search_path: migrate installs the app as if there were no LMS table.
        conn.execute("CREATE SCHEMA lms_old")
        conn.execute("ALTER TABLE public.activity_grades SET SCHEMA lms_old")
    manage(url, "migrate", "-v0")
    with connect(url) as conn:
        # Before any partition exists, so every partition inherits it (as fit_parent does).
        conn.execute(
            "ALTER TABLE activity_grades ADD COLUMN lms_source varchar(20) NOT NULL DEFAULT 'web'"
        )
        conn.execute("CHECKPOINT")
        start = wal_mark(conn)
        create_s, _ = manage(url, "create_partitions", "--all-terms", "-v0")
        cols = sql.SQL(LMS_COLUMNS)
        started = time.perf_counter()
        conn.execute(
            sql.SQL(
                "INSERT INTO activity_grades ({}) SELECT {} FROM lms_old.activity_grades"
            ).format(cols, cols)
        )
        insert_s = time.perf_counter() - started
        return Offline(create_s, insert_s, wal_since(conn, start))


# -- the LMS's load -------------------------------------------------------------------------


class Mismatch(Exception):
    """A statement that ran but did not do what it says (a lost or doubled row)."""


@dataclass
class Sample:
    op: str
    phase: str
    at: float  # perf_counter when it started
    seconds: float


@dataclass
class Load:
    """Four threads of LMS traffic on ``activity_grades``, each with its own connection."""

    url: str
    rows: int
    classes: int
    activities: int
    pause: float
    phase: str = "before"
    stop: threading.Event = field(default_factory=threading.Event)
    samples: list[Sample] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # op, phase, message
    inserted: list[str] = field(default_factory=list)
    increments: Counter[str] = field(default_factory=Counter)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        steps = (self._insert, self._update, self._point_read, self._student_count)
        for op, step in zip(OPS, steps, strict=True):
            thread = threading.Thread(target=self._loop, args=(op, step), daemon=True)
            self.threads.append(thread)
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _loop(
        self, op: str, step: Callable[[psycopg.Connection, random.Random, int], None]
    ) -> None:
        rng = random.Random(op)
        conn = connect(self.url, "convert_bench_load")
        n = 0
        while not self.stop.is_set():
            phase, started = self.phase, time.perf_counter()
            try:
                step(conn, rng, n)
            except (psycopg.Error, Mismatch) as exc:
                self.errors.append((op, phase, f"{type(exc).__name__}: {exc}".strip()))
                # A prepared SELECT * fails for good once the table gains class_id and
                # term_id ("cached plan must not change result type"): a new session, as a
                # pool would discard the broken one.
                if conn.broken or isinstance(exc, psycopg.errors.FeatureNotSupported):
                    conn.close()
                    conn = connect(self.url, "convert_bench_load")
            self.samples.append(Sample(op, phase, started, time.perf_counter() - started))
            n += 1
            time.sleep(self.pause)
        conn.close()

    def _insert(self, conn: psycopg.Connection, rng: random.Random, n: int) -> None:
        grade_id = f"w{n}"
        start, end = rng.choice(TERM_SPANS)
        at = start + (end - start) * rng.random()
        activity = f"c{rng.randint(1, self.classes)}/a{rng.randint(1, self.activities)}"
        conn.execute(
            "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
            "created_at, updated_at) VALUES (%s, %s, %s, 'graded', %s, %s, %s)",
            [grade_id, activity, grade_id, at, at, at],
        )
        self.inserted.append(grade_id)

    def _update(self, conn: psycopg.Connection, rng: random.Random, n: int) -> None:
        grade_id = f"g{rng.randrange(self.rows)}"
        cur = conn.execute(
            "UPDATE activity_grades SET points = points + 1 WHERE id = %s", [grade_id]
        )
        if cur.rowcount != 1:
            raise Mismatch(f"update of {grade_id} changed {cur.rowcount} rows")
        self.increments[grade_id] += 1

    def _point_read(self, conn: psycopg.Connection, rng: random.Random, n: int) -> None:
        grade_id = f"g{rng.randrange(self.rows)}"
        found = conn.execute("SELECT * FROM activity_grades WHERE id = %s", [grade_id]).fetchall()
        if len(found) != 1:
            raise Mismatch(f"point read of {grade_id} found {len(found)} rows")

    def _student_count(self, conn: psycopg.Connection, rng: random.Random, n: int) -> None:
        student, expected = rng.choice(students(self.rows, self.classes * self.activities))
        count = conn.execute(
            "SELECT count(*) FROM activity_grades WHERE student_id = %s", [student]
        ).fetchone()[0]
        if count != expected:
            raise Mismatch(f"student {student} has {count} grades, not {expected}")


def students(rows: int, per_student: int) -> list[tuple[str, int]]:
    """(student, grade count) of legacy.add_grades' students: s<k> takes grades k*per.."""
    full = rows // per_student
    if full == 0:
        return [("s0", rows)]
    return [(f"s{k}", per_student) for k in range(full)]


def check_writes(url: str, load: Load) -> dict[str, int]:
    """Updates that did not land, inserts missing or doubled, rows that are not there."""
    with connect(url) as conn:
        found = dict(
            conn.execute(
                "SELECT id, points FROM activity_grades WHERE id = ANY(%s)",
                [list(load.increments)],
            ).fetchall()
        )
        lost = sum(
            1
            for grade_id, n in load.increments.items()
            # legacy.add_grades: points = i % 100 for grade g<i>
            if found.get(grade_id) != int(grade_id[1:]) % 100 + n
        )
        copies = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM activity_grades WHERE id = ANY(%s)",
            [load.inserted],
        ).fetchone()
    return {
        "updated rows": len(load.increments),
        "increments": sum(load.increments.values()),
        "lost updates": lost,
        "inserted": len(load.inserted),
        "inserts missing": len(load.inserted) - copies[1],
        "inserts doubled": copies[0] - copies[1],
    }


# -- the online conversion ------------------------------------------------------------------


@dataclass
class Online:
    seconds: float
    output: str
    started: float  # perf_counter at its start, to place the load's samples
    wal: Wal
    load_wal: Wal  # the load alone, during the warm-up
    warmup_s: float
    checks: dict[str, int] = field(default_factory=dict)
    tree_ok: bool = False

    @property
    def summary(self) -> str:
        lines = [line.split("| ", 1)[-1] for line in self.output.splitlines()]
        found = [line for line in lines if line.startswith("Converted")]
        return found[-1] if found else "(no summary line)"

    @property
    def moved(self) -> int:
        found = re.search(r"(\d+) rows moved", self.summary)
        return int(found.group(1)) if found else 0

    @property
    def first_batch_s(self) -> float:
        """When the first batch's progress line came: prepare, backfill, swap, partitions."""
        for line in self.output.splitlines():
            if "| " in line and "moved " in line.split("| ", 1)[1]:
                return float(line.split(" s |", 1)[0])
        return float("nan")

    @property
    def load_wal_estimate(self) -> int:
        return int(self.load_wal.bytes / self.warmup_s * self.seconds)


def online(url: str, args: argparse.Namespace) -> tuple[Online, Load]:
    manage(url, "migrate", "-v0")
    load = Load(url, args.rows, args.classes, args.activities, args.pause_ms / 1000)
    with connect(url) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        warm = wal_mark(conn)
        load.start()
        time.sleep(args.warmup)
        load_wal = wal_since(conn, warm)
        start = wal_mark(conn)
        load.phase, started = "during", time.perf_counter()
        seconds, output = manage(
            url,
            "convert_grades_table",
            "--to",
            "partitioned",
            "--noinput",
            "--batch-size",
            str(args.batch_size),
            echo=True,
        )
        wal = wal_since(conn, start)
        load.phase = "after"
        time.sleep(args.after)
        load.finish()
    result = Online(seconds, output, started, wal, load_wal, args.warmup)
    result.checks = check_writes(url, load)
    _, printed = manage(url, "check_partitions")
    result.tree_ok = "Partition tree OK." in printed
    if not result.tree_ok:
        print(printed)
    return result, load


# -- the report -----------------------------------------------------------------------------


def pretty(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def latency_rows(load: Load, started: float) -> list[str]:
    """One row per operation and phase: count, median, p99, longest (when), errors."""
    rows = []
    for op in OPS:
        before_p99 = None
        for phase in PHASES:
            times = [s for s in load.samples if s.op == op and s.phase == phase]
            if not times:
                continue
            ms = sorted(s.seconds * 1000 for s in times)
            p99 = statistics.quantiles(ms, n=100)[98] if len(ms) > 1 else ms[0]
            worst = max(times, key=lambda s: s.seconds)
            before_p99 = p99 if phase == "before" else before_p99
            vs = f"{p99 / before_p99:.1f}x" if before_p99 and phase != "before" else ""
            errors = sum(1 for e in load.errors if e[0] == op and e[1] == phase)
            rows.append(
                f"| {op} | {phase} | {len(ms)} | {statistics.median(ms):.1f} | {p99:.1f} | {vs} "
                f"| {worst.seconds * 1000:.0f} (at {worst.at - started:+.1f} s) | {errors} |"
            )
    return rows


def report(args: argparse.Namespace, info: str, offline: Offline, run: Online, load: Load) -> str:
    c = run.checks
    ok = c["lost updates"] == 0 and c["inserts missing"] == 0 and c["inserts doubled"] == 0
    wal_est = run.wal.bytes - run.load_wal_estimate
    lines = [
        f"## convert_grades_table --to partitioned: {args.rows:,} rows, batch {args.batch_size}",
        "",
        f"{info}; {args.classes} classes x {args.activities} activities; load: 4 threads, "
        f"{args.pause_ms:g} ms pause, {args.warmup:g} s alone before, {args.after:g} s after.",
        "",
        "| | |",
        "|---|---|",
        f"| rows | {args.rows:,} ({run.moved:,} moved: the load's inserts before the swap too) |",
        f"| batch size | {args.batch_size} |",
        f"| conversion, end to end | {run.seconds:.1f} s ({run.moved / run.seconds:,.0f} rows/s);"
        f" first batch done at {run.first_batch_s:.1f} s |",
        f"| command's summary | {run.summary} |",
        f"| offline baseline | {offline.seconds:.1f} s ({args.rows / offline.seconds:,.0f} rows/s):"
        f" create_partitions {offline.create_s:.1f} s + INSERT ... SELECT {offline.insert_s:.1f} s"
        " |",
        f"| ratio conversion / baseline | {run.seconds / offline.seconds:.2f} |",
        f"| WAL during the conversion (server wide) | {pretty(run.wal.bytes)}, "
        f"{run.wal.fpi:,} full-page images; minus the load's own (~"
        f"{pretty(run.load_wal_estimate)} at the warm-up's rate): {pretty(wal_est)} |",
        f"| WAL of the load alone, warm-up | {pretty(run.load_wal.bytes)} in {args.warmup:g} s, "
        f"{run.load_wal.fpi:,} full-page images |",
        f"| WAL of the offline baseline | {pretty(offline.wal.bytes)}, "
        f"{offline.wal.fpi:,} full-page images |",
        f"| WAL ratio conversion (minus load) / baseline | {wal_est / offline.wal.bytes:.2f} |",
        f"| lost updates | {c['lost updates']} of {c['updated rows']} rows "
        f"({c['increments']} increments): {'OK' if ok else 'FAILED'} |",
        f"| inserts missing / doubled | {c['inserts missing']} / {c['inserts doubled']} "
        f"of {c['inserted']} |",
        f"| errors | {len(load.errors)} |",
        f"| check_partitions | {'Partition tree OK' if run.tree_ok else 'FAILED'} |",
        "",
        "Latency per operation (ms); `longest` is the longest a thread waited, `at` seconds "
        "from the conversion's start.",
        "",
        "| operation | phase | count | median | p99 | p99 vs before | longest (at) | errors |",
        "|---|---|---|---|---|---|---|---|",
        *latency_rows(load, run.started),
    ]
    errors = Counter(f"{op} ({phase}): {m}" for op, phase, m in load.errors)
    lines += ["", *(f"- error {n} x {message}" for message, n in errors.items())] if errors else []
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    code = code_version()
    server = db.server_url()
    offline_name = f"{args.db}_offline"
    url = db.recreate(server, args.db)
    try:
        clock = time.perf_counter()
        build_lms(url, args)
        offline_url = copy_database(server, args.db, offline_name)
        print(f"built {args.rows:,} rows in {time.perf_counter() - clock:.0f} s", flush=True)
        offline = offline_baseline(offline_url)
        print(f"offline baseline: {offline.seconds:.1f} s", flush=True)
        if not args.keep:
            db.drop(server, offline_name)  # its disk and buffers, before the timed run
        run, load = online(url, args)
        with connect(url) as conn:
            info = f"{server_info(conn)}; code {code}"
        text = report(args, info, offline, run, load)
        print("\n" + text)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
    finally:
        if not args.keep:
            db.drop(server, offline_name)
            db.drop(server, args.db)


if __name__ == "__main__":
    main()
