"""An LMS that already has its grades: its own ``activity_grades`` table and its data.

Shared by the conversion benchmark (``bench/convert_bench.py``) and the conversion tests.
The table has the design document's 19 columns, as the document writes them (text ids,
``TIMESTAMP(3)``), one column the LMS added, a primary key on id and the LMS's own unique
index of (activity_id, student_id). The LMS's classes, activities and terms go into the
demo project's tables (``classes``, ``activities``, ``terms``).
"""

from __future__ import annotations

import psycopg

__all__ = ["LEGACY_TABLE_SQL", "STABLE_STUDENT", "TERMS", "create_table", "seed", "add_grades"]

LEGACY_TABLE_SQL = """
CREATE TABLE activity_grades (
  id TEXT PRIMARY KEY,
  activity_id TEXT NOT NULL,
  student_id TEXT NOT NULL,
  score DOUBLE PRECISION,
  points INTEGER,
  feedback TEXT,
  status TEXT NOT NULL,
  submitted_at TIMESTAMP(3) NOT NULL,
  graded_at TIMESTAMP(3),
  graded_by_id TEXT,
  content JSONB,
  attachments JSONB,
  created_at TIMESTAMP(3) NOT NULL,
  updated_at TIMESTAMP(3) NOT NULL,
  is_archived BOOLEAN NOT NULL DEFAULT false,
  is_committed BOOLEAN NOT NULL DEFAULT false,
  commitment_id TEXT,
  commitment_deadline TIMESTAMP(3),
  commitment_met BOOLEAN,
  lms_source VARCHAR(20) NOT NULL DEFAULT 'web'
);
CREATE INDEX activity_grades_activity_idx ON activity_grades (activity_id);
CREATE INDEX lms_grades_student ON activity_grades (student_id);
CREATE UNIQUE INDEX lms_grades_activity_student ON activity_grades (activity_id, student_id);
COMMENT ON TABLE activity_grades IS 'grades of the LMS';
"""

# Two semesters; grades outside them land in their class table.
TERMS = [
    ("2023_fall", "2023-08-01", "2023-12-31", "2023-2024"),
    ("2024_spring", "2024-01-15", "2024-05-31", "2023-2024"),
]
# Students whose grades no concurrent writer touches: readers count them.
STABLE_STUDENT = "stable"


def create_table(conn: psycopg.Connection) -> None:
    conn.execute(LEGACY_TABLE_SQL)


def seed(conn: psycopg.Connection, classes: int, activities_per_class: int) -> None:
    """The LMS's classes, activities and terms."""
    conn.execute(
        "INSERT INTO classes SELECT 'c' || i, 'Class ' || i FROM generate_series(1, %s) i",
        [classes],
    )
    conn.execute(
        "INSERT INTO activities SELECT 'c' || i || '/a' || j, 'Quiz ' || j, 10, 'c' || i "
        "FROM generate_series(1, %s) i, generate_series(1, %s) j",
        [classes, activities_per_class],
    )
    for row in TERMS:
        conn.execute("INSERT INTO terms VALUES (%s, %s, %s, %s)", row)


def add_grades(
    conn: psycopg.Connection,
    n: int,
    classes: int,
    activities_per_class: int,
    prefix: str = "g",
    student: str = "s",
) -> None:
    """``n`` grades, every column set, spread over classes, activities and 300 days.

    Student ``<student><k>`` takes one grade per activity (the uniqueness key holds).
    """
    per_student = classes * activities_per_class
    conn.execute(
        """
        INSERT INTO activity_grades (id, activity_id, student_id, score, points, feedback,
            status, submitted_at, graded_at, graded_by_id, content, attachments, created_at,
            updated_at, is_archived, is_committed, commitment_id, commitment_deadline,
            commitment_met, lms_source)
        SELECT %(prefix)s || i,
               'c' || (i %% %(classes)s + 1) || '/a' || ((i / %(classes)s) %% %(apc)s + 1),
               %(student)s || (i / %(per)s), i * 0.5, i %% 100,
               'feedback for answer ' || i || repeat(' well argued', i %% 12),
               CASE WHEN i %% 3 = 0 THEN 'submitted' ELSE 'graded' END,
               t, t + interval '1 day', 'teacher' || (i %% 9),
               jsonb_build_object('answers', jsonb_build_array(i, i + 1, 'text ' || i)),
               CASE WHEN i %% 10 = 0 THEN jsonb_build_array('file' || i || '.pdf') END,
               t, t + interval '2 days', i %% 7 = 0, i %% 5 = 0, 'cm' || i,
               t + interval '14 days', CASE WHEN i %% 4 = 0 THEN true END,
               CASE WHEN i %% 2 = 0 THEN 'web' ELSE 'app' END
          FROM generate_series(0, %(n)s - 1) i,
               LATERAL (SELECT timestamp '2023-08-15' + (i %% 300) * interval '1 day'
                               + (i %% 86400) * interval '1 second'
                               + (i %% 1000) * interval '1 millisecond' AS t) x
        """,
        {
            "prefix": prefix,
            "student": student,
            "classes": classes,
            "apc": activities_per_class,
            "per": per_student,
            "n": n,
        },
    )
