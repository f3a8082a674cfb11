-- Migration 0008_conversion: the state of manage.py convert_grades_table, which turns
-- the LMS's own activity_grades table into the tree (--to partitioned) and back (--to
-- plain) while the LMS keeps using it. One row per direction; a rerun continues from it.
CREATE TABLE activity_grades_conversion (
    direction TEXT PRIMARY KEY CHECK (direction IN ('partitioned', 'plain')),
    step TEXT NOT NULL,
    -- the schema of the LMS's table (the app's objects end up beside it)
    legacy_schema TEXT NOT NULL,
    -- the last id a pass has moved or backfilled (ids are the batches' order)
    cursor_id TEXT,
    -- the LMS table's indexes, comment and column types, to convert back to them
    details JSONB NOT NULL DEFAULT '{}',
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
COMMENT ON TABLE activity_grades_conversion IS 'activity_grades:conversion';

-- What each direction moved, per (class, term), each batch verified in its transaction:
-- rows and the sum of their 64-bit row hashes (as the archive's checksums).
CREATE TABLE activity_grades_conversion_moved (
    direction TEXT NOT NULL,
    class_id TEXT NOT NULL,
    term_id TEXT,
    rows BIGINT NOT NULL,
    checksum NUMERIC NOT NULL
);
CREATE UNIQUE INDEX activity_grades_conversion_moved_uniq ON activity_grades_conversion_moved
    (direction, class_id, (term_id IS NULL), coalesce(term_id, ''));
COMMENT ON TABLE activity_grades_conversion_moved IS 'activity_grades:conversion';
