"""Routing trigger v2: one lookup for class and term, and a cached INSERT per hot leaf.

The SQL lives in ``activity_grades/sql/`` (one file per released version, never edited;
see its README); this migration imports the loader only, never live code.

Measured on v1 (docs/performance.md): of ~67 µs per row routed through the parent,
~30 µs went to planning ``EXECUTE format('INSERT INTO %I ...')`` for every row, and
~10 µs to two separate lookups (class, then term). v2:

- ``activity_grades_locate(activity, at)`` finds class and term in one query. Like the
  other lookups it is generated from settings after every migrate (post_migrate),
  as a one-SELECT ``LANGUAGE sql`` set-returning function, which PostgreSQL inlines into
  the trigger's cached plan (~5 µs instead of ~9 µs as a PL/pgSQL function). The stub
  installed here only makes a half-installed database fail loudly.
- ``activity_grades_insert_into(table, row)`` is a dispatcher generated from the registry
  after every migrate: one static INSERT per recent leaf, reached through a binary
  search on the table name, so each session plans each INSERT once. The version
  installed here knows no table and returns false.
- The trigger still takes the table from the registry and only then asks the dispatcher
  to insert into *that* table; a table the dispatcher does not know (created since it was
  built, or an old term) takes the v1 dynamic path. A stale dispatcher is therefore slow,
  never wrong.
"""

from django.db import migrations

from activity_grades.sql import function, run_sql_files


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0004_partition_name_race")]

    operations = [
        run_sql_files(
            [
                function("activity_grades_locate", 1),
                function("activity_grades_insert_into", 1),
                function("activity_grades_route", 2),
            ],
            # The routing trigger's function goes back to v1 (the 0001 text exactly)
            # before the functions only v2 calls are dropped.
            [function("activity_grades_route", 1), "schema/0005_fast_route.reverse.sql"],
        )
    ]
