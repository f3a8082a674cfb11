"""A sharded class against a local one, and two shards written in parallel against one
server (issue 16).

    python -m bench.shard_bench [--rows 10000] [--batch 1000] [--inserts 500]
                                [--repeat 7] [--seconds 20] [--writers 4]

Starts a coordinator and two shard servers of its own (``tests/pg_servers.py``: the
machine's PostgreSQL 15 server binaries, with postgres_fdw), migrates the demo project onto
the coordinator, names the shards to Django with ``DATABASE_SHARD_URLS`` (aliases
``shard1``, ``shard2``), seeds four classes (10 activities each) and two terms, places
``c1`` and ``c3`` locally, ``c2`` on shard1 and ``c4`` on shard2, runs ``setup_shards`` and
``create_partitions --all-terms``, and loads ``--rows`` grades into each class through the
parent (half per term; each student has 10 grades of one class, 5 per term).

Then, in one run, alternating the local class ``c1`` and the sharded class ``c2`` (which
goes first alternates too) for ``--repeat`` rounds:

- ``--inserts`` single-row INSERTs through the parent (autocommit, one statement a row);
- ``ActivityGradeService().record_many`` of ``--batch`` rows;
- ``gradebook(class, '2024_spring')`` (``--rows / 2`` grades as model instances; the
  inserts above go to the fall term, so its size stays the same);
- ``student_record(student)`` (10 grades in two term tables).

Each figure is the median of the rounds. Then ``--writers`` processes insert one row a
statement for ``--seconds`` into the local classes c1 and c3 (one server), and into c2
(shard1) and c4 (shard2): two shards written in parallel, in the order local, sharded,
sharded, local; rows/s of each kind is the mean of its two phases.

Every server shares this machine's cores: the coordinator and both shards compete for the
same CPUs, so the parallel part cannot show a scale-out. What it shows is the cost of the
postgres_fdw hop (a remote statement per row, plus the coordinator's key-index row) when
the work is spread over three servers instead of one. Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg

from tests.pg_servers import HAVE_SERVER_BINARIES, SKIP_REASON, Server, own_server

from . import legacy

ROOT = Path(__file__).resolve().parent.parent
SHARD_DATABASE = "grades"
PLACEMENT = {"c1": "local", "c2": "shard1", "c3": "local", "c4": "shard2"}
LOCAL_CLASS, SHARDED_CLASS = "c1", "c2"

# --rows grades of one class through the parent: even rows in the fall term, odd rows in
# the spring term; student <class>-s<k> has activities a1..a10 (5 per term).
LOAD = """
INSERT INTO activity_grades (id, activity_id, student_id, score, points, feedback, status,
    submitted_at, graded_at, content, created_at, updated_at)
SELECT %(c)s || '-g' || i, %(c)s || '/a' || (i %% 10 + 1), %(c)s || '-s' || (i / 10),
       i * 0.5, i %% 100, 'feedback ' || i, 'graded', t, t, jsonb_build_object('answer', i),
       t, t
  FROM generate_series(0, %(n)s - 1) i,
       LATERAL (SELECT CASE WHEN i %% 2 = 0 THEN timestamptz '2023-08-15 00:00+00'
                            ELSE timestamptz '2024-01-20 00:00+00' END
                       + (i %% 100) * interval '1 day' + (i %% 86400) * interval '1 second'
                       AS t) x
"""

INSERT = (
    "INSERT INTO activity_grades (id, activity_id, student_id, status, submitted_at, "
    "created_at) VALUES (%s, %s, %s, 'graded', now(), timestamptz '2023-10-02 10:00+00')"
)

# One process, Django set up with the shards: the per-class measurements, alternating.
MEASURE = textwrap.dedent(
    """
    import datetime as dt, json, os, statistics, sys, time
    import django
    django.setup()
    import psycopg
    from activity_grades import ActivityGradeService
    a = json.loads(sys.argv[1])
    insert_sql, classes = a["insert"], a["classes"]
    svc = ActivityGradeService()
    at = dt.datetime(2023, 10, 3, 10, tzinfo=dt.timezone.utc)
    out = {c: {"insert": [], "record_many": [], "gradebook": [], "student_record": []}
           for c in classes}
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        for r in range(a["repeat"]):
            order = classes if r % 2 == 0 else classes[::-1]
            for c in order:
                res = out[c]
                start = time.perf_counter()
                for i in range(a["inserts"]):
                    conn.execute(insert_sql, [f"{c}-i{r}-{i}", f"{c}/a{i % 10 + 1}",
                                              f"{c}-ins{r}-{i // 10}"])
                res["insert"].append((time.perf_counter() - start) / a["inserts"])
                rows = [{"id": f"{c}-m{r}-{i}", "activity_id": f"{c}/a{i % 10 + 1}",
                         "student_id": f"{c}-many{r}-{i // 10}", "status": "graded",
                         "submitted_at": at, "created_at": at, "score": i * 0.5}
                        for i in range(a["batch"])]
                start = time.perf_counter()
                svc.record_many(rows)
                res["record_many"].append(time.perf_counter() - start)
                start = time.perf_counter()
                n = len(svc.gradebook(c, "2024_spring"))
                res["gradebook"].append(time.perf_counter() - start)
                start = time.perf_counter()
                m = len(svc.student_record(f"{c}-s{r + 1}"))
                res["student_record"].append(time.perf_counter() - start)
                assert m == 10, (c, m)
                res.setdefault("gradebook_rows", n)
    print(json.dumps(out))
    """
)

WRITER = textwrap.dedent(
    """
    import sys, time, psycopg
    url, name, seconds, insert_sql = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    c = sys.argv[5]
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.execute(insert_sql, [f"{name}-{n}", f"{c}/a{n % 10 + 1}", f"{name}-{n // 10}"])
            n += 1
    print(n)
    """
)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.shard_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=10_000, help="grades loaded per class")
    p.add_argument("--batch", type=int, default=1_000, help="rows of each record_many")
    p.add_argument("--inserts", type=int, default=500, help="single-row INSERTs a round")
    p.add_argument("--repeat", type=int, default=7, help="rounds of each per-class measure")
    p.add_argument("--seconds", type=float, default=20, help="length of a parallel phase")
    p.add_argument("--writers", type=int, default=4, help="writer processes in a phase")
    return p.parse_args(argv)


def _env(coordinator: str, shards: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TEST_DATABASE_NAME", "DATABASE_REPLICA_URL", "ACTIVITY_GRADES_SCHEMA"):
        env.pop(name, None)
    env.update(
        DATABASE_URL=coordinator,
        DATABASE_SHARD_URLS=",".join(shards),
        DJANGO_SETTINGS_MODULE="gradeproject.settings",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _shard(stack: ExitStack, prefix: str) -> Server:
    server = stack.enter_context(own_server(prefix))
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {SHARD_DATABASE}")
    return server


def start_servers(stack: ExitStack) -> tuple[str, list[str], dict[str, str]]:
    """A coordinator and two shard servers of its own, stopped when ``stack`` closes: the
    coordinator's URL, the shards' (database ``grades``) and the environment naming them to
    Django (``DATABASE_SHARD_URLS``: aliases ``shard1``, ``shard2``)."""
    coordinator = stack.enter_context(own_server("ag-bench-coord-")).url()
    shard_urls = [_shard(stack, f"ag-bench-shard{i}-").url(SHARD_DATABASE) for i in (1, 2)]
    return coordinator, shard_urls, _env(coordinator, shard_urls)


def set_up(env: dict[str, str], coordinator: str, placement: dict[str, str]) -> str:
    """Migrate the demo project onto the coordinator, seed ``len(placement)`` classes
    (``c1``, ``c2``, ...; 10 activities each) and two terms, place each class as
    ``placement`` says, run ``setup_shards`` and ``create_partitions --all-terms``; return
    the server's version."""
    _manage(env, "migrate", "-v0")
    with psycopg.connect(coordinator, autocommit=True) as conn:
        legacy.seed(conn, len(placement), 10)
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    version = str(row[0])
    place = "; ".join(f"placement.place({c!r}, {s!r})" for c, s in placement.items())
    _manage(env, "shell", "-c", f"from activity_grades import placement; {place}")
    _manage(env, "setup_shards", "-v0")
    _manage(env, "create_partitions", "--all-terms", "-v0")
    return version


def load(conn: psycopg.Connection, class_id: str, rows: int) -> float:
    """``rows`` grades of ``class_id`` through the parent (``LOAD``); return the seconds."""
    start = time.perf_counter()
    conn.execute(LOAD, {"c": class_id, "n": rows})
    return time.perf_counter() - start


def _parallel(args: argparse.Namespace, url: str, classes: list[str], tag: str) -> int:
    """Rows written by --writers processes in --seconds, writer w into classes[w % n]."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"{tag}{w}", str(args.seconds), INSERT]
            + [classes[w % len(classes)]],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(args.writers)
    ]
    written = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=args.seconds + 120)
        assert proc.returncode == 0
        written += int(out.strip())
    return written


def _med(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    if not HAVE_SERVER_BINARIES:
        print(SKIP_REASON, file=sys.stderr)
        return 2
    args = parse(argv)
    began = time.monotonic()
    with ExitStack() as stack:
        coordinator, shard_urls, env = start_servers(stack)
        version = set_up(env, coordinator, PLACEMENT)
        with psycopg.connect(coordinator, autocommit=True) as conn:
            loaded = {c: load(conn, c, args.rows) for c in PLACEMENT}
            conn.execute("ANALYZE")
        for url in shard_urls:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
        print(
            f"PostgreSQL {version}, coordinator + 2 shards on one machine "
            f"({os.cpu_count()} cores); {args.rows} grades per class, {len(PLACEMENT)} "
            f"classes ({', '.join(f'{c}={s}' for c, s in PLACEMENT.items())}); "
            f"{args.repeat} rounds, {args.inserts} inserts and a record_many of {args.batch} "
            f"a round; {args.writers} writers x {args.seconds:.0f} s a parallel phase",
            flush=True,
        )
        print(
            "load through the parent (INSERT ... SELECT, rows/s): "
            + ", ".join(f"{c} ({PLACEMENT[c]}) {args.rows / s:,.0f}" for c, s in loaded.items()),
            flush=True,
        )
        payload = {
            "insert": INSERT,
            "classes": [LOCAL_CLASS, SHARDED_CLASS],
            "repeat": args.repeat,
            "inserts": args.inserts,
            "batch": args.batch,
        }
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, json.dumps(payload)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        local_classes = [c for c, s in PLACEMENT.items() if s == "local"]
        sharded_classes = [c for c, s in PLACEMENT.items() if s != "local"]
        phases: dict[str, list[int]] = {"local": [], "sharded": []}
        for i, kind in enumerate(("local", "sharded", "sharded", "local")):
            classes = local_classes if kind == "local" else sharded_classes
            phases[kind].append(_parallel(args, coordinator, classes, f"p{i}{kind[0]}-"))
    loc, sh = measured[LOCAL_CLASS], measured[SHARDED_CLASS]
    print(f"{'per class (median of rounds)':<34}{'local c1':>12}{'sharded c2':>12}{'ratio':>8}")
    rows = [
        ("single-row INSERT, us/row", "insert", 1e6),
        (f"record_many {args.batch} rows, ms", "record_many", 1e3),
        (f"gradebook ({loc['gradebook_rows']} rows), ms", "gradebook", 1e3),
        ("student_record (10 rows), ms", "student_record", 1e3),
    ]
    for label, key, scale in rows:
        a, b = _med(loc[key]) * scale, _med(sh[key]) * scale
        print(f"{label:<34}{a:>12.1f}{b:>12.1f}{b / a:>7.2f}x")
    ins_l, ins_s = 1 / _med(loc["insert"]), 1 / _med(sh["insert"])
    many_l = args.batch / _med(loc["record_many"])
    many_s = args.batch / _med(sh["record_many"])
    print(
        f"as rows/s: INSERT {ins_l:,.0f} local, {ins_s:,.0f} sharded; record_many "
        f"{many_l:,.0f} local, {many_s:,.0f} sharded"
    )
    rate_l = statistics.mean(phases["local"]) / args.seconds
    rate_s = statistics.mean(phases["sharded"]) / args.seconds
    print(
        f"{args.writers} writers, rows/s: local classes (one server) {rate_l:,.0f} "
        f"(phases {', '.join(str(round(n / args.seconds)) for n in phases['local'])}); "
        f"two shards in parallel {rate_s:,.0f} "
        f"(phases {', '.join(str(round(n / args.seconds)) for n in phases['sharded'])}); "
        f"sharded/local {rate_s / rate_l:.2f}x"
    )
    print(
        f"(all three servers share {os.cpu_count()} cores: the parallel figure is the "
        f"postgres_fdw hop's cost under load, not a scale-out; run took "
        f"{time.monotonic() - began:.0f} s)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
