"""Archive of old terms, its per-academic-year tables, maintenance bookkeeping, late grades.

Fixed SQL text (never built from live code): an edited function gets a new migration.

- ``archived_activity_grades``: every column of ``activity_grades`` plus ``archived_at`` and
  ``academic_year``, LIST-partitioned by academic year so retention drops one table per year
  and a restore reads one year. Children are created by ``activity_grades_archive_year()``,
  carry the marker ``COMMENT 'activity_grades:archive'`` and are built to be small: only
  PK(id) and (student_id), fillfactor 100, ``STORAGE MAIN`` (compress in line rather than
  move to TOAST) with lz4 where the server has it, else pglz. PostgreSQL only compresses
  rows over ~2 kB and copies compressed values verbatim (docs/archiving.md, Measured).
- ``activity_grades_maintenance_run``: time of the last successful maintenance run.
- ``activity_grades_ensure_partition`` v2: a late grade for an archived term recreates the
  live partition instead of failing (the 0001 version raised).
"""

from django.db import migrations, models

ARCHIVE = r"""
CREATE TABLE archived_activity_grades (
    id TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    score DOUBLE PRECISION,
    points INTEGER,
    feedback TEXT,
    status TEXT NOT NULL,
    submitted_at TIMESTAMPTZ(3) NOT NULL,
    graded_at TIMESTAMPTZ(3),
    graded_by_id TEXT,
    content JSONB,
    attachments JSONB,
    created_at TIMESTAMPTZ(3) NOT NULL,
    updated_at TIMESTAMPTZ(3) NOT NULL,
    is_archived BOOLEAN NOT NULL,
    is_committed BOOLEAN NOT NULL,
    commitment_id TEXT,
    commitment_deadline TIMESTAMPTZ(3),
    commitment_met BOOLEAN,
    class_id TEXT,
    term_id TEXT,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    academic_year TEXT NOT NULL
) PARTITION BY LIST (academic_year);
CREATE INDEX archived_activity_grades_student_idx ON archived_activity_grades (student_id);
COMMENT ON TABLE archived_activity_grades IS 'activity_grades:archive-parent';

-- lz4 compresses faster and usually smaller than pglz; servers built without it keep pglz.
DO $$
BEGIN
    ALTER TABLE archived_activity_grades
        ALTER COLUMN feedback SET COMPRESSION lz4,
        ALTER COLUMN content SET COMPRESSION lz4,
        ALTER COLUMN attachments SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'activity_grades: lz4 not available, the archive uses pglz';
END $$;

-- academic year -> archive table (retention drops whole years).
CREATE TABLE activity_grades_archive_year (
    academic_year TEXT PRIMARY KEY,
    table_name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE activity_grades_archive_year IS 'activity_grades:archive-registry';

-- Find or create the archive table of one academic year; safe when sessions race.
CREATE FUNCTION activity_grades_archive_year(p_year text, OUT table_name text, OUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    s text := activity_grades_slug(p_year);
BEGIN
    IF p_year IS NULL OR p_year = '' THEN
        RAISE EXCEPTION 'activity_grades: cannot archive rows without an academic year';
    END IF;
    created := false;
    SELECT y.table_name INTO table_name FROM activity_grades_archive_year y
     WHERE y.academic_year = p_year;
    IF FOUND THEN RETURN; END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('activity_grades:archive-year|' || p_year, 0));
    SELECT y.table_name INTO table_name FROM activity_grades_archive_year y
     WHERE y.academic_year = p_year;
    IF FOUND THEN RETURN; END IF;

    table_name := 'archived_activity_grades_y_' || s;
    IF s <> p_year OR s = '' OR length(table_name) > 63
       OR to_regclass(quote_ident(table_name)) IS NOT NULL THEN
        table_name := 'archived_activity_grades_y_' || left(s, 20) || '_'
                      || substr(md5(p_year), 1, 10);
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF archived_activity_grades FOR VALUES IN (%L) '
                   'WITH (fillfactor = 100, toast_tuple_target = 128)', table_name, p_year);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)',
                   table_name, activity_grades_index_name(table_name, 'pkey'));
    -- Compress medium values in line rather than moving them out to TOAST.
    EXECUTE format('ALTER TABLE %I ALTER COLUMN feedback SET STORAGE MAIN, '
                   'ALTER COLUMN content SET STORAGE MAIN, '
                   'ALTER COLUMN attachments SET STORAGE MAIN', table_name);
    EXECUTE format('COMMENT ON TABLE %I IS %L', table_name, 'activity_grades:archive');
    INSERT INTO activity_grades_archive_year (academic_year, table_name)
    VALUES (p_year, table_name);
    created := true;
END $$;

CREATE TABLE activity_grades_maintenance_run (
    -- One row per job name, updated in place (a cron job every few minutes adds no rows).
    -- finished_at is the end of the last SUCCESSFUL run: monitoring reports its age.
    name TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    failed_at TIMESTAMPTZ,
    error TEXT,
    summary JSONB
);
COMMENT ON TABLE activity_grades_maintenance_run IS 'activity_grades:maintenance';
"""

DROP_ARCHIVE = r"""
DROP TABLE IF EXISTS activity_grades_maintenance_run;
DROP FUNCTION IF EXISTS activity_grades_archive_year(text);
DROP TABLE IF EXISTS activity_grades_archive_year;
DROP TABLE IF EXISTS archived_activity_grades CASCADE;
"""

# v2: status 'archived'/'detached' of a term table no longer raises: the live table is
# created again (under a new name when a detached copy still holds the old one) and the
# registry row goes back to 'live'. Class tables are never archived, so they still raise.
ENSURE_V2 = r"""
CREATE OR REPLACE FUNCTION activity_grades_ensure_partition(
    p_class_id text, p_term_id text, OUT table_name text, OUT created boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_old text;
    v_parent text;
    v_starts timestamptz;
    v_ends timestamptz;
    v_year text;
    v_stmt text;
BEGIN
    IF p_class_id IS NULL THEN
        RAISE EXCEPTION 'activity_grades: a grade needs a class (class_id is NULL)';
    END IF;
    created := false;
    FOR attempt IN 1..2 LOOP
        SELECT p.table_name, p.status INTO v_old, v_status
          FROM activity_grades_partition p
         WHERE p.class_id = p_class_id AND p.term_id IS NOT DISTINCT FROM p_term_id;
        IF v_status = 'live' THEN
            table_name := v_old;
            RETURN;
        ELSIF v_status IS NOT NULL AND p_term_id IS NULL THEN
            RAISE EXCEPTION 'activity_grades: class table % of class % is %',
                v_old, quote_literal(p_class_id), v_status;
        END IF;
        EXIT WHEN attempt = 2;
        PERFORM pg_advisory_xact_lock(hashtextextended(
            'activity_grades:' || length(p_class_id) || ':' || p_class_id || '|'
            || coalesce(p_term_id, '<class>'), 0));
    END LOOP;

    IF p_term_id IS NULL THEN
        v_parent := 'activity_grades';
    ELSE
        SELECT b.starts_at, b.ends_at, b.academic_year INTO v_starts, v_ends, v_year
          FROM activity_grades_term_bounds(p_term_id) b;
        IF v_starts IS NULL THEN
            RAISE EXCEPTION 'activity_grades: term % does not exist', quote_literal(p_term_id)
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        v_parent := (activity_grades_ensure_partition(p_class_id, NULL)).table_name;
    END IF;

    IF v_status IS NOT NULL AND to_regclass(quote_ident(v_old)) IS NULL THEN
        table_name := v_old;  -- archived and dropped: the name is free again
    ELSE
        table_name := activity_grades_partition_name(p_class_id, p_term_id);
    END IF;
    FOR v_stmt IN SELECT activity_grades_partition_ddl(
        table_name, v_parent, p_class_id, p_term_id, v_starts, v_ends)
    LOOP
        EXECUTE v_stmt;
    END LOOP;
    IF v_status IS NULL THEN
        INSERT INTO activity_grades_partition
            (class_id, term_id, table_name, parent_table, starts_at, ends_at, academic_year)
        VALUES (p_class_id, p_term_id, table_name, v_parent,
                v_starts, v_ends, v_year);
    ELSE
        UPDATE activity_grades_partition p
           SET table_name = activity_grades_ensure_partition.table_name, parent_table = v_parent,
               starts_at = v_starts, ends_at = v_ends, academic_year = v_year, status = 'live'
         WHERE p.class_id = p_class_id AND p.term_id = p_term_id;
        RAISE NOTICE 'activity_grades: partition % of % term % was %; created it again',
            table_name, quote_literal(p_class_id), quote_literal(p_term_id), v_status;
    END IF;
    created := true;

    IF p_term_id IS NOT NULL THEN
        -- Rows that arrived before the term was known wait in the class table:
        -- setting their term moves them here through activity_grades_move().
        EXECUTE format('UPDATE ONLY %I SET term_id = $1 '
                       'WHERE created_at >= $2 AND created_at < $3', v_parent)
            USING p_term_id, v_starts, v_ends;
    END IF;
END $$;
"""

# The reverse restores the 0001 text exactly.
ENSURE_V1 = r"""
CREATE OR REPLACE FUNCTION activity_grades_ensure_partition(
    p_class_id text, p_term_id text, OUT table_name text, OUT created boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_parent text;
    v_starts timestamptz;
    v_ends timestamptz;
    v_year text;
    v_stmt text;
BEGIN
    IF p_class_id IS NULL THEN
        RAISE EXCEPTION 'activity_grades: a grade needs a class (class_id is NULL)';
    END IF;
    created := false;
    FOR attempt IN 1..2 LOOP
        SELECT p.table_name, p.status INTO table_name, v_status
          FROM activity_grades_partition p
         WHERE p.class_id = p_class_id AND p.term_id IS NOT DISTINCT FROM p_term_id;
        IF v_status = 'live' THEN
            RETURN;
        ELSIF v_status IS NOT NULL THEN
            RAISE EXCEPTION 'activity_grades: partition % for class % term % is %',
                table_name, quote_literal(p_class_id), coalesce(quote_literal(p_term_id), 'NULL'),
                v_status
                USING HINT = 'restore it (manage.py restore_grades) before writing to it';
        END IF;
        EXIT WHEN attempt = 2;
        PERFORM pg_advisory_xact_lock(hashtextextended(
            'activity_grades:' || length(p_class_id) || ':' || p_class_id || '|'
            || coalesce(p_term_id, '<class>'), 0));
    END LOOP;

    IF p_term_id IS NULL THEN
        v_parent := 'activity_grades';
    ELSE
        SELECT b.starts_at, b.ends_at, b.academic_year INTO v_starts, v_ends, v_year
          FROM activity_grades_term_bounds(p_term_id) b;
        IF v_starts IS NULL THEN
            RAISE EXCEPTION 'activity_grades: term % does not exist', quote_literal(p_term_id)
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        v_parent := (activity_grades_ensure_partition(p_class_id, NULL)).table_name;
    END IF;

    table_name := activity_grades_partition_name(p_class_id, p_term_id);
    FOR v_stmt IN SELECT activity_grades_partition_ddl(
        table_name, v_parent, p_class_id, p_term_id, v_starts, v_ends)
    LOOP
        EXECUTE v_stmt;
    END LOOP;
    INSERT INTO activity_grades_partition
        (class_id, term_id, table_name, parent_table, starts_at, ends_at, academic_year)
    VALUES (p_class_id, p_term_id, table_name, v_parent,
            v_starts, v_ends, v_year);
    created := true;

    IF p_term_id IS NOT NULL THEN
        -- Rows that arrived before the term was known wait in the class table:
        -- setting their term moves them here through activity_grades_move().
        EXECUTE format('UPDATE ONLY %I SET term_id = $1 '
                       'WHERE created_at >= $2 AND created_at < $3', v_parent)
            USING p_term_id, v_starts, v_ends;
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("activity_grades", "0002_models")]

    operations = [
        migrations.RunSQL(ARCHIVE, DROP_ARCHIVE),
        migrations.RunSQL(ENSURE_V2, ENSURE_V1),
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
    ]
