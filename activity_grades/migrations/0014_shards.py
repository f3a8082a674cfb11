"""Shards, the first slice of issue 16: where each class lives, decided once.

The SQL lives in ``activity_grades/sql/`` (one file per released version, never edited;
see its README); this migration imports the loader only, never live code.

- ``activity_grades_placement``: class id -> shard alias or ``'local'``, recorded the
  first time ``placement.shard_of`` is asked (or by ``placement.place``), so adding a
  shard to ``ACTIVITY_GRADES['SHARDS']`` never moves a class by accident.
- The extension, foreign servers and user mappings are not made here: ``manage.py
  setup_shards`` makes them from settings (they name other servers and hold
  credentials), idempotently.

Reverse: refuses while a class is placed on a shard (that record is the only one of
where its grades will live), else drops the foreign servers ``setup_shards`` made (marked
``activity_grades:shard``; their user mappings first) and the placement table.
"""

from django.db import migrations

from activity_grades.sql import run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0013_readable_timestamps")]

    operations = [
        run_sql_files(["schema/0014_shards.sql"], ["schema/0014_shards.reverse.sql"]),
    ]
