"""The state of ``manage.py convert_grades_table`` (an LMS's own table, converted online).

- ``activity_grades_conversion``: one row per direction (``partitioned``, ``plain``): the
  step reached, the last id moved, the LMS table's original indexes and comment.
- ``activity_grades_conversion_moved``: per (class, term), the rows each direction moved
  and the sum of their row hashes, each batch verified in its own transaction.

Nothing else changes. Reverse: drops both tables.
"""

from django.db import migrations

from activity_grades.sql import run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0007_unique_key")]

    operations = [
        run_sql_files(["schema/0008_conversion.sql"], ["schema/0008_conversion.reverse.sql"])
    ]
