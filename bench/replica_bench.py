"""Reporting reads on a streaming standby against the same reads on the primary, under a
steady write load (issue 15).

    python -m bench.replica_bench [--classes 40] [--grades 200000] [--seconds 20]
                                  [--writers 2] [--readers 2]

Starts a primary and a hot standby of its own (``tests/pg_servers.py``: the machine's
PostgreSQL 15 server binaries; ``pg_basebackup -R``), loads classes, activities, two terms
and ``--grades`` grades through the parent, then runs three phases of ``--seconds`` each,
in one run:

1. ``writes alone``: ``--writers`` processes insert grades one row a statement through the
   parent (grading traffic), the baseline of write throughput;
2. ``reads on primary``: the same writers, and ``--readers`` processes calling the
   service's reporting reads (``gradebook``, ``activity_stats``, ``student_record``) with
   no replica configured;
3. ``reads on standby``: the same, with ``DATABASE_REPLICA_URL`` set, so the app's router
   sends those reads to the standby.

Prints writes/s per phase with its ratio to phase 1, read calls and their latency (median
and 95th percentile) in phases 2 and 3 with the ratio 3/2, and how many bytes of WAL the
standby had still to replay when the writes stopped. Both servers share this machine's
cores: the standby takes read work off the primary's backends, not off the CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

from tests.pg_servers import HAVE_SERVER_BINARIES, SKIP_REASON, own_server, standby_of

from . import legacy

ROOT = Path(__file__).resolve().parent.parent

LOAD = """
INSERT INTO activity_grades (id, activity_id, student_id, score, points, feedback, status,
    submitted_at, graded_at, content, created_at, updated_at)
SELECT 'g' || i, 'c' || (i %% %(classes)s + 1) || '/a' || ((i / %(classes)s) %% 10 + 1),
       's' || (i / (%(classes)s * 10)), i * 0.5, i %% 100, 'feedback ' || i,
       'graded', t, t, jsonb_build_object('answer', i), t, t
  FROM generate_series(0, %(n)s - 1) i,
       LATERAL (SELECT timestamptz '2023-08-15 00:00+00' + (i %% 280) * interval '1 day'
                       + (i %% 86400) * interval '1 second' AS t) x
"""

WRITER = textwrap.dedent(
    """
    import sys, time, psycopg
    url, name, seconds, classes = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at) VALUES (%s, %s, %s, 'graded', now(), "
                "timestamptz '2023-10-02 10:00+00')",
                [f"{name}-{n}", f"c{n % classes + 1}/a{n % 10 + 1}", f"{name}-{n}"],
            )
            n += 1
    print(n)
    """
)

READER = textwrap.dedent(
    """
    import json, sys, time, django
    django.setup()
    from django.db import connections
    from activity_grades import ActivityGradeService
    seconds, classes, k = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    svc = ActivityGradeService()
    latencies, n = [], k
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c = f"c{n % classes + 1}"
        call = n % 3
        start = time.perf_counter()
        if call == 0:
            svc.gradebook(c, "2023_fall")
        elif call == 1:
            svc.activity_stats(c, "2024_spring")
        else:
            svc.student_record(f"s{n % 400}")
        latencies.append(time.perf_counter() - start)
        n += 1
    used = sorted(alias for alias in connections if connections[alias].connection is not None)
    print(json.dumps({"latencies": latencies, "used": used}))
    """
)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.replica_bench", description=__doc__)
    p.add_argument("--classes", type=int, default=40)
    p.add_argument("--grades", type=int, default=200_000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--writers", type=int, default=2)
    p.add_argument("--readers", type=int, default=2)
    return p.parse_args(argv)


def _env(primary: str, replica: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TEST_DATABASE_NAME", None)
    env.pop("DATABASE_REPLICA_URL", None)
    env.update(DATABASE_URL=primary, DJANGO_SETTINGS_MODULE="gradeproject.settings")
    if replica:
        env["DATABASE_REPLICA_URL"] = replica
        env["ACTIVITY_GRADES_REPLICA_MAX_LAG"] = "30"
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, check=True)


def _phase(
    args: argparse.Namespace, primary: str, replica: str | None, readers: int, tag: str
) -> tuple[int, list[float], list[str]]:
    """(rows written, read latencies, database aliases the readers used)."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, primary, f"{tag}{w}", str(args.seconds)]
            + [str(args.classes)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(args.writers)
    ]
    reading = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(args.seconds), str(args.classes), str(r * 7)],
            cwd=ROOT,
            env=_env(primary, replica),
            stdout=subprocess.PIPE,
            text=True,
        )
        for r in range(readers)
    ]
    written = 0
    for proc in writers:
        out, _ = proc.communicate(timeout=args.seconds + 120)
        assert proc.returncode == 0
        written += int(out.strip())
    latencies: list[float] = []
    used: set[str] = set()
    for proc in reading:
        out, _ = proc.communicate(timeout=args.seconds + 120)
        assert proc.returncode == 0
        result = json.loads(out.strip().splitlines()[-1])
        latencies += result["latencies"]
        used.update(result["used"])
    return written, latencies, sorted(used)


def _quantiles(latencies: list[float]) -> tuple[float, float]:
    ms = sorted(x * 1000 for x in latencies)
    return statistics.median(ms), ms[int(len(ms) * 0.95)]


def main(argv: list[str] | None = None) -> int:
    if not HAVE_SERVER_BINARIES:
        print(SKIP_REASON, file=sys.stderr)
        return 2
    args = parse(argv)
    with own_server("ag-bench-primary-") as server:
        primary = server.url()
        _manage(_env(primary, None), "migrate", "-v0")
        with psycopg.connect(primary, autocommit=True) as conn:
            legacy.seed(conn, args.classes, 10)
        _manage(_env(primary, None), "create_partitions", "--all-terms", "-v0")
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute(LOAD, {"classes": args.classes, "n": args.grades})
            conn.execute("ANALYZE")
            version = conn.execute("SHOW server_version").fetchone()[0]
        with standby_of(server) as standby:
            replica = standby.url()
            print(
                f"PostgreSQL {version}; {args.grades} grades, {args.classes} classes x 2 terms; "
                f"{args.writers} writers, {args.readers} readers, {args.seconds:.0f} s a phase",
                flush=True,
            )
            base, _, _ = _phase(args, primary, None, 0, "a")
            on_primary, lat_primary, used_primary = _phase(args, primary, None, args.readers, "b")
            on_standby, lat_standby, used_standby = _phase(
                args, primary, replica, args.readers, "c"
            )
            # How far behind the standby was when the last phase's writes stopped.
            with psycopg.connect(primary, autocommit=True) as conn:
                lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            with psycopg.connect(replica, autocommit=True) as conn:
                behind = conn.execute(
                    "SELECT greatest(pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn()), 0)",
                    [lsn],
                ).fetchone()[0]
    rate = args.seconds
    header = f"{'phase':<20}{'writes/s':>10}{'vs alone':>10}{'reads':>8}"
    print(header + f"{'median ms':>11}{'p95 ms':>9}")
    print(f"{'writes alone':<20}{base / rate:>10.0f}{1.0:>10.2f}")
    for name, written, lat in (
        ("reads on primary", on_primary, lat_primary),
        ("reads on standby", on_standby, lat_standby),
    ):
        median, p95 = _quantiles(lat)
        print(
            f"{name:<20}{written / rate:>10.0f}{written / base:>10.2f}{len(lat):>8}"
            f"{median:>11.1f}{p95:>9.1f}"
        )
    (m1, p1), (m2, p2) = _quantiles(lat_primary), _quantiles(lat_standby)
    print(
        f"standby / primary: writes {on_standby / on_primary:.2f}x, read median "
        f"{m2 / m1:.2f}x, p95 {p2 / p1:.2f}x; readers used {used_primary} then "
        f"{used_standby}; the standby {int(behind):,} bytes of WAL behind at the end",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
