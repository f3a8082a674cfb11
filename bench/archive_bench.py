"""Archiving benchmark: bytes per row live vs archived, time and WAL of archiving one term.

Builds N grades of one ended term spread over C classes (one leaf per class), archives
the term with ``activity_grades.operations.archive`` (compressed chunks, migration 0012)
and compares bytes per row with the live leaves, with today's row-per-grade archive (the
format of migration 0003, built from the same rows) and, with ``--compare``, with other
chunk designs (pglz instead of lz4, other chunk sizes); then times a student's history
(median of 25 students) and restoring the term, and compares the move with the naive way
of moving the same rows out of one unpartitioned table (INSERT ... SELECT into an archive
table + DELETE, one transaction). Every figure is the median of ``--runs`` runs (default 3)
on a scratch database created on the DATABASE_URL server (embedded PostgreSQL when
unset) and dropped at the end.

    python bench/archive_bench.py                     # 1,000,000 rows, demo-like data
    python bench/archive_bench.py --rows 200000 --profile realistic --compare

Profiles: ``demo`` is what ``load_demo_data`` writes (short feedback, tiny content);
``rich`` adds a paragraph of feedback, a ~1 kB answer document and an attachments list;
``large`` has 1–2 kB of feedback and a 4–7 kB answer per grade (rows over the ~2 kB
TOAST threshold, where column compression matters; the text repeats, so it compresses
better than real essays); ``realistic`` is feedback assembled from a pool of sentences,
eight JSON answers of mixed kinds and an attachment on one grade in five, every choice
pseudo-random per grade (not tuned to the format: nothing is sorted or repeated on
purpose).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import db as benchdb  # noqa: E402

TERM = "2020_fall"
YEAR = "2020-2021"

ROWS_SQL = {
    "demo": """
        'Good work.', 'graded', ts, ts + interval '2 days', 'teacher-1',
        jsonb_build_object('answers', 1 + i %% 20), NULL::jsonb""",
    "rich": """
        'Feedback for answer ' || i || ': ' || repeat('The argument is clear, the evidence is '
            || 'mostly relevant, cite the sources you used. ', 3 + i %% 5),
        'graded', ts, ts + interval '2 days', 'teacher-' || i %% 9,
        jsonb_build_object('answers', 1 + i %% 20, 'text', repeat('Photosynthesis converts '
            || 'light energy into chemical energy stored in glucose. ', 8 + i %% 8),
            'choices', jsonb_build_array(i %% 4, i %% 3, i %% 5)),
        jsonb_build_array(jsonb_build_object('name', 'essay-' || i || '.pdf', 'size', i * 37,
            'url', 'https://files.example.edu/submissions/' || md5(i::text)))""",
    "large": """
        'Feedback for answer ' || i || ': ' || repeat('The argument is clear, the evidence is '
            || 'mostly relevant, cite the sources you used. ' || md5(i::text) || ' ', 10 + i %% 10),
        'graded', ts, ts + interval '2 days', 'teacher-' || i %% 9,
        jsonb_build_object('answers', 1 + i %% 20, 'text', repeat('Photosynthesis converts '
            || 'light energy into chemical energy stored in glucose. ' || md5((i * 7)::text)
            || ' ', 40 + i %% 30), 'choices', jsonb_build_array(i %% 4, i %% 3, i %% 5)),
        jsonb_build_array(jsonb_build_object('name', 'essay-' || i || '.pdf', 'size', i * 37,
            'url', 'https://files.example.edu/submissions/' || md5(i::text)))""",
}
# Pseudo-random per grade from hashint8 of the grade number (i) and a salt.
ROWS_SQL["realistic"] = """
        CASE WHEN abs(hashint8(i * 31 + 1)) %% 10 = 0 THEN NULL ELSE
            array_to_string(ARRAY(SELECT (ARRAY[
            'Good structure overall.',
            'Your thesis is clear but the second paragraph drifts.',
            'Cite your sources in the bibliography.',
            'Check the units in question 3.',
            'Excellent use of evidence from the text.',
            'The conclusion repeats the introduction; say what follows from your argument.',
            'Watch the spelling of technical terms.',
            'Show your working for full marks.',
            'Late submission: 10%% deducted.',
            'Well argued, but consider the counter-example discussed in class.',
            'The graph is missing axis labels.',
            'Great improvement since the last assignment!'])[1 + abs(hashint8(i * 7 + s)) %% 12]
                FROM generate_series(1, 1 + abs(hashint8(i * 31 + 2)) %% 4) s), ' ')
        END,
        CASE WHEN abs(hashint8(i * 31 + 3)) %% 8 = 0 THEN 'submitted' ELSE 'graded' END,
        ts, ts + (abs(hashint8(i * 31 + 4)) %% 500000) * interval '1 second',
        'teacher-' || abs(hashint8(i * 31 + 5)) %% 40,
        (SELECT jsonb_object_agg('q' || q, CASE q %% 4
            WHEN 0 THEN to_jsonb(abs(hashint8(i * 13 + q)) %% 5)
            WHEN 1 THEN to_jsonb(round((abs(hashint8(i * 17 + q)) %% 100000) / 1000.0, 3))
            WHEN 2 THEN to_jsonb(substr(md5((i * 19 + q)::text), 1,
                                        4 + abs(hashint8(i + q)) %% 24))
            ELSE jsonb_build_object('choice', abs(hashint8(i * 23 + q)) %% 4,
                                    'correct', abs(hashint8(i * 29 + q)) %% 3 = 0) END)
           FROM generate_series(1, 8) q),
        CASE WHEN abs(hashint8(i * 31 + 6)) %% 5 = 0 THEN jsonb_build_array(jsonb_build_object(
            'name', 'submission-' || i || '.pdf', 'size', abs(hashint8(i * 31 + 7)) %% 5000000,
            'url', 'https://files.example.edu/s/' || md5(i::text))) END"""


def _q(cursor, statement, params=None):
    from psycopg import sql

    if isinstance(statement, sql.Composable):
        statement = statement.as_string(cursor.connection)
    cursor.execute(statement, params)


def setup_lms(classes: int, activities: int) -> None:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            "INSERT INTO terms (id, start_date, end_date, academic_year) "
            "VALUES (%s, '2020-08-01', '2020-12-31', %s), ('now', current_date - 30, "
            "current_date + 30, '2999-3000')",
            [TERM, YEAR],
        )
        c.execute(
            "INSERT INTO classes (id, name) SELECT 'c' || i, 'Class ' || i "
            "FROM generate_series(1, %s) i",
            [classes],
        )
        c.execute(
            "INSERT INTO activities (id, class_id, title, max_points) "
            "SELECT 'c' || i || '/a' || j, 'c' || i, 'A', 100 "
            "FROM generate_series(1, %s) i, generate_series(1, %s) j",
            [classes, activities],
        )


def build(rows: int, classes: int, activities: int, profile: str) -> list[str]:
    """Fill one leaf per class directly (the bench measures archiving, not routing)."""
    from django.db import connection
    from psycopg import sql

    from activity_grades.db import ddl

    per_class = rows // classes
    leaves = []
    with connection.cursor() as c:
        for k in range(1, classes + 1):
            leaf, _ = ddl.ensure_partition(f"c{k}", TERM)
            leaves.append(leaf)
            insert = sql.SQL(
                "INSERT INTO {leaf} (id, activity_id, student_id, score, points, feedback, status, "
                "submitted_at, graded_at, graded_by_id, content, attachments, created_at, "
                "updated_at, class_id, term_id) "
                "SELECT lpad(to_hex(%s::bigint * 100000000 + i), 26, '0'), "
                "%s || '/a' || (1 + i %% %s), 'student-' || (i / %s), 40 + (i %% 600) / 10.0, "
                "40 + i %% 60, {rows}, ts, ts, %s, %s FROM generate_series(1, %s) i, "
                "LATERAL (SELECT timestamptz '2020-08-02' + (i %% 11000000) * interval '1 second'"
                " AS ts) t"
            ).format(leaf=sql.Identifier(leaf), rows=sql.SQL(ROWS_SQL[profile]))
            _q(c, insert, [k, f"c{k}", activities, activities, f"c{k}", TERM, per_class])
    return leaves


def _size(c, table: str) -> int:
    c.execute("SELECT pg_total_relation_size(to_regclass(quote_ident(%s)))", [table])
    return c.fetchone()[0] or 0


def _lsn(c) -> str:
    c.execute("SELECT pg_current_wal_lsn()")
    return c.fetchone()[0]


def _wal_since(c, lsn: str) -> int:
    c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::bigint", [lsn])
    return c.fetchone()[0]


def _vacuum(tables: list[str]) -> None:
    from django.db import connection
    from psycopg import sql

    with connection.cursor() as c:
        for t in tables:
            _q(c, sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(t)))
        c.execute("CHECKPOINT")


def rows_archive(c, leaves: list[str]) -> int:
    """Bytes of the same rows in today's row-per-grade archive (the year tables of
    migration 0003: PK + student index, fillfactor 100, STORAGE MAIN, lz4 if available)."""
    from psycopg import sql

    c.execute(
        "CREATE TABLE bench_rows_archive (LIKE archived_activity_grades_rows INCLUDING DEFAULTS "
        "INCLUDING COMPRESSION) WITH (fillfactor = 100, toast_tuple_target = 128); "
        "ALTER TABLE bench_rows_archive ADD PRIMARY KEY (id), "
        "ALTER COLUMN feedback SET STORAGE MAIN, ALTER COLUMN content SET STORAGE MAIN, "
        "ALTER COLUMN attachments SET STORAGE MAIN; "
        "CREATE INDEX ON bench_rows_archive (student_id)"
    )
    for leaf in leaves:
        _q(
            c,
            sql.SQL(
                "INSERT INTO bench_rows_archive SELECT l.*, now(), %s FROM ONLY {} l ORDER BY id"
            ).format(sql.Identifier(leaf)),
            [YEAR],
        )
    c.execute("VACUUM ANALYZE bench_rows_archive")
    return _size(c, "bench_rows_archive")


# Other chunk designs, built from the same leaves with the app's own copy.
DESIGNS = {
    "chunks_lz4_bpr": ("lz4", 1000),
    "chunks_pglz_bpr": ("pglz", 1000),
    "chunks_250_bpr": ("lz4", 250),
    "chunks_4000_bpr": ("lz4", 4000),
}


def compare_designs(c, leaves: list[str]) -> dict[str, float]:
    from psycopg import sql

    from activity_grades.db import catalog, chunks

    cols = catalog.grade_columns(c)
    out = {}
    for name, (method, size) in DESIGNS.items():
        table = "bench_alt_" + name.split("_")[1]
        _q(
            c,
            sql.SQL(
                "CREATE TABLE {} (LIKE archived_activity_grades_chunk INCLUDING ALL) "
                "WITH (fillfactor = 100)"
            ).format(sql.Identifier(table)),
        )
        for col in chunks.array_columns(cols):
            try:
                _q(
                    c,
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET COMPRESSION " + method).format(
                        sql.Identifier(table), sql.Identifier(col)
                    ),
                )
            except Exception:  # no lz4 in this server: the column keeps pglz
                return out
        started = time.perf_counter()
        for leaf in leaves:
            chunks.copy_leaf(c, leaf, table, cols, YEAR, size)
        out[name.replace("_bpr", "_copy_s")] = time.perf_counter() - started
        _q(c, sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        out[name] = _size(c, table)
        # Reading every grade back (what a restore or a full export decodes).
        started = time.perf_counter()
        _q(
            c,
            sql.SQL("SELECT sum(length(u)) FROM {} c, unnest(c.feedback) u").format(
                sql.Identifier(table)
            ),
        )
        _q(
            c,
            sql.SQL("SELECT count(*) FROM {} c, unnest(c.content, c.id) u").format(
                sql.Identifier(table)
            ),
        )
        out[name.replace("_bpr", "_read_s")] = time.perf_counter() - started
    return out


def history_ms(c) -> float:
    """Median time of student_history() over 25 students of the archived term."""
    from activity_grades.service import student_history

    c.execute(
        "SELECT DISTINCT student_id FROM activity_grades_key UNION SELECT 'student-' || i "
        "FROM generate_series(1, 25) i LIMIT 25"
    )
    students = [r[0] for r in c.fetchall()]
    times = []
    for s in students:
        started = time.perf_counter()
        student_history(s)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def parquet_export() -> dict:
    """Bytes per row and seconds of the verified Parquet export of the year (pyarrow)."""
    import tempfile

    from activity_grades.files import parquet
    from activity_grades.operations import export

    if not parquet.AVAILABLE:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = export.export_year(YEAR, Path(tmp))
        return {
            "parquet_bpr": done.file_bytes / max(done.rows, 1),
            "parquet_s": time.perf_counter() - started,
        }


def run_once(args) -> dict:
    from django.db import connection
    from psycopg import sql

    from activity_grades.db import catalog
    from activity_grades.operations import archive, restore

    with connection.cursor() as c:
        c.execute("SELECT table_name FROM activity_grades_partition ORDER BY term_id IS NULL")
        for (t,) in c.fetchall():
            _q(c, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(t)))
        c.execute("SELECT table_name FROM activity_grades_archive_year")
        for (t,) in c.fetchall():
            _q(c, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(t)))
        c.execute("DELETE FROM activity_grades_archive_year")
        c.execute(
            "DROP TABLE IF EXISTS bench_rows_archive, bench_alt_pglz, bench_alt_250, bench_alt_4000"
        )
        c.execute("DELETE FROM activity_grades_partition")
        c.execute("TRUNCATE activity_grades_key")  # no partitions left; keeps its size honest
        c.execute("DROP TABLE IF EXISTS bench_flat, bench_flat_archive")

    leaves = build(args.rows, args.classes, args.activities, args.profile)
    _vacuum([*leaves, "activity_grades_key"])
    out: dict = {}
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM activity_grades WHERE term_id = %s", [TERM])
        n = c.fetchone()[0]
        out["rows"] = n
        out["live_leaf_bpr"] = sum(_size(c, t) for t in leaves) / n
        out["live_with_key_bpr"] = out["live_leaf_bpr"] + _size(c, "activity_grades_key") / n
        out["rows_archive_bpr"] = rows_archive(c, leaves) / n
        if args.compare:
            for name, value in compare_designs(c, leaves).items():
                out[name] = value / n if name.endswith("_bpr") else value
        lsn = _lsn(c)
    plan = archive.plan([TERM])
    started = time.perf_counter()
    plan.apply()
    out["archive_s"] = time.perf_counter() - started
    with connection.cursor() as c:
        out["archive_wal"] = _wal_since(c, lsn)
        c.execute(
            "SELECT table_name FROM activity_grades_archive_year WHERE academic_year = %s", [YEAR]
        )
        year_table = c.fetchone()[0]
    _vacuum([year_table])
    with connection.cursor() as c:
        out["archived_bpr"] = _size(c, year_table) / n
        _q(c, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(year_table)))
        out["chunks"] = c.fetchone()[0]
        out["history_ms"] = history_ms(c)
    out.update(parquet_export())
    with connection.cursor() as c:
        # Baseline: the same rows in one unpartitioned table with the live indexes.
        c.execute(
            "CREATE TABLE bench_flat (LIKE activity_grades INCLUDING DEFAULTS); "
            "ALTER TABLE bench_flat ADD PRIMARY KEY (id), "
            "ADD UNIQUE (activity_id, student_id); "
            "CREATE INDEX ON bench_flat (activity_id); CREATE INDEX ON bench_flat (student_id); "
            "CREATE TABLE bench_flat_archive (LIKE activity_grades INCLUDING DEFAULTS, "
            "archived_at timestamptz NOT NULL DEFAULT now(), academic_year text NOT NULL, "
            "PRIMARY KEY (id)); CREATE INDEX ON bench_flat_archive (student_id);"
        )
        cols = sql.SQL(", ").join(map(sql.Identifier, catalog.grade_columns(c)))
        _q(
            c,
            sql.SQL("INSERT INTO bench_flat ({0}) SELECT {0} FROM archived_activity_grades").format(
                cols
            ),
        )
    _vacuum(["bench_flat", "bench_flat_archive"])
    with connection.cursor() as c:
        out["flat_live_bpr"] = _size(c, "bench_flat") / n
        lsn = _lsn(c)
        started = time.perf_counter()
        c.execute("BEGIN")
        _q(
            c,
            sql.SQL(
                "INSERT INTO bench_flat_archive ({0}, academic_year) "
                "SELECT {0}, %s FROM bench_flat WHERE term_id = %s"
            ).format(cols),
            [YEAR, TERM],
        )
        c.execute("DELETE FROM bench_flat WHERE term_id = %s", [TERM])
        c.execute("COMMIT")
        out["flat_s"] = time.perf_counter() - started
        out["flat_wal"] = _wal_since(c, lsn)
    _vacuum(["bench_flat_archive"])
    started = time.perf_counter()
    restore.plan([TERM]).apply()
    out["restore_s"] = time.perf_counter() - started
    with connection.cursor() as c:
        out["flat_archive_bpr"] = _size(c, "bench_flat_archive") / n
        c.execute("SHOW default_toast_compression")
        out["compression"] = c.fetchone()[0]
        c.execute(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = "
            "'archived_activity_grades_chunk'::regclass AND attname = 'content'"
        )
        out["archive_compression"] = {"l": "lz4", "p": "pglz", "": "default"}.get(
            c.fetchone()[0] or "", "?"
        )
        c.execute("SHOW server_version")
        out["server"] = c.fetchone()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=20, help="leaves of the archived term")
    parser.add_argument("--activities", type=int, default=20, help="per class")
    parser.add_argument("--profile", choices=sorted(ROWS_SQL), default="demo")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also other chunk designs")
    parser.add_argument("--db", default=f"bench_archive_{os.getpid()}")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--json", type=Path, help="also write the medians here (bench.run)")
    args = parser.parse_args()

    server = benchdb.server_url()
    scratch = benchdb.recreate(server, args.db)
    try:
        benchdb.setup_django(scratch)
        setup_lms(args.classes, args.activities)
        runs = []
        for i in range(args.runs):
            r = run_once(args)
            runs.append(r)
            print(
                f"run {i + 1}: archive {r['archive_s']:.2f} s, {r['archive_wal'] / 1e6:.1f} MB WAL;"
                f" flat move {r['flat_s']:.2f} s, {r['flat_wal'] / 1e6:.1f} MB WAL",
                flush=True,
            )
        report(args, runs)
        if args.json:
            medians = {
                k: statistics.median(r[k] for r in runs)
                for k, v in runs[0].items()
                if isinstance(v, int | float)
            }
            args.json.write_text(json.dumps({**medians, "runs": len(runs)}))
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            benchdb.drop(server, args.db)


def report(args, runs: list[dict]) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    first = runs[0]
    print(
        f"\nPostgreSQL {first['server']}, {first['rows']:,} rows ({args.profile} profile), "
        f"{args.classes} leaves, archive compression {first['archive_compression']}; "
        f"median of {len(runs)} runs"
    )
    print(f"{'':34} {'bytes/row':>10}")
    print(f"{'live leaves (heap+4 indexes)':34} {med('live_leaf_bpr'):10.1f}")
    print(f"{'live leaves + key index share':34} {med('live_with_key_bpr'):10.1f}")
    label = "today's row archive (0003 format)"
    print(f"{label:34} {med('rows_archive_bpr'):10.1f}")
    print(f"{'archived: chunks (this app)':34} {med('archived_bpr'):10.1f}")
    if "parquet_bpr" in first:
        label = "Parquet export (zstd, verified)"
        print(f"{label:34} {med('parquet_bpr'):10.1f}  ({med('parquet_s'):.2f} s)")
    for name in DESIGNS:
        if name in first:
            print(
                f"{'  other design: ' + name[:-4]:34} {med(name):10.1f}  (copy "
                f"{med(name[:-4] + '_copy_s'):.2f} s, read back {med(name[:-4] + '_read_s'):.2f} s)"
            )
    print(f"{'unpartitioned table (4 indexes)':34} {med('flat_live_bpr'):10.1f}")
    print(f"{'plain archive table (2 indexes)':34} {med('flat_archive_bpr'):10.1f}")
    ratio = med("archived_bpr") / med("live_with_key_bpr")
    print(
        f"archived / live (with key) = {ratio:.3f} (1 : {1 / ratio:.1f}); "
        f"archived / live leaves = {med('archived_bpr') / med('live_leaf_bpr'):.3f}; "
        f"archived / today's archive = {med('archived_bpr') / med('rows_archive_bpr'):.3f}"
    )
    print(
        f"chunks: {med('chunks'):.0f}; student_history: {med('history_ms'):.1f} ms; "
        f"restore_grades of the term: {med('restore_s'):.2f} s"
    )
    print(
        f"archive_grades: {med('archive_s'):.2f} s, WAL {med('archive_wal') / 1e6:.1f} MB "
        f"(live partitions dropped: space freed at once)"
    )
    print(
        f"flat INSERT..SELECT + DELETE: {med('flat_s'):.2f} s, WAL {med('flat_wal') / 1e6:.1f} MB "
        f"(dead tuples stay until VACUUM)"
    )
    print(
        f"ratios archive/flat: time {med('archive_s') / med('flat_s'):.2f}, "
        f"WAL {med('archive_wal') / med('flat_wal'):.2f}"
    )


if __name__ == "__main__":
    main()
