"""Guard rails at the door: every write path refuses what would misfile a grade (issue 12).

The SQL lives in ``activity_grades/sql/`` (one file per released version, never edited;
see its README); this migration imports the loader only, never live code.

- ``activity_grades_check_timestamps`` v1: a grade's timestamps must be finite and, in
  UTC, from year 1 to 9999 (infinity or a BC date made every read of its class fail).
- ``activity_grades_check_placement`` v1: a class_id or term_id the caller gives must be
  the activity's class and the term of created_at as stored (latest start wins).
- ``activity_grades_route`` v4 and ``activity_grades_move`` v3 call both, and always take
  class and term from ``activity_grades_locate`` (a class_id given for an activity of
  another class was stored in that class's partition; ``''`` created a partition).
- ``activity_grades_ensure_partition`` v3: a new term adopts from the class table only
  the rows whose created_at belongs to it (overlapping terms: latest start wins, as
  routing decides).

The Python paths (``record``, ``record_many``, ``upsert``, the admin) apply the same rule
with the same text (``activity_grades.core.rules``). Reverse: the previous versions, then
0009's search_path again (CREATE OR REPLACE resets it), then the two new functions go.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0009_search_path")]

    operations = [
        run_sql_files(
            [
                function("activity_grades_check_timestamps", 1),
                function("activity_grades_check_placement", 1),
                function("activity_grades_route", 4),
                function("activity_grades_move", 3),
                function("activity_grades_ensure_partition", 3),
                "schema/0009_search_path.sql",
            ],
            [
                function("activity_grades_route", 3),
                function("activity_grades_move", 2),
                function("activity_grades_ensure_partition", 2),
                "schema/0009_search_path.sql",
                "schema/0011_guard_rails.reverse.sql",
            ],
        )
    ]
