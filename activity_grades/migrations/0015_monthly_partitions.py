"""Monthly partitions (issue 15): month tables under a term's table.

The SQL lives in ``activity_grades/sql/`` (one file per released version, never edited;
see its README); this migration imports the loader only, never live code.

- ``activity_grades_partition.granularity``: 'term' (the term table is the leaf, every
  term before 0015) or 'month' (the term's grades live in month tables, children of the
  term table). Its default is ``activity_grades_granularity()``, generated from
  ``ACTIVITY_GRADES['PARTITION_GRANULARITY']`` (the stub answers 'term').
- ``activity_grades_month``: the registry of month tables.
- ``activity_grades_month_bounds(p_at)``: the calendar month of an instant in the terms'
  time zone (a stub here, generated after every migrate).
- ``activity_grades_ensure_month`` v1 creates a month table; the routing trigger (route v5)
  and the move trigger (move v4) file a month term's grades in its month tables.
- ``schema/0009_search_path.sql`` runs again (``CREATE OR REPLACE`` of route and move drops
  their setting) and ``schema/0015_search_path.sql`` sets ensure_month's.

Reverse: refused while a month table is live (its grades would be unregistered), else
drops the month registry, the column and the three functions and loads route v4, move v3.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0014_shards")]

    operations = [
        run_sql_files(
            [
                function("activity_grades_granularity", 1),
                function("activity_grades_month_bounds", 1),
                "schema/0015_monthly_partitions.sql",
                function("activity_grades_ensure_month", 1),
                function("activity_grades_route", 5),
                function("activity_grades_move", 4),
                "schema/0009_search_path.sql",
                "schema/0015_search_path.sql",
            ],
            [
                "schema/0015_monthly_partitions.reverse.sql",
                function("activity_grades_route", 4),
                function("activity_grades_move", 3),
                "schema/0009_search_path.sql",
            ],
        ),
    ]
