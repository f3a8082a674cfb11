"""``activity_grades_partition_name`` v2: safe against sessions creating partitions at once.

The SQL lives in ``activity_grades/sql/`` (one file per released version, never edited;
see its README); this migration imports the loader only, never live code.

v1 had two races, both seen under load in
``test_concurrent_writers_while_create_partitions_runs``:

- A caller asking for the name of a pair that another session had just created
  (``create_partitions`` planning while a writer creates the same partition on demand)
  saw the new table in the catalog before its registry row was visible to its
  statement's snapshot, and raised "partition name ... is taken". A name that is taken
  *by the same (class, term)* is now returned, not refused: the function is VOLATILE
  so the registry is read with a snapshot taken after the catalog check.
- Two sessions creating *different* pairs whose readable names coincide (class
  ``a_term_b`` and class ``a`` with term ``b``) both found the name free and one
  failed on CREATE TABLE. Each candidate name is now locked (advisory, to the end of
  the transaction) before it is checked, so the second session waits and then
  takes the hashed name.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0003_archive")]

    # The reverse loads v1 again (the 0001 text exactly).
    operations = [
        run_sql_files(
            [function("activity_grades_partition_name", 2)],
            [function("activity_grades_partition_name", 1)],
        )
    ]
