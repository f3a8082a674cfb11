-- Migration 0018_class_moves (issue 16): moving a class between servers (move_class).
-- One row per class being moved: where from, where to, how far. 'copying': the target's
-- tables exist and are being filled, the source is untouched and serves every read and
-- write; 'dropping': the coordinator points at the target, the source shard's tables are
-- still to be dropped. progress: source table -> the last id copied (in the source's
-- order), so an interrupted copy resumes there.
CREATE TABLE activity_grades_move_state (
    class_id TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'copying',
    progress JSONB NOT NULL DEFAULT '{}',
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT activity_grades_move_state_pkey PRIMARY KEY (class_id),
    CONSTRAINT activity_grades_move_state_phase_check CHECK (phase IN ('copying', 'dropping')),
    CONSTRAINT activity_grades_move_state_target_check CHECK (source <> target)
);
COMMENT ON TABLE activity_grades_move_state IS 'activity_grades:move-state';

-- The ids written to a moving class since its copy began (activity_grades_move_capture).
CREATE TABLE activity_grades_move_log (
    seq BIGSERIAL NOT NULL,
    class_id TEXT NOT NULL,
    id TEXT NOT NULL,
    CONSTRAINT activity_grades_move_log_pkey PRIMARY KEY (seq)
);
CREATE INDEX activity_grades_move_log_class_idx ON activity_grades_move_log (class_id, seq);
COMMENT ON TABLE activity_grades_move_log IS 'activity_grades:move-log';

-- A class placed by a move.
ALTER TABLE activity_grades_placement
    DROP CONSTRAINT activity_grades_placement_decided_by_check,
    ADD CONSTRAINT activity_grades_placement_decided_by_check
        CHECK (decided_by IN ('setting', 'hash', 'default', 'existing', 'place', 'move'));

-- Like the other trigger functions (migration 0009): the app's schema first.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION activity_grades_move_capture() SET search_path = %I, pg_temp',
                   current_schema());
END $$;
