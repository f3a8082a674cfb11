"""A class placed on a shard gets no partition made on demand on the coordinator (issue 16).

- ``activity_grades_ensure_partition`` v4: the routing trigger's on-demand path refuses a
  class placed on a shard (``activity_grades_placement``) unless its class table already
  is a local table, with an error naming the shard and ``create_partitions``; v3 made a
  local table, so the class's grades silently stayed on the coordinator (E038).

Reverse: v3, then 0009's search_path again (CREATE OR REPLACE resets it).
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0016_shard_partitions")]

    operations = [
        run_sql_files(
            [function("activity_grades_ensure_partition", 4), "schema/0009_search_path.sql"],
            [function("activity_grades_ensure_partition", 3), "schema/0009_search_path.sql"],
        )
    ]
