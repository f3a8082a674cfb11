"""Routing trigger v3 and move trigger v2: "no such activity" and "no class" are two errors.

v2/v1 raised "activity ... does not exist or has no class" in both cases, so an LMS could
not tell a typo in an activity id from a quiz that belongs to no course. Both functions
now take the class from ``activity_grades_locate``, whose empty result means the
activity does not exist (SQLSTATE 23503, foreign_key_violation, as before), while a row
with a NULL class means it has none (SQLSTATE 23502, not_null_violation). Reverse: v2
and v1 again.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0005_fast_route")]

    operations = [
        run_sql_files(
            [function("activity_grades_route", 3), function("activity_grades_move", 2)],
            [function("activity_grades_route", 2), function("activity_grades_move", 1)],
        )
    ]
