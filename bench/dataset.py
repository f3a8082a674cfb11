"""Build one data set and load it into every design compared.

Designs (all with the same 21 columns and the seed's indexes):

* ``flat``    bench_flat: one unpartitioned table, + index (class_id, term_id).
* ``app``     activity_grades: this project's inheritance tree (rows loaded per leaf).
* ``native``  bench_native: declarative partitioning, LIST (class_id) then RANGE
              (created_at). Unique indexes must contain the partition key, so
              (activity_id, student_id) is only a plain index there.
* ``seed``    bench_seed: the seed's inheritance design with its dynamic trigger
              (EXECUTE of a concatenated string per row), fixed only enough to run.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from django.db import connection
from psycopg import sql

from activity_grades.operations import create

COLUMNS = [
    "id",
    "activity_id",
    "student_id",
    "score",
    "points",
    "feedback",
    "status",
    "submitted_at",
    "graded_at",
    "graded_by_id",
    "content",
    "attachments",
    "created_at",
    "updated_at",
    "is_archived",
    "is_committed",
    "commitment_id",
    "commitment_deadline",
    "commitment_met",
    "class_id",
    "term_id",
]
SEED_COLUMNS = COLUMNS[:-2]  # what a caller of the trigger designs gives
TERM_DAYS = 100
TERM_STEP = 120
FIRST_TERM = dt.date(2030, 1, 1)


@dataclass
class Shape:
    rows: int
    leaves: int
    terms: int
    classes: int
    activities: int
    students_per_leaf: int
    pool: int

    @classmethod
    def build(cls, rows: int, leaves: int, terms: int, activities: int) -> Shape:
        terms = max(1, min(terms, leaves))
        classes = max(1, leaves // terms)
        per_leaf = max(1, rows // (classes * terms))
        students = max(1, math.ceil(per_leaf / activities))
        pool = students * 10 + 1
        while pool % 7 == 0:
            pool += 1
        return cls(rows, classes * terms, terms, classes, activities, students, pool)


def class_id(i: int) -> str:
    return f"c{i:05d}"


def term_id(i: int) -> str:
    return f"t{i:03d}"


def _run(statement, params=None) -> None:
    with connection.cursor() as cursor:
        if isinstance(statement, sql.Composable):
            statement = statement.as_string(cursor.connection)
        cursor.execute(statement, params)


def make_lms(shape: Shape) -> None:
    """Terms, classes and activities in the demo LMS tables."""
    _run(
        "INSERT INTO terms (id, start_date, end_date, academic_year) "
        "SELECT 't' || lpad(i::text, 3, '0'), %s::date + i * %s, %s::date + i * %s + %s - 1, "
        "'y' || (i / 3) FROM generate_series(0, %s - 1) i",
        [FIRST_TERM, TERM_STEP, FIRST_TERM, TERM_STEP, TERM_DAYS, shape.terms],
    )
    add_classes(0, shape.classes, shape.activities)


def add_classes(first: int, count: int, activities: int) -> list[str]:
    _run(
        "INSERT INTO classes (id, name) SELECT 'c' || lpad(i::text, 5, '0'), 'Class ' || i "
        "FROM generate_series(%s, %s) i",
        [first, first + count - 1],
    )
    _run(
        "INSERT INTO activities (id, class_id, title, max_points) "
        "SELECT 'c' || lpad(i::text, 5, '0') || '/a' || a, 'c' || lpad(i::text, 5, '0'), "
        "'A' || a, 100 FROM generate_series(%s, %s) i, generate_series(0, %s - 1) a",
        [first, first + count - 1, activities],
    )
    return [class_id(i) for i in range(first, first + count)]


def _row_select(prefix: str, n_expr: str, ci: str, ti: str, a: str, student: str) -> str:
    """A SELECT list producing one grade row (class/term filled)."""
    return f"""
        '{prefix}' || lpad(({n_expr})::text, 12, '0'),
        'c' || lpad(({ci})::text, 5, '0') || '/a' || ({a}),
        {student},
        (({n_expr}) * 37 % 1000) / 10.0, ({n_expr}) * 13 % 100,
        CASE WHEN ({n_expr}) % 3 = 0 THEN 'well done' END, 'graded',
        ts, ts + interval '1 day', 'teacher' || ({ci}) % 50,
        jsonb_build_object('answer', ({n_expr}) % 97, 'tries', ({n_expr}) % 4),
        NULL, ts, ts + interval '1 day', false, false, NULL, NULL, NULL,
        'c' || lpad(({ci})::text, 5, '0'), 't' || lpad(({ti})::text, 3, '0')"""


def make_source(shape: Shape) -> int:
    """bench_source: the data set; bench_new: fresh rows for the insert cases."""
    _run("CREATE TABLE bench_source (LIKE activity_grades)")
    _run("CREATE TABLE bench_new (LIKE activity_grades)")
    per_leaf = shape.students_per_leaf
    n = f"((ci::bigint * {shape.terms} + ti) * {shape.activities} + a) * {per_leaf} + s"
    student = f"'st' || lpad(((ci * 131 + ti * 977 + s * 7) % {shape.pool})::text, 7, '0')"
    _run(
        f"""INSERT INTO bench_source SELECT {_row_select("g", n, "ci", "ti", "a", student)}
        FROM generate_series(0, {shape.classes} - 1) ci, generate_series(0, {shape.terms} - 1) ti,
             generate_series(0, {shape.activities} - 1) a,
             generate_series(0, {shape.students_per_leaf} - 1) s,
             LATERAL (SELECT ('{FIRST_TERM}'::date + ti * {TERM_STEP})::timestamptz
                      + make_interval(secs => ((({n}) * 7919) % ({TERM_DAYS} * 86400))) AS ts) t
        """  # noqa: S608 (numbers only; no parameters, so % is the operator)
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_source")
        return cursor.fetchone()[0]


def make_new_rows(shape: Shape, count: int) -> None:
    """``count`` rows of new students spread over every leaf (unique keys)."""
    _run("TRUNCATE bench_new")
    ci = f"(k % {shape.classes})"
    ti = f"((k / {shape.classes}) % {shape.terms})"
    a = f"((k / {shape.classes * shape.terms}) % {shape.activities})"
    _run(
        f"""INSERT INTO bench_new SELECT {_row_select("n", "k", ci, ti, a, "'nw' || k")}
        FROM generate_series(0, {count} - 1) k,
             LATERAL (SELECT ('{FIRST_TERM}'::date + {ti} * {TERM_STEP})::timestamptz
                      + make_interval(secs => ((k::bigint * 7919) % ({TERM_DAYS} * 86400))) AS ts) t
        """  # noqa: S608 (numbers only; no parameters, so % is the operator)
    )


def load_flat() -> None:
    _run("CREATE TABLE bench_flat (LIKE activity_grades INCLUDING DEFAULTS)")
    _run("INSERT INTO bench_flat SELECT * FROM bench_source")
    for stmt in (
        "ALTER TABLE bench_flat ADD PRIMARY KEY (id)",
        "CREATE INDEX ON bench_flat (activity_id)",
        "CREATE INDEX ON bench_flat (student_id)",
        "ALTER TABLE bench_flat ADD UNIQUE (activity_id, student_id)",
        "CREATE INDEX bench_flat_class_term ON bench_flat (class_id, term_id, student_id)",
    ):
        _run(stmt)


def load_app(shape: Shape) -> None:
    """Create every (class, term) partition, then fill each leaf straight from the source."""
    classes = [class_id(i) for i in range(shape.classes)]
    terms = [term_id(i) for i in range(shape.terms)]
    create.plan(classes, terms).apply()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT class_id, term_id, table_name FROM activity_grades_partition "
            "WHERE term_id IS NOT NULL"
        )
        for c, t, table in cursor.fetchall():
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT * FROM bench_source WHERE class_id = %s AND term_id = %s"
                )
                .format(sql.Identifier(table))
                .as_string(cursor.connection),
                [c, t],
            )


def _bounds(i: int) -> tuple[dt.date, dt.date]:
    start = FIRST_TERM + dt.timedelta(days=i * TERM_STEP)
    return start, start + dt.timedelta(days=TERM_DAYS)


def load_native(shape: Shape) -> None:
    _run(
        "CREATE TABLE bench_native (LIKE activity_grades INCLUDING DEFAULTS) "
        "PARTITION BY LIST (class_id)"
    )
    for ci in range(shape.classes):
        c = sql.Identifier(f"bench_native_{class_id(ci)}")
        _run(
            sql.SQL(
                "CREATE TABLE {} PARTITION OF bench_native FOR VALUES IN ({}) "
                "PARTITION BY RANGE (created_at)"
            ).format(c, sql.Literal(class_id(ci)))
        )
        for ti in range(shape.terms):
            start, end = _bounds(ti)
            _run(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(f"bench_native_{class_id(ci)}_{term_id(ti)}"),
                    c,
                    sql.Literal(start.isoformat()),
                    sql.Literal(end.isoformat()),
                )
            )
    for stmt in (
        "ALTER TABLE bench_native ADD PRIMARY KEY (id, class_id, created_at)",
        "CREATE INDEX ON bench_native (activity_id)",
        "CREATE INDEX ON bench_native (student_id)",
        "CREATE INDEX ON bench_native (activity_id, student_id)",
    ):
        _run(stmt)
    _run("INSERT INTO bench_native SELECT * FROM bench_source")


SEED_TRIGGER = r"""
CREATE FUNCTION bench_seed_route() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_class_id TEXT;  -- the seed named it class_id: "column reference is ambiguous"
  v_term_id TEXT;
  partition_name TEXT;
BEGIN
  SELECT a.class_id INTO v_class_id FROM activities a WHERE a.id = NEW.activity_id;
  -- The seed used CURRENT_DATE; the row's own time is the minimum fix to run here.
  SELECT t.id INTO v_term_id FROM terms t
   WHERE NEW.created_at >= t.start_date AND NEW.created_at < t.end_date + 1 LIMIT 1;
  NEW.class_id := v_class_id;
  NEW.term_id := v_term_id;
  partition_name := 'bench_seed_' || v_class_id || '_' || v_term_id;
  EXECUTE 'INSERT INTO ' || partition_name || ' VALUES ($1.*)' USING NEW;
  RETURN NULL;
END;
$$;
"""


def load_seed(shape: Shape) -> None:
    _run("CREATE TABLE bench_seed (LIKE activity_grades INCLUDING DEFAULTS)")
    _run(SEED_TRIGGER)
    for ci in range(shape.classes):
        for ti in range(shape.terms):
            start, end = _bounds(ti)
            name = f"bench_seed_{class_id(ci)}_{term_id(ti)}"
            t = sql.Identifier(name)
            _run(
                sql.SQL(
                    "CREATE TABLE {} (CHECK (class_id = {} AND created_at >= {} "
                    "AND created_at < {})) INHERITS (bench_seed)"
                ).format(
                    t,
                    sql.Literal(class_id(ci)),
                    sql.Literal(start.isoformat()),
                    sql.Literal(end.isoformat()),
                )
            )
            _run(
                sql.SQL(
                    "INSERT INTO {} SELECT * FROM bench_source WHERE class_id = {} AND term_id = {}"
                ).format(t, sql.Literal(class_id(ci)), sql.Literal(term_id(ti)))
            )
            _run(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(t))
            _run(sql.SQL("CREATE INDEX ON {} (activity_id)").format(t))
            _run(sql.SQL("CREATE INDEX ON {} (student_id)").format(t))
            _run(sql.SQL("CREATE UNIQUE INDEX ON {} (activity_id, student_id)").format(t))
    _run(
        "CREATE TRIGGER bench_seed_route BEFORE INSERT ON bench_seed "
        "FOR EACH ROW EXECUTE FUNCTION bench_seed_route()"
    )


def analyze() -> None:
    _run("VACUUM ANALYZE")
