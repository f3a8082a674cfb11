"""Adopting the app beside an LMS's own activity_grades table, and converting it online.

Every test runs in its own scratch database made from one template: the demo LMS, its
own grades table (``bench/legacy.py``: the design document's 19 columns, one column the
LMS added, its own indexes) with rows, and ``manage.py migrate`` run as a user runs it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from bench import legacy

from .convert_support import (
    ACTIVITIES,
    CLASSES,
    ROWS,
    checksum,
    connect,
    create_database,
    drop_database,
    kill,
    lms_triggers,
    manage,
    run,
    scalar,
    scratch,
    wait_for,
)

STABLE = 120  # grades of students no concurrent writer touches
FAULT = "ACTIVITY_GRADES_ARCHIVE_FAULT_SLEEP"

pytestmark = pytest.mark.django_db(transaction=True)


def _shape(conn) -> dict:
    """What the LMS sees of its table: columns with types and defaults, indexes, comment."""
    return {
        "columns": conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE attrelid = 'public.activity_grades'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        ).fetchall(),
        "indexes": sorted(
            conn.execute(
                "SELECT indexname, regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes "
                "WHERE schemaname = 'public' AND tablename = 'activity_grades'"
            ).fetchall()
        ),
        "comment": scalar(conn, "SELECT obj_description('public.activity_grades'::regclass)"),
    }


@pytest.fixture(scope="module")
def template(django_db_setup, django_db_blocker):
    """The scratch template; what migrate printed; the LMS table's shape and checksum."""
    with django_db_blocker.unblock():
        name = f"{connection.settings_dict['NAME']}_conv_tmpl"
        create_database(name)
        run(name, "migrate", "lms", "-v0")
        with connect(name) as conn:
            legacy.create_table(conn)
            legacy.seed(conn, CLASSES, ACTIVITIES)
            legacy.add_grades(conn, ROWS, CLASSES, ACTIVITIES)
            legacy.add_grades(conn, STABLE, CLASSES, ACTIVITIES, prefix="st", student="stable")
            before = (_shape(conn), checksum(conn))
        _, printed = run(name, "migrate", "-v1")
        with connect(name) as conn:
            after = (_shape(conn), checksum(conn))
        yield {"name": name, "printed": printed, "before": before, "after": after}
        drop_database(name)


@pytest.fixture
def db_name(template, request):
    name = f"{connection.settings_dict['NAME']}_conv_{request.node.name[:30]}".lower()
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    with scratch(template["name"], name):
        yield name


def _state(conn) -> str | None:
    """The forward conversion's step, wherever the state table is (it moves at the swap)."""
    for schema in ("activity_grades_staging", "public"):
        try:
            query = sql.SQL("SELECT step FROM {} WHERE direction = 'partitioned'").format(
                sql.Identifier(schema, "activity_grades_conversion")
            )
            row = conn.execute(query).fetchone()
            return row[0] if row else None
        except psycopg.errors.UndefinedTable:
            continue
    return None


def _assert_converted(name: str, expected: tuple[int, int] | None = None) -> None:
    with connect(name) as conn:
        assert scalar(conn, "SELECT to_regnamespace('activity_grades_staging')") is None
        assert scalar(conn, "SELECT to_regclass('activity_grades_legacy')") is None
        assert scalar(conn, "SELECT obj_description('activity_grades'::regclass)") == (
            "activity_grades:parent"
        )
        if expected is not None:
            assert checksum(conn) == expected
        total = scalar(conn, "SELECT count(*) FROM activity_grades")
        assert scalar(conn, "SELECT count(*) FROM ONLY activity_grades") == 0
        assert scalar(conn, "SELECT count(*) FROM activity_grades_key") == total
        assert scalar(conn, "SELECT count(*) FROM activity_grades WHERE class_id IS NULL") == 0
        # The trigger functions' search_path moved with them (migration 0009).
        assert scalar(
            conn, "SELECT proconfig FROM pg_proc WHERE proname = 'activity_grades_route'"
        ) == ["search_path=public, pg_temp"]
    _, out = run(name, "check_partitions")
    assert "Partition tree OK." in out


# -- migrate beside the LMS's table -------------------------------------------------------


def test_migrate_beside_the_lms_table_changes_nothing_in_it_and_says_what_next(template):
    assert "the LMS's own table activity_grades was left as it is" in template["printed"]
    assert "convert_grades_table --to partitioned --dry-run" in template["printed"]
    assert template["after"] == template["before"]
    with connect(template["name"]) as conn:
        staged = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'activity_grades_staging'"
            )
        }
        assert {"activity_grades", "activity_grades_key", "activity_grades_partition"} <= staged
        # The LMS's table has no trigger of the app yet.
        assert lms_triggers(conn) == 0
    _, out = run(template["name"], "check", "--database", "default")
    assert "activity_grades.W010" in out


def test_migrate_names_what_differs_in_a_table_that_cannot_be_converted():
    name = f"{connection.settings_dict['NAME']}_conv_bad"
    create_database(name)
    try:
        run(name, "migrate", "lms", "-v0")
        with connect(name) as conn:
            conn.execute(
                "CREATE TABLE activity_grades (id text PRIMARY KEY, activity_id text NOT NULL, "
                "student_id text NOT NULL, score text, points integer, feedback text, "
                "submitted_at timestamptz NOT NULL, graded_at timestamptz, graded_by_id text, "
                "content jsonb, attachments jsonb, created_at timestamptz, "
                "updated_at timestamptz NOT NULL, is_archived boolean NOT NULL, "
                "is_committed boolean NOT NULL, commitment_id text, commitment_deadline "
                "timestamptz, commitment_met boolean, class_id integer)"
            )
            conn.execute(
                "CREATE TABLE lms_appeal (id int PRIMARY KEY, "
                "grade_id text REFERENCES activity_grades (id))"
            )
        code, out = run(name, "migrate", check=False)
        assert code != 0
        assert "column status is missing" in out
        assert "column score is text; the app needs double precision" in out
        assert "column created_at allows NULL" in out
        assert "column class_id exists" in out
        assert "foreign key lms_appeal_grade_id_fkey of table lms_appeal" in out
        assert "Nothing was changed" in out
        with connect(name) as conn:
            assert scalar(conn, "SELECT to_regnamespace('activity_grades_staging')") is None
            assert scalar(conn, "SELECT to_regclass('activity_grades_key')") is None
    finally:
        drop_database(name)


# -- converting ---------------------------------------------------------------------------


def test_dry_run_plans_rows_per_class_and_term_and_changes_nothing(db_name, template):
    _, out = run(db_name, "convert_grades_table", "--to", "partitioned", "--dry-run")
    assert f"{ROWS + STABLE} rows in" in out
    assert "class 'c1' term '2023_fall'" in out and "(new partition)" in out
    assert "Dry run: nothing was changed." in out
    with connect(db_name) as conn:
        assert (_shape(conn), checksum(conn)) == template["before"]
        assert _state(conn) is None


def test_rows_that_break_the_uniqueness_key_are_reported_before_anything_moves(db_name):
    with connect(db_name) as conn:
        conn.execute("DROP INDEX lms_grades_activity_student")
        conn.execute(
            "INSERT INTO activity_grades SELECT 'dup' || n || id, activity_id, student_id, score, "
            "points, feedback, status, submitted_at, graded_at, graded_by_id, content, "
            "attachments, created_at, updated_at, is_archived, is_committed, commitment_id, "
            "commitment_deadline, commitment_met, lms_source FROM activity_grades "
            "CROSS JOIN generate_series(1, 2) n WHERE id IN ('g1', 'g2')"
        )
        before = checksum(conn)
    code, out = run(
        db_name, "convert_grades_table", "--to", "partitioned", "--noinput", check=False
    )
    assert code != 0
    assert "2 (activity_id, student_id) pairs are held by more than one row" in out
    assert "x3" in out and "UNIQUE_KEY" in out
    with connect(db_name) as conn:
        assert checksum(conn) == before
        assert _state(conn) is None
        assert lms_triggers(conn) == 0


def test_a_view_or_a_foreign_key_on_the_table_is_refused(db_name):
    with connect(db_name) as conn:
        conn.execute("CREATE VIEW lms_scores AS SELECT id, score FROM activity_grades")
    code, out = run(
        db_name, "convert_grades_table", "--to", "partitioned", "--noinput", check=False
    )
    assert code != 0 and "view lms_scores reads it" in out


class _Load:
    """Concurrent LMS traffic on activity_grades while a conversion runs.

    Writers insert, update (points + 1, each increment counted) and delete grades through
    ``activity_grades``; readers check that every grade of the stable students is seen, and
    no row twice, at every moment. Every statement must do what it says: an UPDATE or
    DELETE that finds no row is a lost write.
    """

    def __init__(self, name: str, ids: list[str], deletable: list[str]) -> None:
        self.name = name
        self.ids = ids
        self.deletable = deletable
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.inserted: list[str] = []
        self.increments: Counter[str] = Counter()
        self.deleted: list[str] = []
        self.reads = 0
        self.threads = [
            threading.Thread(target=self._guard, args=(fn,), daemon=True)
            for fn in (self._insert, self._update, self._update, self._delete, self._read)
        ]

    def __enter__(self) -> _Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _guard(self, fn) -> None:
        try:
            with connect(self.name) as conn:
                fn(conn)
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            self.errors.append(f"{fn.__name__}: {exc!r}")

    def _insert(self, conn) -> None:
        n = 0
        while not self.stop.is_set():
            grade_id = f"new{n}"
            conn.execute(
                "INSERT INTO activity_grades (id, activity_id, student_id, status, "
                "submitted_at, created_at, updated_at) VALUES (%s, %s, %s, 'graded', "
                "'2023-10-02 10:00', '2023-10-02 10:00', '2023-10-02 10:00')",
                (grade_id, f"c{n % CLASSES + 1}/a{n % ACTIVITIES + 1}", f"new{n}"),
            )
            self.inserted.append(grade_id)
            n += 1
            time.sleep(0.002)

    def _update(self, conn) -> None:
        rng = random.Random()
        while not self.stop.is_set():
            grade_id = rng.choice(self.ids)
            cur = conn.execute(
                "UPDATE activity_grades SET points = points + 1 WHERE id = %s", (grade_id,)
            )
            if cur.rowcount != 1:
                self.errors.append(f"update of {grade_id} changed {cur.rowcount} rows")
            self.increments[grade_id] += 1

    def _delete(self, conn) -> None:
        for grade_id in self.deletable:
            if self.stop.is_set():
                return
            cur = conn.execute("DELETE FROM activity_grades WHERE id = %s", (grade_id,))
            if cur.rowcount != 1:
                self.errors.append(f"delete of {grade_id} removed {cur.rowcount} rows")
            self.deleted.append(grade_id)
            time.sleep(0.01)

    def _read(self, conn) -> None:
        while not self.stop.is_set():
            stable, total, distinct = conn.execute(
                "SELECT count(*) FILTER (WHERE student_id LIKE 'stable%%'), count(*), "
                "count(DISTINCT id) FROM activity_grades"
            ).fetchone()
            if stable != STABLE or total != distinct:
                self.errors.append(f"read {stable} stable rows, {total} rows, {distinct} ids")
            self.reads += 1

    def check(self, conn) -> None:
        assert self.errors == []
        assert self.reads > 10 and self.inserted and self.increments and self.deleted
        for grade_id in self.inserted:
            assert (
                scalar(conn, "SELECT count(*) FROM activity_grades WHERE id = %s", (grade_id,)) == 1
            )
        for grade_id in self.deleted:
            assert (
                scalar(conn, "SELECT count(*) FROM activity_grades WHERE id = %s", (grade_id,)) == 0
            )
        lost = conn.execute(
            "SELECT id, points, substr(id, 2)::int %% 100 FROM activity_grades WHERE id = ANY(%s)",
            (list(self.increments),),
        ).fetchall()
        assert lost and all(points == base + self.increments[i] for i, points, base in lost), [
            (i, p, b, self.increments[i]) for i, p, b in lost if p != b + self.increments[i]
        ]


def _grade_ids() -> tuple[list[str], list[str]]:
    ids = [f"g{i}" for i in range(ROWS)]
    return ids[: ROWS - 200], ids[ROWS - 200 :]


def test_conversion_races_real_writers_and_readers_and_loses_nothing(db_name):
    updatable, deletable = _grade_ids()
    with _Load(db_name, updatable, deletable) as load:
        time.sleep(0.3)
        _, out = run(
            db_name,
            "convert_grades_table",
            "--to",
            "partitioned",
            "--batch-size",
            "150",
            "--noinput",
            "--lock-timeout",
            "500ms",
        )
        time.sleep(0.3)
    assert "verified batches" in out
    with connect(db_name) as conn:
        load.check(conn)
        assert scalar(conn, "SELECT count(*) FROM activity_grades") == (
            ROWS + STABLE + len(load.inserted) - len(load.deleted)
        )
        assert scalar(conn, "SELECT count(DISTINCT lms_source) FROM activity_grades") == 2
    _assert_converted(db_name)


@pytest.mark.parametrize(
    ("stage", "reached"),
    [
        # between two batches of the key backfill (the LMS's table has its triggers)
        ("convert_backfill_batch", lambda c: _state(c) == "backfill"),
        # after the swap, before any row moved
        ("convert_after_swap", lambda c: _state(c) == "move"),
        # inside a batch's transaction, rows deleted from the old table, not committed
        (
            "convert_before_commit",
            lambda c: (
                scalar(
                    c,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'convert_cmd' "
                    "AND datname = current_database() AND query LIKE 'SELECT pg_sleep%%'",
                )
                == 1
            ),
        ),
        # between two committed batches
        (
            "convert_move_batch",
            lambda c: (
                _state(c) == "move"
                and scalar(c, "SELECT count(*) FROM activity_grades_conversion_moved") > 0
            ),
        ),
    ],
)
def test_a_conversion_killed_at_any_point_loses_nothing_and_a_rerun_finishes(
    db_name, template, stage, reached
):
    expected = template["before"][1]
    proc = manage(
        db_name,
        ["convert_grades_table", "--to", "partitioned", "--batch-size", "500", "--noinput"],
        env={FAULT: f"{stage}=60"},
    )
    try:
        with connect(db_name) as conn:
            wait_for(lambda: proc.poll() is None and reached(conn))
            kill(proc, db_name)
            # Readers see every row, exactly once, whatever the step.
            assert checksum(conn) == expected
    finally:
        if proc.poll() is None:
            kill(proc, db_name)
    _, out = run(db_name, "convert_grades_table", "--to", "partitioned", "--noinput")
    assert "Converted to partitioned" in out
    _assert_converted(db_name, expected)
    # The verified record per (class, term): across the kill and the rerun, every row once.
    with connect(db_name) as conn:
        recorded = conn.execute(
            "SELECT class_id, term_id, rows FROM activity_grades_conversion_moved "
            "WHERE direction = 'partitioned' ORDER BY 1, 2"
        ).fetchall()
        stored = conn.execute(
            "SELECT class_id, term_id, count(*) FROM activity_grades GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    assert recorded == stored
    _, out = run(db_name, "convert_grades_table", "--to", "partitioned", "--noinput")
    assert "Nothing to do" in out


def test_back_to_plain_online_and_forward_again(db_name, template):
    shape, expected = template["before"]
    run(db_name, "convert_grades_table", "--to", "partitioned", "--noinput")
    updatable, deletable = _grade_ids()
    with _Load(db_name, updatable, deletable) as load:
        time.sleep(0.3)
        _, out = run(
            db_name, "convert_grades_table", "--to", "plain", "--batch-size", "150", "--noinput"
        )
        time.sleep(0.3)
    assert "Converted to plain" in out
    with connect(db_name) as conn:
        load.check(conn)
        # The LMS's table as it was: columns, its own indexes (names kept), comment.
        assert _shape(conn) == shape
        assert scalar(conn, "SELECT to_regclass('public.activity_grades_key')") is None
        assert scalar(conn, "SELECT count(*) FROM activity_grades_staging.activity_grades_key") == 0
        assert scalar(
            conn, "SELECT proconfig FROM pg_proc WHERE proname = 'activity_grades_route'"
        ) == ["search_path=activity_grades_staging, pg_temp"]
        assert (
            scalar(
                conn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'activity_grades_class%%'"
            )
            == 0
        )
        now = checksum(conn)
    # Forward again from the staged state the way back left.
    _, out = run(db_name, "convert_grades_table", "--to", "partitioned", "--noinput")
    _assert_converted(db_name, now)
    assert expected[0] != now[0]  # the load changed the rows: they are all still there


def test_killed_on_the_way_back_loses_nothing_and_a_rerun_finishes(db_name, template):
    expected = template["before"][1]
    run(db_name, "convert_grades_table", "--to", "partitioned", "--noinput")
    proc = manage(
        db_name,
        ["convert_grades_table", "--to", "plain", "--batch-size", "400", "--noinput"],
        env={FAULT: "convert_move_batch=60"},
    )
    try:
        with connect(db_name) as conn:
            wait_for(
                lambda: (
                    proc.poll() is None
                    and scalar(
                        conn,
                        "SELECT count(*) FROM activity_grades_conversion_moved "
                        "WHERE direction = 'plain'",
                    )
                    > 0
                )
            )
            kill(proc, db_name)
            assert checksum(conn) == expected
    finally:
        if proc.poll() is None:
            kill(proc, db_name)
    _, out = run(db_name, "convert_grades_table", "--to", "plain", "--noinput")
    assert "Converted to plain" in out
    with connect(db_name) as conn:
        assert checksum(conn) == expected
        assert _shape(conn) == template["before"][0]


def test_back_to_plain_takes_the_grades_of_month_tables(db_name, template):
    run(db_name, "convert_grades_table", "--to", "partitioned", "--noinput")
    with connect(db_name) as conn:
        before = checksum(conn)
        term = scalar(
            conn,
            "SELECT term_id FROM activity_grades_partition WHERE term_id IS NOT NULL "
            "GROUP BY term_id ORDER BY count(*) DESC, term_id LIMIT 1",
        )
    _, out = run(db_name, "create_partitions", "--regranulate", term, "--to", "month")
    assert "Regranulated" in out
    with connect(db_name) as conn:
        assert scalar(conn, "SELECT count(*) FROM activity_grades_month") > 0
    _, out = run(db_name, "convert_grades_table", "--to", "plain", "--noinput")
    assert "Converted to plain" in out
    with connect(db_name) as conn:
        assert checksum(conn) == before
        assert (
            scalar(
                conn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'activity_grades_class%%'"
            )
            == 0
        )
        assert (
            scalar(conn, "SELECT count(*) FROM activity_grades_staging.activity_grades_month") == 0
        )
