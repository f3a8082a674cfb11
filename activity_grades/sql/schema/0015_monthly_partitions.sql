-- Migration 0015_monthly_partitions (issue 15): month leaves under a term table.
-- A term's table (the (class, term) row of activity_grades_partition) may have children,
-- one per calendar month of the term (in the terms' time zone), clipped to the term's
-- bounds; its granularity says where the routing trigger files the term's new grades.
-- granularity: 'term', the term table is the leaf; 'month', its month tables are. It is
-- set when the term's row is created, from activity_grades_granularity() (generated from
-- ACTIVITY_GRADES['PARTITION_GRANULARITY'] after every migrate and by create_partitions);
-- a class table's row carries the value of that moment and nothing reads it.
ALTER TABLE activity_grades_partition
    ADD COLUMN granularity TEXT NOT NULL DEFAULT 'term'
        CONSTRAINT activity_grades_partition_granularity_check
        CHECK (granularity IN ('term', 'month'));
ALTER TABLE activity_grades_partition
    ALTER COLUMN granularity SET DEFAULT activity_grades_granularity();

-- The month tables: children of their term's table, one per (class, term, first instant).
CREATE TABLE activity_grades_month (
    id BIGSERIAL PRIMARY KEY,
    class_id TEXT NOT NULL,
    term_id TEXT NOT NULL,
    table_name TEXT NOT NULL UNIQUE,
    parent_table TEXT NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'live'
        CHECK (status IN ('live', 'detached', 'archived')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at)
);
CREATE UNIQUE INDEX activity_grades_month_class_term_start_uniq
    ON activity_grades_month (class_id, term_id, starts_at);
COMMENT ON TABLE activity_grades_month IS 'activity_grades:month-registry';
