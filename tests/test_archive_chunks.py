"""The compressed archive (issue 14): grades in chunks of arrays come back bit for bit,
stay readable through the view, the model and student_history, and take few bytes."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from psycopg import sql

from activity_grades.core.exceptions import ArchiveError
from activity_grades.db import catalog, chunks
from activity_grades.models import ArchivedActivityGrade
from activity_grades.service import student_history
from gradeproject.lms.models import Activity

from .admin_support import staff
from .archive_support import COLUMNS, add_grades, ids, scalar

# Every kind of value the columns take: NULLs, NaN and both infinities, -0, scores that
# need all 17 digits, milliseconds, JSON of every shape, empty and non-ASCII text.
SPECIAL = """
INSERT INTO activity_grades (id, activity_id, student_id, score, points, feedback, status,
    submitted_at, graded_at, graded_by_id, content, attachments, created_at, updated_at,
    is_archived, is_committed, commitment_id, commitment_deadline, commitment_met)
VALUES
 ('x-nan', '123/a0', 'sx1', 'NaN', NULL, NULL, 'graded', '2023-09-02 10:00:00.123+00',
  NULL, NULL, NULL, NULL, '2023-09-02 10:00:00.001+00', '2023-09-02 10:00:00.999+00',
  false, false, NULL, NULL, NULL),
 ('x-inf', '123/a0', 'sx2', 'Infinity', -2147483648, '', 'graded',
  '2023-09-03 00:00:00.5+02', '2023-09-03 00:00:00.007+00', '', '{}', '[]',
  '2023-09-03 10:00:00+00', '2023-09-03 10:00:00+00', true, true, '', '2023-12-31 23:59:59.999+00',
  true),
 ('x-ninf', '123/a0', 'sx3', '-Infinity', 2147483647, 'Füße 🎓 "quoted" \\ back', 'submitted',
  '2023-09-04 00:00:00+00', NULL, 'tëacher', '{"a": [1, 2.50, {"b": null}], "t": "x\\u00e9y"}',
  '[{"file": "a.pdf", "size": 1e3}]', '2023-09-04 00:00:00+00', '2023-09-04 00:00:00+00',
  false, true, 'c', NULL, false),
 ('x-zero', '123/a0', 'sx4', '-0', 0, repeat('long feedback ', 500), 'graded',
  '2023-09-05 00:00:00+00', '2023-09-05 00:00:00+00', NULL, 'null', '"text"',
  '2023-09-05 00:00:00+00', '2023-09-05 00:00:00+00', false, false, NULL, NULL, NULL),
 ('x-tiny', '123/a0', 'sx5', 5e-324, 1, NULL, 'graded', '2023-09-06 00:00:00+00', NULL, NULL,
  '123', 'true', '2023-09-06 00:00:00+00', '2023-09-06 00:00:00+00', false, false, NULL, NULL,
  NULL),
 ('x-digits', '123/a0', 'sx6', 0.1 + 0.2, 1, NULL, 'graded', '2023-09-07 00:00:00+00', NULL,
  NULL, NULL, NULL, '2023-09-07 00:00:00+00', '2023-09-07 00:00:00+00', false, false, NULL,
  NULL, NULL)
"""


def exact(table: str, where: str = "term_id = '2023_fall'") -> dict:
    """id -> the text of every column (float8 text is exact: shortest round-trip digits)
    and the bytes of the score, so -0, NaN and the last digit all count."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT id, ROW({})::text, float8send(score) FROM {} WHERE {}")
            .format(sql.SQL(COLUMNS), sql.Identifier(table), sql.SQL(where))
            .as_string(cursor.connection)
        )
        return {i: (text, bytes(b) if b is not None else None) for i, text, b in cursor}


def archive(*args: str) -> str:
    out = StringIO()
    call_command("archive_grades", *args, "--noinput", stdout=out)
    return out.getvalue()


def chunk_rows(n: int):
    return override_settings(ACTIVITY_GRADES={**settings.ACTIVITY_GRADES, "ARCHIVE_CHUNK_ROWS": n})


def test_every_column_type_comes_back_bit_for_bit(lms):
    add_grades("123/a0", "2023-09-10", 50, "f23-")
    with connection.cursor() as cursor:
        cursor.execute(SPECIAL)
    original = exact("activity_grades")
    assert len(original) == 56

    with chunk_rows(7):  # several chunks per leaf, the last one short
        assert "Archived 56 rows" in archive("--term", "2023_fall")

    assert exact("archived_activity_grades") == original
    assert scalar("SELECT count(*) FROM archived_activity_grades_chunk") == 8
    # Every chunk's arrays are as long as its row count; grades ordered by student.
    assert (
        scalar(
            "SELECT count(*) FROM archived_activity_grades_chunk WHERE row_count <> "
            "cardinality(id) OR row_count <> cardinality(score) "
            "OR row_count <> cardinality(commitment_met)"
        )
        == 0
    )
    assert (
        scalar("SELECT student_id FROM archived_activity_grades_chunk WHERE chunk_no = 0")
        == (sorted(scalar("SELECT array_agg(student_id) FROM archived_activity_grades"))[:7])
    )

    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    assert exact("activity_grades") == original
    assert scalar("SELECT count(*) FROM archived_activity_grades") == 0


def test_the_model_filters_by_year_class_term_and_student(lms):
    add_grades("123/a0", "2023-09-01", 30, "a-")
    add_grades("456/a0", "2023-09-01", 20, "b-")
    add_grades("123/a1", "2024-02-01", 10, "c-")
    with chunk_rows(4):
        archive("--term", "2023_fall", "--term", "2024_spring")
    grades = ArchivedActivityGrade.objects
    assert grades.filter(academic_year="2023-2024").count() == 60
    assert grades.filter(class_id="123").count() == 40
    assert grades.filter(class_id="123", term_id="2023_fall").count() == 30
    assert grades.filter(term_id="2024_spring").count() == 10
    assert set(grades.filter(student_id="stu3").values_list("id", flat=True)) == {
        "a-3",
        "b-3",
        "c-3",
    }
    one = grades.get(id="b-13")
    assert (one.class_id, one.term_id, one.academic_year) == ("456", "2023_fall", "2023-2024")
    assert one.content == {"answer": "x" * 13, "n": 13}


def test_student_history_reads_the_students_chunks_only(lms):
    for n in range(3):
        Activity.objects.create(id=f"123/x{n}", school_class_id="123", title=f"X{n}")
        add_grades(f"123/x{n}", f"2023-09-0{n + 1}", 100, f"x{n}-")
    with chunk_rows(10):
        archive("--term", "2023_fall")
    history = student_history("stu42")
    assert [g.id for g in history.archived] == ["x0-42", "x1-42", "x2-42"]
    assert history.archived[0].content == {"answer": "x" * 42, "n": 42}
    assert history.archived[0].academic_year == "2023-2024"
    # The chunks come from the GIN index (a bitmap scan); the student's three grades sit
    # in one or two chunks of ten (the chunks are ordered by student).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE archived_activity_grades_chunk")
        cursor.execute("SET LOCAL enable_seqscan = off")  # 30 chunks: a scan is cheaper
        cursor.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT chunk_id FROM "
            "archived_activity_grades_chunk WHERE student_id @> ARRAY['stu42']"
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert "Bitmap Index Scan on archived_activity_grades_c_" in plan, plan
    # One or two chunks read (PostgreSQL 18 prints "rows=1.00").
    assert re.search(r"Bitmap Heap Scan.*actual rows=[12](?:\.0+)?[ )]", plan), plan


def test_compressed_chunks_take_a_fraction_of_the_live_bytes(lms):
    """Demo-like grades (tests' generator): the chunk table against leaf + key index."""
    for n in range(20):
        Activity.objects.create(id=f"123/b{n}", school_class_id="123", title=f"B{n}")
        add_grades(f"123/b{n}", "2023-09-01", 400, f"b{n}-")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE activity_grades_class_123_term_2023_fall")
    live = scalar(
        "SELECT pg_total_relation_size('activity_grades_class_123_term_2023_fall') "
        "+ pg_total_relation_size('activity_grades_key')"
    )
    archive("--term", "2023_fall")
    table = scalar("SELECT table_name FROM activity_grades_archive_year")
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("ANALYZE {}").format(sql.Identifier(table)).as_string(cursor.connection)
        )
    archived = scalar("SELECT pg_total_relation_size(%s::regclass)", [table])
    assert archived * 4 <= live, (live / 8000, archived / 8000)
    assert ids("SELECT academic_year FROM activity_grades_archive_year WHERE rows = 8000") == {
        "2023-2024"
    }


@pytest.mark.parametrize("n", [1, 1000])
def test_chunk_size_changes_nothing_but_the_layout(lms, n):
    add_grades("123/a0", "2023-09-01", 25, "a-")
    original = exact("activity_grades")
    with chunk_rows(n):
        archive("--term", "2023_fall")
    assert exact("archived_activity_grades") == original
    assert scalar("SELECT count(*) FROM archived_activity_grades_chunk") == (25 if n == 1 else 1)


def test_report_and_admin_show_size_and_ratio_per_year(lms, client):
    for n in range(10):
        Activity.objects.create(id=f"123/r{n}", school_class_id="123", title=f"R{n}")
        add_grades(f"123/r{n}", "2023-09-01", 300, f"r{n}-")
    leaf_bytes = scalar("SELECT pg_total_relation_size('activity_grades_class_123_term_2023_fall')")
    archive("--term", "2023_fall")

    out = StringIO()
    call_command("partition_report", "--format", "json", stdout=out)
    (year,) = json.loads(out.getvalue())["archive_years"]
    assert (year["academic_year"], year["rows"], year["source_bytes"]) == (
        "2023-2024",
        3000,
        leaf_bytes,
    )
    assert year["ratio"] == leaf_bytes / year["bytes"] and year["ratio"] > 2
    out = StringIO()
    call_command("partition_report", stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("2023-2024"))
    assert "3,000" in line and f"{year['ratio']:.1f}x" in line

    client.force_login(staff("root", superuser=True))
    page = client.get(reverse("admin:activity_grades_partition_changelist")).content.decode()
    table = page.split('id="ag-archive-years"')[1].split("</table>")[0]
    assert "2023-2024" in table and "3000" in table and f"{year['ratio']:.1f}" in table

    # A restore takes the grades (and their share of the source bytes) out of the year.
    call_command("restore_grades", "--term", "2023_fall", "--noinput", stdout=StringIO())
    assert scalar("SELECT rows || '/' || source_bytes FROM activity_grades_archive_year") == "0/0"


def test_the_view_is_replaced_only_when_it_carries_the_marker(lms):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
        cols = catalog.grade_columns(cursor)
        chunks.create_view(cursor, schema, cols)  # the app's own view: replaced
        assert scalar("SELECT obj_description('archived_activity_grades'::regclass)") == (
            "activity_grades:archive-view"
        )
        cursor.execute("COMMENT ON VIEW archived_activity_grades IS 'mine'")
        with pytest.raises(ArchiveError, match="refusing to drop .*archived_activity_grades"):
            chunks.create_view(cursor, schema, cols)
    assert scalar("SELECT obj_description('archived_activity_grades'::regclass)") == "mine"
