-- Migration 0003_archive: the archive, its per-year registry and the maintenance
-- bookkeeping (the function activity_grades_archive_year follows:
-- functions/activity_grades_archive_year/v1.sql).

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
