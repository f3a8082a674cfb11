"""Parent table, uniqueness index, partition registry, routing and partition DDL.

The SQL lives in ``activity_grades/sql/`` (its README: one file per released version of
each function, never edited; a change is a new version and a new migration). This
migration imports the loader only, never live code. Everything is created in the
schema first on ``search_path`` (Django's default).

- ``schema/0001_tables.sql``: ``activity_grades`` (the parent; a CHECK (false) NO INHERIT
  keeps rows out of it), ``activity_grades_key`` (the one index spanning the tree:
  id and (activity, student) unique across partitions) and ``activity_grades_partition``
  (the registry, (class, term) -> table).
- Lookup stubs (class_of, term_at, term_bounds): installed for real from settings after
  every migrate; these only make a half-installed database fail loudly.
- Naming: ``activity_grades_slug``, ``activity_grades_partition_name`` v1,
  ``activity_grades_index_name``.
- Routing (``activity_grades_route`` v1 on the parent), moving rows whose routing
  columns changed, keeping the key index in step, refusing TRUNCATE; then the parent's
  triggers (``schema/0001_triggers.sql``).
- ``activity_grades_partition_ddl`` and ``activity_grades_ensure_partition`` v1: create
  the partition of (class, term) on demand, safe when sessions race.
- Unapplying (issue 12): ``RefuseDataLoss`` first refuses while the tree or a table
  carrying the app's marker holds grades; then ``schema/0001_leftovers.reverse.sql``
  drops what no other reverse names (generated lookups, detached tables), so nothing
  of the app is left behind.
"""

from django.db import migrations

from activity_grades.sql import AppSQL, function, read, run_sql_files
from activity_grades.sql.guard import RefuseDataLoss


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        run_sql_files(["schema/0001_tables.sql"], ["schema/0001_tables.reverse.sql"]),
        run_sql_files(
            [
                function("activity_grades_class_of", 1),
                function("activity_grades_term_at", 1),
                function("activity_grades_term_bounds", 1),
            ],
            ["schema/0001_lookups.reverse.sql"],
        ),
        run_sql_files(
            [
                function("activity_grades_slug", 1),
                function("activity_grades_partition_name", 1),
                function("activity_grades_index_name", 1),
            ],
            ["schema/0001_naming.reverse.sql"],
        ),
        run_sql_files(
            [
                function("activity_grades_route", 1),
                function("activity_grades_move", 1),
                function("activity_grades_keys_insert", 1),
                function("activity_grades_keys_delete", 1),
                function("activity_grades_keys_update", 1),
                function("activity_grades_no_truncate", 1),
                "schema/0001_triggers.sql",
            ],
            ["schema/0001_triggers.reverse.sql"],
        ),
        run_sql_files(
            [
                function("activity_grades_partition_ddl", 1),
                function("activity_grades_ensure_partition", 1),
            ],
            ["schema/0001_partition_ddl.reverse.sql"],
        ),
        # Reverse only; operations are unapplied last to first, so these run first.
        AppSQL(migrations.RunSQL.noop, read("schema/0001_leftovers.reverse.sql")),
        RefuseDataLoss(
            "every live grade (the partition tree) and the tables kept outside it",
            trees=["activity_grades"],
            markers=["activity_grades:detached", "activity_grades:partition"],
            keep=[
                "an LMS that adopted its own table: manage.py convert_grades_table --to plain "
                "(the grades stay in one plain table named activity_grades)",
                "otherwise export them first (pg_dump -t 'activity_grades*' or "
                "COPY (SELECT * FROM activity_grades) TO ...)",
            ],
        ),
    ]
