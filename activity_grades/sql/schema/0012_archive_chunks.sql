-- Migration 0012_archive_chunks: the compressed archive (issue 14).
--
-- Each archived (class, term) is stored as chunks of up to ARCHIVE_CHUNK_ROWS grades,
-- grouped and ordered by (student, activity, id); every grade column of a chunk is one
-- array value, large and repetitive enough for TOAST compression (lz4 where the server
-- has it). class_id and term_id are the same for every grade of a chunk and are stored
-- once. The view archived_activity_grades unnests the chunks (and still shows the rows
-- archived before this migration, in archived_activity_grades_rows, until
-- manage.py compress_archive converts them). docs/archiving.md.

-- Today's row-per-grade archive keeps its tables and rows under new names.
ALTER TABLE archived_activity_grades RENAME TO archived_activity_grades_rows;
ALTER TABLE activity_grades_archive_year RENAME TO activity_grades_archive_rows_year;
COMMENT ON TABLE archived_activity_grades_rows IS 'activity_grades:archive-rows-parent';
COMMENT ON TABLE activity_grades_archive_rows_year IS 'activity_grades:archive-rows-registry';

CREATE TABLE archived_activity_grades_chunk (
    chunk_id BIGSERIAL,
    academic_year TEXT NOT NULL,
    class_id TEXT,
    term_id TEXT,
    chunk_no INTEGER NOT NULL,
    row_count INTEGER NOT NULL CHECK (row_count > 0),
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    id TEXT[] NOT NULL,
    activity_id TEXT[] NOT NULL,
    student_id TEXT[] NOT NULL,
    score DOUBLE PRECISION[],
    points INTEGER[],
    feedback TEXT[],
    status TEXT[],
    submitted_at TIMESTAMPTZ(3)[],
    graded_at TIMESTAMPTZ(3)[],
    graded_by_id TEXT[],
    content JSONB[],
    attachments JSONB[],
    created_at TIMESTAMPTZ(3)[],
    updated_at TIMESTAMPTZ(3)[],
    is_archived BOOLEAN[],
    is_committed BOOLEAN[],
    commitment_id TEXT[],
    commitment_deadline TIMESTAMPTZ(3)[],
    commitment_met BOOLEAN[],
    CONSTRAINT archived_activity_grades_chunk_pkey PRIMARY KEY (academic_year, chunk_id)
) PARTITION BY LIST (academic_year);
-- restore_grades and filters on class and term read only their chunks.
CREATE INDEX archived_activity_grades_chunk_group_idx
    ON archived_activity_grades_chunk (class_id, term_id);
-- student -> chunks: student_history reads only the chunks that hold the student
-- (student_id @> ARRAY[s]); GIN keeps each distinct student once per chunk.
CREATE INDEX archived_activity_grades_chunk_student_idx
    ON archived_activity_grades_chunk USING gin (student_id);
COMMENT ON TABLE archived_activity_grades_chunk IS 'activity_grades:archive-parent';

-- lz4 compresses large arrays faster than pglz, at a similar size (docs/archiving.md);
-- servers built without it keep pglz. Partitions inherit the setting.
DO $$
DECLARE
    c text;
BEGIN
    FOREACH c IN ARRAY ARRAY['id', 'activity_id', 'student_id', 'score', 'points', 'feedback',
                             'status', 'submitted_at', 'graded_at', 'graded_by_id', 'content',
                             'attachments', 'created_at', 'updated_at', 'is_archived',
                             'is_committed', 'commitment_id', 'commitment_deadline',
                             'commitment_met']
    LOOP
        EXECUTE format('ALTER TABLE archived_activity_grades_chunk '
                       'ALTER COLUMN %I SET COMPRESSION lz4', c);
    END LOOP;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'activity_grades: lz4 not available, the compressed archive uses pglz';
END $$;

-- academic year -> its chunk table (retention drops whole years). rows: archived grades
-- in it; source_bytes: what those grades took before (the live leaves they came from,
-- or today's row archive for converted ones), for the compression ratio per year.
CREATE TABLE activity_grades_archive_year (
    academic_year TEXT PRIMARY KEY,
    table_name TEXT NOT NULL UNIQUE,
    rows BIGINT NOT NULL DEFAULT 0,
    source_bytes BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE activity_grades_archive_year IS 'activity_grades:archive-registry';

-- Every archived grade, whatever its format: one row per grade, every column of
-- activity_grades plus archived_at and academic_year, as before this migration.
-- Filters on academic_year, class_id and term_id reach the chunks themselves.
CREATE VIEW archived_activity_grades AS
SELECT r.id, r.activity_id, r.student_id, r.score, r.points, r.feedback, r.status,
       r.submitted_at, r.graded_at, r.graded_by_id, r.content, r.attachments, r.created_at,
       r.updated_at, r.is_archived, r.is_committed, r.commitment_id, r.commitment_deadline,
       r.commitment_met, r.class_id, r.term_id, r.archived_at, r.academic_year
  FROM archived_activity_grades_rows r
UNION ALL
SELECT u.id, u.activity_id, u.student_id, u.score, u.points, u.feedback, u.status,
       u.submitted_at, u.graded_at, u.graded_by_id, u.content, u.attachments, u.created_at,
       u.updated_at, u.is_archived, u.is_committed, u.commitment_id, u.commitment_deadline,
       u.commitment_met, c.class_id, c.term_id, c.archived_at, c.academic_year
  FROM archived_activity_grades_chunk c
 CROSS JOIN LATERAL unnest(c.id, c.activity_id, c.student_id, c.score, c.points, c.feedback,
                           c.status, c.submitted_at, c.graded_at, c.graded_by_id, c.content,
                           c.attachments, c.created_at, c.updated_at, c.is_archived,
                           c.is_committed, c.commitment_id, c.commitment_deadline,
                           c.commitment_met)
       AS u(id, activity_id, student_id, score, points, feedback, status, submitted_at,
            graded_at, graded_by_id, content, attachments, created_at, updated_at,
            is_archived, is_committed, commitment_id, commitment_deadline, commitment_met);
COMMENT ON VIEW archived_activity_grades IS 'activity_grades:archive-view';
