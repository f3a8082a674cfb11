"""Timestamps stay readable on every write, UPDATEs included (issue 12).

The routing trigger (0011) refuses an INSERT with a timestamp clients cannot read back
(infinity, a BC date, year 10000), and ``activity_grades_move`` an UPDATE of a routing
column; an UPDATE that set only ``submitted_at``, ``graded_at``, ``updated_at`` or
``commitment_deadline`` was stored, and every read of its class failed afterwards.

- ``activity_grades_readable`` v1: the trigger function, the same check and text
  (``activity_grades_check_timestamps``).
- ``activity_grades_partition_ddl`` v3: every new partition gets the trigger
  ``activity_grades_readable`` (BEFORE INSERT OR UPDATE, fired only by its WHEN clause).
- Partitions made before this migration get it in batches of 100, one transaction each,
  so a tree of thousands never holds thousands of locks at once: the migration is
  non-atomic (its SQL files still run in a transaction each). Rows stored before it
  are found by ``check_partitions --keys`` (E020).

Reverse: the triggers go in batches, then ``partition_ddl`` v2 and the function.
"""

from django.db import migrations

from activity_grades.sql import function, run_in_batches, run_sql_files


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("activity_grades", "0012_archive_chunks")]

    operations = [
        run_sql_files(
            [
                function("activity_grades_readable", 1),
                "schema/0013_readable_timestamps.sql",
                function("activity_grades_partition_ddl", 3),
            ],
            [
                function("activity_grades_partition_ddl", 2),
                "schema/0013_readable_timestamps.reverse.sql",
            ],
        ),
        run_in_batches(
            "schema/0013_readable_partitions.sql", "schema/0013_readable_partitions.reverse.sql"
        ),
    ]
