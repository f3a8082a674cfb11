"""Moving a class between servers online: ``move_class`` against a plain load, and what its
writers and readers see during the swap (issue 16).

    python -m bench.move_bench [--rows 20000] [--writers 2] [--repeat 3]
                               [--batch-size 5000]

Starts a coordinator and two shard servers of its own and sets them up with
``bench/shard_bench.py``'s functions (``start_servers``, ``set_up``, ``load``): seven classes
(with ``--repeat 3``) of 10 activities and two terms, placed ``c1`` local (the class that
moves), ``c2`` local, ``c3`` on shard1, ``c4`` on shard2 (classes that stay, for the
writers' baseline), and ``c5``, ``c6``, ... each on the target of one move (empty, for the
load baseline); ``c1`` gets ``--rows`` grades through the parent (half per term).

Then ``--repeat`` moves of ``c1``, local -> shard1 -> shard2 -> local -> ..., each in two
phases, with the same concurrent load in both:

- **baseline**: ``--writers`` processes insert single grades (autocommit, one statement a
  row, through the coordinator's parent, into the fall term) into the class that stays on
  the server ``c1`` is on, one thread reads ``gradebook('c1', '2024_spring')`` in a loop,
  and ``ActivityGradeService().record_many`` loads ``--rows`` grades (the same rows as
  ``c1``'s, under the fresh class's ids) into the fresh class on the move's target: the
  fastest plain path (a COPY on the shard's alias and one key statement here, or a COPY
  into the local leaves);
- **move**: the same writers insert into ``c1`` itself, the same reader reads it, and
  ``move_class.move_class('c1', target)`` moves it (``--batch-size`` rows a batch); its
  ``progress`` lines are timestamped.

Each insert's latency and end time (``time.monotonic``, one clock for all processes) and
each read's are recorded. Reported for each move: its rows/s (rows moved / the call's
wall time) against the load's, the writers' median latency in both phases, their worst
during the move and when it started and ended relative to the "writes paused" line, the
swap as the mover sees it ("writes paused" to "swapped to"), the reader's worst latency in
both phases, and failures. Asserted, data only: no write and no read failed, and after
each move the rows of ``c1`` on the target server (counted there) are the rows loaded plus
every insert so far, and none is left on a shard it left. Nothing is asserted on time.

The writers never pause, so the class grows while it moves: the copy takes each table up
to the greatest id it held when its copy began, and the rows inserted later reach the
target through the capture log (the catch-up rounds, then the swap). Every move moves the
rows loaded plus all inserts so far; with 100,000 rows a run took over 9 minutes here,
hence 20,000 by default (about three minutes). The swap's pause is split in two, from the
mover's progress lines: applying the changes the catch-up left, and the counts and
checksums. "swapped to" is said after the commit, and may come later than the writers
resume (the mover's thread shares the GIL with the reader): the writers' worst latency is
the pause they saw.

The three servers, the writers, the reader and the mover share this machine's cores: the
move's rate is the rate under that load, and so is the baseline's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.pg_servers import HAVE_SERVER_BINARIES, SKIP_REASON

from .shard_bench import INSERT, load, set_up, start_servers

MOVING = "c1"
STILL = {"local": "c2", "shard1": "c3", "shard2": "c4"}
CYCLE = ["shard1", "shard2", "local"]
READ_TERM = "2024_spring"  # the writers insert into the fall term: this one stays its size
PAUSED, SWAPPED = "writes paused", "swapped to"
APPLIED, VERIFIED = "last changes applied", "verified, swapping"  # inside the swap

# One writer process: single-row INSERTs through the parent until the stop file exists;
# prints [start, end, error or null] of each (time.monotonic: one clock for every process).
WRITER = textwrap.dedent(
    """
    import json, os, sys, time, psycopg
    url, tag, c, stop, insert_sql = sys.argv[1:6]
    out, n = [], 0
    conn = psycopg.connect(url, autocommit=True)
    while not os.path.exists(stop):
        start = time.monotonic()
        err = None
        try:
            conn.execute(insert_sql, [f"{tag}-{n}", f"{c}/a{n % 10 + 1}", f"{tag}-{n // 10}"])
        except psycopg.Error as exc:
            err = f"{type(exc).__name__}: {exc}"
            if conn.closed:
                conn = psycopg.connect(url, autocommit=True)
        out.append([start, time.monotonic(), err])
        n += 1
    conn.close()
    print(json.dumps(out))
    """
)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.move_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=20_000, help="grades of the moving class")
    p.add_argument("--writers", type=int, default=2, help="writer processes")
    p.add_argument("--repeat", type=int, default=3, help="moves (local->shard1->shard2->...)")
    p.add_argument("--batch-size", type=int, default=5000, help="move_class's batch size")
    return p.parse_args(argv)


@dataclass
class Phase:
    """What the writers and the reader saw during one phase: (start, end, error) each."""

    writes: list[tuple[float, float, str | None]] = field(default_factory=list)
    reads: list[tuple[float, float, str | None]] = field(default_factory=list)
    lines: list[tuple[float, str]] = field(default_factory=list)
    began: float = 0.0
    ended: float = 0.0

    def within(self) -> list[tuple[float, float, str | None]]:
        """The inserts that ended while the phase's main work ran."""
        return [w for w in self.writes if self.began <= w[1] <= self.ended]

    def at(self, text: str) -> float:
        return next(t for t, line in self.lines if text in line)

    def failed(self) -> list[str]:
        return [e for _, _, e in self.writes + self.reads if e is not None]

    def ok_writes(self) -> int:
        return sum(1 for w in self.writes if w[2] is None)


def _reader(stop: threading.Event, out: list[tuple[float, float, str | None]]) -> None:
    from django.db import connection

    from activity_grades import ActivityGradeService

    svc = ActivityGradeService()
    try:
        while not stop.is_set():
            start = time.monotonic()
            err = None
            try:
                n = len(svc.gradebook(MOVING, READ_TERM))
                if n == 0:
                    err = "gradebook returned no grades"
            except Exception as exc:  # reported, then asserted on
                err = f"{type(exc).__name__}: {exc}"
            out.append((start, time.monotonic(), err))
    finally:
        connection.close()


def _under_load(
    coordinator: str, tag: str, writers: int, into: str, work: Any, phase: Phase
) -> Any:
    """Run ``work()`` while ``writers`` processes insert into class ``into`` and a thread
    reads the moving class's gradebook; fill ``phase``; return what ``work`` returned."""
    with tempfile.TemporaryDirectory() as tmp:
        stop_file = str(Path(tmp) / "stop")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, coordinator, f"{tag}w{w}", into, stop_file, INSERT],
                stdout=subprocess.PIPE,
                text=True,
            )
            for w in range(writers)
        ]
        stop = threading.Event()
        reader = threading.Thread(target=_reader, args=(stop, phase.reads))
        reader.start()
        try:
            time.sleep(1.0)  # writers connected and going
            phase.began = time.monotonic()
            result = work()
            phase.ended = time.monotonic()
            time.sleep(0.5)
        finally:
            Path(stop_file).touch()
            stop.set()
            reader.join()
            for proc in procs:
                out, _ = proc.communicate(timeout=120)
                assert proc.returncode == 0, f"writer exited {proc.returncode}"
                phase.writes.extend(tuple(w) for w in json.loads(out))
    return result


def _grades(class_id: str, n: int) -> list[dict[str, Any]]:
    """The rows ``shard_bench.LOAD`` makes for ``class_id``, as ``record_many`` takes them."""
    fall = dt.datetime(2023, 8, 15, tzinfo=dt.timezone.utc)
    spring = dt.datetime(2024, 1, 20, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(n):
        t = (
            (fall if i % 2 == 0 else spring)
            + dt.timedelta(days=i % 100)
            + dt.timedelta(seconds=i % 86400)
        )
        rows.append(
            {
                "id": f"{class_id}-g{i}",
                "activity_id": f"{class_id}/a{i % 10 + 1}",
                "student_id": f"{class_id}-s{i // 10}",
                "score": i * 0.5,
                "points": i % 100,
                "feedback": f"feedback {i}",
                "status": "graded",
                "submitted_at": t,
                "graded_at": t,
                "content": {"answer": i},
                "created_at": t,
                "updated_at": t,
            }
        )
    return rows


def _count(url: str, class_id: str) -> int:
    """Rows of ``class_id`` on the server at ``url`` (its parent there: on the coordinator,
    foreign tables of other classes answer with none)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM activity_grades WHERE activity_id LIKE %s", [f"{class_id}/%"]
        ).fetchone()
    assert row is not None
    return int(row[0])


def _ms(seconds: float) -> float:
    return seconds * 1e3


def _median_ms(spans: list[tuple[float, float, str | None]]) -> float:
    return _ms(statistics.median(e - s for s, e, _ in spans)) if spans else float("nan")


def _worst(spans: list[tuple[float, float, str | None]]) -> tuple[float, float, str | None]:
    return max(spans, key=lambda w: w[1] - w[0])


def main(argv: list[str] | None = None) -> int:
    if not HAVE_SERVER_BINARIES:
        print(SKIP_REASON, file=sys.stderr)
        return 2
    args = parse(argv)
    began = time.monotonic()
    targets = [CYCLE[i % len(CYCLE)] for i in range(args.repeat)]
    fresh = {i: f"c{len(STILL) + 2 + i}" for i in range(args.repeat)}
    placement = {MOVING: "local", **{c: s for s, c in STILL.items()}}
    placement.update({fresh[i]: targets[i] for i in range(args.repeat)})
    placement = dict(sorted(placement.items(), key=lambda kv: int(kv[0][1:])))
    runs: list[dict[str, Any]] = []
    with ExitStack() as stack:
        coordinator, shard_urls, env = start_servers(stack)
        urls = {"local": coordinator, "shard1": shard_urls[0], "shard2": shard_urls[1]}
        version = set_up(env, coordinator, placement)
        with psycopg.connect(coordinator, autocommit=True) as conn:
            seconds = load(conn, MOVING, args.rows)
            conn.execute("ANALYZE")
        os.environ.clear()
        os.environ.update(env)
        import django

        django.setup()
        from activity_grades import ActivityGradeService
        from activity_grades.operations import move_class

        print(
            f"PostgreSQL {version}, coordinator + 2 shards on one machine "
            f"({os.cpu_count()} cores); class {MOVING}: {args.rows:,} grades (loaded through "
            f"the parent at {args.rows / seconds:,.0f} rows/s); {args.repeat} moves "
            f"(local -> {' -> '.join(targets)}), batch size {args.batch_size}; "
            f"{args.writers} writer processes and 1 reader thread in each phase",
            flush=True,
        )
        svc = ActivityGradeService()
        inserted = 0
        source = "local"
        for i, target in enumerate(targets):
            rows = _grades(fresh[i], args.rows)
            base = Phase()

            def baseline(rows: list[dict[str, Any]] = rows) -> float:
                start = time.perf_counter()
                svc.record_many(rows)
                return time.perf_counter() - start

            load_s = _under_load(coordinator, f"b{i}", args.writers, STILL[source], baseline, base)
            assert _count(urls[target], fresh[i]) == args.rows, "the baseline's load"
            moving = Phase()

            def say(line: str, lines: list[tuple[float, str]] = moving.lines) -> None:
                lines.append((time.monotonic(), line))

            def move(target: str = target, say: Any = say) -> tuple[float, Any]:
                start = time.perf_counter()
                result = move_class.move_class(
                    MOVING, target, batch_size=args.batch_size, progress=say
                )
                return time.perf_counter() - start, result

            move_s, result = _under_load(coordinator, f"m{i}", args.writers, MOVING, move, moving)
            inserted += moving.ok_writes()
            on_target = _count(urls[target], MOVING)
            left = _count(urls[source], MOVING) if source != "local" else 0
            paused, swapped = moving.at(PAUSED), moving.at(SWAPPED)
            worst = _worst(moving.writes)  # any insert of the phase: one may outlast the move
            run = {
                "move": f"{source} -> {target}",
                "rows": on_target,
                "move_rate": on_target / move_s,
                "load_rate": args.rows / load_s,
                "write_base": _median_ms(base.within()),
                "write_move": _median_ms(moving.within()),
                "worst": _ms(worst[1] - worst[0]),
                "worst_from": _ms(worst[0] - paused),
                "worst_to": _ms(worst[1] - paused),
                "swap": _ms(swapped - paused),
                "swap_log": _ms(moving.at(APPLIED) - paused),
                "swap_verify": _ms(moving.at(VERIFIED) - moving.at(APPLIED)),
                "overlapping": sum(1 for w in moving.writes if w[0] < swapped and w[1] > paused),
                "read_base": _ms(max(e - s for s, e, _ in base.reads)),
                "read_move": _ms(max(e - s for s, e, _ in moving.reads)),
                "reads": len(moving.reads),
                "writes": moving.ok_writes(),
                "failed": base.failed() + moving.failed(),
                "expected": args.rows + inserted,
                "left": left,
                "copied_again": result.copied_again,
            }
            runs.append(run)
            print(
                f"move {i + 1}: {run['move']}, {on_target:,} rows in {move_s:.1f} s; "
                f"{run['writes']} inserts, {run['reads']} gradebooks during it; "
                f"{len(run['failed'])} failed; {on_target:,} rows on {target} "
                f"(expected {run['expected']:,}), {left} left on {source}",
                flush=True,
            )
            for failure in run["failed"][:5]:
                print(f"  failed: {failure}", flush=True)
            assert not run["failed"], f"{len(run['failed'])} writes or reads failed"
            assert on_target == run["expected"], (on_target, run["expected"])
            assert left == 0, f"{left} rows of {MOVING} left on {source}"
            source = target
    _table(runs, args)
    print(f"(run took {time.monotonic() - began:.0f} s)", flush=True)
    return 0


def _table(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    heads = [r["move"] for r in runs]
    width = max(16, *(len(h) + 2 for h in heads))
    print(f"{'':<44}" + "".join(f"{h:>{width}}" for h in heads) + f"{'median':>10}")
    lines = [
        ("move_class, rows/s", "move_rate", ",.0f"),
        (f"record_many of {args.rows:,} rows, rows/s", "load_rate", ",.0f"),
        ("insert median, ms: class not moving", "write_base", ".2f"),
        ("insert median, ms: class moving", "write_move", ".2f"),
        ("insert worst, ms: class moving", "worst", ".1f"),
        ("  it started, ms after 'writes paused'", "worst_from", ".1f"),
        ("  it ended, ms after 'writes paused'", "worst_to", ".1f"),
        ("'writes paused' to 'swapped to', ms", "swap", ".1f"),
        ("  of which: the last changes applied, ms", "swap_log", ".1f"),
        ("  of which: counts and checksums, ms", "swap_verify", ".1f"),
        ("  inserts overlapping it", "overlapping", "d"),
        ("gradebook worst, ms: class not moving", "read_base", ".0f"),
        ("gradebook worst, ms: class moving", "read_move", ".0f"),
    ]
    for label, key, spec in lines:
        values = [r[key] for r in runs]
        cells = "".join(f"{format(v, spec):>{width}}" for v in values)
        print(f"{label:<44}{cells}{format(statistics.median(values), spec):>10}")
    ratios = [r["move_rate"] / r["load_rate"] for r in runs]
    cells = "".join(f"{format(v, '.2f') + 'x':>{width}}" for v in ratios)
    print(f"{'move / record_many':<44}{cells}{format(statistics.median(ratios), '.2f') + 'x':>10}")
    cells = "".join(f"{r['writes']:>{width},}" for r in runs)
    print(f"{'inserts during the move, all succeeded':<44}{cells}")
    cells = "".join(f"{r['rows']:>{width},}" for r in runs)
    print(f"{'rows on the target = loaded + inserted':<44}{cells}")


if __name__ == "__main__":
    sys.exit(main())
