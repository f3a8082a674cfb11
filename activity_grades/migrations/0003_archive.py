"""Archive of old terms, its per-academic-year tables, maintenance bookkeeping, late grades.

The SQL lives in ``activity_grades/sql/`` (one file per released version, never edited;
see its README); this migration imports the loader only, never live code.

- ``archived_activity_grades``: every column of ``activity_grades`` plus ``archived_at`` and
  ``academic_year``, LIST-partitioned by academic year so retention drops one table per year
  and a restore reads one year. Children are created by ``activity_grades_archive_year()``,
  carry the marker ``COMMENT 'activity_grades:archive'`` and are built to be small: only
  PK(id) and (student_id), fillfactor 100, ``STORAGE MAIN`` (compress in line rather than
  move to TOAST) with lz4 where the server has it, else pglz. PostgreSQL only compresses
  rows over ~2 kB and copies compressed values verbatim (docs/archiving.md, Measured).
- ``activity_grades_maintenance_run``: time of the last successful maintenance run.
- ``activity_grades_ensure_partition`` v2: a late grade for an archived term recreates the
  live partition instead of failing (the 0001 version raised). Under a new name when a
  detached copy still holds the old one; the registry row goes back to 'live'. Class
  tables are never archived, so they still raise. The reverse loads v1 again.
"""

from django.db import migrations, models

from activity_grades.sql import AppSQL, function, read, run_sql_files
from activity_grades.sql.guard import RefuseDataLoss


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0002_models")]

    operations = [
        run_sql_files(
            ["schema/0003_archive.sql", function("activity_grades_archive_year", 1)],
            ["schema/0003_archive.reverse.sql"],
        ),
        run_sql_files(
            [function("activity_grades_ensure_partition", 2)],
            [function("activity_grades_ensure_partition", 1)],
        ),
        migrations.CreateModel(
            name="ArchivedActivityGrade",
            fields=[
                ("id", models.TextField(primary_key=True, serialize=False)),
                ("activity_id", models.TextField()),
                ("student_id", models.TextField()),
                ("score", models.FloatField(null=True)),
                ("points", models.IntegerField(null=True)),
                ("feedback", models.TextField(null=True)),
                ("status", models.TextField()),
                ("submitted_at", models.DateTimeField()),
                ("graded_at", models.DateTimeField(null=True)),
                ("graded_by_id", models.TextField(null=True)),
                ("content", models.JSONField(null=True)),
                ("attachments", models.JSONField(null=True)),
                ("created_at", models.DateTimeField()),
                ("updated_at", models.DateTimeField()),
                ("is_archived", models.BooleanField()),
                ("is_committed", models.BooleanField()),
                ("commitment_id", models.TextField(null=True)),
                ("commitment_deadline", models.DateTimeField(null=True)),
                ("commitment_met", models.BooleanField(null=True)),
                ("class_id", models.TextField(null=True)),
                ("term_id", models.TextField(null=True)),
                ("archived_at", models.DateTimeField()),
                ("academic_year", models.TextField()),
            ],
            options={
                "db_table": "archived_activity_grades",
                "managed": False,
                "ordering": ["created_at", "id"],
            },
        ),
        # Reverse only (operations are unapplied last to first): the guard, then registry
        # rows of archived terms go with the archive.
        AppSQL(migrations.RunSQL.noop, read("schema/0003_registry.reverse.sql")),
        RefuseDataLoss(
            "the archive (archived_activity_grades)",
            tables=["archived_activity_grades"],
            keep=[
                "manage.py restore_grades --term ID for each archived term (SELECT DISTINCT "
                "term_id FROM archived_activity_grades): they go back to live partitions, "
                "which migrating back to 0002 keeps",
                "or export them first: pg_dump -t 'archived_activity_grades*'",
            ],
        ),
    ]
