"""Partition DDL v2: the uniqueness key (activity_id, student_id) may be off.

An LMS that keeps several attempts per activity sets ``ACTIVITY_GRADES['UNIQUE_KEY'] =
None``. Whether the key holds is a property of the database, not of the process that
happens to create a partition: ``activity_grades_unique_key()`` (v1) says whether the key
table ``activity_grades_key`` has its unique constraint
``activity_grades_unique_student_activity``, and ``activity_grades_partition_ddl`` v2
gives a new partition ``UNIQUE (activity_id, student_id)`` when it does and a plain index
of those columns when it does not. ``id`` stays unique across the tree either way (the
key table's primary key). ``manage.py apply_unique_key`` switches an existing database.

Nothing changes in a database that keeps the key (every database so far). Reverse: v1
of the partition DDL, after refusing a database whose key is off (0006 cannot hold
several grades of one activity and student).
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0006_activity_errors")]

    operations = [
        run_sql_files(
            [
                function("activity_grades_unique_key", 1),
                function("activity_grades_partition_ddl", 2),
            ],
            ["schema/0007_unique_key.reverse.sql", function("activity_grades_partition_ddl", 1)],
        )
    ]
