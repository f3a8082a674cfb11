"""Shards, second slice: the key index for partitions that are foreign tables (issue 16).

A class placed on a shard has its class and term tables on the shard and, on the
coordinator, a postgres_fdw foreign table for each (``create_partitions``; the DDL is
made by ``operations.shard_partitions``, not by a migration). The key index stays on the
coordinator; its statement triggers use transition tables, which foreign tables do not
allow, so foreign partitions use row-level trigger functions with the same effect:

- ``activity_grades_key_insert_row`` v1 (AFTER INSERT, FOR EACH ROW);
- ``activity_grades_key_delete_row`` v1 (AFTER DELETE, FOR EACH ROW);
- (UPDATE uses ``activity_grades_keys_update``, which is row-level already.)

Their ``search_path`` is set like migration 0009's (``schema/0016_shard_partitions.sql``).

Reverse: drops the two functions; RESTRICT stops it while a foreign partition uses them.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0015_monthly_partitions")]

    operations = [
        run_sql_files(
            [
                function("activity_grades_key_insert_row", 1),
                function("activity_grades_key_delete_row", 1),
                "schema/0016_shard_partitions.sql",
            ],
            ["schema/0016_shard_partitions.reverse.sql"],
        ),
    ]
