-- Migration 0001_initial: the parent table, the key index and the partition registry.

CREATE TABLE activity_grades (
    id TEXT NOT NULL DEFAULT gen_random_uuid()::text,
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
    created_at TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    is_archived BOOLEAN NOT NULL DEFAULT false,
    is_committed BOOLEAN NOT NULL DEFAULT false,
    commitment_id TEXT,
    commitment_deadline TIMESTAMPTZ(3),
    commitment_met BOOLEAN,
    class_id TEXT,
    term_id TEXT,
    -- Only partitions hold rows: a row reaching the parent itself is an error, never
    -- a silent resting place (and the planner skips the parent when it reads).
    CONSTRAINT activity_grades_parent_holds_no_rows CHECK (false) NO INHERIT,
    CONSTRAINT activity_grades_pkey PRIMARY KEY (id)
);
CREATE INDEX activity_grades_activity_idx ON activity_grades (activity_id);
CREATE INDEX activity_grades_student_idx ON activity_grades (student_id);
ALTER TABLE activity_grades
    ADD CONSTRAINT activity_grades_activity_student_key UNIQUE (activity_id, student_id);
COMMENT ON TABLE activity_grades IS 'activity_grades:parent';

-- Inheritance gives every child its own indexes: this table is the one index that
-- spans the tree, so id and (activity, student) stay unique across all partitions.
-- It also tells which partition holds a grade (class_id, term_id) without
-- planning a query against every child.
CREATE TABLE activity_grades_key (
    id TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    class_id TEXT NOT NULL,
    term_id TEXT,
    CONSTRAINT activity_grades_unique_id PRIMARY KEY (id),
    CONSTRAINT activity_grades_unique_student_activity UNIQUE (student_id, activity_id)
);
COMMENT ON TABLE activity_grades_key IS 'activity_grades:key-index';

-- (class, term) -> table. term_id NULL is the class table itself.
CREATE TABLE activity_grades_partition (
    id BIGSERIAL PRIMARY KEY,
    class_id TEXT NOT NULL,
    term_id TEXT,
    table_name TEXT NOT NULL UNIQUE,
    parent_table TEXT NOT NULL,
    starts_at TIMESTAMPTZ,
    ends_at TIMESTAMPTZ,
    academic_year TEXT,
    status TEXT NOT NULL DEFAULT 'live'
        CHECK (status IN ('live', 'detached', 'archived')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((term_id IS NULL) = (starts_at IS NULL AND ends_at IS NULL))
);
CREATE UNIQUE INDEX activity_grades_partition_class_uniq
    ON activity_grades_partition (class_id) WHERE term_id IS NULL;
CREATE UNIQUE INDEX activity_grades_partition_class_term_uniq
    ON activity_grades_partition (class_id, term_id) WHERE term_id IS NOT NULL;
COMMENT ON TABLE activity_grades_partition IS 'activity_grades:registry';
