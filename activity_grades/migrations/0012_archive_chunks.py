"""The compressed archive (issue 14): chunks of grades, one array per column.

The SQL lives in ``activity_grades/sql/`` (one file per released version, never edited;
see its README); this migration imports the loader only, never live code.

- ``archived_activity_grades_chunk``: each archived (class, term) as chunks of up to
  ``ARCHIVE_CHUNK_ROWS`` grades ordered by (student, activity, id), every grade column one
  array value, so TOAST compresses it (lz4 where the server has it); LIST-partitioned by
  academic year, one marked table per year, registered in ``activity_grades_archive_year``
  (now with the year's rows and the bytes they took before, for the compression ratio).
- ``archived_activity_grades`` becomes a view with the same columns as the table it
  replaces: the grades of both formats, one row each.
- Today's row-per-grade archive keeps its rows, renamed ``archived_activity_grades_rows``
  (registry ``activity_grades_archive_rows_year``); ``manage.py compress_archive``
  converts them.
- ``activity_grades_archive_year`` v2 creates the chunk table of a year (v1 the row
  table); ``schema/0009_search_path.sql`` runs again because ``CREATE OR REPLACE`` drops
  the function's setting.

Reverse: refuses while chunks hold grades (``RefuseDataLoss``: it would destroy them; the
message says how many and what to run; ``ACTIVITY_GRADES_ALLOW_DATA_LOSS=1`` lets it),
else drops the chunk tables and the view, renames the row archive
back and loads ``archive_year`` v1.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files
from activity_grades.sql.guard import RefuseDataLoss


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0011_guard_rails")]

    operations = [
        run_sql_files(
            [
                "schema/0012_archive_chunks.sql",
                function("activity_grades_archive_year", 2),
                "schema/0009_search_path.sql",
            ],
            [
                "schema/0012_archive_chunks.reverse.sql",
                function("activity_grades_archive_year", 1),
                "schema/0009_search_path.sql",
            ],
        ),
        # Reverse only, and first (operations are unapplied last to first).
        RefuseDataLoss(
            "the compressed archive (archived_activity_grades_chunk)",
            sums={"archived_activity_grades_chunk": "row_count"},
            keep=[
                "manage.py compress_archive --to rows: the grades go back to the row archive, "
                "which migrating back before 0012 keeps",
                "or manage.py restore_grades --term ID for each archived term",
            ],
        ),
    ]
